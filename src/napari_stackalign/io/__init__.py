"""Reading and writing time series: TIFF, HDF5, GIF and folders of frames.

No napari or Qt here: :func:`read_stack` and :func:`write_stack` work in
scripts and in the command line as well as behind the napari reader and
writer hooks.
"""

from ._api import COMPRESSIONS, READ_SUFFIXES, WRITE_SUFFIXES, read_stack, write_stack
from ._lazy import estimate_contrast_limits
from ._stackdata import StackData

__all__ = [
    "COMPRESSIONS",
    "READ_SUFFIXES",
    "WRITE_SUFFIXES",
    "StackData",
    "estimate_contrast_limits",
    "read_stack",
    "write_stack",
]
