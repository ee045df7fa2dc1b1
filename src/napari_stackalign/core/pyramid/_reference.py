"""Reference (template) building that cannot collapse.

The failure this module exists to avoid: the reference tool averages the
first ``num_frames`` *unregistered* frames. When those frames drift further
than the size of the features, the average is a blur that contains every
frame itself, and every frame then matches it best at (nearly) zero shift.

Here the template is built from registered frames (see
:func:`build_reference`): a single sharp seed frame, then averages of frames
registered to the current template, with coverage so borders are not
darkened.

Because the seed is sharp and each pass only sharpens the average, the
shifts do not shrink towards zero however large the drift (within the
search range ``max_movement``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...progress import ProgressCallback, report
from ._engine import (
    FLAG_FAILED,
    FLAG_UNUSABLE,
    FramePreparer,
    FrameRun,
    Levels,
    PyramidEstimator,
    Template,
    TemplateAccumulator,
    run_frames,
)

__all__ = ["ReferenceResult", "build_reference", "seed_index"]


#: frames registered to the seed in the first pass (spread over the template frames)
SEED_PASS_FRAMES = 24
#: a further pass is made when a frame's shift changes by more than this (px)
#: between the seed pass and the next one
REPASS_CHANGE = 0.5
#: at most this many disputed frames are first checked one by one against the
#: new template (more than that: the seed misled the first average, pass again)
VERIFY_AT_MOST = 6


class ReferenceResult:
    """The template, the template frames' shifts against it (``s`` with
    ``frame[p + s] ~ template[p]``; NaN for unusable frames), the number of
    passes and the index of the finest pyramid level the shifts were refined
    at."""

    def __init__(self, template: Template, shifts: np.ndarray, passes: int, level: int) -> None:
        self.template = template
        self.shifts = shifts
        self.passes = passes
        self.level = level


def seed_index(stack: Any, n_frames: int, preparer: FramePreparer) -> tuple[int, Any]:
    """The usable frame (with contrast) nearest the middle of the first
    ``n_frames`` frames."""
    mid = (n_frames - 1) // 2
    order = sorted(range(n_frames), key=lambda i: (abs(i - mid), i))
    for i in order:
        prepared = preparer(np.asarray(stack[i]))
        img = prepared.image
        if prepared.usable and float(img.max()) > float(img.min()):
            return i, prepared
    raise ValueError(
        "no usable frame among the reference frames: every frame is constant, empty, NaN or masked out."
    )


def template_levels(n_rates: int) -> int:
    """How many pyramid levels template building uses: all but the last
    (the template only needs to be sharp, not exact to 0.01 px)."""
    return max(1, n_rates - 1)


def build_reference(
    stack: Any,
    n_frames: int,
    preparer: FramePreparer,
    levels: Levels,
    max_movement: float,
    *,
    kernel: str,
    fit_gain: bool,
    pool: Any,
    chunk_size: int,
    progress: ProgressCallback | None = None,
) -> ReferenceResult:
    """Build a sharp template from the first ``n_frames`` frames.

    1. Seed: the frame nearest the middle of the template frames.
    2. Up to ``SEED_PASS_FRAMES`` frames spread over the template frames are
       registered to the seed and averaged.
    3. All template frames are registered to that average and averaged:
       this is the template (the mean of the registered first ``n_frames``
       frames, as the reference tool intends).
    4. If a frame of step 2 moved by more than ``REPASS_CHANGE`` px in step
       3, one of the two passes misled it. When few frames disagree (at most
       ``VERIFY_AT_MOST``), each is searched again against the new template,
       expecting its step-3 shift: if step 3 is confirmed for all of them,
       the single-frame seed misled step 2 only (a lattice frame one period
       off adds the same lattice to the first average) and the template
       stands. Otherwise step 3 is repeated once against the new template.

    Template building stops one pyramid level short of the last (see
    :func:`template_levels`); the final registration refines every frame at
    all levels.

    Parameters
    ----------
    stack : array-like (T, Y, X)
        Frames (read ``np.asarray(stack[i:j])`` chunk by chunk).
    n_frames : int
        Number of leading frames the template is made of.
    preparer : FramePreparer
        Frame preparation (ROI, mask).
    levels : Levels
        Pyramid geometry.
    max_movement : float
        Search range (fraction of the frame, split over +/-).
    kernel, fit_gain
        Sub-pixel options (see :class:`PyramidEstimator`).
    pool : executor or None
        Thread pool.
    chunk_size : int
        Frames read at a time.
    progress : callable, optional
        ``progress(done, total, "reference")``.

    Returns
    -------
    ReferenceResult
    """
    upto = template_levels(len(levels.rates))
    seed_at, seed = seed_index(stack, n_frames, preparer)
    template = Template.from_prepared(seed, preparer.normalize)
    if n_frames == 1:
        return ReferenceResult(template, np.zeros((1, 2)), 0, len(levels.rates) - 1)
    subset = np.unique(np.round(np.linspace(0, n_frames - 1, min(SEED_PASS_FRAMES, n_frames))).astype(np.int64))
    subset = np.union1d(subset, [seed_at])
    every = np.arange(n_frames)
    run = FrameRun(pool, chunk_size, progress, "reference", total=subset.size + n_frames, follow=True)
    passes = 0
    previous: np.ndarray | None = None
    shifts = np.zeros((n_frames, 2))
    level = len(levels.rates) - 1
    for indices in (subset, every, every):
        estimator = PyramidEstimator(
            template, levels, max_movement, kernel=kernel, fit_gain=fit_gain, upto=upto, with_neff=False
        )
        level = estimator.active[-1]
        template, found = _averaging_pass(stack, indices, preparer, estimator, run)
        run.done_offset += indices.size
        passes += 1
        if indices is subset:
            previous = found
            continue
        shifts = found
        assert previous is not None
        change = shifts[subset] - previous
        if not np.isfinite(change).any():
            break
        change -= np.nanmedian(change, axis=0)
        if not np.nanmax(np.abs(change)) > REPASS_CHANGE or passes == 3:
            break
        disputed = subset[(np.abs(change) > REPASS_CHANGE).any(axis=1)]
        if disputed.size <= VERIFY_AT_MOST and _confirmed(
            stack, disputed, shifts, preparer, levels, template, max_movement, kernel, fit_gain, upto
        ):
            break
        previous = shifts[subset]
        run.total += n_frames
    report(progress, run.total, run.total, "reference")
    return ReferenceResult(template, shifts, passes, level)


def _averaging_pass(
    stack: Any, indices: np.ndarray, preparer: FramePreparer, estimator: PyramidEstimator, run: FrameRun
) -> tuple[Template, np.ndarray]:
    """Register frames ``indices`` to the estimator's template and average them.

    Returns the new template, re-centred on the frames' median position, and
    the frames' shifts against it (NaN for unusable frames).
    """
    acc = TemplateAccumulator(preparer.shape, preparer.normalize, estimator.kernel)
    run.accumulate = np.ones(indices.size, bool)
    run.accumulator = acc
    res = run_frames(stack, indices, preparer, estimator, run)
    found = res.shifts.copy()
    found[(res.flags & FLAG_UNUSABLE) > 0] = np.nan
    # re-centre the template on the frames' median position (whole
    # pixels): zero shift is then the natural guess for every frame,
    # which settles the period ambiguity of lattices the same way
    # wherever and however the frames are processed
    step = np.round(np.nanmedian(found, axis=0)) if np.isfinite(found).any() else np.zeros(2)
    template = acc.template().moved((int(step[0]), int(step[1])))
    return template, found - step


def _confirmed(
    stack: Any,
    indices: np.ndarray,
    shifts: np.ndarray,
    preparer: FramePreparer,
    levels: Levels,
    template: Template,
    max_movement: float,
    kernel: str,
    fit_gain: bool,
    upto: int,
) -> bool:
    """Whether each frame ``indices`` matches ``template`` where ``shifts``
    put it: a full search, expecting that shift (of equally good matches the
    nearest wins), lands within ``REPASS_CHANGE`` of it."""
    estimator = PyramidEstimator(
        template, levels, max_movement, kernel=kernel, fit_gain=fit_gain, upto=upto, with_neff=False
    )
    for i in indices:
        expected = (float(shifts[i, 0]), float(shifts[i, 1]))
        est = estimator.estimate(preparer(np.asarray(stack[int(i)])), prior=expected)
        if est.flags & (FLAG_UNUSABLE | FLAG_FAILED):
            return False
        if max(abs(est.shift[0] - expected[0]), abs(est.shift[1] - expected[1])) > REPASS_CHANGE:
            return False
    return True
