"""`StackData`: what :func:`~napari_stackalign.io.read_stack` returns."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import numpy as np

from ..transforms import FrameTransforms

__all__ = ["StackData"]


@dataclass
class StackData:
    """A time series read from disk, frames first.

    Attributes
    ----------
    data : numpy.ndarray or dask.array.Array
        The pixels, shape (T, Y, X) or (T, C, Y, X); multi-position files
        (several scenes of an .nd2, .czi, .lif, OME-TIFF) add a leading
        position axis: (P, T, Y, X) or (P, T, C, Y, X). A dask array (chunked
        by frames) when the file was opened lazily.
    axes : {"TYX", "TCYX", "PTYX", "PTCYX"}
        The meaning of each axis of ``data``.
    channel_axis : int or None
        The index of ``C`` in :attr:`axes` (1 for TCYX, 2 for PTCYX), None
        without channels.
    scale : tuple of float or None
        Size of one step along each axis of ``data`` (frame interval, 1 for
        the channel axis, pixel size for Y and X); None when the file has no
        calibration.
    units : str or None
        Unit of the Y and X pixel size (``"µm"``, ``"nm"``, ...), None when
        unknown.
    metadata : dict
        The file's metadata: for files written by :func:`write_stack`, exactly
        the ``metadata`` that was written; for other files, what the format
        carries (ImageJ, OME, HyperSpy or HDF5 attributes) under one key per
        source.
    transforms : FrameTransforms or None
        The transforms table stored in the file, if any.
    path : pathlib.Path or None
        The file or folder the data was read from.
    lazy : bool
        True when ``data`` is a dask array reading from the file on demand;
        the file stays open until :meth:`close` (or garbage collection).
    """

    data: Any
    axes: str
    channel_axis: int | None = None
    scale: tuple[float, ...] | None = None
    units: str | None = None
    metadata: dict = field(default_factory=dict)
    transforms: FrameTransforms | None = None
    path: Path | None = None
    lazy: bool = False
    _handles: list = field(default_factory=list, repr=False, compare=False)

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of ``data``."""
        return tuple(int(n) for n in self.data.shape)

    @property
    def dtype(self) -> np.dtype:
        """Data type of ``data``."""
        return np.dtype(self.data.dtype)

    @property
    def n_frames(self) -> int:
        """Number of frames (length of the T axis)."""
        return int(self.data.shape[self.axes.index("T")]) if "T" in self.axes else int(self.data.shape[0])

    @property
    def pixel_size(self) -> tuple[float, float] | None:
        """(row, col) pixel size in :attr:`units`, or None when uncalibrated."""
        if self.scale is None:
            return None
        return float(self.scale[-2]), float(self.scale[-1])

    @property
    def n_positions(self) -> int:
        """Number of positions (scenes): the length of the P axis, 1 without one."""
        return int(self.data.shape[0]) if self.axes.startswith("P") else 1

    def position(self, index: int) -> StackData:
        """One position of a (P, T, ...) stack as a (T, Y, X) or (T, C, Y, X) stack.

        The result shares this stack's pixels (lazily for dask) and files:
        close this stack, not the result, when done.

        Raises
        ------
        ValueError
            When there is no P axis or ``index`` is out of range.
        """
        n = self.n_positions
        if not self.axes.startswith("P"):
            raise ValueError(f"this stack has axes {self.axes!r}, no position (P) axis: use it as it is.")
        if not -n <= int(index) < n:
            raise ValueError(f"position {index} does not exist: the stack has {n} positions (0-{n - 1}).")
        index = int(index) % n
        return StackData(
            data=self.data[index],
            axes=self.axes[1:],
            channel_axis=None if self.channel_axis is None else self.channel_axis - 1,
            scale=None if self.scale is None else tuple(self.scale[1:]),
            units=self.units,
            metadata={**self.metadata, "position": index},
            transforms=self.transforms,
            path=self.path,
            lazy=self.lazy,
        )

    def close(self) -> None:
        """Close files kept open for lazy reading (the data is unusable afterwards)."""
        while self._handles:
            handle = self._handles.pop()
            with contextlib.suppress(Exception):
                handle.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
