"""The input formats :func:`~napari_stackalign.io.read_stack` reads: one table for
the dispatch, the napari reader, the command-line help and the docs.

Each format names the library that reads it and, for the optional ones, the
package extra that installs that library; :func:`missing_extra_error` turns a
missing library into a message that says what to install.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ASD_SUFFIXES",
    "BIOIO_SUFFIXES",
    "IMAGE_SUFFIXES",
    "INPUT_FORMATS",
    "OME_TIFF_SUFFIXES",
    "OME_ZARR_SUFFIXES",
    "RSCIIO_SUFFIXES",
    "InputFormat",
    "find_spec_safe",
    "input_formats_help",
    "is_ome_zarr",
    "missing_extra_error",
    "suffix_of",
]

#: single images or frames of a folder (read with Pillow, a core dependency)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
#: electron-microscopy files read with RosettaSciIO (``rsciio``); .hspy has its own h5py reader
RSCIIO_SUFFIXES = (".dm3", ".dm4", ".emd", ".ser", ".emi", ".mrc")
#: light-microscopy files read with bioio and its plugins
BIOIO_SUFFIXES = (".nd2", ".czi", ".lif")
OME_TIFF_SUFFIXES = (".ome.tif", ".ome.tiff")
OME_ZARR_SUFFIXES = (".ome.zarr", ".zarr")
#: high-speed AFM movies read with libasd
ASD_SUFFIXES = (".asd",)


@dataclass(frozen=True)
class InputFormat:
    """One input format: its name, file suffixes, the library and the extra that installs it."""

    name: str
    #: a short name for one-line help texts
    label: str
    suffixes: tuple[str, ...]
    library: str
    #: the package extra that installs ``library`` (None: a core dependency)
    extra: str | None = None
    #: what of the file's metadata the reader keeps, for the docs
    keeps: str = ""


#: Every input format, in the order the help and the docs list them.
INPUT_FORMATS: tuple[InputFormat, ...] = (
    InputFormat(
        "TIFF (plain, ImageJ, OME-TIFF first series)",
        "TIFF",
        (".tif", ".tiff"),
        "tifffile",
        keeps="axes, pixel size and unit, ImageJ/OME metadata, this package's transforms",
    ),
    InputFormat(
        "HDF5 and HyperSpy .hspy",
        "HDF5",
        (".h5", ".hdf5", ".hd5", ".hspy"),
        "h5py",
        keeps="dimension labels, scale and units, HyperSpy axes and metadata, transforms",
    ),
    InputFormat("animated GIF", "GIF", (".gif",), "Pillow", keeps="frame count, colour or grey"),
    InputFormat(
        "PNG, JPEG, BMP frames (one file per frame, or a folder of them)",
        "PNG/JPEG/BMP",
        IMAGE_SUFFIXES,
        "Pillow",
        keeps="file names in frame order, image mode",
    ),
    InputFormat(
        "Digital Micrograph, EMD (Velox, Berkeley), FEI TIA .ser/.emi, MRC",
        "EM",
        RSCIIO_SUFFIXES,
        "rosettasciio",
        extra="em",
        keeps="pixel size and unit, frame interval, metadata and original_metadata",
    ),
    InputFormat(
        "Nikon .nd2, Zeiss .czi, Leica .lif",
        "ND2/CZI/LIF",
        BIOIO_SUFFIXES,
        "bioio",
        extra="bio",
        keeps="pixel size (µm), channel names, scenes/positions as a P axis, standard metadata",
    ),
    InputFormat(
        "OME-TIFF (all series, as a P axis)",
        "OME-TIFF series",
        OME_TIFF_SUFFIXES,
        "bioio-ome-tiff",
        extra="bio",
        keeps="pixel size, channel names, series as a P axis, OME metadata",
    ),
    InputFormat(
        "OME-Zarr (a .zarr folder)",
        "OME-Zarr",
        OME_ZARR_SUFFIXES,
        "bioio-ome-zarr",
        extra="bio",
        keeps="pixel size and unit, channel names, full resolution level; this package's metadata and transforms",
    ),
    InputFormat(
        "High-speed AFM (RIBM/Kanazawa .asd)",
        "HS-AFM",
        ASD_SUFFIXES,
        "libasd",
        extra="afm",
        keeps="heights in nm, pixel size from the scanning range, frame time, header fields",
    ),
)

#: bioio plugin module per suffix (the package is the module name with dashes)
BIOIO_PLUGINS = {
    ".nd2": "bioio_nd2",
    ".czi": "bioio_czi",
    ".lif": "bioio_lif",
    ".ome.tif": "bioio_ome_tiff",
    ".ome.tiff": "bioio_ome_tiff",
    ".ome.zarr": "bioio_ome_zarr",
    ".zarr": "bioio_ome_zarr",
}


def suffix_of(path: Path) -> str:
    """The lower-case suffix, with the double suffixes ``.ome.tif``, ``.ome.tiff`` and ``.ome.zarr`` kept whole."""
    name = path.name.lower().rstrip("/")
    for double in OME_TIFF_SUFFIXES + (".ome.zarr",):
        if name.endswith(double):
            return double
    return path.suffix.lower()


def is_ome_zarr(path: Path) -> bool:
    """Whether ``path`` is a Zarr folder (named ``*.zarr``, or holding ``.zattrs``/``zarr.json`` metadata)."""
    if not path.is_dir():
        return False
    if path.name.lower().endswith(".zarr"):
        return True
    return (path / ".zattrs").is_file() or (path / "zarr.json").is_file()


def input_formats_help(*, folders: bool = True) -> str:
    """One line naming every input format, for command-line help texts.

    Parameters
    ----------
    folders : bool
        Also name folders of frames (for inputs that accept a folder).
    """
    parts = []
    for fmt in INPUT_FORMATS:
        extra = f" [{fmt.extra}]" if fmt.extra else ""
        parts.append(f"{fmt.label} {'/'.join(fmt.suffixes)}{extra}")
    text = ", ".join(parts)
    if folders:
        text += "; or a folder of .tif/.png/.jpg/.bmp frames (natural order)"
    return text + '. Formats marked [extra] need pip install "napari-stackalign[extra]".'


def find_spec_safe(module: str) -> bool:
    """Whether ``module`` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing_extra_error(path: Path, module: str, extra: str, package: str | None = None) -> ImportError:
    """The error for a format whose reading library is not installed, naming the extra to install.

    Parameters
    ----------
    path : pathlib.Path
        The file that could not be read.
    module : str
        The missing import (``"rsciio"``, ``"bioio"``, ``"bioio_nd2"``).
    extra : str
        The package extra that installs it (``"em"``, ``"bio"``).
    package : str, optional
        The PyPI name of the missing package, when it is not the extra's main one.
    """
    what = package or module
    return ImportError(
        f"cannot read {path.name}: it needs {what}, which is not installed. Install it with "
        f'pip install "napari-stackalign[{extra}]"' + (f" (or pip install {package})." if package else ".")
    )


def require(path: Path, module: str, extra: str, package: str | None = None) -> None:
    """Raise :func:`missing_extra_error` when ``module`` cannot be imported."""
    if not find_spec_safe(module):
        raise missing_extra_error(path, module, extra, package)
