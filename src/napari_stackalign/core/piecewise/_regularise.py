"""Patches whose own estimate is not used take their neighbours' value.

A patch is not used when it was flagged by the estimation (no usable
pixels, a peak that is not significant, at the bound, a failed refinement),
or when its shift differs from the median of its trustworthy neighbours
(the 3 x 3 around it) by more than ``tolerance`` px on either axis. Its
residual is then the Gaussian-weighted mean of the trustworthy patches
(distance in patches, sigma 1, counted from the nearest ones), or zero (the
rigid shift) when the frame has none.
"""

from __future__ import annotations

import numpy as np

from ._patches import FLAG_OUTLIER

__all__ = ["MIN_NEIGHBOURS", "regularise"]

#: trustworthy neighbours needed before a patch can be called an outlier
MIN_NEIGHBOURS = 3


def regularise(residual: np.ndarray, flag: np.ndarray, tolerance: float) -> tuple[np.ndarray, np.ndarray]:
    """(residual, flag) of one frame's (ny, nx) patch grid with the unused patches filled in."""
    residual = residual.copy()
    flag = flag.copy()
    good = flag == 0
    ny, nx = good.shape
    # the 8 neighbours of every patch, NaN where a neighbour is missing or not trustworthy
    padded = np.full((ny + 2, nx + 2, 2), np.nan)
    padded[1:-1, 1:-1] = np.where(good[..., None], residual, np.nan)
    near = np.stack(
        [padded[1 + di : 1 + di + ny, 1 + dj : 1 + dj + nx] for di in (-1, 0, 1) for dj in (-1, 0, 1) if di or dj]
    )
    count = np.isfinite(near[..., 0]).sum(axis=0)
    outlier = np.zeros_like(good)
    check = good & (count >= MIN_NEIGHBOURS)
    if check.any():
        median = np.nanmedian(near[:, check], axis=0)
        outlier[check] = np.abs(residual[check] - median).max(axis=-1) > tolerance
    flag[outlier] = FLAG_OUTLIER
    good &= ~outlier
    bad = ~good
    if not bad.any():
        return residual, flag
    if not good.any():
        residual[:] = 0.0
        return residual, flag
    gi, gj = np.nonzero(good)
    for i, j in zip(*np.nonzero(bad)):
        d2 = (gi - i) ** 2 + (gj - j) ** 2
        weights = np.exp(-(d2 - d2.min()) / 2.0)
        residual[i, j] = weights @ residual[gi, gj] / weights.sum()
    return residual, flag
