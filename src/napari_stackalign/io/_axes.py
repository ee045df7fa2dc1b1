"""Map a file's axis order onto the package's frames-first layout.

Files name their axes in many ways (tifffile's ``"IYX"``, ``"TZCYX"``,
``"YXS"``; HDF5 dimension labels; HyperSpy navigation axes; an ``axes=``
string from the user). :func:`plan_axes` turns one of those into the steps
that give (T, Y, X) or (T, C, Y, X), and rejects what the package does not
handle (a single image, a volume over time) with a message saying what to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..layouts import CHANNEL_STACK_AXES, STACK_AXES

__all__ = ["AxesPlan", "normalise_axes", "plan_axes"]

_SPATIAL = "YX"
_CHANNEL = "CS"
#: the position (scene, field of view) axis of multi-position files; kept first, never a frame axis
_POSITION = "P"


@dataclass(frozen=True)
class AxesPlan:
    """How to turn an array with ``file_axes`` into frames-first data."""

    file_axes: str
    #: file dimensions dropped (all of size 1), indexed with 0
    squeeze: tuple[int, ...]
    #: order of the kept file dimensions giving ``out_axes``
    order: tuple[int, ...]
    out_axes: str
    #: index of the file dimension that became the frame axis
    frame_dim: int

    @property
    def channel_axis(self) -> int | None:
        return self.out_axes.index("C") if "C" in self.out_axes else None

    def apply(self, array: Any) -> Any:
        """Apply the plan to a numpy or dask array (lazy for dask)."""
        if self.squeeze:
            index = tuple(0 if d in self.squeeze else slice(None) for d in range(array.ndim))
            array = array[index]
        kept = [d for d in range(len(self.file_axes)) if d not in self.squeeze]
        perm = tuple(kept.index(d) for d in self.order)
        if perm != tuple(range(len(perm))):
            if isinstance(array, np.ndarray):
                array = np.ascontiguousarray(np.transpose(array, perm))
            else:
                array = array.transpose(perm)
        return array

    def map_values(self, per_file_axis: dict[str, float]) -> tuple[float, ...]:
        """Per-output-axis values from a {file axis letter: value} mapping (default 1)."""
        return tuple(float(per_file_axis.get(self.file_axes[d], 1.0)) for d in self.order)


def normalise_axes(axes: str, ndim: int, *, what: str = "axes") -> str:
    """Upper-case an axes string and check it has one distinct letter per dimension."""
    if not isinstance(axes, str) or not axes.isalpha():
        raise ValueError(f"{what} must be a string of axis letters such as 'TYX', 'TCYX' or 'YXT', got {axes!r}.")
    axes = axes.upper()
    if len(axes) != ndim:
        raise ValueError(f"{what}={axes!r} has {len(axes)} letters but the data has {ndim} dimensions.")
    if len(set(axes)) != len(axes):
        raise ValueError(f"{what}={axes!r} repeats a letter: name each axis once (T, C, Z, Y, X).")
    return axes


def plan_axes(
    file_axes: str, shape: tuple[int, ...], *, source: str = "the data", volumes: bool = False
) -> AxesPlan:
    """Plan the reordering of ``file_axes`` (one letter per dimension) to frames first.

    Letters: ``Y`` and ``X`` are the frame rows and columns; ``C`` (channel)
    or ``S`` (colour sample) is the channel axis; any other letter (``T``,
    ``Z``, ``I``, ``Q``, ...) is a frame-like axis; ``P`` (position, scene)
    is kept as the first output axis. Axes of length 1 other than Y and X
    are dropped. Exactly one frame-like axis must remain, or, with
    ``volumes``, a time axis and ``Z`` (giving (T, Z, Y, X) or
    (T, C, Z, Y, X); a ``Z`` without another frame-like axis is then read as
    the time axis, as before). The result is ``TYX`` or ``TCYX`` (or a
    volume order), preceded by ``P`` when there are several positions.

    Raises
    ------
    ValueError
        For a single image, a volume over time, or more than one channel axis,
        with a message saying what to do.
    """
    shape = tuple(int(n) for n in shape)
    file_axes = normalise_axes(file_axes, len(shape))
    if "Y" not in file_axes or "X" not in file_axes:
        raise ValueError(
            f"{source} has axes {file_axes!r} without both 'Y' and 'X': name the axes explicitly "
            "(axes='TYX', 'TCYX', 'YXT', ...)."
        )
    squeeze = tuple(d for d, (a, n) in enumerate(zip(file_axes, shape)) if n == 1 and a not in _SPATIAL)
    kept = [d for d in range(len(shape)) if d not in squeeze]
    channel = [d for d in kept if file_axes[d] in _CHANNEL]
    position = [d for d in kept if file_axes[d] == _POSITION]
    frames = [d for d in kept if file_axes[d] not in _SPATIAL + _CHANNEL + _POSITION]
    described = " x ".join(f"{file_axes[d]}={shape[d]}" for d in range(len(shape)))
    if len(channel) > 1:
        raise ValueError(
            f"{source} has both a channel axis and colour samples ({described}): not supported. "
            "Split it into single-channel stacks first."
        )
    if not frames:
        kind = "a single 2-D image" if not channel else f"a single image with {shape[channel[0]]} channels"
        hint = ""
        if channel:
            order = "".join("T" if d == channel[0] else file_axes[d] for d in kept)
            hint = f" If its {shape[channel[0]]} planes are frames, name the axes: axes={order!r}."
        raise ValueError(
            f"{source} is {kind} ({described}), not a time series: registration needs several frames "
            f"{STACK_AXES}. Open a multi-frame file, or a folder of single-frame files.{hint}"
        )
    if volumes and len(frames) == 2 and any(file_axes[d] == "Z" for d in frames):
        z = next(d for d in frames if file_axes[d] == "Z")
        t = next(d for d in frames if d != z)
        ys, xs = file_axes.index("Y"), file_axes.index("X")
        order = (t, *channel, z, ys, xs)
        out_axes = "TCZYX" if channel else "TZYX"
        return AxesPlan(file_axes=file_axes, squeeze=squeeze, order=order, out_axes=out_axes, frame_dim=t)
    if len(frames) > 1:
        letters = "".join(file_axes[d] for d in frames)
        if "Z" in letters:
            z = next(d for d in frames if file_axes[d] == "Z")
            raise ValueError(
                f"{source} is a volume over time ({described}): 3-D volumes are not supported as frames. "
                f"Read it with volumes=True for a (T, Z, Y, X) or (T, C, Z, Y, X) stack to register in 3-D "
                f"(the CLI's stackalign register does), or pick one plane (e.g. z = {shape[z] // 2} of "
                f"{shape[z]}) or a projection along Z and save it as a {STACK_AXES} or {CHANNEL_STACK_AXES} stack."
            )
        raise ValueError(
            f"{source} has {len(frames)} frame-like axes ({described}): only one time axis is supported. "
            "Name the axes explicitly (axes='TCYX', ...) or select a sub-stack first."
        )
    ys = file_axes.index("Y")
    xs = file_axes.index("X")
    order = tuple(position + frames + channel + [ys, xs])
    out_axes = ("P" if position else "") + ("TCYX" if channel else "TYX")
    return AxesPlan(file_axes=file_axes, squeeze=squeeze, order=order, out_axes=out_axes, frame_dim=frames[0])
