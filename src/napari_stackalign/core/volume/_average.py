"""Template volumes made of registered frames: their mean, and each member's view without itself.

A frame enters a mean resampled at ``p + shift`` (``frame[p + shift] ~
template[p]``), counted only where it covers; the mean is made zero-mean and
unit-variance over the covered voxels. :class:`Average` keeps the sums, so the
correlation of a member with the template *without itself* can be measured
(:meth:`Average.without`) instead of corrected by formula.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from scipy import ndimage

from ._engine import _box, _sample

__all__ = ["Average", "average_of", "spline_coefficients"]


def spline_coefficients(volume: np.ndarray) -> np.ndarray:
    """The cubic B-spline coefficients :func:`._engine._sample` reads (``mode="nearest"``)."""
    return ndimage.spline_filter(volume, order=3, mode="nearest", output=np.float32)


class Average:
    """A template (``volume``: zero mean, unit variance) with the sums it was made of, so that a
    member's correlation with the template *without itself* can be measured (:meth:`without`)."""

    def __init__(self, volume: np.ndarray, total: np.ndarray, count: np.ndarray, shifts: dict[int, np.ndarray]) -> None:
        self.volume = volume
        self.total = total
        self.count = count
        #: frame -> the shift it was averaged with
        self.shifts = shifts

    def without(self, t: int, frame: np.ndarray) -> np.ndarray | None:
        """The mean of the members but ``t`` (``frame`` its prepared volume); None if ``t`` is not one."""
        s = self.shifts.get(t)
        if s is None:
            return None
        box = _box(self.total.shape, s)
        total = self.total.copy()
        count = self.count.copy()
        total[box] -= _sample(spline_coefficients(frame), s, box)
        count[box] -= 1
        return np.where(count > 0, total / np.maximum(count, 1), 0.0).astype(np.float32)


def average_of(items: Iterable[tuple[int, np.ndarray | None, np.ndarray]], shape: tuple[int, ...]) -> Average | None:
    """The mean of ``(frame, spline coefficients, shift)`` items (coefficients None: unusable, skipped;
    a shift that is not finite is skipped too); None when no item covers any voxel."""
    total = np.zeros(shape, np.float64)
    count = np.zeros(shape, np.int32)
    members: dict[int, np.ndarray] = {}
    for t, coeffs, s in items:
        if coeffs is None or not np.all(np.isfinite(s)):
            continue
        box = _box(shape, s)
        if box is None:
            continue
        total[box] += _sample(coeffs, s, box)
        count[box] += 1
        members[int(t)] = np.asarray(s, dtype=np.float64)
    if not count.any():
        return None
    template = np.where(count > 0, total / np.maximum(count, 1), 0.0)
    covered = count > 0
    template[covered] -= template[covered].mean()
    if not covered.all():
        # what no frame covers (at least the spline margin at the borders) repeats the nearest covered
        # voxel: a frame of zeros there would pull the refinement towards its edges
        nearest = ndimage.distance_transform_edt(~covered, return_distances=False, return_indices=True)
        template = template[tuple(nearest)]
    std = float(template[covered].std())
    return Average((template / std if std > 0 else template).astype(np.float32), total, count, members)
