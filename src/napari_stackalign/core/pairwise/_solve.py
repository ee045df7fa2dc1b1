"""Per-frame shifts from a pairwise shift matrix: weighted least squares.

With ``M[i, j] = p_j - p_i`` (content displacement from frame i to frame j)
and ``c_i`` the correction that moves frame i onto the common reference,
``M[i, j] = c_i - c_j``. The corrections minimise::

    sum over valid pairs i < j of  w_ij (c_i - c_j - M[i, j])**2,   sum_i c_i = 0

(frames aligned to their *mean position*). The normal equations are the
weighted graph Laplacian ``L c = b`` with ``b_i = sum_j w_ij M[i, j]``. When
every pair is valid and all weights are equal this gives
``c_i = mean_j M[i, j]`` (the diagonal zero included): the rigidregistration
package's row mean.

Only frames connected to the largest group of frames by valid pairs are
solved together (``ok``); any other frame gets the median of
``M[i, k] + c_k`` over its measured pairs with solved frames (or 0 without
any) and ``ok = False``.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

__all__ = ["largest_component", "solve_shifts"]


def largest_component(valid: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Boolean mask of the largest connected group of ``candidates`` frames
    (ties: the group holding the lowest frame index). Frames without any
    valid pair are never in it."""
    n = valid.shape[0]
    links = valid & candidates[:, None] & candidates[None, :]
    np.fill_diagonal(links, False)
    connected = links.any(axis=1)
    if not connected.any():
        return np.zeros(n, dtype=bool)
    _, labels = connected_components(csr_matrix(links), directed=False)
    sizes = np.bincount(labels[connected], minlength=labels.max() + 1)
    best = int(np.argmax(sizes))  # argmax takes the first maximum: lowest label
    return connected & (labels == best)


def solve_shifts(
    dy: np.ndarray,
    dx: np.ndarray,
    valid: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    candidates: np.ndarray | None = None,
    measured: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted least-squares corrections from pairwise shifts.

    Parameters
    ----------
    dy, dx : ndarray (T, T)
        Skew-symmetric shift matrices (``M[i, j] = c_i - c_j``).
    valid : ndarray of bool (T, T)
        Pairs to use (symmetric; the diagonal is ignored).
    weights : ndarray (T, T), optional
        Positive symmetric weights (default all 1).
    candidates : ndarray of bool (T,), optional
        Frames that may be solved (default all).
    measured : ndarray of bool (T, T), optional
        Pairs that may place a frame outside the solved group (default
        ``valid``).

    Returns
    -------
    shifts : ndarray (T, 2)
        Corrections (dy, dx), mean zero over the solved frames.
    ok : ndarray of bool (T,)
        Frames solved together.
    """
    n = dy.shape[0]
    valid = np.asarray(valid, dtype=bool).copy()
    np.fill_diagonal(valid, False)
    if candidates is None:
        candidates = np.ones(n, dtype=bool)
    if measured is None:
        measured = valid
    w = np.ones((n, n)) if weights is None else np.asarray(weights, dtype=np.float64)
    w = np.where(valid & np.isfinite(w) & (w > 0), w, 0.0)
    valid &= w > 0
    ok = largest_component(valid, np.asarray(candidates, dtype=bool))
    shifts = np.zeros((n, 2))
    idx = np.flatnonzero(ok)
    if idx.size:
        ws = w[np.ix_(idx, idx)] * valid[np.ix_(idx, idx)]
        lap = np.diag(ws.sum(axis=1)) - ws
        m = idx.size
        system = lap + np.full((m, m), 1.0 / m) * max(float(np.mean(np.diag(lap))), 1.0)
        for axis, mat in enumerate((dy, dx)):
            sub = np.where(valid[np.ix_(idx, idx)], mat[np.ix_(idx, idx)], 0.0)
            b = (ws * sub).sum(axis=1)
            shifts[idx, axis] = np.linalg.solve(system, b)
        shifts[idx] -= shifts[idx].mean(axis=0)
    # frames outside the solved group: from their measured pairs with it
    for i in np.flatnonzero(~ok):
        links = measured[i] & ok
        links[i] = False
        with np.errstate(invalid="ignore"):
            ys = dy[i, links] + shifts[links, 0]
            xs = dx[i, links] + shifts[links, 1]
        good = np.isfinite(ys) & np.isfinite(xs)
        if good.any():
            shifts[i] = (np.median(ys[good]), np.median(xs[good]))
    return shifts, ok
