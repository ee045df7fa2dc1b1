"""The expected shift of the next frames: the trajectory estimated so far.

On periodic content (a lattice) a frame matches equally well one lattice
vector away, and the coarse search chooses, among equally good matches, the
one nearest an expected shift (the *prior*). A frame that drifted more than
half a lattice vector from the prior is put a whole number of lattice
vectors off, with a high quality. Expecting each frame where the frames just
before it were (the trajectory) follows a lattice that drifts any distance.

Frames are grouped in batches of ``batch`` at fixed positions (frames
``k * batch`` to ``(k + 1) * batch``); every frame of batch ``k`` expects the
median of the usable shifts of the latest earlier batch that had any, so a
frame's prior depends on the frames before it only, never on how the frames
were chunked or which thread estimated them.
"""

from __future__ import annotations

import numpy as np

__all__ = ["Trajectory", "median_rows"]


def median_rows(rows: np.ndarray) -> tuple[float, float]:
    """``np.median(rows, axis=0)`` as a tuple; one or two rows without
    np.median's overhead (same values: the mean of the two middle ones)."""
    if len(rows) == 1:
        return float(rows[0, 0]), float(rows[0, 1])
    if len(rows) == 2:
        return float((rows[0, 0] + rows[1, 0]) / 2.0), float((rows[0, 1] + rows[1, 1]) / 2.0)
    return tuple(float(v) for v in np.median(rows, axis=0))


class Trajectory:
    """The prior of each frame from the usable shifts recorded before it.

    Parameters
    ----------
    batch : int
        Frames per batch (the prior is at most ``2 * batch - 1`` frames old).
    default : (float, float)
        The prior before any usable frame was recorded.

    Frames are recorded in increasing order (a batch may be recorded in
    pieces); :meth:`prior` of a frame reads only the batches before its own.
    """

    def __init__(self, batch: int, default: tuple[float, float] = (0.0, 0.0)) -> None:
        if batch < 1:
            raise ValueError(f"batch must be at least 1, got {batch}.")
        self.batch = int(batch)
        self._prior = (float(default[0]), float(default[1]))
        self._open = -1  # the batch being recorded
        self._rows: list[tuple[float, float]] = []  # its usable shifts

    def _close_before(self, k: int) -> None:
        if self._open < k and self._rows:
            self._prior = median_rows(np.asarray(self._rows))
            self._rows = []

    def prior(self, frame: int) -> tuple[float, float]:
        """The expected shift of ``frame``."""
        self._close_before(int(frame) // self.batch)
        return self._prior

    def record(self, frame: int, shift: tuple[float, float], usable: bool) -> None:
        """Record ``frame``'s estimate (after every earlier frame's)."""
        k = int(frame) // self.batch
        if k < self._open:
            raise ValueError(f"frame {frame} recorded after a frame of a later batch.")
        if k != self._open:
            self._close_before(k)
            self._open = k
        if usable:
            self._rows.append((float(shift[0]), float(shift[1])))

    def next_boundary(self, frame: int) -> int:
        """The first frame of the batch after ``frame``'s."""
        return (int(frame) // self.batch + 1) * self.batch
