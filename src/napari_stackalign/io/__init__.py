"""Reading and writing time series: TIFF, HDF5, GIF, PNG/JPEG/BMP, EM formats (RosettaSciIO),
light-microscopy formats (bioio) and folders of frames.

No napari or Qt here: :func:`read_stack` and :func:`write_stack` work in
scripts and in the command line as well as behind the napari reader and
writer hooks.
"""

from ._api import (
    COMPRESSIONS,
    READ_SUFFIXES,
    WRITE_SUFFIXES,
    read_stack,
    same_file,
    write_stack,
)
from ._axes import plan_axes
from ._folder import natural_key
from ._formats import INPUT_FORMATS, InputFormat, input_formats_help, is_ome_zarr, suffix_of
from ._gif import GIF_SUFFIXES
from ._h5sink import hdf5_writer
from ._hdf5 import HDF5_SUFFIXES, choose_dataset, declared_axes, open_hdf5, stack_candidates
from ._image_writer import IMAGE_WRITE_SUFFIXES, write_image
from ._lazy import (
    LOADED_COPIES,
    MEMORY_FRACTION,
    FrameReader,
    available_memory,
    estimate_contrast_limits,
    frame_chunked_dask,
    is_dask,
    lazy_array,
    process_memory,
    total_memory,
)
from ._mask import read_mask
from ._meta import SOURCE_KEY, normalise_unit
from ._stackdata import StackData
from ._tiff import TIFF_SUFFIXES

__all__ = [
    "COMPRESSIONS",
    "GIF_SUFFIXES",
    "HDF5_SUFFIXES",
    "INPUT_FORMATS",
    "LOADED_COPIES",
    "IMAGE_WRITE_SUFFIXES",
    "MEMORY_FRACTION",
    "READ_SUFFIXES",
    "SOURCE_KEY",
    "TIFF_SUFFIXES",
    "WRITE_SUFFIXES",
    "FrameReader",
    "InputFormat",
    "StackData",
    "available_memory",
    "choose_dataset",
    "declared_axes",
    "estimate_contrast_limits",
    "frame_chunked_dask",
    "hdf5_writer",
    "input_formats_help",
    "is_dask",
    "is_ome_zarr",
    "lazy_array",
    "natural_key",
    "normalise_unit",
    "open_hdf5",
    "process_memory",
    "plan_axes",
    "read_mask",
    "read_stack",
    "same_file",
    "stack_candidates",
    "suffix_of",
    "total_memory",
    "write_image",
    "write_stack",
]
