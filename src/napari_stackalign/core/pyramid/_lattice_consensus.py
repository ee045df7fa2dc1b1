"""The template frames' lattice sites agreed among themselves, from one seed frame (no motion prior).

When a lattice stack's steps are too large for the motion to link the frames
(``_periodic``: no motion prior), each frame's lattice site is decided by the
non-repeating content alone, against the template. But the template was
built from the same frames at the sites the search found, which can be
several lattice vectors apart: it holds the non-repeating content at several
offsets, each frame matches its own copy, and rebuilding it from those sites
keeps the mixture (anchors.py ``lattice-512x40-vlow``, seed 99: the template
frames spread over 8 lattice sites, 6.7 px RMS, frames marked ok far off).

:func:`consensus_sites` starts from one frame instead, which holds its
content once: each template frame takes the candidate site (its own site plus
a lattice vector combination within reach) whose low-passed content matches
the seed's best; then, repeatedly, the one that matches the mean of the
*other* template frames at their sites best, until no frame moves. The
caller keeps the result only when the frames match their leave-one-out
means better than at the sites they had (a mixture matches each frame's own
copy only in part).
"""

from __future__ import annotations

import numpy as np

from ._lattice_blocks import Centred, correlation, moved_low

__all__ = ["MAX_ROUNDS", "MAX_WALK", "consensus_sites", "lattice_points"]

#: at most this many rounds of every template frame against the mean of the others
MAX_ROUNDS = 8
#: no frame moves further than this many times the longest lattice vector from the site it had
#: (the region every frame covers, over which all correlations are taken, is fixed by it)
MAX_WALK = 4.0


def consensus_sites(
    lows: list[np.ndarray],
    sites: np.ndarray,
    vectors: np.ndarray,
    step: int,
    bound: tuple[float, float],
    blobs: float,
    margin: float,
) -> tuple[np.ndarray, dict] | None:
    """The template frames' sites agreed among themselves (see the module docstring), or None.

    The even and the odd frames agree among themselves apart, each half from its own seed; the two
    halves' means must then match at one relative lattice offset better than at any other, by more
    than ``margin`` of log-likelihood beyond the log of the offsets compared (frames of noise agree on a pattern of their own, but two halves
    of noise do not agree with each other). The halves are joined at that offset.

    Parameters
    ----------
    lows : list of ndarray (h, w)
        The template frames low-passed beyond the lattice, at ``1 / step`` scale.
    sites : ndarray (m, 2)
        Their shifts ``s`` (full-resolution px, ``frame[p + s] ~ template[p]``).
    vectors : ndarray (2, 2)
        The lattice vectors (rows, px).
    step : int
        The low-passed images' downsampling.
    bound : (float, float)
        ``max_movement`` (px): no site beyond it is taken.
    blobs : float
        Independent blobs of a whole low-passed image.
    margin : float
        Log-likelihood by which the halves' best relative offset must beat the next best.

    Returns
    -------
    (sites, info) or None
        The agreed sites (each the given one plus a lattice offset) and what was measured (the
        halves' margin, the agreement before and after); None when the halves do not agree, the
        frames are too few or no region is covered by every frame at every site it may take.
    """
    given = np.asarray(sites, np.float64)
    m = len(lows)
    if m < 6:
        return None
    basis = np.asarray(vectors, np.float64)
    walk = MAX_WALK * float(np.max(np.hypot(basis[:, 0], basis[:, 1])))
    inside = _inside(lows[0].shape, given, walk, step)
    if inside is None:
        return None
    h, w = lows[0].shape
    dof = blobs * (inside[0].stop - inside[0].start) * (inside[1].stop - inside[1].start) / float(h * w)
    halves = (np.arange(0, m, 2), np.arange(1, m, 2))
    reachable = lattice_points(basis, walk)  # every site within the walk of a frame's own
    agreed = given.copy()
    for half in halves:
        agreed[half] = _agree([lows[t] for t in half], given[half], reachable, step, bound, inside)
    # the two halves' means at every relative offset: one must win clearly
    means = [_mean([lows[t] for t in half], agreed[half], step) for half in halves]
    # each half's sites are relative to its own seed: the halves can be up to two walks apart
    relative = lattice_points(basis, 2.0 * walk)
    first = Centred(means[0][inside])
    rs = np.array([first.correlation(moved_low(means[1], o / step)[inside]) for o in relative])
    order = np.argsort(rs)[::-1]
    r1, r2 = (float(np.clip(rs[k], 0.0, 0.999)) for k in order[:2])
    gain = float(0.5 * dof * (np.log1p(-(r2**2)) - np.log1p(-(r1**2))))
    # the look-elsewhere allowance of the offsets compared: with few frames per half, two halves of
    # weak content can still pick one offset by chance (grid-like 40-frame hexagonal stack, 12 template
    # frames: margin 6.4 over the runner-up, and 9 frames put wrong and marked ok)
    gain -= float(np.log(len(relative)))
    info = {"halves_margin": round(gain, 1)}
    if gain < margin:
        return None
    joined = agreed.copy()
    joined[halves[1]] += relative[order[0]]
    if (np.abs(joined[:, 0]) > bound[0]).any() or (np.abs(joined[:, 1]) > bound[1]).any():
        return None
    before, after = _agreement(lows, given, step, inside), _agreement(lows, joined, step, inside)
    info["agreement"] = [round(before, 3), round(after, 3)]
    if not after > before:
        return None
    return joined, info


def _agree(
    lows: list[np.ndarray], given: np.ndarray, reachable: np.ndarray, step: int, bound: tuple[float, float],
    inside: tuple[slice, slice],
) -> np.ndarray:
    """Sites of ``lows`` agreed from the middle one: each frame at the site ``given + reachable`` that
    matches the seed best, then, until none moves, the mean of the others."""
    m = len(lows)
    pos = given.copy()
    seed = m // 2
    reference = moved_low(lows[seed], pos[seed] / step)
    for t in range(m):
        if t != seed:
            pos[t] = _best(reference, lows[t], given[t], reachable, step, inside, bound)
    for _ in range(MAX_ROUNDS):
        placed = [moved_low(low, p / step) for low, p in zip(lows, pos)]
        total = np.sum(placed, axis=0, dtype=np.float64)
        changed = False
        for t in range(m):
            new = _best((total - placed[t]) / (m - 1), lows[t], given[t], reachable, step, inside, bound)
            changed |= bool(np.hypot(*(new - pos[t])) > 0.5)
            pos[t] = new
        if not changed:
            break
    return pos


def _best(
    reference: np.ndarray, low: np.ndarray, given: np.ndarray, reachable: np.ndarray, step: int,
    inside: tuple[slice, slice], bound: tuple[float, float],
) -> np.ndarray:
    """The site ``given + reachable[k]`` (within ``bound``) whose content matches ``reference`` best
    over ``inside``."""
    best, best_r = np.asarray(given, np.float64), -np.inf
    target = Centred(reference[inside])
    for o in reachable:
        cand = given + o
        if abs(cand[0]) > bound[0] or abs(cand[1]) > bound[1]:
            continue
        r = target.correlation(moved_low(low, cand / step)[inside])
        if r > best_r:
            best, best_r = cand, r
    return best


def lattice_points(basis: np.ndarray, radius: float) -> np.ndarray:
    """Every ``i a + j b`` (rows of ``basis``) within ``radius`` px of 0, 0 included."""
    shortest = float(np.min(np.hypot(basis[:, 0], basis[:, 1])))
    # |i a + j b| >= |(i, j)| times the smallest singular value of the basis
    smallest = float(np.linalg.svd(basis, compute_uv=False).min())
    reach = int(np.ceil(radius / max(smallest, 1e-9 * shortest))) + 1
    i, j = np.meshgrid(np.arange(-reach, reach + 1), np.arange(-reach, reach + 1), indexing="ij")
    points = np.column_stack([i.ravel(), j.ravel()]) @ basis
    return points[np.hypot(points[:, 0], points[:, 1]) <= radius + 1e-9]


def _mean(lows: list[np.ndarray], sites: np.ndarray, step: int) -> np.ndarray:
    """The mean of ``lows`` moved to the template at ``sites``."""
    return np.mean([moved_low(low, p / step) for low, p in zip(lows, sites)], axis=0, dtype=np.float64)


def _agreement(lows: list[np.ndarray], sites: np.ndarray, step: int, inside: tuple[slice, slice]) -> float:
    """Mean correlation of each frame with the mean of the others, all at ``sites``, over ``inside``."""
    placed = [moved_low(low, p / step) for low, p in zip(lows, sites)]
    total = np.sum(placed, axis=0, dtype=np.float64)
    m = len(lows)
    return float(np.mean([correlation(((total - f) / (m - 1))[inside], f[inside]) for f in placed]))


def _inside(shape: tuple[int, int], sites: np.ndarray, walk: float, step: int) -> tuple[slice, slice] | None:
    """The region every frame covers at every site within ``walk`` px of its own (low-passed px,
    with room for the halves' relative offset); None when too small."""
    h, w = shape
    reach = (np.abs(sites).max(axis=0) + 2.0 * walk) / step
    my, mx = int(np.ceil(reach[0])) + 1, int(np.ceil(reach[1])) + 1
    if h - 2 * my < 8 or w - 2 * mx < 8:
        return None
    return slice(my, h - my), slice(mx, w - mx)
