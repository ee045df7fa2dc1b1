"""npe2 writer hooks: one image layer to TIFF or HDF5 (with its transforms table).

The layer's ``metadata["source_path"]`` (set by this plugin's reader) names
the file the layer came from; writing over it is refused, so a lazily read
layer can never destroy its own source. ``metadata["stackalign"]["transforms"]``
is stored as the file's transforms table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np

from ..io import SOURCE_KEY, normalise_unit, same_file, write_stack
from ..transforms import FrameTransforms

__all__ = ["write_hdf5", "write_tiff"]


def write_tiff(path: str, data: Any, attributes: dict) -> list[str]:
    """Write one image layer as an ImageJ-compatible TIFF stack."""
    return [str(_write(Path(path), data, attributes, default_suffix=".tif"))]


def write_hdf5(path: str, data: Any, attributes: dict) -> list[str]:
    """Write one image layer as HDF5 (``image_data``, ``metadata``, ``transforms``)."""
    return [str(_write(Path(path), data, attributes, default_suffix=".h5"))]


def _spatial_unit(units: Any) -> str | None:
    if units is None:
        return None
    if isinstance(units, (str, bytes)):
        return normalise_unit(units)
    values = [normalise_unit(str(u)) for u in units]
    return values[-1] if values else None


def _write(path: Path, data: Any, attributes: dict, *, default_suffix: str) -> Path:
    if attributes.get("multiscale") and isinstance(data, (list, tuple)):
        data = data[0]
    if not path.suffix:
        path = path.with_suffix(default_suffix)
    metadata = dict(attributes.get("metadata") or {})
    source = metadata.pop(SOURCE_KEY, None)
    block = dict(metadata.get("stackalign") or {})
    transforms = block.pop("transforms", None)
    if isinstance(transforms, dict):
        transforms = FrameTransforms.from_dict(transforms)
    if block:
        metadata["stackalign"] = block
    else:
        metadata.pop("stackalign", None)
    name = attributes.get("name", "layer")
    if source is not None and same_file(path, Path(source)):
        raise ValueError(
            f"refusing to save over {path.name}: layer {name!r} was read from this file (and may still be "
            "reading from it). Choose another file name."
        )
    ndim = len(data.shape)
    scale = list(attributes.get("scale") or [1.0] * ndim)
    labels = [str(a).lower() for a in (attributes.get("axis_labels") or [])]
    if attributes.get("rgb"):
        # (T, Y, X, 3|4) colour frames -> (T, C, Y, X)
        if ndim != 4:
            raise ValueError(f"layer {name!r} is a single RGB image: a time series of frames is needed.")
        data = da.moveaxis(data, -1, 1) if isinstance(data, da.Array) else np.moveaxis(np.asarray(data), -1, 1)
        scale = scale[:1] + [1.0] + scale[1:3]
        ndim = 4
    elif ndim == 4 and len(labels) == 4 and labels[1] in ("z", "depth"):
        raise ValueError(
            f"layer {name!r} is a volume over time (T, Z, Y, X): not supported. Pick one plane or a projection."
        )
    if len(scale) != ndim:
        scale = [1.0] * ndim
    units = _spatial_unit(attributes.get("units"))
    if units is None and all(s == 1.0 for s in scale):
        full_scale = None
    else:
        full_scale = tuple(float(s) for s in scale)
    return write_stack(
        path,
        data,
        metadata=metadata,
        transforms=transforms,
        scale=full_scale,
        units=units,
        axes="TYX" if ndim == 3 else ("TCYX" if ndim == 4 else None),
        overwrite=True,  # napari's save dialog has already asked
        source_path=source,
    )
