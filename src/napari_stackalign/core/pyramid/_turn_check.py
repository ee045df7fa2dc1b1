"""Frames whose turn the last level missed: checked at the first level.

At the last level the engine measures each frame's turn and corrects the
translation to the frame centre's (:mod:`._lucas_kanade`, :mod:`._rigid_refine`).
At low SNR that turn is attenuated: the template's own noise adds to its
gradients, so the normal equations' turn column holds noise energy that the
residual does not. Grid seed 1004, case 23 (a 1024x320 camera crop turning by
up to 1 degree, SNR 0.51): 0.01 degrees measured where the frames turned 1,
and 8 of its 12 frames 1.05-4.3 px off, marked ok. The translation-only fit of
a turned frame is the displacement where the template's detail sits, not at
its centre.

The first level averages that noise away and measures the turn (1.03 degrees
there). :func:`check_turns` refines each frame there once more, from its final
shift, with the turn: where the first level's turn is significant
(``MIN_TURN_Z``), the last level measured less than ``ATTENUATED`` of it, and
the first level puts the frame's centre more than ``COARSE_TURN_PX`` from the
final shift, the frame is flagged with why. Where the last level saw the turn
its centre stands (a first level of few pixels measures a large turn less
well: a 32x32 px level gave 3.1 degrees for 2.4).

A stack is screened first (``SCREEN_FRAMES``, as the lattice regions are): the
remaining frames are checked only when a screened one turns more than the last
level saw. A stack that does not turn costs one more read and first-level
refinement of 12 frames. Lattices are left to the lattice resolver's region
check (their first level is a blur of the lattice), chained modes to their
links.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._engine import COARSE_ITER, FLAG_FAILED, FLAG_UNUSABLE, FramePreparer, FrameResults, PyramidEstimator
from ._lattice_regions import screen
from ._lucas_kanade import LKTemplate

__all__ = ["ATTENUATED", "COARSE_TURN_PX", "SCREEN_FRAMES", "check_turns"]

#: a frame whose centre the first level puts more than this (full-resolution px) from its final shift is
#: flagged: more than the ``TURNED_OFF_PX`` of a turn the last level measured, as the first level's centre
#: is known to about a coarse pixel. Grid seed 1004, case 23 at SNR 0.51: the 8 frames 1.05-4.3 px off were
#: 1.1-4.0 px from the first level's centre, the right ones 0.05-0.13 px (and one 0.73 px off, 1.37 px)
COARSE_TURN_PX = 1.0
#: ... when the last level measured less than this share of the first level's turn
ATTENUATED = 0.5
#: frames screened before the rest are checked
SCREEN_FRAMES = 12


def check_turns(
    stack: Any,
    job: Any,
    estimator: PyramidEstimator,
    results: FrameResults,
    *,
    preparer: FramePreparer,
    notes: list[str] | None,
    lattice: bool,
) -> tuple[list[str] | None, dict[str, Any]]:
    """Flag the frames whose turn only the first level sees (see the module docstring).

    Parameters
    ----------
    stack : array-like (T, Y, X)
        The frames (12 are read once more; all of them when the stack turns).
    job : PyramidJob
        The run's job.
    estimator : PyramidEstimator
        The final pass's estimator (its first level and template).
    results : FrameResults
        Every frame's final estimate.
    preparer : FramePreparer
        The run's frame preparation.
    notes : list of str, optional
        Reasons found so far, per frame ('' for none); extended, not replaced.
    lattice : bool
        Whether the template holds a lattice (then nothing is checked here).

    Returns
    -------
    (notes, params) : (list of str or None, dict)
        The reasons so far plus this check's (None when there is nothing to add), and what it did
        (``{"turn_check": {"level", "checked", "flagged"}}``; empty when it did not run or no screened
        frame turned more than the last level saw, so a stack that does not turn keeps the ``params`` of
        the stages run without this check).
    """
    if job.chained or lattice or len(estimator.active) < 2:
        return notes, {}
    first = estimator.active[0]
    levels = estimator.levels
    scale = levels.scales[first]
    base = estimator.lk_template(first)
    coarse = LKTemplate(base.template, base.valid, kernel=base.kernel, derivative_radius=base.derivative_radius,
                        rotation=True)
    usable = np.flatnonzero(((results.flags & (FLAG_UNUSABLE | FLAG_FAILED)) == 0) & np.isfinite(results.quality))
    if usable.size == 0:
        return notes, {}
    max_iter, tol = COARSE_ITER

    def measure(t: int) -> tuple[float, float] | None:
        """(first level's turn, its centre's distance from the final shift) where that turn is significant
        and the last level saw less than ``ATTENUATED`` of it, else None."""
        prepared = preparer(np.asarray(stack[int(t)]))
        image = levels.build(prepared.image, {first})[first]
        weights = None if prepared.weights is None else prepared.weights.eroded(first)
        sy, sx = results.shifts[t]
        res = coarse.refine(image, (sy * scale[0], sx * scale[1]), weights=weights, max_iter=max_iter, tol=tol,
                            fit_gain=estimator.fit_gain)
        if res.failed or res.centre == (0.0, 0.0):  # no significant turn there
            return None
        last = float(results.turn[t])
        if np.isfinite(last) and abs(last) >= ATTENUATED * abs(res.turn):  # the last level saw it
            return None
        cy, cx = (res.shift[0] + res.centre[0]) / scale[0], (res.shift[1] + res.centre[1]) / scale[1]
        return float(res.turn), float(np.hypot(cy - sy, cx - sx))

    screened = usable[screen(results.quality[usable], SCREEN_FRAMES)]
    found = {int(t): measure(t) for t in screened}
    if all(v is None for v in found.values()):
        return notes, {}  # no screened frame turns more than the last level saw
    for t in usable:
        if int(t) not in found:
            found[int(t)] = measure(t)
    rate = levels.rates[first]
    flagged = 0
    out = list(notes) if notes is not None else [""] * len(results.shifts)
    for t, value in sorted(found.items()):
        if value is None or value[1] <= COARSE_TURN_PX or out[t]:
            continue
        turn, distance = value
        last = float(np.degrees(results.turn[t]))
        out[t] = (
            f"turns by {abs(np.degrees(turn)):.2f} degrees against the template (measured at the {rate:g} level; "
            f"{abs(last):.2f} at full resolution, where the template's noise hides it), which puts its centre "
            f"{distance:.1f} px from its translation: the translation is not the frame centre's (the similarity "
            "method corrects the rotation too)"
        )
        flagged += 1
    info = {"turn_check": {"level": rate, "checked": len(found), "flagged": flagged}}
    return (out if flagged or notes is not None else None), info
