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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ._refine import similarity_matrix

__all__ = ["AMBIGUITY_SIGMA", "DISTINCT_PX", "Peak", "ambiguity_note", "analyse_surface"]

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


def _robust_std(values: np.ndarray) -> float:
    med = float(np.median(values))
    return 1.4826 * float(np.median(np.abs(values - med)))


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
    local = ndimage.maximum_filter(corr, size=3, mode="wrap") == corr
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


def ambiguity_note(
    candidates: list[tuple[float, float, Peak]],
    shape: tuple[int, int],
    *,
    min_sigma: float = AMBIGUITY_SIGMA,
) -> str:
    """Why the best candidate is not clearly the best ("" when it is).

    Parameters
    ----------
    candidates : list of (angle, scale, Peak)
        Every candidate tried: correction angle (degrees), scale, and its peak
        on the reduced copy of ``shape`` (reduced px).
    shape : (int, int)
        The reduced frame shape.
    min_sigma : float
        The margin needed, in standard deviations of the score difference.
    """
    center = ((shape[0] - 1) / 2.0, (shape[1] - 1) / 2.0)
    k_best = int(np.argmax([p.value for _, _, p in candidates]))
    a0, s0, best = candidates[k_best]
    spread = np.sqrt(2.0) * best.noise
    if not spread > 0:
        return ""
    m_best = similarity_matrix(a0, s0, center, (best.dy, best.dx))
    runner = None  # (value, description)
    if np.isfinite(best.second):
        runner = (best.second, f"the same angle shifted by ({best.second_dy - best.dy:.1f}, "
                  f"{best.second_dx - best.dx:.1f}) reduced px")
    for k, (a, s, p) in enumerate(candidates):
        if k == k_best or (runner is not None and p.value <= runner[0]):
            continue
        m = similarity_matrix(a, s, center, (p.dy, p.dx))
        if _corner_distance(m, m_best, shape) > DISTINCT_PX:
            turn = float(np.mod(a - a0 + 180.0, 360.0) - 180.0)
            runner = (p.value, f"angle {np.mod(a + 180.0, 360.0) - 180.0:.1f} deg ({turn:+.1f} from the best), "
                      f"scale {s:.3f}")
    if runner is None:
        return ""
    margin = (best.value - runner[0]) / spread
    if margin >= min_sigma:
        return ""
    return (
        f"ambiguous: runner-up at {runner[1]} within {margin:.1f} sigma of the best match "
        f"(at least {min_sigma:g} needed)"
    )
