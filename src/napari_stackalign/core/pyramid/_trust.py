"""Absolute tests of whether a frame's pyramid estimate can be trusted.

:func:`judge` gives every frame a reason to distrust it ('' when none):

- the engine's flags (no usable pixels, refinement failed or not converged,
  a shift at the ``max_movement`` bound, a turn too large for the
  translation to be corrected to the frame centre's);
- the correlation peak's significance against chance: ``z = atanh(r) sqrt(neff - 3)``
  (Fisher),
  with ``r`` the final-level correlation with the template and ``neff`` the
  correlation's effective number of independent pixels (Bartlett: the
  correlation of two unrelated images with power spectra ``P_T``, ``P_F``
  has variance ``sum(P_T P_F) / (sum(P_T) sum(P_F))``). A frame that is part
  of the template correlates with it through its own noise, about
  ``1/sqrt(K)`` for a template of ``K`` frames, however many pixels: for
  those frames ``r`` is first corrected to the correlation with the template
  *without* the frame (:func:`leave_one_out`). A frame below the bar but
  with ``z >= MIN_Z_TRACK`` is still trusted when it lies within
  ``TRACK_PX`` of the trajectory its neighbours on both sides predict, in a
  search window so large that a chance peak lands there with probability
  below ``TRACK_CHANCE``, and at least half such frames do (:func:`on_track`;
  2-D shifts only): the stack's consistency is evidence a single frame's
  peak is not;
- consistency with the trustworthy neighbours (:func:`jumps`): a frame far
  from both the frames just before and the frames just after it, by more
  than ``JUMP_FACTOR`` times the typical frame-to-neighbours distance (and at
  least ``JUMP_MIN`` px), is flagged. A step in the motion (a stage move)
  is close to one side, so it is not; nor is a frame whose own match
  vouches for its jump (it matches the template as well as its neighbours,
  where a misplacement by the jump would have cost a clear drop:
  :mod:`._jump_evidence`);
- too few trustworthy template frames (a template of noise matches the
  frame it was seeded with): then none is trusted;
- the relative quality test of old (below ``QUALITY_FRACTION`` of the median).
"""

from __future__ import annotations

import numpy as np

from ._engine import FLAG_AT_EDGE, FLAG_FAILED, FLAG_NOT_CONVERGED, FLAG_TURNED, FLAG_UNUSABLE
from ._jump_evidence import SignalAutocorrelation, vouched_jumps

__all__ = [
    "END_FACTOR",
    "JUMP_FACTOR",
    "JUMP_MIN",
    "JUMP_WINDOW",
    "MIN_TEMPLATE_SHARE",
    "MIN_TEMPLATE_TRUSTED",
    "MIN_Z",
    "QUALITY_FRACTION",
    "MIN_Z_TRACK",
    "TRACK_CHANCE",
    "TRACK_PX",
    "TRACK_SHARE",
    "judge",
    "jumps",
    "leave_one_out",
    "on_track",
    "significance",
]

#: a frame's correlation must stand this many standard deviations of chance
#: above 0 (pure-noise stacks: 99 % below 4.7, see tests/benchmarks/bench_pyramid_trust.py)
MIN_Z = 5.5
#: a frame below MIN_Z but at least this, lying on the stack's trajectory (:func:`on_track`), is trusted
MIN_Z_TRACK = 3.0
#: ... within this many px of the medians of its neighbours on both sides
TRACK_PX = 1.0
#: ... when a chance peak would land that close with at most this probability
TRACK_CHANCE = 0.005
#: ... and at least this share of such frames is on track
TRACK_SHARE = 0.5
#: fewer trustworthy template frames than this (or this share of them) and
#: none is trusted: a template built from noise matches its own seed frame
MIN_TEMPLATE_TRUSTED = 3
MIN_TEMPLATE_SHARE = 0.1
#: frames whose quality is below this fraction of the median are flagged
QUALITY_FRACTION = 0.5
#: trustworthy frames on each side a frame is compared with
JUMP_WINDOW = 3
#: a frame is flagged when its distance to both sides exceeds this many times
#: the median such distance ...
JUMP_FACTOR = 4.0
#: ... and at least this (full-resolution px)
JUMP_MIN = 1.0
#: the threshold is this many times larger at the ends of the stack
END_FACTOR = 1.5


def leave_one_out(r: np.ndarray, k: int, sigma: float) -> np.ndarray:
    """Correlation with a template of ``k`` frames once the frame's own
    contribution is taken out.

    The template is the mean of ``k`` standardised registered frames (its
    standard deviation ``sigma`` before it is standardised again: the mean of
    the members' correlations with it). With ``a = 1 / sigma`` the frame's
    own share, ``r_loo = (k r - a) / sqrt(k**2 - 2 k r a + a**2)``: 0 for a
    noise frame (``r = 1 / sqrt(k)``), ``r`` for a frame of pure signal.
    """
    r = np.asarray(r, dtype=np.float64)
    if k < 2:
        return r.copy()  # a one-frame template: the frame is the reference (no shift)
    if not sigma > 0:
        return np.full_like(r, np.nan)
    a = 1.0 / sigma
    den = np.sqrt(np.maximum(k * k - 2 * k * r * a + a * a, 1e-12))
    return (k * r - a) / den


def significance(
    quality: np.ndarray, neff: np.ndarray, in_template: np.ndarray, usable_template: int
) -> np.ndarray:
    """``z`` per frame (see the module docstring; NaN when unknown).

    ``in_template`` marks the frames averaged into the template, of which
    ``usable_template`` were usable.
    """
    r = np.asarray(quality, dtype=np.float64).copy()
    member = np.asarray(in_template, bool) & np.isfinite(r)
    if member.any():
        sigma = float(np.mean(np.clip(r[member], 0.0, 1.0)))
        r[member] = leave_one_out(r[member], usable_template, sigma)
    with np.errstate(invalid="ignore"):
        # Fisher's transform: a correlation near 1 over few effective pixels
        # is as significant as a small one over many
        fisher = np.arctanh(np.clip(r, -0.999999, 0.999999))
        return fisher * np.sqrt(
            np.maximum(np.asarray(neff, dtype=np.float64) - 3.0, 0.0)
        )


def jumps(shifts: np.ndarray, trusted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distance of each frame to its nearer side, threshold per frame) in px.

    A frame's sides are the medians of the ``JUMP_WINDOW`` trustworthy
    frames before it and after it (at the ends, where there is one side, the
    nearest trustworthy frame; inf without any).
    The threshold is ``max(JUMP_MIN, JUMP_FACTOR * median distance of the
    trustworthy frames)``, ``END_FACTOR`` times that for a frame with one
    side (one frame's jitter, not a median's, and a turn cannot be told
    from a jump there).
    """
    n = len(shifts)
    idx = np.flatnonzero(trusted)
    if idx.size < 2:
        return np.full(n, np.inf), np.full(n, np.inf)
    shifts = np.asarray(shifts, dtype=np.float64)
    pts = shifts[idx]
    t = np.arange(n)
    pos = np.searchsorted(idx, t)
    # trustworthy frames before t: idx[pos - n_before : pos]; after t: idx[start : start + n_after]
    start = pos + (idx[np.minimum(pos, idx.size - 1)] == t)
    n_before = np.minimum(pos, JUMP_WINDOW)
    n_after = np.clip(idx.size - start, 0, JUMP_WINDOW)
    both = (n_before > 0) & (n_after > 0)
    one_sided = ~both
    dist = np.full(n, np.inf)
    for first, count, nearest in ((pos - n_before, n_before, n_before - 1), (start, n_after, 0)):
        has = count > 0
        # one side only (an end of the stack): the nearest frame, as the motion may turn there
        centre = pts[np.clip(first + nearest, 0, idx.size - 1)]
        centre[both] = _window_median(pts, first[both], count[both])
        d = np.linalg.norm(shifts - centre, axis=1)  # 2-D or 3-D shifts
        dist = np.where(has, np.minimum(dist, d), dist)
    finite = dist[trusted & np.isfinite(dist) & ~one_sided]
    typical = float(np.median(finite)) if finite.size else 0.0
    limit = max(JUMP_MIN, JUMP_FACTOR * typical)
    return dist, np.where(one_sided, END_FACTOR * limit, limit)


def _window_median(pts: np.ndarray, first: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Per row ``i``, ``np.median(pts[first[i] : first[i] + count[i]], axis=0)`` (``1 <= count <= JUMP_WINDOW``),
    the same values: the middle value, or the mean of the two middle ones."""
    k = np.arange(JUMP_WINDOW)
    rows = np.minimum(first[:, None] + k[None, :], len(pts) - 1)
    window = np.where((k[None, :] < count[:, None])[..., None], pts[rows], np.inf)  # (m, JUMP_WINDOW, dims)
    window.sort(axis=1)  # the missing rows (inf) last
    m = np.arange(len(first))
    lo = window[m, (count - 1) // 2]
    hi = window[m, count // 2]
    return np.where((count % 2 == 1)[:, None], lo, (lo + hi) / 2.0)


def on_track(shifts: np.ndarray, weak: np.ndarray, candidates: np.ndarray, bound: tuple[float, float]) -> np.ndarray:
    """Which ``candidates`` (frames whose peak is below ``MIN_Z`` but at least ``MIN_Z_TRACK``) lie on the
    stack's own trajectory, so closely that chance cannot have put them there.

    A chance peak lands anywhere in the search window (``+/- bound`` px per axis). A frame is carried
    when it lies within ``TRACK_PX`` of where its ``JUMP_WINDOW`` neighbours on both sides (frames that
    pass, or are candidates themselves) put the trajectory, which a chance peak does with probability
    about ``pi TRACK_PX**2 / (4 bound_y bound_x)``; and only when the window makes that below
    ``TRACK_CHANCE`` and at least ``TRACK_SHARE`` of the candidates are on track (a coherent trajectory,
    not a few lucky frames). Noise-only stacks: their chance peaks scatter over the window.
    """
    n = len(shifts)
    out = np.zeros(n, bool)
    pool = candidates | ~weak
    if candidates.sum() < 3 or len(bound) != 2:
        return out
    area = 4.0 * float(bound[0]) * float(bound[1])
    if not area > 0 or np.pi * TRACK_PX**2 / area > TRACK_CHANCE:
        return out
    dist = _off_track(np.asarray(shifts, dtype=np.float64), pool)
    close = candidates & (dist <= TRACK_PX)
    if close.sum() < TRACK_SHARE * candidates.sum():
        return out
    return close


def _off_track(shifts: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """Per frame, its distance to the trajectory its neighbours predict: the line through the medians
    (in time and position, :func:`_window_median`) of the ``JUMP_WINDOW`` frames of ``pool`` before and
    after it, itself excluded (inf at the ends or without such frames)."""
    n = len(shifts)
    idx = np.flatnonzero(pool)
    out = np.full(n, np.inf)
    if idx.size < 2:
        return out
    t = np.arange(n)
    pos = np.searchsorted(idx, t)  # pool frames before t: idx[pos - n_before : pos]
    start = pos + (idx[np.minimum(pos, idx.size - 1)] == t)  # after t: idx[start : start + n_after]
    n_before = np.minimum(pos, JUMP_WINDOW)
    n_after = np.clip(idx.size - start, 0, JUMP_WINDOW)
    both = np.flatnonzero((n_before > 0) & (n_after > 0))
    if both.size == 0:
        return out
    times = idx[:, None].astype(np.float64)
    pts = shifts[idx]
    first_b, count_b = pos[both] - n_before[both], n_before[both]
    first_a, count_a = start[both], n_after[both]
    tb = _window_median(times, first_b, count_b)[:, 0]
    ta = _window_median(times, first_a, count_a)[:, 0]
    pb = _window_median(pts, first_b, count_b)
    pa = _window_median(pts, first_a, count_a)
    predicted = pb + (pa - pb) * ((both - tb) / (ta - tb))[:, None]
    out[both] = np.linalg.norm(shifts[both] - predicted, axis=1)
    return out


def judge(
    shifts: np.ndarray,
    quality: np.ndarray,
    flags: np.ndarray,
    neff: np.ndarray,
    *,
    in_template: np.ndarray,
    usable_template: int,
    bound: tuple[float, float],
    notes: list[str] | None = None,
    autocorrelation: SignalAutocorrelation | None = None,
    turn: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(ok, reason) per frame; see the module docstring.

    ``shifts`` are full-resolution px, (T, 2) or (T, 3) for volumes, ``bound``
    the ``max_movement`` bound per axis (px). ``notes`` (per frame, '' for
    none) are reasons the caller found (a broken chain link, a lattice
    ambiguity, an unconfirmed template frame): they count before the
    stack-wide tests, so a frame they flag is not a trustworthy template
    frame nor a neighbour the jump test compares with. With the template's
    ``autocorrelation`` (2-D shifts against a fixed template), a frame whose
    own match vouches for its jump is not flagged by the jump test
    (:func:`~._jump_evidence.vouched_jumps`). ``turn`` (radians per frame,
    NaN: not measured) goes into the reason of a frame flagged as turned.
    """
    n = len(shifts)
    reasons = [[] for _ in range(n)]

    def add(mask: np.ndarray, text) -> None:
        for j in np.flatnonzero(mask):
            reasons[j].append(text(j) if callable(text) else text)

    add(
        (flags & FLAG_UNUSABLE) > 0,
        "no usable pixels (constant, empty, NaN or masked out)",
    )
    add(
        (flags & FLAG_AT_EDGE) > 0,
        f"at the max_movement bound ({' x '.join(f'{b:.3g}' for b in bound)} px)",
    )
    add((flags & FLAG_FAILED) > 0, "sub-pixel refinement lost the match")
    add((flags & FLAG_NOT_CONVERGED) > 0, "sub-pixel refinement did not converge")

    def turned(j: int) -> str:
        angle = float("nan") if turn is None else float(np.degrees(turn[j]))
        by = f" by {abs(angle):.2f} degrees" if np.isfinite(angle) else ""
        return (
            f"turns{by} against the template, and its translation could not be corrected to the frame centre's "
            "(the turn is too large, or too faint at full resolution at this SNR): it may be a pixel or more off "
            "(the similarity method corrects the rotation too)"
        )

    add((flags & FLAG_TURNED) > 0, turned)
    finite_q = np.isfinite(quality)
    add(~finite_q & ((flags & FLAG_UNUSABLE) == 0), "no correlation at full resolution")
    if finite_q.any():
        median_q = float(np.median(quality[finite_q]))
        low = finite_q & (quality < QUALITY_FRACTION * median_q)
        add(
            low,
            lambda j: (
                f"quality {quality[j]:.3g} below half the median ({median_q:.3g})"
            ),
        )
    z = significance(quality, neff, in_template, usable_template)
    if notes is not None:
        add(np.array([bool(note) for note in notes], dtype=bool), lambda j: notes[j])
    weak = finite_q & ~(z >= MIN_Z)
    carried = weak & np.array([not r for r in reasons]) & (z >= MIN_Z_TRACK)
    carried &= on_track(shifts, weak, carried, bound)
    add(
        weak & ~carried,
        lambda j: f"correlation peak not significant (z={z[j]:.1f} < {MIN_Z:g})",
    )
    trusted = np.array([not r for r in reasons])
    member = np.asarray(in_template, bool) & ((flags & FLAG_UNUSABLE) == 0)
    n_member = int(member.sum())
    n_trusted = int((trusted & member).sum())
    if n_member > 2 and n_trusted < max(
        MIN_TEMPLATE_TRUSTED, MIN_TEMPLATE_SHARE * n_member
    ):
        # a template of noise still matches the frame it was seeded with
        add(
            member & trusted,
            f"only {n_trusted} of the {n_member} template frames are trustworthy (the template holds no signal)",
        )
        trusted = np.array([not r for r in reasons])
    dist, limit = jumps(shifts, trusted)
    far = trusted & (dist > limit) & np.isfinite(dist)
    if autocorrelation is not None and far.any():
        far &= ~vouched_jumps(far, shifts, quality, trusted, autocorrelation)
    add(
        far,
        lambda j: (
            f"jumps {dist[j]:.1f} px from its neighbours (limit {limit[j]:.2g} px)"
        ),
    )
    reason = np.array(["; ".join(r) for r in reasons], dtype=object)
    return reason == "", reason
