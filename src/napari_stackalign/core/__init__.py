"""The engine: numpy, scipy and OpenCV only. Never imports napari, Qt or magicgui."""

from ..progress import Cancelled, ProgressCallback
from .apply import ApplyOptions, apply_transforms
from .average import AverageOptions, FrameAverage, average_frames

__all__ = [
    "ApplyOptions",
    "AverageOptions",
    "Cancelled",
    "FrameAverage",
    "ProgressCallback",
    "apply_transforms",
    "average_frames",
]
