"""npe2 writer hooks: image layers to TIFF or HDF5, stacks and 2-D results alike.

- ``write_tiff`` / ``write_hdf5``: one image layer. A time series (T, Y, X)
  or (T, C, Y, X) (or RGB frames) goes through :func:`~napari_stackalign.io.write_stack`
  with its transforms table; a 2-D result (an average, a coverage map)
  through :func:`~napari_stackalign.io.write_image`, its metadata (the
  method, its settings and the transforms that made it) stored as JSON.
  An average with channels, (C, Y, X), is recognised by its
  ``metadata["stackalign"]["role"] == "average"`` and written as an image too.
- ``write_average``: two selected layers, an average and its coverage map
  (the one named ``"... coverage"`` or marked ``metadata["stackalign"]["role"]
  == "coverage"``): HDF5 datasets ``image`` and ``coverage`` in one file;
  TIFF the average at the path and the coverage beside it
  (``<name>-coverage.tif``).

The layer's ``metadata["source_path"]`` (set by this plugin's reader) names
the file the layer came from; writing over it is refused, so a lazily read
layer can never destroy its own source.

Errors. napari swallows a writer's ``ValueError`` when it looks for a writer
(then says "not a valid writer") and shows any other exception as a
traceback. So in a napari window every expected error (bad layer, the
source file, an unwritable folder) is an error notification that says what
to do, and the hook returns no paths (napari's own "did not return any
written paths" warning is silenced, the notification says why). Called from
a script (``npe2.write``) the hooks raise ``ValueError``/``OSError`` instead.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
from napari.utils.notifications import show_error

from ..io import SOURCE_KEY, normalise_unit, same_file, write_image, write_stack
from ..transforms import FrameTransforms
from ._window import in_napari_window

__all__ = ["write_average", "write_hdf5", "write_tiff"]

PLUGIN = "napari-stackalign"
#: ``metadata["stackalign"]["role"]`` of an average and of its coverage map (a (C, Y, X) average is an image,
#: not 3 frames)
AVERAGE_ROLE = "average"
COVERAGE_ROLE = "coverage"

#: napari's warning after a writer returned no paths; our notification has already said why
FOLLOW_UP = f"Plugin '{PLUGIN}' tried to save layers but did not return any written paths"


def write_tiff(path: str, data: Any, attributes: dict) -> list[str]:
    """Write one image layer as TIFF: an ImageJ hyperstack, or a 2-D image with its metadata."""
    return _reported(lambda: [str(_write(Path(path), data, attributes, default_suffix=".tif"))])


def write_hdf5(path: str, data: Any, attributes: dict) -> list[str]:
    """Write one image layer as HDF5 (``image_data`` + transforms, or ``image`` for a 2-D result)."""
    return _reported(lambda: [str(_write(Path(path), data, attributes, default_suffix=".h5"))])


def write_average(path: str, layer_data: list[tuple]) -> list[str]:
    """Write an average and its coverage map (two 2-D image layers) together."""
    return _reported(lambda: [str(p) for p in _write_average(Path(path), layer_data)])


def _reported(write: Callable[[], list[str]]) -> list[str]:
    """Run ``write``; in a napari window an expected error becomes a notification (and no paths)."""
    try:
        return write()
    except (ValueError, OSError) as exc:
        if not in_napari_window():
            raise
        show_error(f"Not saved: {exc}")
        # added now, not at import: the filters in force are napari's (its save dialog records warnings)
        warnings.filterwarnings("ignore", message=re.escape(FOLLOW_UP))
        return []


def _spatial_unit(units: Any) -> str | None:
    if units is None:
        return None
    if isinstance(units, (str, bytes)):
        return normalise_unit(units)
    values = [normalise_unit(str(u)) for u in units]
    return values[-1] if values else None


def _split_metadata(attributes: dict) -> tuple[dict, str | None, Any]:
    """The metadata to store, the layer's source file, and its transforms (FrameTransforms, dict or None)."""
    metadata = dict(attributes.get("metadata") or {})
    source = metadata.pop(SOURCE_KEY, None)
    block = dict(metadata.get("stackalign") or {})
    transforms = block.pop("transforms", None)
    if block:
        metadata["stackalign"] = block
    else:
        metadata.pop("stackalign", None)
    return metadata, source, transforms


def _refuse_source(path: Path, source: str | None, name: str) -> None:
    if source is not None and same_file(path, Path(source)):
        raise ValueError(
            f"refusing to save over {path.name}: layer {name!r} was read from this file (and may still be "
            "reading from it). Choose another file name."
        )


def _with_suffix(path: Path, default_suffix: str) -> Path:
    return path if path.suffix else path.with_suffix(default_suffix)


def _pixel_size(attributes: dict) -> tuple[tuple[float, float] | None, str | None]:
    scale = [float(s) for s in (attributes.get("scale") or [])]
    units = _spatial_unit(attributes.get("units"))
    if len(scale) < 2 or (units is None and scale[-2:] == [1.0, 1.0]):
        return None, units
    return (scale[-2], scale[-1]), units


def _write(path: Path, data: Any, attributes: dict, *, default_suffix: str) -> Path:
    if attributes.get("multiscale") and isinstance(data, (list, tuple)):
        data = data[0]
    path = _with_suffix(path, default_suffix)
    metadata, source, transforms = _split_metadata(attributes)
    name = attributes.get("name", "layer")
    _refuse_source(path, source, name)
    ndim = len(data.shape)
    if ndim == 2 or (ndim == 3 and (attributes.get("rgb") or _role(attributes) in (AVERAGE_ROLE, COVERAGE_ROLE))):
        if attributes.get("rgb"):
            raise ValueError(
                f"layer {name!r} is a single RGB image, not a time series or a 2-D result: save it with "
                "napari's own image writer (choose another format in the save dialog)."
            )
        return _write_2d(path, data, attributes, metadata, transforms)
    return _write_stack(path, data, attributes, metadata, transforms, source, name)


def _write_2d(path: Path, data: Any, attributes: dict, metadata: dict, transforms: Any, coverage: Any = None) -> Path:
    """A 2-D result with every bit of its metadata (the transforms that made it included)."""
    if transforms is not None:
        block = dict(metadata.get("stackalign") or {})
        block["transforms"] = transforms.to_dict() if isinstance(transforms, FrameTransforms) else transforms
        metadata = {**metadata, "stackalign": block}
    pixel_size, units = _pixel_size(attributes)
    image = np.asarray(data)
    return write_image(path, image, metadata=metadata, pixel_size=pixel_size, units=units, coverage=coverage)


def _write_stack(
    path: Path, data: Any, attributes: dict, metadata: dict, transforms: Any, source: str | None, name: str
) -> Path:
    if isinstance(transforms, dict):
        transforms = FrameTransforms.from_dict(transforms)
    ndim = len(data.shape)
    scale = list(attributes.get("scale") or [1.0] * ndim)
    labels = [str(a).lower() for a in (attributes.get("axis_labels") or [])]
    if attributes.get("rgb"):
        # (T, Y, X, 3|4) colour frames -> (T, C, Y, X)
        data = da.moveaxis(data, -1, 1) if isinstance(data, da.Array) else np.moveaxis(np.asarray(data), -1, 1)
        scale = scale[:1] + [1.0] + scale[1:3]
        ndim = 4
    elif ndim == 4 and len(labels) == 4 and labels[1] in ("z", "depth"):
        raise ValueError(
            f"layer {name!r} is a volume over time (T, Z, Y, X): not supported. Pick one plane or a projection "
            "and save that."
        )
    elif ndim > 4:
        raise ValueError(
            f"layer {name!r} has {ndim} dimensions: this writer saves (T, Y, X) and (T, C, Y, X) stacks and "
            "2-D images. Select one plane or a sub-stack first."
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
        axes="TYX" if ndim == 3 else "TCYX",
        overwrite=True,  # napari's save dialog has already asked
        source_path=source,
    )


def _role(attributes: dict) -> str | None:
    block = dict(attributes.get("metadata") or {}).get("stackalign") or {}
    return block.get("role") if isinstance(block, dict) else None


def _is_coverage(attributes: dict) -> bool:
    return _role(attributes) == COVERAGE_ROLE or re.search(r"\bcoverage\b", str(attributes.get("name", ""))) is not None


def _write_average(path: Path, layer_data: list[tuple]) -> list[Path]:
    names = [str(attrs.get("name", "layer")) for _, attrs, _ in layer_data]
    coverage = [i for i, (_, attrs, _) in enumerate(layer_data) if _is_coverage(attrs)]
    if len(layer_data) != 2 or len(coverage) != 1:
        raise ValueError(
            f"the selected layers {', '.join(repr(n) for n in names)} are not an average and its coverage map: "
            "select one layer to save it alone, or an average together with its '... coverage' layer."
        )
    cov_data, cov_attrs, _ = layer_data[coverage[0]]
    avg_data, avg_attrs, _ = layer_data[1 - coverage[0]]
    if (
        len(avg_data.shape) not in (2, 3)
        or len(cov_data.shape) != 2
        or tuple(cov_data.shape) != tuple(avg_data.shape[-2:])
    ):
        raise ValueError(
            f"{avg_attrs.get('name')!r} {tuple(avg_data.shape)} and its coverage {tuple(cov_data.shape)} must be "
            "images of the same (Y, X) size: save the layers one by one instead."
        )
    path = _with_suffix(path, ".h5")
    metadata, source, transforms = _split_metadata(avg_attrs)
    _refuse_source(path, source, str(avg_attrs.get("name")))
    coverage_array = np.asarray(cov_data)
    if path.suffix.lower() in (".tif", ".tiff"):
        beside = path.with_name(f"{path.stem}-coverage{path.suffix}")
        _refuse_source(beside, source, str(avg_attrs.get("name")))
        written = [_write_2d(path, avg_data, avg_attrs, metadata, transforms)]
        cov_meta, _, cov_transforms = _split_metadata(cov_attrs)
        written.append(_write_2d(beside, coverage_array, cov_attrs, cov_meta, cov_transforms))
        return written
    return [_write_2d(path, avg_data, avg_attrs, metadata, transforms, coverage=coverage_array)]
