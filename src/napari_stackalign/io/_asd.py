"""High-speed AFM movies (``.asd``, the RIBM / Kanazawa format) through ``libasd``.

``libasd.read_asd`` converts the raw signal to heights in nm and gives a
header (pixels, scanning range in nm, frame time in ms) and the frames; for
two-channel files the first channel (topography) is read and the second is
named in the metadata. libasd reads the whole file, so the stack is always
in memory.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np

from ._axes import plan_axes
from ._formats import ASD_SUFFIXES, require
from ._stackdata import StackData

__all__ = ["ASD_SUFFIXES", "read_asd"]

#: header fields copied into the metadata when present (plain numbers and text)
_HEADER_FIELDS = (
    "file_version", "num_frames", "x_pixel", "y_pixel", "x_scanning_range", "y_scanning_range",
    "frame_acquision_time", "frame_rate", "scanning_direction", "z_piezo_gain", "z_piezo_extension",
    "sensor_sensitivity", "year", "month", "day", "hour", "minute", "second", "comment", "operator_name",
)  # fmt: skip


def _header_metadata(header: Any) -> dict:
    out: dict[str, Any] = {}
    for name in _HEADER_FIELDS:
        value = getattr(header, name, None)
        if isinstance(value, (int, float, str, np.number)) and not isinstance(value, bool):
            out[name] = value.item() if isinstance(value, np.number) else value
        elif value is not None and hasattr(value, "name"):  # pybind11 enums
            out[name] = str(value.name)
    return out


def _positive(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) and number > 0 else None


def read_asd(path: Path, *, axes: str | None = None) -> StackData:
    """Read a high-speed AFM ``.asd`` movie as (T, Y, X) heights in nm.

    Parameters
    ----------
    path : pathlib.Path
        The ``.asd`` file.
    axes : str, optional
        Refused: the file's frames are always (T, Y, X).

    Raises
    ------
    ImportError
        When libasd is not installed (the message names the extra).
    ValueError
        Unreadable or empty files.
    """
    if axes is not None:
        raise ValueError(f"axes= does not apply to {path.name}: .asd frames are always (T, Y, X).")
    require(path, "libasd", "afm", "libasd")
    libasd = importlib.import_module("libasd")
    try:
        data = libasd.read_asd(str(path))
    except Exception as exc:
        raise ValueError(
            f"cannot read {path}: libasd failed ({type(exc).__name__}: {exc}). The file may be truncated or corrupt."
        ) from exc
    header = data.header
    channels = getattr(data, "channels", None)
    frames = list(channels[0]) if channels is not None else list(data.frames)
    if not frames:
        raise ValueError(f"{path} holds no frames.")
    stack = np.stack([np.asarray(frame.image()) for frame in frames])
    plan = plan_axes("TYX", stack.shape, source=str(path))
    scale = None
    x_range, y_range = (
        _positive(getattr(header, "x_scanning_range", None)),
        _positive(getattr(header, "y_scanning_range", None)),
    )
    if x_range and y_range:
        interval_ms = _positive(getattr(header, "frame_acquision_time", None))
        frame_step = interval_ms / 1000.0 if interval_ms else 1.0
        scale = (frame_step, y_range / stack.shape[1], x_range / stack.shape[2])
    metadata = {"asd": {**_header_metadata(header), "channel": 0, "channels": 2 if channels is not None else 1}}
    return StackData(
        data=plan.apply(stack),
        axes=plan.out_axes,
        scale=scale,
        units="nm" if scale else None,
        metadata=metadata,
        path=path,
        lazy=False,
    )
