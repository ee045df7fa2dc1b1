"""Quality figures and before/after comparisons: sharpness, frame correlations, difference, checkerboard."""

from ._compare import CHECKER_TILE, checkerboard, checkerboard_mask, difference
from ._quality import (
    common_region,
    frame_correlations,
    mean_image,
    quality_report,
    region_mask,
    residual_motion,
    sharpness,
)

__all__ = [
    "CHECKER_TILE",
    "checkerboard",
    "checkerboard_mask",
    "common_region",
    "difference",
    "frame_correlations",
    "mean_image",
    "quality_report",
    "region_mask",
    "residual_motion",
    "sharpness",
]
