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
        The pixels, shape (T, Y, X) or (T, C, Y, X). A dask array (chunked by
        frames) when the file was opened lazily.
    axes : {"TYX", "TCYX"}
        The meaning of each axis of ``data``.
    channel_axis : int or None
        1 for (T, C, Y, X) data, None otherwise.
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
        """Number of frames (length of the first axis)."""
        return int(self.data.shape[0])

    @property
    def pixel_size(self) -> tuple[float, float] | None:
        """(row, col) pixel size in :attr:`units`, or None when uncalibrated."""
        if self.scale is None:
            return None
        return float(self.scale[-2]), float(self.scale[-1])

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
