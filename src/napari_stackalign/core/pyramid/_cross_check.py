"""Template frames confirmed by a template that never saw them (cross-validation).

A template frame is matched against a template that holds it. At high SNR
that costs nothing: the frame's own share of the template is small next to
the signal, and :func:`._trust.leave_one_out` takes it out of the
significance test. At low SNR it is not enough: every template frame was
placed where it matched a template built from frames placed the same way, so
the frames can agree on a pattern of their own noise ("Einstein from
noise"). Their correlations then pass the significance test while their
shifts are pixels off, and the leave-one-out correction cannot see it,
because each frame's match is with the others, not with itself.

So when the signal is weak (the frames' signal-to-noise power ratio, measured
from their correlations with the template, below :data:`SNR_CROSS`),
:func:`cross_check` splits the trustworthy
template frames into two halves (alternate frames), builds each half's
template at the shifts found, and estimates every template frame afresh
against the *other* half's template, which it is not part of: a search from
scratch over the whole range, through every level. A frame is
confirmed when that match lands within :data:`AGREE` px of its shift and
stands above chance on its own (``z >= MIN_Z_FRESH``, without any
leave-one-out correction: the frame is not in that template; the bar is
lower than ``MIN_Z`` because a chance match rarely lands that close);
otherwise it is flagged, with the reason. Frames outside the
template are not part of it, so their significance is honest already.

Why a search, and not a refinement from the frame's shift: on a weak stack the
last level's Gauss-Newton steps are damped by the template's noise (it adds
to the template's gradient energy, not to the frame's correlation with them),
so a refinement started at a wrong shift hardly moves and lands "within
``AGREE``" of it by construction. Grid seed 2026, case 9 (a 128x1024 camera
crop turning by up to 1.4 degrees, frame signal-to-noise power 0.05): six
frames 1.0-5.6 px off were confirmed that way and marked ok; searched afresh,
no frame lands near its shift and the template is in doubt (every frame
flagged). On 68 grid seeds (574 weak stacks that are not lattices) the search
took the wrong frames marked ok from 16 to 5, for 75 of 8,155 right frames
no longer confirmed (a refinement from the shift through every level instead:
8 and 65). Lattices keep the refinement at the last level from the shift: a
search would also land on the lattice's other matches, a lattice vector away
(the lattice resolver answers that question).

The cost is one more estimate of each template frame (and one more read of
it), on weak stacks only; stacks with clear signal return after computing
the medians.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._engine import (
    FLAG_NOT_CONVERGED,
    FLAG_UNUSABLE,
    FramePreparer,
    FrameResults,
    FrameRun,
    Template,
    TemplateAccumulator,
    run_frames,
)
from ._trust import MIN_Z, leave_one_out, significance

__all__ = ["AGREE", "MIN_HALF", "MIN_Z_FRESH", "MOSTLY_UNCONFIRMED", "SNR_CROSS", "cross_check", "frame_snr"]

#: stacks whose frames' signal-to-noise power ratio (:func:`frame_snr`) is below this are cross-checked
SNR_CROSS = 0.6
#: the fresh match must land this close to the frame's shift (full-resolution px)
AGREE = 0.75
#: the fresh match must stand this many standard deviations of chance above 0: lower than
#: ``MIN_Z``, because it must also land within ``AGREE`` of the shift, which a chance match
#: anywhere in the search window rarely does
MIN_Z_FRESH = 3.0
#: fewer trustworthy frames than this in a half and there is nothing to check against
MIN_HALF = 4
#: when more than this share of the checked frames is not confirmed, the few that are prove
#: nothing (the halves' templates are mostly noise): none is confirmed
MOSTLY_UNCONFIRMED = 0.5


def cross_check(
    stack: Any,
    job: Any,
    state: Any,
    results: FrameResults,
    *,
    preparer: FramePreparer,
    notes: list[str] | None = None,
    pool: Any = None,
    lattice: bool = False,
) -> tuple[list[str] | None, dict[str, Any]]:
    """Cross-validate the template frames of a weak stack (see the module docstring).

    Parameters
    ----------
    stack : array-like (T, Y, X)
        The frames (the template frames are read once or twice more).
    job, state
        The run's :class:`._stages.PyramidJob` and :class:`._stages.TemplateState`.
    results : FrameResults
        Every frame's final estimate (the engine's shifts ``s``).
    preparer : FramePreparer
        The run's frame preparation.
    notes : list of str, optional
        Reasons found so far, per frame ('' for none); extended, not replaced.
    pool : executor, optional
        Thread pool for the estimates.
    lattice : bool
        Whether the template holds a lattice: then each frame is refined at the last level from its
        shift instead of searched afresh (see the module docstring).

    Returns
    -------
    (notes, params) : (list of str or None, dict)
        Per frame, the reasons so far plus this check's (None when there is
        nothing to add), and what the check did (empty when it did not run).
    """
    if job.user_reference or job.chained:
        return notes, {}
    member = np.asarray(job.in_template(), bool)
    usable = (results.flags & FLAG_UNUSABLE) == 0
    member_idx = np.flatnonzero(member & usable)
    if member_idx.size < 2 * MIN_HALF:
        return notes, {}
    snr = frame_snr(results.quality[member_idx], int(member_idx.size))
    if not snr < SNR_CROSS:
        return notes, {}
    z = significance(results.quality, results.neff, member, int(member_idx.size))
    # the frames the halves are built from: those the other tests would keep
    sound = member_idx[(results.flags[member_idx] == 0) & (z[member_idx] >= MIN_Z)]
    halves = (sound[0::2], sound[1::2])
    info: dict[str, Any] = {"frame_snr": round(snr, 3), "checked": 0, "unconfirmed": 0}
    out = list(notes) if notes is not None else [""] * len(results.shifts)
    if min(h.size for h in halves) < MIN_HALF:
        # too few to build two templates from: on a weak stack, nothing confirms these frames
        reason = (
            f"not confirmed: only {sound.size} of the {member_idx.size} template frames match, too few to "
            f"check them against each other (weak signal: signal-to-noise power {snr:.2g})"
        )
        for t in sound:
            out[t] = f"{out[t]}; {reason}" if out[t] else reason
        info.update(checked=int(sound.size), unconfirmed=int(sound.size))
        return out, info
    templates = _half_templates(stack, halves, results.shifts, job, preparer)
    # each sound frame against the half it is not in; the other template frames against either
    in_first = np.isin(member_idx, halves[0])
    confirmed: list[int] = []
    for other, frames in ((templates[1], member_idx[in_first]), (templates[0], member_idx[~in_first])):
        if frames.size == 0:
            continue
        estimator = job.estimator(other)
        if lattice:
            # refined at full resolution from the frame's shift: a search from scratch would also land on
            # the lattice's other matches, one lattice vector away
            start = results.shifts[frames]
            run = FrameRun(pool, job.chunk_size, None, "", init=start, init_level=_last_but_one(estimator))
        else:
            # searched from scratch: a refinement from a wrong shift barely moves on a weak stack
            run = FrameRun(pool, job.chunk_size, None, "")
        fresh = run_frames(stack, frames, preparer, estimator, run)
        fresh_z = significance(fresh.quality, fresh.neff, np.zeros(frames.size, bool), 0)
        for k, t in enumerate(frames):
            reason = _verdict(fresh, k, float(fresh_z[k]), results.shifts[t])
            info["checked"] += 1
            if reason:
                info["unconfirmed"] += 1
                out[t] = f"{out[t]}; {reason}" if out[t] else reason
            else:
                confirmed.append(int(t))
    if confirmed and info["unconfirmed"] > MOSTLY_UNCONFIRMED * info["checked"]:
        # the halves disagree on most frames: their templates hold little but noise, and a frame
        # refined against one from its own shift lands near it by construction; nothing is confirmed
        reason = (
            f"not confirmed: {info['unconfirmed']} of the {info['checked']} template frames are not confirmed "
            f"by the other half, so the template itself is in doubt (weak signal: signal-to-noise power {snr:.2g})"
        )
        for t in confirmed:
            out[t] = f"{out[t]}; {reason}" if out[t] else reason
        info["unconfirmed"] += len(confirmed)
        info["template_in_doubt"] = True
    return out, info


def _last_but_one(estimator: Any) -> int:
    """The ``init_level`` that makes the estimator refine at its last (finest) active level only."""
    active = list(estimator.active)
    return active[-2] if len(active) > 1 else active[-1] - 1


def frame_snr(quality: np.ndarray, k: int) -> float:
    """The frames' signal-to-noise power ratio ``q``, from the template frames' median correlation.

    A mean of ``m`` frames of signal-to-noise ``q`` has ``q m`` and correlates with the
    signal by ``sqrt(q m / (q m + 1))``, a frame by ``sqrt(q / (q + 1))``. The median
    correlation of a template frame with the template *without* it (``m = k - 1`` frames,
    :func:`._trust.leave_one_out`) is their product, ``r**2 = q m / (q m + 1) * q / (q + 1)``,
    a quadratic in ``q``. NaN when unknown.
    """
    r = np.asarray(quality, dtype=np.float64)
    r = r[np.isfinite(r)]
    if r.size == 0 or k < 2:
        return float("nan")
    sigma = float(np.mean(np.clip(r, 0.0, 1.0)))
    r_loo = float(np.median(leave_one_out(r, k, sigma)))
    if not np.isfinite(r_loo):
        return float("nan")
    r2 = min(max(r_loo, 0.0), 0.999999) ** 2
    m = k - 1  # the frames of the template without it
    # m (1 - r2) q**2 - r2 (m + 1) q - r2 = 0, the positive root
    a, b, c = m * (1.0 - r2), r2 * (m + 1.0), r2
    return float((b + np.sqrt(b * b + 4.0 * a * c)) / (2.0 * a))


def _half_templates(
    stack: Any, halves: tuple[np.ndarray, np.ndarray], shifts: np.ndarray, job: Any, preparer: FramePreparer
) -> list[Template]:
    """The template of each half, its frames resampled at their ``shifts`` (as the run's template is built);
    one read of the frames they span."""
    opts = job.options
    accs = [TemplateAccumulator(job.crop_shape, opts.normalize, opts.kernel) for _ in halves]
    which = {int(t): h for h, half in enumerate(halves) for t in half}
    frames = np.sort(np.concatenate(halves))
    for lo in range(0, frames.size, job.chunk_size):
        chunk = frames[lo : lo + job.chunk_size]
        first = int(chunk[0])
        block = np.asarray(stack[first : int(chunk[-1]) + 1])
        for t in chunk:
            prepared = preparer(block[int(t) - first])
            if prepared.usable:
                acc = accs[which[int(t)]]
                acc.add(acc.register(prepared, (float(shifts[t, 0]), float(shifts[t, 1]))))
    return [acc.template() for acc in accs]


def _verdict(fresh: FrameResults, k: int, z: float, shift: np.ndarray) -> str:
    """'' when the fresh match confirms ``shift``, else why not.

    A fresh match whose last refinement did not converge confirms nothing, even when it lands near
    ``shift``: on 68 grid seeds, counting those (searched afresh) as confirming put 514 more right frames
    ok and 4 more wrong ones (a weak frame's fresh match and its shift share the frame's own noise).
    """
    head = "not confirmed by the template of the other half of the template frames"
    if fresh.flags[k] == FLAG_NOT_CONVERGED:
        return f"{head} (its match there did not converge; weak signal)"
    if fresh.flags[k] != 0 or not np.isfinite(z):
        return f"{head} (no match there)"
    if z < MIN_Z_FRESH:
        return f"{head} (its match there is not significant: z={z:.1f} < {MIN_Z_FRESH:g}; weak signal)"
    apart = float(np.hypot(*(np.asarray(fresh.shifts[k]) - np.asarray(shift))))
    if apart > AGREE:
        return f"{head} (it lands {apart:.2f} px away; limit {AGREE:g} px)"
    return ""
