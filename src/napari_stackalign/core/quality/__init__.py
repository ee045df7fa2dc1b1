"""Quality figures and before/after comparisons: sharpness, frame correlations, difference, checkerboard."""

from ._compare import CHECKER_TILE, checkerboard, difference
from ._quality import (
    common_region,
    frame_correlations,
    mean_image,
    quality_report,
    sharpness,
)

__all__ = ["CHECKER_TILE", "checkerboard", "common_region", "difference", "frame_correlations", "mean_image", "quality_report", "sharpness"]
