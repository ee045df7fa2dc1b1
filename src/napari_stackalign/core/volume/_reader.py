"""One prepared volume at a time: a channel of a TCZYX stack, cropped to the ``roi``, float and zero-mean."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from ._checks import VolumeLayout
from ._engine import prepare_volume

__all__ = ["ReadAhead", "VolumeReader"]


class VolumeReader:
    """``reader(t)``: frame ``t`` prepared for the estimator (None when it has no contrast).

    Only ``stack[t]`` (``stack[t, channel]``) is read, so a lazily opened
    stack (h5py, dask, memmap) is never loaded whole.
    """

    def __init__(
        self,
        stack: Any,
        layout: VolumeLayout,
        channel: int | None,
        roi: tuple[int, int, int, int] | None,
        normalize: bool,
    ) -> None:
        self.stack = stack
        self.layout = layout
        self.channel = channel
        self.roi = roi
        self.normalize = normalize

    def crop(self, volume: np.ndarray) -> np.ndarray:
        """``volume`` cut to the roi's rows and columns (every plane)."""
        if self.roi is None:
            return volume
        r0, r1, c0, c1 = self.roi
        return volume[:, r0:r1, c0:c1]

    def __call__(self, t: int) -> np.ndarray | None:
        return prepare_volume(self.crop(self.layout.volume(self.stack, t, self.channel)), self.normalize)

    def ahead(self, pool: ThreadPoolExecutor) -> ReadAhead:
        """This reader for frames asked for in order: the next frame is read on ``pool`` meanwhile."""
        return ReadAhead(self, pool)


class ReadAhead:
    """``reader(t)`` that reads frame ``t + 1`` on a pool while the caller works on ``t``
    (the chained modes register the volumes in order, one at a time). Holds one volume more;
    the volumes are those of ``read``, so the results do not change."""

    def __init__(self, read: VolumeReader, pool: ThreadPoolExecutor) -> None:
        self.read = read
        self.pool = pool
        self.layout = read.layout
        self._next: tuple[int, Future] | None = None

    def crop(self, volume: np.ndarray) -> np.ndarray:
        """As :meth:`VolumeReader.crop`."""
        return self.read.crop(volume)

    def __call__(self, t: int) -> np.ndarray | None:
        pending, self._next = self._next, None
        volume = pending[1].result() if pending is not None and pending[0] == t else self.read(t)
        if t + 1 < self.layout.n_frames:
            self._next = (t + 1, self.pool.submit(self.read, t + 1))
        return volume
