"""Quality figures and before/after comparisons: sharpness, frame correlations, difference, checkerboard."""

from ._compare import checkerboard, difference
from ._quality import (
    common_region,
    frame_correlations,
    mean_image,
    quality_report,
    sharpness,
)

__all__ = ["checkerboard", "common_region", "difference", "frame_correlations", "mean_image", "quality_report", "sharpness"]
