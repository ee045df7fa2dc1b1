"""Metadata helpers shared by the readers and writers: JSON, units, scale."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .._version import __version__
from ..files import jsonable
from ..transforms import FrameTransforms

__all__ = [
    "BLOCK_KEY",
    "decode_json_value",
    "jsonable",
    "make_block",
    "normalise_unit",
    "parse_block",
    "per_axis_scale",
]

#: Key of the JSON block this package writes into TIFF descriptions.
BLOCK_KEY = "napari_stackalign"
#: Layer-metadata key where the napari reader records the file a layer came from.
SOURCE_KEY = "source_path"

_UNIT_ALIASES = {
    "um": "µm",
    "µm": "µm",
    "μm": "µm",  # Greek mu
    "micron": "µm",
    "microns": "µm",
    "micrometer": "µm",
    "micrometre": "µm",
    "\\u00b5m": "µm",
    "nm": "nm",
    "nanometer": "nm",
    "nanometre": "nm",
    "mm": "mm",
    "millimeter": "mm",
    "cm": "cm",
    "m": "m",
    "meter": "m",
    "a": "Å",
    "å": "Å",
    "angstrom": "Å",
    "pm": "pm",
}
_NO_UNIT = {"", "pixel", "pixels", "px", "none", "<auto>", "unknown", "undefined", "_none_"}


def normalise_unit(unit: Any) -> str | None:
    """A spatial unit as a short pint-style string (``"µm"``, ``"nm"``), None when absent.

    ImageJ's ``micron`` and ``\\u00B5m`` and plain ``um`` all become ``"µm"``;
    ``pixel`` and empty strings mean uncalibrated (None). Unknown units are
    kept as given.
    """
    if unit is None:
        return None
    if isinstance(unit, bytes):
        unit = unit.decode("utf-8", "replace")
    text = str(unit).strip()
    key = text.lower()
    if key in _NO_UNIT:
        return None
    return _UNIT_ALIASES.get(key, text)


def decode_json_value(value: Any) -> Any:
    """An attribute value written as JSON text, decoded (other values made JSON-safe)."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return jsonable(value)


def make_block(
    *,
    axes: str,
    scale: Sequence[float] | None,
    units: str | None,
    metadata: Mapping | None,
    transforms: FrameTransforms | None,
) -> dict:
    """The JSON block a writer stores next to the pixels."""
    block: dict[str, Any] = {
        "format": "napari-stackalign stack",
        "version": 1,
        "writer": f"napari-stackalign {__version__}",
        "axes": axes,
        "scale": None if scale is None else [float(s) for s in scale],
        "units": units,
        "metadata": jsonable(dict(metadata or {})),
    }
    if transforms is not None:
        block["transforms"] = transforms.to_dict()
    return block


def parse_block(block: Any) -> dict | None:
    """Validate a block read back from a file (a dict or JSON text); None if it is not ours."""
    if isinstance(block, (str, bytes)):
        try:
            block = json.loads(block)
        except ValueError:
            return None
    if not isinstance(block, dict) or "axes" not in block:
        return None
    return block


def block_transforms(block: dict, n_frames: int, *, source: str) -> FrameTransforms | None:
    """The transforms stored in a block (None if absent); checks the frame count."""
    data = block.get("transforms")
    if not data:
        return None
    transforms = FrameTransforms.from_dict(data)
    check_transforms_length(transforms, n_frames, source=source)
    return transforms


def check_transforms_length(transforms: FrameTransforms, n_frames: int, *, source: str) -> None:
    if len(transforms) != n_frames:
        raise ValueError(
            f"{source}: the transforms table has {len(transforms)} rows but the stack has {n_frames} frames."
        )


def per_axis_scale(scale: Any, axes: str) -> tuple[float, ...] | None:
    """Expand a user's ``scale`` to one value per axis of ``axes``.

    Accepts None, one number (the pixel size, for Y and X), a (row, col) pair,
    or one value per axis. Every value must be finite and positive.
    """
    if scale is None:
        return None
    values = np.atleast_1d(np.asarray(scale, dtype=np.float64)).reshape(-1)
    n = len(axes)
    if values.size == 1:
        values = np.array([1.0] * (n - 2) + [values[0], values[0]])
    elif values.size == 2 and n != 2:
        values = np.array([1.0] * (n - 2) + list(values))
    if values.size != n:
        raise ValueError(
            f"scale has {values.size} values but the data has axes {axes!r}: give one pixel size, "
            f"a (row, col) pair or {n} values."
        )
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ValueError(f"scale values must be finite and positive, got {values.tolist()}.")
    return tuple(float(v) for v in values)
