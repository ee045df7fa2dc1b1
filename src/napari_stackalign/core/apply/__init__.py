"""Applying transforms: one resampling per frame (``cv2.warpAffine``), in memory or streamed."""

from ._stream import WarpedFrames
from ._warp import (
    BORDERS,
    ORDERS,
    apply_transforms,
    check_warp_options,
    coverage_mask,
    frames_shape,
    is_dask,
    result_dtype,
    warp_chunk,
    warp_frame,
)

__all__ = [
    "BORDERS",
    "ORDERS",
    "WarpedFrames",
    "apply_transforms",
    "check_warp_options",
    "coverage_mask",
    "frames_shape",
    "is_dask",
    "result_dtype",
    "warp_chunk",
    "warp_frame",
]
