"""Blocks of consecutive frames one lattice vector off each other, found by their block means.

On a weak lattice stack whose steps sometimes cross half a lattice vector,
the template frames can be placed in blocks: the frames up to some frame at
one lattice site, the frames after it one lattice vector away. The template
then holds the non-repeating content at both offsets, and each block matches
its own copy, so a frame-by-frame choice against the template (or a template
rebuilt from the blocks) keeps them apart: a fixed point, not a failure any
single frame shows.

:func:`fix_blocks` looks at the blocks instead. For a boundary ``b``, the
frames before it and the frames from it on are averaged apart (each frame's
low-passed image moved to the template at its position) and the two means
are compared at every candidate lattice offset between them: two disjoint
sets of frames, so a block cannot agree with itself. When some offset
matches better than none by more than chance (``MIN_MARGIN`` of
log-likelihood, once the look-elsewhere allowance of the boundaries and
offsets tried is taken off), the smaller block is moved by it; then the next
boundary, until none gains. The means of many frames see the background
that a single frame at low dose does not (anchors.py ``lattice-512x40-vlow``,
seed 7: frames 20-39 one lattice vector off, the correlation of the two
block means 0.73 at the offset chosen and 0.91 one lattice vector away).
"""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np

__all__ = [
    "MAX_BLOCK_FIXES", "MAX_BOUNDARIES", "MIN_BLOCK", "Centred", "correlation", "fix_blocks", "moved_low",
    "offset_correlations",
]

#: a block holds at least this many frames (a single frame off is the frame-by-frame choice's job)
MIN_BLOCK = 3
#: at most this many blocks are moved
MAX_BLOCK_FIXES = 6
#: boundaries tried per round: every frame on short stacks, evenly spaced ones (then their
#: neighbourhood) on long ones
MAX_BOUNDARIES = 64


def fix_blocks(
    lows: list[np.ndarray],
    positions: np.ndarray,
    offsets: np.ndarray,
    step: int,
    blobs: float,
    bound: tuple[float, float],
    margin: float,
) -> tuple[np.ndarray, list[dict]]:
    """Move blocks of consecutive frames by the lattice offset their block means agree on.

    Parameters
    ----------
    lows : list of ndarray (h, w)
        Each frame low-passed beyond the lattice (``_LowPass.low``), at ``1 / step`` scale.
    positions : ndarray (n, 2)
        Each frame's shift ``s`` (full-resolution px, ``frame[p + s] ~ template[p]``).
    offsets : ndarray (k, 2)
        Candidate lattice offsets (px), the zero offset among them.
    step : int
        The low-passed images' downsampling.
    blobs : float
        Independent blobs of a whole low-passed image (their correlation's degrees of freedom).
    bound : (float, float)
        ``max_movement`` (px): no position is moved beyond it.
    margin : float
        Log-likelihood a move must gain beyond chance.

    Returns
    -------
    (positions, fixes)
        The positions with the blocks moved, and per move ``{"from": b, "to": stop, "by": [dy, dx],
        "gain": ...}`` (frames ``b`` to ``stop - 1``).
    """
    pos = np.asarray(positions, np.float64).copy()
    n = len(lows)
    nonzero = np.asarray(offsets, np.float64)
    nonzero = nonzero[np.hypot(nonzero[:, 0], nonzero[:, 1]) > 0.5]
    fixes: list[dict] = []
    if n < 2 * MIN_BLOCK or nonzero.size == 0:
        return pos, fixes
    h, w = lows[0].shape
    for _ in range(MAX_BLOCK_FIXES):
        reach = (np.abs(pos).max(axis=0) + np.abs(nonzero).max(axis=0)) / step
        my, mx = int(np.ceil(reach[0])) + 1, int(np.ceil(reach[1])) + 1
        if h - 2 * my < 4 or w - 2 * mx < 4:
            break  # no region every frame covers at every offset
        inside = (slice(my, h - my), slice(mx, w - mx))
        dof = blobs * (h - 2 * my) * (w - 2 * mx) / float(h * w)
        total = np.zeros((h, w), np.float64)  # every frame moved to the template, summed once per round
        for low, p in zip(lows, pos):
            total += moved_low(low, p / step)
        tried = 0
        best: tuple[float, int, int] = (0.0, -1, -1)
        coarse = list(_boundaries(n, best_near=None))
        for candidates in (coarse, None):
            if candidates is None:  # long stack: the best coarse boundary's neighbourhood, frame by frame
                candidates = _boundaries(n, best_near=best[1]) if best[1] >= 0 else []
            if not candidates:
                continue
            for b, before in _prefix_sums(lows, pos, step, candidates):
                gain, k = _gain(before / b, (total - before) / (n - b), nonzero, step, inside, dof)
                tried += 1
                if gain > best[0]:
                    best = (gain, b, k)
        gain, b, k = best
        allowance = float(np.log(max(tried * len(nonzero), 1)))
        if b < 0 or gain - allowance < margin:
            break
        by = nonzero[k]
        # the smaller block moves (the template frames' median position stays where it is)
        lo, hi, sign = (b, n, 1.0) if n - b <= b else (0, b, -1.0)
        moved = pos[lo:hi] + sign * by
        if (np.abs(moved[:, 0]) > bound[0]).any() or (np.abs(moved[:, 1]) > bound[1]).any():
            break
        pos[lo:hi] = moved
        fixes.append({"from": int(lo), "to": int(hi), "by": (sign * by).round(2).tolist(), "gain": round(gain, 1)})
    return pos, fixes


def _boundaries(n: int, best_near: int | None) -> range | list[int]:
    """The boundaries to try: all, evenly spaced ones, or those around ``best_near``."""
    first, last = MIN_BLOCK, n - MIN_BLOCK  # block [0, b) and [b, n) both at least MIN_BLOCK
    count = last - first + 1
    if count <= MAX_BOUNDARIES:
        return range(first, last + 1) if best_near is None else []
    spacing = int(np.ceil(count / MAX_BOUNDARIES))
    if best_near is None:
        return range(first, last + 1, spacing)
    return [b for b in range(best_near - spacing + 1, best_near + spacing) if first <= b <= last and b != best_near]


def _prefix_sums(
    lows: list[np.ndarray], positions: np.ndarray, step: int, boundaries: list[int] | range
) -> Iterator[tuple[int, np.ndarray]]:
    """``(b, sum of the frames [0, b))`` for each boundary ``b``, the frames moved to the template at
    their positions: one pass over the frames up to the last boundary, one sum held."""
    wanted = set(boundaries)
    last = max(wanted)
    acc = np.zeros(lows[0].shape, np.float64)
    for t, (low, p) in enumerate(zip(lows, positions)):
        if t in wanted:
            yield t, acc
        if t >= last:
            break
        acc += moved_low(low, p / step)


def _gain(
    first: np.ndarray, second: np.ndarray, offsets: np.ndarray, step: int, inside: tuple[slice, slice], dof: float
) -> tuple[float, int]:
    """(log-likelihood gained by the best of ``offsets`` between two block means against none, its
    index): the correlation over ``inside``, ``dof`` independent blobs."""
    r0 = correlation(first[inside], second[inside])
    rs = offset_correlations(first, second, offsets, step, inside)
    k = int(np.argmax(rs))
    r0, rk = (float(np.clip(r, 0.0, 0.999)) for r in (r0, rs[k]))
    return float(0.5 * dof * (np.log1p(-(r0**2)) - np.log1p(-(rk**2)))), k


def offset_correlations(
    reference: np.ndarray, moving: np.ndarray, offsets: np.ndarray, step: int, inside: tuple[slice, slice]
) -> np.ndarray:
    """The correlation over ``inside`` of ``reference`` with ``moving`` moved by each of ``offsets``
    (full-resolution px; the images are at ``1 / step`` scale): the reference is centred once."""
    a = Centred(reference[inside])
    return np.array([a.correlation(moved_low(moving, o / step)[inside]) for o in offsets])


def moved_low(low: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """``out[p] = low[p + shift]`` (bilinear, borders replicated)."""
    h, w = low.shape
    m = np.array([[1.0, 0.0, float(shift[1])], [0.0, 1.0, float(shift[0])]])
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    return cv2.warpAffine(np.asarray(low, np.float32), m, (w, h), flags=flags, borderMode=cv2.BORDER_REPLICATE)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two images (0 when either is constant)."""
    return Centred(a).correlation(b)


class Centred:
    """An image made zero-mean once, correlated with many others (the same sums as :func:`correlation`
    computed afresh each time: the block fix correlates one block mean with every lattice offset)."""

    def __init__(self, a: np.ndarray) -> None:
        self.a = a.astype(np.float64) - a.mean()
        self.aa = (self.a * self.a).sum()

    def correlation(self, b: np.ndarray) -> float:
        """Pearson correlation with ``b`` (0 when either is constant)."""
        b = b.astype(np.float64) - b.mean()
        denom = float(np.sqrt(self.aa * (b * b).sum()))
        return float((self.a * b).sum() / denom) if denom > 0 else 0.0
