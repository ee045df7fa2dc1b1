"""Each template frame's lattice site, confirmed by the other template frames (no motion prior).

Without the motion prior (``_periodic``: steps too large to link the
frames) and without the template frames' consensus
(:func:`._lattice_consensus.consensus_sites` refused: its two halves did not
agree), a template frame's site is decided by its non-repeating content
against a template that holds that frame too. Its own copy in the template
always agrees with it: on a short stack of large frames the copy alone wins
by a wide margin (grid seed 202, case 20: a 1024 px hexagonal lattice,
16 frames, all of them one or more lattice vectors off, 10 marked ok with
margins well above ``MIN_MARGIN``).

:func:`confirm_sites` compares each template frame, at its chosen site and at
every candidate lattice offset around it, with the mean of the *other*
template frames at their sites: a frame whose site the others do not single
out by ``margin`` of log-likelihood is not confirmed.
"""

from __future__ import annotations

import numpy as np

from ._lattice_blocks import Centred, moved_low

__all__ = ["confirm_sites"]


def confirm_sites(
    lows: list[np.ndarray],
    positions: np.ndarray,
    offsets: np.ndarray,
    step: int,
    blobs: float,
) -> tuple[np.ndarray, np.ndarray] | None:
    """How well the other frames single out each frame's site (see the module docstring).

    Parameters
    ----------
    lows : list of ndarray (h, w)
        The template frames low-passed beyond the lattice, at ``1 / step`` scale.
    positions : ndarray (m, 2)
        Their chosen shifts ``s`` (full-resolution px, ``frame[p + s] ~ template[p]``).
    offsets : ndarray (k, 2)
        The candidate lattice offsets (px); the zero offset is left out of them.
    step : int
        The low-passed images' downsampling.
    blobs : float
        Independent blobs of a whole low-passed image.

    Returns
    -------
    (margin, best) or None
        Per frame, the log-likelihood by which its site beats the best other candidate against the
        mean of the other frames (negative when another candidate matches better), and that
        candidate's offset (m, 2) px. None when the frames are fewer than 3 or no region is covered
        by every frame at every candidate.
    """
    pos = np.asarray(positions, np.float64)
    m = len(lows)
    if m < 3:
        return None
    offs = np.asarray(offsets, np.float64)
    offs = np.vstack([np.zeros((1, 2)), offs[np.hypot(offs[:, 0], offs[:, 1]) > 1e-6]])  # the zero first
    h, w = lows[0].shape
    reach = (np.abs(pos).max(axis=0) + np.abs(offs).max(axis=0)) / step
    my, mx = int(np.ceil(reach[0])) + 1, int(np.ceil(reach[1])) + 1
    if h - 2 * my < 8 or w - 2 * mx < 8:
        return None
    inside = (slice(my, h - my), slice(mx, w - mx))
    dof = blobs * (h - 2 * my) * (w - 2 * mx) / float(h * w)
    placed = [moved_low(low, p / step) for low, p in zip(lows, pos)]
    total = np.sum(placed, axis=0, dtype=np.float64)
    margin = np.empty(m)
    best = np.zeros((m, 2))
    for t in range(m):
        others = Centred(((total - placed[t]) / (m - 1))[inside])
        rs = np.array([others.correlation(moved_low(lows[t], (pos[t] + o) / step)[inside]) for o in offs])
        rs = np.clip(rs, 0.0, 0.999)
        cost = 0.5 * dof * np.log1p(-(rs**2))  # -log-likelihood
        k = 1 + int(np.argmin(cost[1:]))
        margin[t] = float(cost[k] - cost[0])
        best[t] = offs[k]
    return margin, best
