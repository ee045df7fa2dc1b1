"""Outliers in a pairwise shift matrix: transitivity, smoothness, bad frames.

Shift matrices here follow :mod:`~napari_stackalign.core.pairwise._register`:
``M[i, j]`` is the displacement of frame j's content relative to frame i,
so a consistent matrix satisfies ``M[i, k] + M[k, j] = M[i, j]``.

Transitivity (:func:`transitivity_scores`)
    For each pair (i, j), up to ``maxpaths`` intermediate frames k give the
    path sums ``M[i, k] + M[k, j]``; the score is the *median* over the paths
    of the distance ``|M[i, k] + M[k, j] - M[i, j]|`` (px, both axes). The
    intermediate frames are the ones nearest in time to i or j (frames
    between i and j first on ties), skipping frames already known to be bad.
    Any stack of 3 or more frames works: a pair has ``min(maxpaths, T - 2)``
    paths. (The rigidregistration package sums over paths and divides by
    ``maxpaths``, and its path generator indexes out of range for 3-5
    frames; a median also keeps one bad leg from condemning a good pair.)
    A pair is an outlier when its score exceeds ``threshold``. Two rounds are
    run: frames all of whose pairs failed the first round are not used as
    intermediates in the second (a pair the second round cannot score keeps
    its first verdict). Nothing iterates.

Nearest-neighbour smoothness (:func:`smoothness_outliers`)
    Each off-diagonal element is compared with its 3 x 3 neighbours in the
    matrix (the diagonal zeros count as neighbours); it is an outlier when
    at least half of its neighbours differ from it by more than ``max_shift``
    px, on either axis (``count > (neighbours - 1) // 2``: 3 of 8 inside the
    matrix, fewer at its borders, as in the reference). The mask is made
    symmetric.

Whole frames
    Rows and columns of frames marked bad are excluded. A frame that is
    consistent with fewer than half of the frames it was compared with (at
    least half of its pairs are outliers) is rejected whole, all its pairs
    becoming outliers: a pure-noise frame can match a few frames by chance,
    but not most of them. This runs at most twice.
"""

from __future__ import annotations

import numpy as np

from ._options import PAIRWISE_DEFAULTS, PairwiseOptions

#: a frame with fewer than this share of its pairs consistent is rejected whole
MIN_CONSISTENT = 0.5

__all__ = ["MIN_CONSISTENT", "intermediate_frames", "pair_outliers", "smoothness_outliers", "transitivity_scores"]


def intermediate_frames(n: int, pi: np.ndarray, pj: np.ndarray, count: int, allowed: np.ndarray) -> np.ndarray:
    """Up to ``count`` intermediate frames per pair, nearest in time first.

    Returns an int array (P, count) padded with -1 where fewer frames are
    available. Frames with ``allowed[k] == False`` are never used.
    """
    k = np.arange(n)[None, :]
    i = pi[:, None]
    j = pj[:, None]
    dist = np.minimum(np.abs(k - i), np.abs(k - j)).astype(np.float64)
    inside = (k > np.minimum(i, j)) & (k < np.maximum(i, j))
    key = dist * 2.0 + np.where(inside, 0.0, 1.0)
    bad = (k == i) | (k == j) | ~allowed[None, :]
    key = np.where(bad, np.inf, key)
    take = min(count, n)
    order = np.argsort(key, axis=1, kind="stable")[:, :take]
    ok = np.isfinite(np.take_along_axis(key, order, axis=1))
    return np.where(ok, order, -1)


def transitivity_scores(
    dy: np.ndarray,
    dx: np.ndarray,
    measured: np.ndarray,
    *,
    maxpaths: int = PAIRWISE_DEFAULTS.maxpaths,
    allowed: np.ndarray | None = None,
) -> np.ndarray:
    """Median path-sum discrepancy of every pair (symmetric, NaN where no path).

    Parameters
    ----------
    dy, dx : ndarray (T, T)
        Skew-symmetric shift matrices.
    measured : ndarray of bool (T, T)
        Pairs with a measurement (paths only use measured legs).
    maxpaths : int
        Paths (intermediate frames) per pair.
    allowed : ndarray of bool (T,), optional
        Frames that may serve as intermediates (default all).
    """
    n = dy.shape[0]
    scores = np.full((n, n), np.nan)
    if n < 3:
        return scores
    if allowed is None:
        allowed = np.ones(n, dtype=bool)
    pi, pj = np.triu_indices(n, 1)
    ks = intermediate_frames(n, pi, pj, int(maxpaths), allowed)
    kk = np.where(ks >= 0, ks, 0)
    ii = pi[:, None]
    jj = pj[:, None]
    with np.errstate(invalid="ignore"):
        ey = dy[ii, kk] + dy[kk, jj] - dy[ii, jj]
        ex = dx[ii, kk] + dx[kk, jj] - dx[ii, jj]
        dist = np.hypot(ey, ex)
    usable = (ks >= 0) & measured[ii, kk] & measured[kk, jj] & np.isfinite(dist)
    dist = np.where(usable, dist, np.nan)
    has = usable.any(axis=1)
    med = np.full(pi.size, np.nan)
    if has.any():
        med[has] = np.nanmedian(dist[has], axis=1)
    med = np.where(measured[pi, pj], med, np.nan)
    scores[pi, pj] = med
    scores[pj, pi] = med
    return scores


def smoothness_outliers(dy: np.ndarray, dx: np.ndarray, measured: np.ndarray, max_shift: float) -> np.ndarray:
    """Elements that differ by more than ``max_shift`` from at least half of
    their 3 x 3 matrix neighbours (see the module docstring). Symmetric."""
    n = dy.shape[0]
    valid = measured | np.eye(n, dtype=bool)
    vy = np.where(valid, dy, np.nan)
    vx = np.where(valid, dx, np.nan)
    py = np.pad(vy, 1, constant_values=np.nan)
    px = np.pad(vx, 1, constant_values=np.nan)
    count_y = np.zeros((n, n), dtype=np.int64)
    count_x = np.zeros((n, n), dtype=np.int64)
    neighbours = np.zeros((n, n), dtype=np.int64)
    with np.errstate(invalid="ignore"):
        for a in (-1, 0, 1):
            for b in (-1, 0, 1):
                if a == 0 and b == 0:
                    continue
                sy = py[1 + a : 1 + a + n, 1 + b : 1 + b + n]
                sx = px[1 + a : 1 + a + n, 1 + b : 1 + b + n]
                have = np.isfinite(sy) & np.isfinite(sx)
                neighbours += have
                count_y += have & (np.abs(sy - vy) > max_shift)
                count_x += have & (np.abs(sx - vx) > max_shift)
    allowed = (neighbours - 1) // 2
    out = ((count_y > allowed) | (count_x > allowed)) & measured
    np.fill_diagonal(out, False)
    return out | out.T


def pair_outliers(
    dy: np.ndarray,
    dx: np.ndarray,
    measured: np.ndarray,
    opts: PairwiseOptions,
    bad_frames: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Combined outlier mask and transitivity scores.

    ``opts`` gives ``threshold``, ``maxpaths`` and ``max_shift``;
    ``bad_frames`` is the (T,) mask of the frames marked bad.

    Returns ``(outliers, scores, rejected)``: ``outliers`` (T, T) bool
    marks measured pairs rejected by transitivity (``threshold`` not None)
    or smoothness (``max_shift`` not None), and every pair of a rejected
    frame; ``scores`` holds the transitivity scores (NaN when not computed);
    ``rejected`` (T,) marks frames with fewer than :data:`MIN_CONSISTENT` of
    their pairs consistent. Pairs of bad frames are handled by the caller.
    """
    n = dy.shape[0]
    threshold, maxpaths, max_shift = opts.threshold, opts.maxpaths, opts.max_shift
    good_meas = measured & ~bad_frames[:, None] & ~bad_frames[None, :]
    outliers = np.zeros((n, n), dtype=bool)
    scores = np.full((n, n), np.nan)
    if max_shift is not None:
        outliers |= smoothness_outliers(dy, dx, good_meas, float(max_shift))
    if threshold is not None and n >= 3:
        allowed = ~bad_frames
        scores = transitivity_scores(dy, dx, good_meas, maxpaths=maxpaths, allowed=allowed)
        trans = np.where(np.isfinite(scores), scores > threshold, False)
        # second round: frames all of whose pairs failed are no intermediates
        rejected = trans | outliers
        any_pair = good_meas.any(axis=1)
        all_bad = any_pair & ~(good_meas & ~rejected).any(axis=1)
        second = allowed & ~all_bad
        if all_bad.any() and second.sum() >= 3:
            rescored = transitivity_scores(dy, dx, good_meas, maxpaths=maxpaths, allowed=second)
            known = np.isfinite(rescored)
            trans = np.where(known, rescored > threshold, trans)
            scores = np.where(known, rescored, scores)
        outliers |= trans
    outliers &= good_meas
    rejected = np.zeros(n, dtype=bool)
    if threshold is not None or max_shift is not None:
        for _round in range(2):
            live = good_meas & ~rejected[:, None] & ~rejected[None, :]
            total = live.sum(axis=1)
            kept = (live & ~outliers).sum(axis=1)
            weak = (total > 0) & (kept < MIN_CONSISTENT * total) & ~rejected
            if not weak.any():
                break
            rejected |= weak
        outliers |= good_meas & (rejected[:, None] | rejected[None, :])
    return outliers, scores, rejected
