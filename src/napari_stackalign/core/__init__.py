"""The engine: numpy, scipy and OpenCV only. Never imports napari, Qt or magicgui."""

from ..progress import Cancelled, ProgressCallback
from .apply import apply_transforms
from .average import FrameAverage, average_frames

__all__ = ["Cancelled", "FrameAverage", "ProgressCallback", "apply_transforms", "average_frames"]
