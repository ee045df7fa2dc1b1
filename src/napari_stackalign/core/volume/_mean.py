"""The mean of registered volumes as a running sum: one volume at a time, whatever the frame count.

:func:`~napari_stackalign.core.volume._apply.average_volumes` (behind
:func:`~napari_stackalign.average_frames`) and the file-to-file path
(:mod:`._to_file`, which sums the volumes it writes) share it, so both give
the same mean, coverage and common box.
"""

from __future__ import annotations

import numpy as np

__all__ = ["VolumeMean"]


class VolumeMean:
    """A float64 sum of registered volumes ([C,] Z, Y, X), how many cover each voxel, and the box
    every one covers.

    Parameters
    ----------
    extra : tuple of int
        The channel dimensions (``()`` or ``(C,)``).
    zyx : tuple of int
        (Z, Y, X) of one volume.
    """

    def __init__(self, extra: tuple[int, ...], zyx: tuple[int, int, int]) -> None:
        self.total = np.zeros((*extra, *zyx), np.float64)
        self.coverage = np.zeros(zyx, np.int32)
        self.common = [[0, n] for n in zyx]
        self.n_frames = 0

    def add(self, moved: np.ndarray, box: tuple[slice, ...]) -> None:
        """Add one registered volume (NaN outside its footprint ``box``)."""
        self.total += np.nan_to_num(moved, nan=0.0)
        self.coverage[box] += 1
        for a, sl in enumerate(box):
            self.common[a][0] = max(self.common[a][0], sl.start)
            self.common[a][1] = min(self.common[a][1], sl.stop)
        self.n_frames += 1

    def result(self, mode: str) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
        """(mean float32 (NaN where no volume covers), coverage, common box (z0, z1, y0, y1, x0, x1));
        ``mode="crop"`` cuts the mean and coverage to the box."""
        with np.errstate(invalid="ignore", divide="ignore"):
            image = (self.total / self.coverage).astype(np.float32)
        image[..., self.coverage == 0] = np.nan
        coverage = self.coverage
        crop = tuple(int(v) for lo_hi in self.common for v in (lo_hi[0], max(lo_hi[0], lo_hi[1])))
        if mode == "crop":
            sl = tuple(slice(crop[2 * a], crop[2 * a + 1]) for a in range(3))
            image = image[(..., *sl)]
            coverage = coverage[sl]
        return image, coverage, crop
