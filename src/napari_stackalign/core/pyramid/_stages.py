"""Pyramid registration split into stages that can run in different places.

:func:`~napari_stackalign.core.pyramid.register_pyramid` runs these stages in
one call on one machine. Streaming a stack far larger than memory, or
spreading it over a dask cluster, runs the same stages at their natural seams:

1. :func:`plan_pyramid` checks the parameters (with the checks of
   ``register_pyramid``) and returns a :class:`PyramidJob`: small, picklable,
   and enough to rebuild the frame preparation and the estimator anywhere.
2. :func:`build_template` builds the template once (the registered average of
   the first ``num_frames`` frames, and, with ``iterate > 1``, its
   refinements). Only the template frames are read: only their estimates
   feed the next template.
3. :func:`estimate_range` estimates any range of frames against that
   template. A frame's estimate depends on the frame, the template and the
   template-building start (for the template frames) only, never on the
   chunking or on which thread, process or machine runs it.
4. :func:`finish` does the stack-wide steps once, after all frames are in:
   interpolation of unusable frames, the quality threshold (half the median),
   the anchoring on the template frames (an offset fixed with the template,
   see :class:`TemplateState`) and the optional smoothing.

Whatever the split into ranges, chunks, threads or processes, the stages give
exactly (bit for bit) the single-call result; the tests check it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...progress import ProgressCallback
from ...transforms import FrameTransforms, NoSignalWarning
from ..checks import check_mask, check_roi, check_stack
from ..smoothing import check_savgol, smooth_transforms
from ._engine import (
    FLAG_AT_EDGE,
    FLAG_FAILED,
    FLAG_NOT_CONVERGED,
    FLAG_TURNED,
    FLAG_UNUSABLE,
    FOLLOW_BATCH,
    MIN_LEVEL_SIZE,
    FramePreparer,
    FrameResults,
    FrameRun,
    Levels,
    PyramidEstimator,
    Template,
    TemplateAccumulator,
    run_frames,
)
from ._jump_evidence import SignalAutocorrelation
from ._lucas_kanade import KERNELS
from ._options import PYRAMID_DEFAULTS, PyramidOptions
from ._periodic import resolve_periodic
from ._reference import build_reference
from ._reference_image import without_fill
from ._trajectory import Trajectory
from ._trust import QUALITY_FRACTION, judge

__all__ = [
    "MIN_FRAME_SIZE",
    "MIN_MASK_PIXELS",
    "MIN_ROI_SIZE",
    "QUALITY_FRACTION",
    "ChunkHook",
    "PyramidJob",
    "TemplateState",
    "build_template",
    "concat_results",
    "corrections",
    "cross_checked",
    "turn_checked",
    "estimate_range",
    "finish",
    "new_trajectory",
    "plan_pyramid",
    "run_stages",
    "stack_wide_checks",
]

#: smallest ROI height and width (px)
MIN_ROI_SIZE = 16
#: Smallest frame side (px) the pyramid registers (its coarsest level needs ``MIN_LEVEL_SIZE`` px).
MIN_FRAME_SIZE = MIN_LEVEL_SIZE
#: fewest pixels a mask must keep
MIN_MASK_PIXELS = 256

#: ``hook(start, stop, parts, state)`` after frames ``start:stop`` are
#: estimated; ``parts`` holds the results of every range so far, in frame
#: order, and ``state`` is the template they were estimated against
ChunkHook = Callable[[int, int, list["FrameResults"], "TemplateState"], None]


@dataclass(frozen=True, eq=False)
class PyramidJob:
    """Checked parameters of one pyramid registration (picklable).

    ``n_frames`` and ``frame_shape`` describe the stack, ``options`` are the
    options of :func:`~napari_stackalign.core.pyramid.register_pyramid`, checked
    against that stack (the ROI inside the frame, a boolean mask of the
    frame's shape, the reference frames inside the stack, the reference
    image's shape).
    """

    n_frames: int
    frame_shape: tuple[int, int]
    options: PyramidOptions

    @property
    def user_reference(self) -> bool:
        """Whether the frames are registered to the user's reference image."""
        return self.options.reference_mode == "image"

    @property
    def chained(self) -> bool:
        """Whether each frame is registered to the frames before it (no fixed template)."""
        return self.options.chained

    @property
    def chunk_size(self) -> int:
        """Frames read and processed at a time."""
        return self.options.chunk_size

    @property
    def template_range(self) -> tuple[int, int]:
        """The frames ``start:stop`` whose registered mean is the template
        (``0:0`` with a user image or a chained mode: no template frames)."""
        mode = self.options.reference_mode
        if mode == "template":
            return 0, min(self.options.num_frames, self.n_frames)
        if mode == "frames":
            assert self.options.reference_frames is not None
            return self.options.reference_frames
        return 0, 0

    @property
    def n_template(self) -> int:
        """Number of frames the template is made of."""
        start, stop = self.template_range
        return stop - start

    def in_template(self) -> np.ndarray:
        """Per frame, whether it is averaged into the template."""
        start, stop = self.template_range
        member = np.zeros(self.n_frames, bool)
        member[start:stop] = True
        return member

    @property
    def crop_shape(self) -> tuple[int, int]:
        """Shape of the compared area (the ROI, else the frame)."""
        roi = self.options.roi
        if roi is None:
            return self.frame_shape
        return (roi[1] - roi[0], roi[3] - roi[2])

    @property
    def levels(self) -> Levels:
        """Pyramid geometry of the compared area."""
        return Levels(self.crop_shape, self.options.downsample_rates)

    def preparer(self) -> FramePreparer:
        """A fresh frame preparer (not picklable itself: build one per process)."""
        opts = self.options
        return FramePreparer(self.frame_shape, opts.roi, opts.mask, opts.normalize, self.levels, KERNELS[opts.kernel])

    def estimator(self, template: Template) -> PyramidEstimator:
        """The estimator of the final pass against ``template``."""
        opts = self.options
        return PyramidEstimator(template, self.levels, opts.max_movement, kernel=opts.kernel, fit_gain=opts.normalize)

    def params(self) -> dict:
        """The ``params`` block of the result (as ``register_pyramid`` writes it)."""
        reference = {
            "template": "registered average of the first num_frames frames",
            "frames": "registered average of the frames reference_frames",
            "previous": "the previous frame (shifts chained)",
            "running": "running average of the last running_frames registered frames",
            "image": "user",
        }[self.options.reference_mode]
        params: dict[str, Any] = {}
        for name, value in self.options:
            if name == "kernel":
                params["reference"] = reference
            if name not in ("chunk_size", "reference"):
                params[name] = value
        params["downsample_rates"] = list(self.options.downsample_rates)
        params["roi"] = None if self.options.roi is None else list(self.options.roi)
        params["reference_frames"] = None if self.options.reference_frames is None else list(self.template_range)
        params["mask"] = self.options.mask is not None
        params["template_frames"] = self.n_template
        return params


class _Shape:
    """Stand-in with the shape and dtype of a stack, for the checks."""

    def __init__(self, shape: Sequence[int], dtype: Any) -> None:
        self.shape = tuple(int(n) for n in shape)
        self.dtype = np.dtype(dtype)


def plan_pyramid(
    shape: Sequence[int],
    dtype: Any,
    options: PyramidOptions | None = None,
) -> PyramidJob:
    """Check the options for a (T, Y, X) stack of ``shape`` and ``dtype``.

    Parameters
    ----------
    shape, dtype
        The stack's shape and dtype.
    options : PyramidOptions, optional
        The registration's options (default ``PyramidOptions()``); the checks
        that need the stack (the ROI inside the frame, the mask's shape, a
        smoothing window no longer than the stack, a first level large
        enough, the reference frames inside the stack, a reference image of
        the frame's shape) raise the ``ValueError`` that
        :func:`~napari_stackalign.core.pyramid.register_pyramid` raises.

    Returns
    -------
    PyramidJob
    """
    opts = PYRAMID_DEFAULTS if options is None else options
    n_total, height, width = check_stack(_Shape(shape, dtype), min_size=MIN_FRAME_SIZE)
    if opts.smooth:
        check_savgol(n_total, opts.window_length, opts.polyorder)
    check_roi(opts.roi, (height, width), min_size=MIN_ROI_SIZE)
    mask = check_mask(opts.mask, (height, width), min_pixels=MIN_MASK_PIXELS)
    if mask is not opts.mask:
        opts = opts.replace(mask=mask)
    if opts.reference_frames is not None and opts.reference_frames[1] > n_total:
        start, stop = opts.reference_frames
        raise ValueError(
            f"reference_frames {start}:{stop} reach beyond the stack's {n_total} frames (0:{n_total} at most)."
        )
    if opts.reference is not None and opts.reference.shape != (height, width):
        raise ValueError(
            f"reference has shape {opts.reference.shape}; it must be one (Y, X) = {(height, width)} image."
        )
    job = PyramidJob(n_total, (height, width), opts)
    _check_levels(job)
    return job


def _check_levels(job: PyramidJob) -> None:
    """Raise unless the finest pyramid level keeps at least ``MIN_LEVEL_SIZE`` px.

    Coarser levels under ``MIN_SEARCH_SIZE`` px are skipped by the estimator
    (``params["levels_used"]`` says which were used).
    """
    crop = job.crop_shape
    lh, lw = job.levels.shapes[-1]
    if min(lh, lw) < MIN_LEVEL_SIZE:
        last = job.options.downsample_rates[-1]
        end = MIN_LEVEL_SIZE / min(crop)
        if end > 1:
            advice = "the compared area is too small to register: use a larger ROI or larger frames"
        elif end > 0.999:
            advice = "end at full resolution: downsample_rates=[1]"
        else:
            advice = f"end at {end:.3g} or higher, up to 1 (full resolution)"
        raise ValueError(
            f"the finest downsample rate {last:g} makes {lh}x{lw} px images from "
            f"{crop[0]}x{crop[1]} px frames; use rates that keep at least {MIN_LEVEL_SIZE} px ({advice})."
        )


@dataclass
class TemplateState:
    """The template of the final pass and how to start the frames against it.

    Attributes
    ----------
    template : Template
        The template (full resolution of the compared area).
    init : ndarray (n_template, 2) or None
        Start of each template frame in the final pass (its template-building
        estimate; NaN: search from scratch), or None when every frame starts
        from scratch (a user reference, or ``iterate > 1``).
    init_start : int
        The frame ``init[0]`` belongs to (the first template frame).
    init_level : int
        Finest pyramid level ``init`` was refined at.
    reference_passes : int
        Passes made building the first template (0 with a user reference).
    anchor : ndarray (2,) or None
        What :func:`finish` subtracts from every shift: the mean shift of the
        usable template frames in the pass that built the template (the
        template is their average, so this is where it sits among them).
        None with a user reference, whose frame is kept. Known before any
        frame is estimated against the template, so a caller can resample
        frames as soon as they are estimated.
    """

    template: Template
    init: np.ndarray | None
    init_level: int
    reference_passes: int
    anchor: np.ndarray | None = None
    init_start: int = 0

    def init_for(self, start: int, stop: int) -> np.ndarray | None:
        """Starts for frames ``start:stop`` (NaN rows: from scratch), or None."""
        if self.init is None:
            return None
        lo, hi = max(start, self.init_start), min(stop, self.init_start + len(self.init))
        if lo >= hi:
            return None
        out = np.full((stop - start, 2), np.nan)
        out[lo - start : hi - start] = self.init[lo - self.init_start : hi - self.init_start]
        return out


def build_template(
    stack: Any,
    job: PyramidJob,
    *,
    pool: Any = None,
    progress: ProgressCallback | None = None,
) -> TemplateState:
    """Build the template of the final pass, reading the template frames only.

    The template is the registered mean of the frames ``job.template_range``
    or the user's ``reference`` image (in ``job.options``). The chained modes
    have no fixed template (see :mod:`._chain`).

    Parameters
    ----------
    stack : array-like (T, Y, X)
        Frames (read ``np.asarray(stack[i:j])`` in chunks of ``job.chunk_size``).
    job : PyramidJob
        From :func:`plan_pyramid`.
    pool : executor, optional
        Thread pool for the frames.
    progress : callable, optional
        ``progress(done, total, stage)``; stages ``"reference"`` and, with
        ``iterate > 1``, ``"template k/n"``.

    Returns
    -------
    TemplateState
    """
    if job.chained:
        raise ValueError(f"reference_mode {job.options.reference_mode!r} has no fixed template to build.")
    preparer = job.preparer()
    if job.user_reference:
        assert job.options.reference is not None
        state = _user_template(job.options.reference, job, preparer)
    else:
        state = _registered_template(stack, job, preparer, pool, progress)
    for it in range(job.options.iterate - 1):
        state = _refinement_pass(stack, job, preparer, state, it, pool, progress)
    if job.options.iterate > 1:
        state.init = None
    return state


def _user_template(reference: np.ndarray, job: PyramidJob, preparer: FramePreparer) -> TemplateState:
    """The template of a user's reference image (checked)."""
    ref = np.asarray(reference)
    if ref.shape != job.frame_shape:
        raise ValueError(f"reference has shape {ref.shape}; it must be one (Y, X) = {job.frame_shape} image.")
    prepared_ref = preparer(without_fill(ref))  # a registered frame's fill bands are not content
    if not (prepared_ref.usable and float(prepared_ref.image.max()) > float(prepared_ref.image.min())):
        raise ValueError("the reference image is constant (or entirely masked/NaN); it cannot be matched.")
    return TemplateState(Template.from_prepared(prepared_ref, job.options.normalize), None, -1, 0, None)


def _registered_template(
    stack: Any, job: PyramidJob, preparer: FramePreparer, pool: Any, progress: ProgressCallback | None
) -> TemplateState:
    """The registered average of the template frames (see :func:`build_reference`)."""
    opts = job.options
    start, _ = job.template_range
    ref_result = build_reference(
        stack if start == 0 else _FramesFrom(stack, start),
        job.n_template,
        preparer,
        job.levels,
        opts.max_movement,
        kernel=opts.kernel,
        fit_gain=opts.normalize,
        pool=pool,
        chunk_size=opts.chunk_size,
        progress=progress,
    )
    init = np.asarray(ref_result.shifts, dtype=np.float64)
    anchor = _mean_position(init, np.isfinite(init).all(axis=1))
    return TemplateState(ref_result.template, init, ref_result.level, ref_result.passes, anchor, start)


class _FramesFrom:
    """The frames ``start:`` of a stack, indexed from 0 (an int or a slice of frames)."""

    def __init__(self, stack: Any, start: int) -> None:
        self.stack = stack
        self.start = start
        self.shape = (int(stack.shape[0]) - start, *tuple(int(n) for n in stack.shape[1:]))
        self.dtype = stack.dtype

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, slice):
            lo, hi, step = key.indices(self.shape[0])
            return self.stack[lo + self.start : hi + self.start : step]
        return self.stack[int(key) + self.start]


def _refinement_pass(
    stack: Any,
    job: PyramidJob,
    preparer: FramePreparer,
    state: TemplateState,
    it: int,
    pool: Any,
    progress: ProgressCallback | None,
) -> TemplateState:
    """Refinement pass ``it`` (from 0): only the template frames feed the next template."""
    opts = job.options
    n_template = job.n_template
    acc = TemplateAccumulator(job.crop_shape, opts.normalize, opts.kernel)
    run = FrameRun(
        pool,
        opts.chunk_size,
        progress,
        f"template {it + 1}/{opts.iterate - 1}",
        init=state.init if it == 0 else None,
        init_level=state.init_level,
        accumulate=np.ones(n_template, bool),
        accumulator=acc,
    )
    start, stop = job.template_range
    refined = run_frames(stack, np.arange(start, stop), preparer, job.estimator(state.template), run)
    anchor = state.anchor
    if not job.user_reference:
        anchor = _mean_position(refined.shifts, (refined.flags & FLAG_UNUSABLE) == 0)
    return TemplateState(acc.template(), state.init, state.init_level, state.reference_passes, anchor, state.init_start)


def _mean_position(shifts: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """Mean of the usable rows of ``shifts`` (zeros when none is usable)."""
    if not usable.any():
        return np.zeros(2)
    return shifts[usable].mean(axis=0)


def new_trajectory() -> Trajectory:
    """The trajectory :func:`estimate_range` follows from frame 0 (expects 0 there)."""
    return Trajectory(FOLLOW_BATCH)


def estimate_range(
    stack: Any,
    job: PyramidJob,
    state: TemplateState,
    start: int,
    stop: int,
    *,
    preparer: FramePreparer | None = None,
    estimator: PyramidEstimator | None = None,
    pool: Any = None,
    progress: ProgressCallback | None = None,
    done_offset: int | None = None,
    total: int | None = None,
    offset: int = 0,
    trajectory: Trajectory | None = None,
) -> FrameResults:
    """Estimate frames ``start:stop`` of the stack against the template.

    Each frame searched from scratch (every frame but the template frames,
    which start from the template pass's estimate) expects the shift of the
    frames just before it (:class:`~._trajectory.Trajectory`), so a lattice
    that drifts by many lattice vectors is followed, not put back by whole
    lattice vectors to the template frames' median.

    Parameters
    ----------
    stack : array-like
        The frames; frame ``t`` of the stack is ``stack[t - offset]`` (pass
        ``offset=start`` with an array that holds only these frames).
    job, state
        From :func:`plan_pyramid` and :func:`build_template`.
    preparer, estimator : optional
        Reused when given (``job.preparer()``, ``job.estimator(state.template)``).
    pool : executor, optional
        Thread pool.
    progress : callable, optional
        ``progress(done, total, "estimate")``.
    done_offset, total : int, optional
        Progress is reported as ``done_offset + frames done`` of ``total``
        (default ``start`` and ``job.n_frames``).
    offset : int
        Index of the stack's first frame in the whole stack.
    trajectory : Trajectory, optional
        The trajectory of the frames before ``start`` (pass the same one to
        consecutive ranges, in order; the estimates are then those of one
        range ``0:stop``). Default: a new one, which expects 0 (the template
        frames' median) of the first frames.

    Returns
    -------
    FrameResults
        Raw shifts (engine convention), quality and flags of these frames.
    """
    if not 0 <= start <= stop <= job.n_frames:
        raise ValueError(f"frame range {start}:{stop} is outside the {job.n_frames} frames.")
    preparer = job.preparer() if preparer is None else preparer
    estimator = job.estimator(state.template) if estimator is None else estimator
    run = FrameRun(
        pool,
        job.chunk_size,
        progress,
        "estimate",
        done_offset=start if done_offset is None else done_offset,
        total=job.n_frames if total is None else total,
        init=state.init_for(start, stop),
        init_level=state.init_level,
        trajectory=new_trajectory() if trajectory is None else trajectory,
        first=start,
    )
    return run_frames(stack, np.arange(start - offset, stop - offset), preparer, estimator, run)


def _interpolate_missing(shifts: np.ndarray, good: np.ndarray) -> np.ndarray:
    """Fill rows where ``good`` is False by linear interpolation over time
    (nearest value beyond the ends)."""
    out = shifts.copy()
    idx = np.arange(len(shifts))
    for axis in range(2):
        out[~good, axis] = np.interp(idx[~good], idx[good], shifts[good, axis])
    return out


def concat_results(parts: Sequence[FrameResults]) -> FrameResults:
    """Join the results of consecutive frame ranges (in frame order)."""
    if not parts:
        return FrameResults(np.zeros((0, 2)), np.zeros(0), np.zeros(0, np.int64))
    return FrameResults(
        np.concatenate([p.shifts for p in parts]),
        np.concatenate([p.quality for p in parts]),
        np.concatenate([p.flags for p in parts]),
        np.concatenate([p.neff for p in parts]),
        np.concatenate([p.turn for p in parts]),
    )


def corrections(job: PyramidJob, shifts: np.ndarray, **fields: Any) -> FrameTransforms:
    """The transforms that undo the (anchored) engine shifts ``s``: ``dy, dx
    = -s`` about the frame centre, with any other ``FrameTransforms`` fields."""
    height, width = job.frame_shape
    return FrameTransforms(
        dy=-shifts[:, 0], dx=-shifts[:, 1], center=((height - 1) / 2.0, (width - 1) / 2.0), **fields
    )


#: when the trustworthy frames' median turn moves the frame's corners by more than this (px), the user is
#: told to use the similarity method (translation is corrected at the centre only)
TURN_ADVICE_PX = 1.0


def turn_summary(turn: np.ndarray, ok: np.ndarray, shape: tuple[int, int]) -> dict[str, Any] | None:
    """What the last level measured of the trustworthy frames' turns against the template (``params["turn"]``):
    how many frames, the median and largest turn (degrees, absolute) and the median's displacement of the
    compared area's corners (px). None when no trustworthy frame had its turn measured."""
    measured = np.asarray(ok, bool) & np.isfinite(turn)
    if not measured.any():
        return None
    degrees = np.degrees(np.abs(np.asarray(turn, np.float64)[measured]))
    radius = float(np.hypot((shape[0] - 1) / 2.0, (shape[1] - 1) / 2.0))
    median = float(np.median(degrees))
    return {
        "frames": int(measured.sum()),
        "median_deg": round(median, 4),
        "max_deg": round(float(degrees.max()), 4),
        "median_px_at_corners": round(float(np.radians(median)) * radius, 3),
    }


def finish(
    job: PyramidJob,
    state: TemplateState,
    results: FrameResults,
    *,
    levels_used: Sequence[float],
    notes: Sequence[str] | None = None,
    extra_params: dict[str, Any] | None = None,
) -> tuple[FrameTransforms, FrameTransforms]:
    """The stack-wide steps, once all frames are estimated.

    Parameters
    ----------
    job, state
        As for :func:`estimate_range`.
    results : FrameResults
        All frames, in order (see :func:`concat_results`).
    levels_used : sequence of float
        ``estimator.active_rates`` of the final pass.
    notes : sequence of str, optional
        Per frame, a reason to distrust it that the caller found ('' for
        none), added to those of the trust tests (the chained modes' broken
        links).
    extra_params : dict, optional
        Added to the result's ``params``.

    Returns
    -------
    (raw, final) : FrameTransforms
        ``raw`` before smoothing, ``final`` what ``register_pyramid`` returns
        (the same object as ``raw`` without smoothing).

    Raises
    ------
    ValueError
        When no frame has usable pixels.
    """
    if len(results.shifts) != job.n_frames:
        raise ValueError(f"got results for {len(results.shifts)} frames, expected {job.n_frames}.")
    flags = results.flags
    usable = (flags & FLAG_UNUSABLE) == 0
    if not usable.any():
        raise ValueError("no frame has any usable pixels (all constant, empty, NaN or masked out).")
    shifts = results.shifts
    if not usable.all():
        shifts = _interpolate_missing(shifts, usable)
    quality = results.quality
    in_template = job.in_template()
    h, w = job.crop_shape
    bound = (job.options.max_movement * h / 2.0, job.options.max_movement * w / 2.0)
    ok, reason = judge(
        shifts,
        quality,
        flags,
        results.neff,
        in_template=in_template,
        usable_template=int(usable[in_template].sum()),
        bound=bound,
        notes=None if notes is None else list(notes),
        autocorrelation=None if job.chained else SignalAutocorrelation(state.template),
        turn=results.turn,
    )
    if not ok.any():
        warnings.warn(
            f"pyramid registration: none of the {job.n_frames} frames has a trustworthy shift, so the stack "
            "has no usable signal for this method (nothing should be corrected with these estimates).",
            NoSignalWarning,
            stacklevel=3,
        )
    if state.anchor is not None:
        shifts = shifts - state.anchor
    params = job.params()
    params["levels_used"] = list(levels_used)
    params["reference_passes"] = int(state.reference_passes)
    params["flags"] = {
        "unusable": int(np.sum((flags & FLAG_UNUSABLE) > 0)),
        "at_search_edge": int(np.sum((flags & FLAG_AT_EDGE) > 0)),
        "refinement_failed": int(np.sum((flags & FLAG_FAILED) > 0)),
        "not_converged": int(np.sum((flags & FLAG_NOT_CONVERGED) > 0)),
        "turned": int(np.sum((flags & FLAG_TURNED) > 0)),
    }
    turn = turn_summary(results.turn, ok, job.crop_shape)
    if turn is not None:
        params["turn"] = turn
        if turn["median_px_at_corners"] > TURN_ADVICE_PX:
            warnings.warn(
                f"pyramid registration: the frames turn against the template (median {turn['median_deg']:.2f} "
                f"degrees, up to {turn['max_deg']:.2f}; {turn['median_px_at_corners']:.1f} px at the corners). "
                "This method corrects translation only, at the frame centre: use the similarity method "
                "(register_similarity) to correct the rotation too.",
                UserWarning,
                stacklevel=3,
            )
    params.update(extra_params or {})
    raw = corrections(job, shifts, quality=quality, ok=ok, reason=reason, method="pyramid", params=params)
    opts = job.options
    final = smooth_transforms(raw, window_length=opts.window_length, polyorder=opts.polyorder) if opts.smooth else raw
    return raw, final


def stack_wide_checks(
    stack: Any,
    job: PyramidJob,
    state: TemplateState,
    results: FrameResults,
    *,
    estimator: PyramidEstimator | None = None,
    preparer: FramePreparer | None = None,
    pool: Any = None,
) -> tuple[FrameResults, list[str] | None, dict | None]:
    """The checks that read frames again once every frame is estimated, in order: the lattice resolver
    (:func:`._periodic.resolve_periodic`), the first-level turn check (:func:`turn_checked`) and the
    cross-check (:func:`cross_checked`). Returns the results (lattice frames moved), the notes per frame
    (None: none) and the ``params`` they add, for :func:`finish`."""
    estimator = job.estimator(state.template) if estimator is None else estimator
    preparer = job.preparer() if preparer is None else preparer
    results, notes, extra = resolve_periodic(stack, job, state, results, preparer=preparer, estimator=estimator)
    notes, extra = turn_checked(stack, job, estimator, results, preparer, notes, extra)
    notes, extra = cross_checked(stack, job, state, results, preparer, notes, extra, pool)
    return results, notes, extra


def turn_checked(
    stack: Any,
    job: PyramidJob,
    estimator: PyramidEstimator,
    results: FrameResults,
    preparer: FramePreparer,
    notes: list[str] | None,
    extra: dict | None,
    lattice: bool | None = None,
) -> tuple[list[str] | None, dict | None]:
    """:func:`._turn_check.check_turns`'s notes added to ``notes``, what it did to ``extra["turn_check"]``.

    ``lattice``: whether the template holds one (default: whether ``extra`` has the lattice resolver's
    ``"lattice"`` block).
    """
    from ._turn_check import check_turns  # it builds on the engine, as this module does

    if lattice is None:
        lattice = "lattice" in (extra or {})
    notes, info = check_turns(stack, job, estimator, results, preparer=preparer, notes=notes, lattice=lattice)
    if info:
        extra = {**(extra or {}), **info}
    return notes, extra


def cross_checked(
    stack: Any,
    job: PyramidJob,
    state: TemplateState,
    results: FrameResults,
    preparer: FramePreparer,
    notes: list[str] | None,
    extra: dict | None,
    pool: Any,
) -> tuple[list[str] | None, dict | None]:
    """:func:`._cross_check.cross_check`'s notes added to ``notes``, what it did to ``extra["cross_check"]``
    (a lattice template, the lattice resolver's ``"lattice"`` block in ``extra``, is refined from the shifts
    instead of searched afresh)."""
    from ._cross_check import cross_check  # it builds on the engine, as this module does

    lattice = "lattice" in (extra or {})
    notes, info = cross_check(stack, job, state, results, preparer=preparer, notes=notes, pool=pool, lattice=lattice)
    if info:
        extra = {**(extra or {}), "cross_check": info}
    return notes, extra


def run_stages(
    stack: Any,
    job: PyramidJob,
    *,
    pool: Any = None,
    progress: ProgressCallback | None = None,
    on_chunk: ChunkHook | None = None,
) -> tuple[FrameTransforms, FrameTransforms]:
    """Every stage on one machine: template, every frame chunk by chunk, finish.

    ``on_chunk(start, stop, parts, state)`` is called after each chunk of
    ``job.chunk_size`` frames (frames are estimated in order), so a caller
    can start using the estimates before the last frame is done: without
    smoothing, ``corrections(job, shifts - state.anchor)`` are already the
    final transforms of every usable frame.

    The chained modes (``reference_mode`` ``'previous'``, ``'running'``)
    run :func:`~napari_stackalign.core.pyramid._chain.run_chain` instead
    (sequential; ``on_chunk`` is not called).

    Returns
    -------
    (raw, final) : FrameTransforms
        As :func:`finish` returns them.
    """
    if job.chained:
        from ._chain import run_chain  # the chain builds on these stages

        return run_chain(stack, job, progress=progress)
    state = build_template(stack, job, pool=pool, progress=progress)
    estimator = job.estimator(state.template)
    preparer = job.preparer()
    parts: list[FrameResults] = []
    trajectory = new_trajectory()
    for start in range(0, job.n_frames, job.chunk_size):
        stop = min(start + job.chunk_size, job.n_frames)
        parts.append(
            estimate_range(
                stack,
                job,
                state,
                start,
                stop,
                preparer=preparer,
                estimator=estimator,
                pool=pool,
                progress=progress,
                trajectory=trajectory,
            )
        )
        if on_chunk is not None:
            on_chunk(start, stop, parts, state)
    results, notes, extra = stack_wide_checks(
        stack, job, state, concat_results(parts), estimator=estimator, preparer=preparer, pool=pool
    )
    return finish(job, state, results, levels_used=estimator.active_rates, notes=notes, extra_params=extra)
