"""Applying transforms: one resampling per frame (``cv2.warpAffine``), in memory or streamed."""

from ._stream import WarpedFrames
from ._warp import apply_transforms, coverage_mask, warp_frame

__all__ = ["WarpedFrames", "apply_transforms", "coverage_mask", "warp_frame"]
