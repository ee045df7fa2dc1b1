"""napari-stackalign: drift and jitter correction for microscopy time series.

The headless API (no napari or Qt needed)::

    from napari_stackalign import read_stack, apply_transforms, average_frames
"""

from ._version import __version__
from .core import Cancelled, FrameAverage, apply_transforms, average_frames
from .transforms import FrameTransforms

__all__ = [
    "__version__",
    "Cancelled",
    "FrameAverage",
    "FrameTransforms",
    "apply_transforms",
    "average_frames",
]
