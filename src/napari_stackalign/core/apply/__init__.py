"""Applying transforms: one resampling per frame (``cv2.warpAffine``), in memory or streamed."""

from ._options import (
    APPLY_DEFAULTS,
    BORDERS,
    ORDERS,
    ApplyOptions,
    check_border,
    check_order,
    check_warp_options,
    chunk_size_option,
    failed_option,
    order_option,
    workers_option,
)
from ._stream import WarpedFrames
from ._warp import (
    FailedFramesWarning,
    applicable_matrices,
    apply_transforms,
    coverage_mask,
    frames_shape,
    is_dask,
    result_dtype,
    warp_chunk,
    warp_frame,
)

__all__ = [
    "APPLY_DEFAULTS",
    "BORDERS",
    "ORDERS",
    "ApplyOptions",
    "FailedFramesWarning",
    "WarpedFrames",
    "applicable_matrices",
    "apply_transforms",
    "check_border",
    "check_order",
    "check_warp_options",
    "chunk_size_option",
    "coverage_mask",
    "failed_option",
    "frames_shape",
    "is_dask",
    "order_option",
    "result_dtype",
    "warp_chunk",
    "warp_frame",
    "workers_option",
]
