"""Is the chosen rotation/scale/shift the only good one? The margin to the runner-up in sigma.

Stage 2 of the similarity registration tries several candidate rotations and
scales (the best log-polar peaks, each also turned by 180 degrees, and no
rotation) and keeps the one whose translation phase correlation peaks
highest. A magnitude spectrum cannot tell ``a`` from ``a + 180`` degrees, and
symmetric content (a two-fold symmetric object, a lattice) matches itself at
other angles and, for a lattice, one lattice vector away. When the runner-up
scores as well as the winner, within the noise of the score, the choice is a
coin flip and the frame may be grossly wrong.

The score is the height of the whitened (phase) correlation peak. Its noise
is the spread of the correlation surface itself (a robust standard deviation:
where noise dominates a frequency its phase is random, and the surface's
values are sums of such random terms); the difference of two peak heights has
``sqrt(2)`` times that spread. The runner-up is the best of

- every other candidate whose transform differs from the winner's by more
  than :data:`DISTINCT_PX` (reduced px) at a frame corner (so the same
  solution reached from a nearby angle does not count), and
- the highest other local maximum of the winner's own correlation surface,
  outside its main peak (a second position: for a lattice, one lattice
  vector away).

The frame is flagged when the margin is below :data:`AMBIGUITY_SIGMA`.

Content that matches itself at another pose (a lattice, a point-symmetric
scene) can also be won by the wrong pose by a wide margin, or the right pose
can be missing from the candidates: :mod:`._symmetry` finds the template's
own symmetries and compares each frame's winner with its images under them.
Two poses that differ by such a symmetry share the template's content, and
the spread of their score difference is :func:`paired_spread`, not that of
two independent scores.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from ._refine import similarity_matrix

__all__ = [
    "AMBIGUITY_SIGMA",
    "DISTINCT_PX",
    "Peak",
    "analyse_surface",
    "coarse_note",
    "contenders",
    "describe",
    "paired_spread",
    "refined_choice",
    "score_spread",
]

#: the best candidate must beat the runner-up by this many standard deviations of the score difference
AMBIGUITY_SIGMA = 4.0
#: candidates closer than this at every frame corner (px of the reduced search copy) are the same solution
DISTINCT_PX = 3.0


@dataclass
class Peak:
    """One candidate's correlation peak: position (reduced px), height, the
    surface's noise, and its best other local maximum (height and position)."""

    dy: float
    dx: float
    value: float
    noise: float
    second: float
    second_dy: float
    second_dx: float

    @classmethod
    def at(cls, r: float, c: float, value: float, shape: tuple[int, int]) -> Peak:
        """A peak at sub-pixel indices ``(r, c)`` of a periodic surface of ``shape``, not analysed further
        (no noise, no second maximum)."""
        hf, wf = shape
        dy, dx = (r - hf if r > hf / 2 else r), (c - wf if c > wf / 2 else c)
        return cls(float(dy), float(dx), float(value), float("nan"), -np.inf, float("nan"), float("nan"))


#: the robust spread of a surface is taken from about this many of its values (a regular subsample)
_NOISE_SAMPLES = 4096


def _robust_std(values: np.ndarray) -> float:
    """1.4826 times the median absolute deviation, from a regular subsample of ``values``."""
    flat = values.ravel()
    flat = flat[:: max(1, flat.size // _NOISE_SAMPLES)]
    med = float(np.median(flat))
    return 1.4826 * float(np.median(np.abs(flat - med)))


def analyse_surface(corr: np.ndarray, r: float, c: float, value: float) -> Peak:
    """Peak, noise and the highest other local maximum of a (periodic) correlation surface.

    ``(r, c)`` is the sub-pixel peak (indices), ``value`` its height. The main
    peak's neighbourhood (at least :data:`DISTINCT_PX`, more for a broad peak:
    three times its width) is left out of the search for the second.
    """
    hf, wf = corr.shape
    ri, ci = int(round(r)) % hf, int(round(c)) % wf
    # width of the main peak from its curvature (a Gaussian's: value / width^2)
    widths = []
    for lo, hi in ((corr[(ri - 1) % hf, ci], corr[(ri + 1) % hf, ci]), (corr[ri, (ci - 1) % wf], corr[ri, (ci + 1) % wf])):
        curv = 2.0 * value - float(lo) - float(hi)
        widths.append(np.sqrt(value / curv) if curv > 0 and value > 0 else 1.0)
    radius = max(DISTINCT_PX, 3.0 * max(widths))
    # local maxima of the periodic surface: a 3x3 dilation of the surface padded by one wrapped row and column
    padded = np.pad(corr.astype(np.float32, copy=False), 1, mode="wrap")
    local = cv2.dilate(padded, np.ones((3, 3), np.uint8))[1:-1, 1:-1] == corr.astype(np.float32, copy=False)
    dr = np.abs(np.arange(hf) - ri)
    dr = np.minimum(dr, hf - dr)
    dc = np.abs(np.arange(wf) - ci)
    dc = np.minimum(dc, wf - dc)
    far = (dr[:, None] ** 2 + dc[None, :] ** 2) > radius**2
    cand = np.where(local & far, corr, -np.inf)
    flat = int(np.argmax(cand))
    r2, c2 = np.unravel_index(flat, corr.shape)
    second = float(cand[r2, c2])
    dy, dx = (r - hf if r > hf / 2 else r), (c - wf if c > wf / 2 else c)
    dy2, dx2 = (r2 - hf if r2 > hf / 2 else r2), (c2 - wf if c2 > wf / 2 else c2)
    return Peak(float(dy), float(dx), float(value), _robust_std(corr), second, float(dy2), float(dx2))


def _corner_distance(m1: np.ndarray, m2: np.ndarray, shape: tuple[int, int]) -> float:
    h, w = shape
    corners = np.array([[0, 0, 1], [0, w - 1, 1], [h - 1, 0, 1], [h - 1, w - 1, 1]], float).T
    d = (m1 @ corners - m2 @ corners)[:2]
    return float(np.sqrt((d**2).sum(axis=0)).max())


def contenders(
    candidates: list[tuple[float, float, Peak]],
    shape: tuple[int, int],
    *,
    min_sigma: float = AMBIGUITY_SIGMA,
) -> list[tuple[float, float, float, float, float]]:
    """The distinct candidates that score within ``min_sigma`` of the best, best first.

    Parameters
    ----------
    candidates : list of (angle, scale, Peak)
        Every candidate tried: correction angle (degrees), scale, and its peak
        on the reduced copy of ``shape`` (reduced px).
    shape : (int, int)
        The reduced frame shape.
    min_sigma : float
        The margin needed, in standard deviations of the score difference.

    Returns
    -------
    list of (angle, scale, dy, dx, margin)
        The runner-ups (shift in reduced px, margin in sigma), at most one per
        solution; the best's own second local maximum is one of them.
    """
    center = ((shape[0] - 1) / 2.0, (shape[1] - 1) / 2.0)
    k_best = int(np.argmax([p.value for _, _, p in candidates]))
    a0, s0, best = candidates[k_best]
    spread = np.sqrt(2.0) * best.noise
    if not spread > 0:
        return []
    found = [(a0, s0, best.dy, best.dx, 0.0)]
    options = [(a0, s0, best.second, best.second_dy, best.second_dx)] if np.isfinite(best.second) else []
    options += [(a, s, p.value, p.dy, p.dx) for k, (a, s, p) in enumerate(candidates) if k != k_best]
    for a, s, value, dy, dx in sorted(options, key=lambda o: -o[2]):
        margin = (best.value - value) / spread
        if margin >= min_sigma:
            break
        m = similarity_matrix(a, s, center, (dy, dx))
        if all(
            _corner_distance(m, similarity_matrix(fa, fs, center, (fy, fx)), shape) > DISTINCT_PX
            for fa, fs, fy, fx, _ in found
        ):
            found.append((a, s, dy, dx, float(margin)))
    return found[1:]


def describe(angle: float, scale: float, shift: tuple[float, float], best: tuple[float, float, tuple[float, float]]) -> str:
    """Where a runner-up lies, in words, relative to the best (angles in degrees, shifts in px)."""
    turn = float(np.mod(angle - best[0] + 180.0, 360.0) - 180.0)
    if abs(turn) < 0.5 and abs(np.log(scale / best[1])) < 0.005:
        return f"the same angle shifted by ({shift[0] - best[2][0]:.1f}, {shift[1] - best[2][1]:.1f}) px"
    wrapped = float(np.mod(angle + 180.0, 360.0) - 180.0)
    return f"angle {wrapped:.1f} deg ({turn:+.1f} from the best), scale {scale:.3f}"


def coarse_note(runner_ups: list[tuple[float, float, float, float, float]], best: tuple[float, float, tuple[float, float]],
                f: float, min_sigma: float = AMBIGUITY_SIGMA) -> str:
    """The flag reason for the closest runner-up of :func:`contenders` ("" when there is none)."""
    if not runner_ups:
        return ""
    a, s, dy, dx, margin = runner_ups[0]
    where = describe(a, s, (dy * f, dx * f), best)
    return f"ambiguous: runner-up at {where} within {margin:.1f} sigma of the best match (at least {min_sigma:g} needed)"


#: runner-ups refined at most per frame (the closest ones first)
MAX_RIVALS = 2


def score_spread(ncc: float, overlap: float, shape: tuple[int, int], sigma: float) -> float:
    """Standard deviation of a success score (Pearson's r of frames smoothed by ``sigma``):
    ``(1 - r^2) / sqrt(n - 3)`` with ``n`` the independent smoothed pixels the two frames share."""
    n = overlap * shape[0] * shape[1] / (4.0 * np.pi * max(sigma, 0.5) ** 2)
    return float((1.0 - min(ncc, 1.0) ** 2) / np.sqrt(max(n - 3.0, 1.0)))


def paired_spread(best: float, other: float, overlap: float, shape: tuple[int, int], sigma: float) -> float:
    """Standard deviation of the success difference of one frame at a pose and at its image under a
    template symmetry.

    Both scores correlate the same frame with the same template; the
    template at the two poses differs only by what breaks the symmetry (its
    noise, defects). The frame's signal times the template's noise then
    cancels, and what is left is the frame's noise times that difference:
    the product of the two noise shares plus the frame's noise share times
    the mismatch, ``2 (1 - best) ((1 - best) + (best - other)) / n`` with
    ``n`` the independent smoothed pixels shared (the noise shares taken as
    equal, ``1 - best`` each: the largest product for a given ``best``). Two
    independent spreads (:func:`score_spread`) would count the
    cancelled term twice, and flag right frames of lattices that their
    defects tell apart.
    """
    n = max(overlap * shape[0] * shape[1] / (4.0 * np.pi * max(sigma, 0.5) ** 2), 1.0)
    noise = max(1.0 - min(best, 1.0), 0.0)
    return float(np.sqrt(2.0 * noise * (noise + max(best - other, 0.0)) / n))


def pose(correction: np.ndarray, center: tuple[float, float]) -> tuple[float, float, tuple[float, float]]:
    """(angle in degrees, scale, shift at ``center``) of a (row, col) similarity correction matrix."""
    angle = float(np.degrees(np.arctan2(correction[1, 0], correction[0, 0])))
    scale = float(np.sqrt(abs(np.linalg.det(correction[:2, :2]))))
    c = np.asarray(center, dtype=np.float64)
    moved = correction[:2, :2] @ c + correction[:2, 2] - c
    return angle, scale, (float(moved[0]), float(moved[1]))


def refined_choice(
    solutions: list[tuple[np.ndarray, float, float, float]],
    shape: tuple[int, int],
    sigma: float,
    *,
    min_sigma: float = AMBIGUITY_SIGMA,
    symmetric: Callable[[np.ndarray, np.ndarray], tuple[float, float, float] | None] | None = None,
) -> tuple[int, str]:
    """The best of several refined solutions, and why it is ambiguous ("" when it is not).

    Parameters
    ----------
    solutions : list of (correction, success, overlap, predicted_error)
        Refined corrections (full resolution) with their success scores.
    shape : (int, int)
        Frame shape.
    sigma : float
        The smoothing of the success score.
    min_sigma : float
        The margin needed, in standard deviations of the score difference.
    symmetric : callable, optional
        ``symmetric(best, other) -> (r_best, r_other, share) or None``: for
        two corrections that differ by a symmetry of the template, both
        scores over the frame pixels both cover and their share (None for
        others). Such a pair is judged on those scores, with the spread of
        :func:`paired_spread` (what the template shares at both poses
        cancels); others by their own scores and two independent spreads.

    Returns
    -------
    (index of the best, note)
        Solutions within ``max(1, 3 * predicted error)`` px of the best at
        every frame corner are the same solution; the closest other one in
        score must be ``min_sigma`` standard deviations of the score
        difference behind.
    """
    k_best = int(np.argmax([s[1] for s in solutions]))
    m0, r0, o0, e0 = solutions[k_best]
    same = max(1.0, 3.0 * e0) if np.isfinite(e0) else 1.0
    center = ((shape[0] - 1) / 2.0, (shape[1] - 1) / 2.0)
    note, closest = "", np.inf
    for k, (m, r, o, _) in enumerate(solutions):
        if k == k_best or _corner_distance(m, m0, shape) <= same:
            continue
        paired = symmetric(m0, m) if symmetric is not None else None
        if paired is not None and np.isfinite(paired[0]) and np.isfinite(paired[1]):
            p0, p1, share = paired
            spread = paired_spread(p0, p1, share, shape, sigma)
            margin = (p0 - p1) / spread if spread > 0 else (np.inf if p0 > p1 else 0.0)
        else:
            spread = np.hypot(score_spread(r0, min(o0, o), shape, sigma), score_spread(r, min(o0, o), shape, sigma))
            margin = (r0 - r) / spread if spread > 0 else np.inf
        if margin < min_sigma and margin < closest:
            closest = margin
            a, s, shift = pose(m, center)
            where = describe(a, s, shift, pose(m0, center))
            note = (
                f"ambiguous: runner-up at {where} within {margin:.1f} sigma of the best match "
                f"(success {r:.3f} against {r0:.3f}; at least {min_sigma:g} sigma needed)"
            )
    return k_best, note
