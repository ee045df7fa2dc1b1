"""OME-Zarr (NGFF 0.4) output: one full-resolution level, chunked per frame, streamed.

The image is a Zarr (format 2) group holding the array ``0`` with chunks of
one frame, ``(1, Y, X)`` or ``(1, C, Y, X)``, and the NGFF ``multiscales``
metadata: axes ``t``/``c``/``y``/``x`` with their types, the spatial unit
(NGFF's UDUNITS names, ``micrometer``), and a ``scale`` coordinate
transformation from the pixel size. This package's block (axes, scale,
units, metadata and the per-frame transforms as
:meth:`~napari_stackalign.FrameTransforms.to_dict` gives them) is stored in
the group's attributes under ``"stackalign"``, where
:func:`~napari_stackalign.io.read_stack` restores it.

NGFF 0.4 on Zarr format 2 is what ``ome-zarr`` 0.18, ``bioio-ome-zarr`` and
napari's ``napari-ome-zarr`` all read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..files import raise_if_interrupted
from ..progress import ProgressCallback, report
from ..transforms import FrameTransforms
from ._lazy import iter_frame_chunks
from ._meta import block_transforms, make_block, parse_block

__all__ = [
    "BLOCK_KEY",
    "NGFF_VERSION",
    "ZARR_WRITE_SUFFIXES",
    "ngff_unit",
    "read_zarr_block",
    "restore_zarr_block",
    "write_ome_zarr",
]

#: suffixes written as OME-Zarr folders
ZARR_WRITE_SUFFIXES = (".ome.zarr", ".zarr")
#: the NGFF version written
NGFF_VERSION = "0.4"
#: the group attribute that holds this package's block
BLOCK_KEY = "stackalign"

#: this package's unit names -> NGFF (UDUNITS-2) names
_NGFF_UNITS = {
    "µm": "micrometer",
    "nm": "nanometer",
    "mm": "millimeter",
    "cm": "centimeter",
    "m": "meter",
    "pm": "picometer",
    "Å": "angstrom",
    "s": "second",
    "ms": "millisecond",
}
_AXIS_TYPES = {"T": "time", "C": "channel", "Y": "space", "X": "space"}


def ngff_unit(unit: str | None) -> str | None:
    """The NGFF name of a spatial unit (``"µm"`` -> ``"micrometer"``); unknown units are kept as given."""
    if unit is None:
        return None
    return _NGFF_UNITS.get(unit, unit)


def _axes_metadata(axes: str, units: str | None) -> list[dict[str, str]]:
    result = []
    for letter in axes:
        entry = {"name": letter.lower(), "type": _AXIS_TYPES[letter]}
        if letter in "YX" and units is not None:
            entry["unit"] = ngff_unit(units)
        result.append(entry)
    return result


def _compressor(compression: str | None) -> Any:
    if compression is None:
        return None
    import numcodecs

    if compression == "zlib":
        return numcodecs.Zlib(level=4)
    raise ValueError(f"compression {compression!r} is not available for OME-Zarr: use 'zlib' or 'none'.")


def write_ome_zarr(
    target: Path,
    data: Any,
    *,
    axes: str,
    scale: tuple[float, ...] | None,
    units: str | None,
    metadata: dict,
    transforms: FrameTransforms | None,
    compression: str | None,
    progress: ProgressCallback | None,
    stage: str,
    name: str | None = None,
) -> None:
    """Stream ``data`` (frames first, axes ``TYX`` or ``TCYX``) into the (empty, temporary) folder ``target``.

    Parameters
    ----------
    target : pathlib.Path
        An existing empty folder (the temporary folder of
        :func:`~napari_stackalign.files.atomic_folder`).
    data : array_like
        numpy, memmap, h5py or dask: read a few frames at a time.
    axes, scale, units, metadata, transforms
        As checked by :func:`~napari_stackalign.io.write_stack`; ``scale``
        has one value per axis.
    compression : {"zlib"} or None
        The chunks' codec.
    progress : callable, optional
        ``progress(done, total, stage)`` per chunk of frames.
    stage : str
        The stage text for ``progress``.
    name : str, optional
        The image's name in the metadata (default: the folder's name).
    """
    if axes not in ("TYX", "TCYX"):
        raise ValueError(
            f"OME-Zarr output holds TYX or TCYX stacks, not {axes}: write volumes over time to TIFF or HDF5."
        )
    import zarr

    shape = tuple(int(n) for n in data.shape)
    dtype = np.dtype(data.dtype)
    group = zarr.open_group(str(target), mode="w", zarr_format=2)
    array = group.create_array(
        "0",
        shape=shape,
        chunks=(1,) + shape[1:],
        dtype=dtype,
        compressors=_compressor(compression),
        chunk_key_encoding={"name": "v2", "separator": "/"},
        fill_value=0,
    )
    total = shape[0]
    report(progress, 0, total, stage)
    for start, stop, chunk in iter_frame_chunks(data):
        raise_if_interrupted()
        array[start:stop] = chunk
        report(progress, stop, total, stage)
    full_scale = [1.0] * len(axes) if scale is None else [float(s) for s in scale]
    group.attrs["multiscales"] = [
        {
            "version": NGFF_VERSION,
            "name": name or target.name,
            "axes": _axes_metadata(axes, units),
            "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": full_scale}]}],
            "type": "none",
            "metadata": {"method": "napari-stackalign write_stack", "levels": 1},
        }
    ]
    group.attrs[BLOCK_KEY] = make_block(axes=axes, scale=scale, units=units, metadata=metadata, transforms=transforms)


def read_zarr_block(path: Path) -> dict | None:
    """The block :func:`write_ome_zarr` stored in the group attributes of ``path`` (None if absent)."""
    try:
        import zarr

        group = zarr.open_group(str(path), mode="r")
        return parse_block(dict(group.attrs).get(BLOCK_KEY))
    except (OSError, ValueError, KeyError, TypeError):  # not ours, or not readable by zarr: bioio has the last word
        return None


def restore_zarr_block(result: Any, path: Path) -> Any:
    """``result`` (a :class:`~napari_stackalign.io.StackData` read by bioio from ``path``) with the scale, units,
    metadata and transforms of the block :func:`write_ome_zarr` stored, when there is one and it fits."""
    block = read_zarr_block(path)
    if block is None or block.get("axes") != result.axes:
        return result
    result.metadata = {**dict(block.get("metadata") or {}), **dict(result.metadata or {})}
    if block.get("scale") is not None:
        result.scale = tuple(float(s) for s in block["scale"])
    result.units = block.get("units", result.units)
    result.transforms = block_transforms(block, int(result.data.shape[0]), source=str(path))
    return result
