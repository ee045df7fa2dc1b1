"""The engine: numpy, scipy and OpenCV only. Never imports napari, Qt or magicgui."""

from ._progress import Cancelled, ProgressCallback
from .average import FrameAverage, average_frames
from .warp import apply_transforms

__all__ = ["Cancelled", "ProgressCallback", "FrameAverage", "average_frames", "apply_transforms"]
