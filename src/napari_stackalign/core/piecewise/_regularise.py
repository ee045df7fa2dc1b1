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
    """(residual, flag) of a (ny, nx) patch grid, or of a stack of them ((T, ny, nx)), with the unused
    patches filled in (every frame on its own; all frames in a few array operations)."""
    residual = np.array(residual, dtype=np.float64)
    flag = np.array(flag, dtype=np.uint8)
    single = flag.ndim == 2
    if single:
        residual, flag = residual[None], flag[None]
    good = flag == 0
    n_frames, ny, nx = good.shape
    # the 8 neighbours of every patch, NaN where a neighbour is missing or not trustworthy
    padded = np.full((n_frames, ny + 2, nx + 2, 2), np.nan)
    padded[:, 1:-1, 1:-1] = np.where(good[..., None], residual, np.nan)
    near = np.stack(
        [
            padded[:, 1 + di : 1 + di + ny, 1 + dj : 1 + dj + nx]
            for di in (-1, 0, 1)
            for dj in (-1, 0, 1)
            if di or dj
        ]
    )
    count = np.isfinite(near[..., 0]).sum(axis=0)
    outlier = np.zeros_like(good)
    check = good & (count >= MIN_NEIGHBOURS)
    if check.any():
        median = _nanmedian_first(near[:, check])
        outlier[check] = np.abs(residual[check] - median).max(axis=-1) > tolerance
    flag[outlier] = FLAG_OUTLIER
    good &= ~outlier
    # every unused patch: the Gaussian-weighted mean of its frame's trustworthy ones, the nearest counting most
    gi, gj = np.divmod(np.arange(ny * nx), nx)
    d2 = ((gi[:, None] - gi[None, :]) ** 2 + (gj[:, None] - gj[None, :]) ** 2).astype(np.float64)
    flat_good = good.reshape(n_frames, 1, ny * nx)
    nearest = np.where(flat_good, d2[None], np.inf).min(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore"):
        weights = np.where(flat_good, np.exp(-(d2[None] - nearest) / 2.0), 0.0)
    total = weights.sum(axis=-1)
    flat = residual.reshape(n_frames, ny * nx, 2)
    filled = np.einsum("tij,tjk->tik", weights, flat)
    with np.errstate(invalid="ignore", divide="ignore"):
        filled = np.where(total[..., None] > 0, filled / total[..., None], 0.0)
    bad = ~good.reshape(n_frames, ny * nx)
    flat[bad] = filled[bad]
    residual = flat.reshape(n_frames, ny, nx, 2)
    if single:
        return residual[0], flag[0]
    return residual, flag


def _nanmedian_first(values: np.ndarray) -> np.ndarray:
    """The median over the first axis ignoring NaN (``np.nanmedian(values, axis=0)``, by one sort)."""
    ordered = np.sort(values, axis=0)  # NaN last
    count = np.isfinite(ordered).sum(axis=0)
    lo = np.take_along_axis(ordered, np.maximum((count - 1) // 2, 0)[None], axis=0)[0]
    hi = np.take_along_axis(ordered, np.maximum(count // 2, 0)[None], axis=0)[0]
    return np.where(count > 0, 0.5 * (lo + hi), np.nan)
