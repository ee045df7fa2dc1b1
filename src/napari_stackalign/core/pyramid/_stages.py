"""Pyramid registration split into stages that can run in different places.

:func:`~napari_stackalign.core.pyramid._register.register_pyramid` runs these stages in
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

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...progress import ProgressCallback
from ...transforms import FrameTransforms
from ..smoothing import check_savgol, smooth_transforms
from ._engine import (
    FLAG_AT_EDGE,
    FLAG_FAILED,
    FLAG_NOT_CONVERGED,
    FLAG_UNUSABLE,
    MIN_LEVEL_SIZE,
    FramePreparer,
    FrameResults,
    Levels,
    PyramidEstimator,
    Template,
    TemplateAccumulator,
    run_frames,
)
from ._lucas_kanade import KERNELS
from ._reference import build_reference
from ._register import (
    DEFAULT_RATES,
    QUALITY_FRACTION,
    _check_mask,
    _check_rates,
    _check_roi,
    _check_stack,
    _int_param,
    _interpolate_missing,
)

__all__ = [
    "ChunkHook",
    "PyramidJob",
    "TemplateState",
    "build_template",
    "concat_results",
    "corrections",
    "estimate_range",
    "finish",
    "plan_pyramid",
    "run_stages",
]

#: ``hook(start, stop, parts, state)`` after frames ``start:stop`` are
#: estimated; ``parts`` holds the results of every range so far, in frame
#: order, and ``state`` is the template they were estimated against
ChunkHook = Callable[[int, int, list["FrameResults"], "TemplateState"], None]


@dataclass(frozen=True, eq=False)
class PyramidJob:
    """Checked parameters of one pyramid registration (picklable).

    ``n_frames`` and ``frame_shape`` describe the stack; the other fields are
    the parameters of :func:`~napari_stackalign.core.pyramid._register.register_pyramid`.
    """

    n_frames: int
    frame_shape: tuple[int, int]
    num_frames: int
    rates: tuple[float, ...]
    max_movement: float
    iterate: int
    smooth: bool
    window_length: int
    polyorder: int
    roi: tuple[int, int, int, int] | None
    mask: np.ndarray | None = field(repr=False)
    normalize: bool
    kernel: str
    chunk_size: int
    user_reference: bool

    @property
    def n_template(self) -> int:
        """Number of leading frames the template is made of."""
        return min(self.num_frames, self.n_frames)

    @property
    def crop_shape(self) -> tuple[int, int]:
        """Shape of the compared area (the ROI, else the frame)."""
        if self.roi is None:
            return self.frame_shape
        return (self.roi[1] - self.roi[0], self.roi[3] - self.roi[2])

    @property
    def levels(self) -> Levels:
        """Pyramid geometry of the compared area."""
        return Levels(self.crop_shape, self.rates)

    def preparer(self) -> FramePreparer:
        """A fresh frame preparer (not picklable itself: build one per process)."""
        return FramePreparer(self.frame_shape, self.roi, self.mask, self.normalize, self.levels, KERNELS[self.kernel])

    def estimator(self, template: Template) -> PyramidEstimator:
        """The estimator of the final pass against ``template``."""
        return PyramidEstimator(template, self.levels, self.max_movement, kernel=self.kernel, fit_gain=self.normalize)

    def params(self) -> dict:
        """The ``params`` block of the result (as ``register_pyramid`` writes it)."""
        return {
            "num_frames": self.num_frames,
            "downsample_rates": list(self.rates),
            "max_movement": self.max_movement,
            "iterate": self.iterate,
            "smooth": self.smooth,
            "window_length": self.window_length,
            "polyorder": self.polyorder,
            "roi": None if self.roi is None else list(self.roi),
            "mask": self.mask is not None,
            "normalize": self.normalize,
            "reference": "user" if self.user_reference else "registered average of the first num_frames frames",
            "kernel": self.kernel,
            "template_frames": self.n_template,
        }


class _Shape:
    """Stand-in with the shape and dtype of a stack, for the checks."""

    def __init__(self, shape: Sequence[int], dtype: Any) -> None:
        self.shape = tuple(int(n) for n in shape)
        self.dtype = np.dtype(dtype)


def plan_pyramid(
    shape: Sequence[int],
    dtype: Any,
    *,
    num_frames: int = 100,
    downsample_rates: Sequence[float] = DEFAULT_RATES,
    max_movement: float = 0.5,
    iterate: int = 1,
    smooth: bool = False,
    window_length: int = 11,
    polyorder: int = 3,
    roi: tuple[int, int, int, int] | None = None,
    mask: np.ndarray | None = None,
    normalize: bool = True,
    kernel: str = "lagrange6",
    chunk_size: int = 64,
    user_reference: bool = False,
) -> PyramidJob:
    """Check the parameters for a (T, Y, X) stack of ``shape`` and ``dtype``.

    The parameters mean what they mean for
    :func:`~napari_stackalign.core.pyramid._register.register_pyramid`, and bad values
    raise the same ``ValueError``.

    Returns
    -------
    PyramidJob
    """
    n_total, height, width = _check_stack(_Shape(shape, dtype))
    num_frames = _int_param(num_frames, "num_frames", 1)
    iterate = _int_param(iterate, "iterate", 1)
    chunk_size = _int_param(chunk_size, "chunk_size", 1)
    rates = _check_rates(downsample_rates)
    try:
        max_movement = float(max_movement)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"max_movement must be a number in (0, 1], got {max_movement!r}.") from exc
    if not (np.isfinite(max_movement) and 0 < max_movement <= 1):
        raise ValueError(
            f"max_movement must be in (0, 1] (a fraction of the frame size split over +/-; "
            f"0.5 allows +/-25 %), got {max_movement}."
        )
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {sorted(KERNELS)}, got {kernel!r}.")
    if smooth:
        check_savgol(n_total, window_length, polyorder)
    roi_t = _check_roi(roi, (height, width))
    mask_arr = _check_mask(mask, (height, width))
    job = PyramidJob(
        n_frames=n_total,
        frame_shape=(height, width),
        num_frames=num_frames,
        rates=rates,
        max_movement=max_movement,
        iterate=iterate,
        smooth=bool(smooth),
        window_length=int(window_length),
        polyorder=int(polyorder),
        roi=roi_t,
        mask=mask_arr,
        normalize=bool(normalize),
        kernel=kernel,
        chunk_size=chunk_size,
        user_reference=bool(user_reference),
    )
    crop = job.crop_shape
    lh, lw = job.levels.shapes[0]
    if min(lh, lw) < MIN_LEVEL_SIZE:
        raise ValueError(
            f"the first downsample rate {rates[0]:g} makes {lh}x{lw} px images from {crop[0]}x{crop[1]} "
            f"px frames; use rates that keep at least {MIN_LEVEL_SIZE} px (e.g. start at "
            f"{MIN_LEVEL_SIZE / min(crop):.3g} or higher)."
        )
    return job


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

    def init_for(self, start: int, stop: int) -> np.ndarray | None:
        """Starts for frames ``start:stop`` (NaN rows: from scratch), or None."""
        if self.init is None or start >= len(self.init):
            return None
        out = np.full((stop - start, 2), np.nan)
        have = self.init[start : min(stop, len(self.init))]
        out[: len(have)] = have
        return out


def build_template(
    stack: Any,
    job: PyramidJob,
    *,
    reference: np.ndarray | None = None,
    pool: Any = None,
    progress: ProgressCallback | None = None,
) -> TemplateState:
    """Build the template of the final pass, reading the template frames only.

    Parameters
    ----------
    stack : array-like (T, Y, X)
        Frames (read ``np.asarray(stack[i:j])`` in chunks of ``job.chunk_size``).
    job : PyramidJob
        From :func:`plan_pyramid` (``user_reference`` must say whether
        ``reference`` is given).
    reference : ndarray (Y, X), optional
        A user template, as for ``register_pyramid``.
    pool : executor, optional
        Thread pool for the frames.
    progress : callable, optional
        ``progress(done, total, stage)``; stages ``"reference"`` and, with
        ``iterate > 1``, ``"template k/n"``.

    Returns
    -------
    TemplateState
    """
    if (reference is not None) != job.user_reference:
        raise ValueError("plan the job with user_reference=True exactly when a reference image is given.")
    preparer = job.preparer()
    levels = job.levels
    n_template = job.n_template
    if reference is not None:
        ref = np.asarray(reference)
        if ref.shape != job.frame_shape:
            raise ValueError(f"reference has shape {ref.shape}; it must be one (Y, X) = {job.frame_shape} image.")
        prepared_ref = preparer(ref)
        if not (prepared_ref.usable and float(prepared_ref.image.max()) > float(prepared_ref.image.min())):
            raise ValueError("the reference image is constant (or entirely masked/NaN); it cannot be matched.")
        template = Template.from_prepared(prepared_ref, job.normalize)
        init = None
        init_level = -1
        passes = 0
        anchor = None
    else:
        ref_result = build_reference(
            stack,
            n_template,
            preparer,
            levels,
            job.max_movement,
            kernel=job.kernel,
            fit_gain=job.normalize,
            pool=pool,
            chunk_size=job.chunk_size,
            progress=progress,
        )
        template = ref_result.template
        init = np.asarray(ref_result.shifts, dtype=np.float64)
        init_level = ref_result.level
        passes = ref_result.passes
        anchor = _mean_position(init, np.isfinite(init).all(axis=1))
    indices = np.arange(n_template)
    for it in range(job.iterate - 1):
        # a refinement pass: only the template frames feed the next template
        acc = TemplateAccumulator(job.crop_shape, job.normalize, job.kernel)
        refined = run_frames(
            stack,
            indices,
            preparer,
            job.estimator(template),
            pool=pool,
            chunk_size=job.chunk_size,
            progress=progress,
            stage=f"template {it + 1}/{job.iterate - 1}",
            init=init if it == 0 else None,
            init_level=init_level,
            accumulate=np.ones(n_template, bool),
            accumulator=acc,
        )
        template = acc.template()
        if reference is None:
            anchor = _mean_position(refined.shifts, (refined.flags & FLAG_UNUSABLE) == 0)
    if job.iterate > 1:
        init = None
    return TemplateState(template, init, init_level, passes, anchor)


def _mean_position(shifts: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """Mean of the usable rows of ``shifts`` (zeros when none is usable)."""
    if not usable.any():
        return np.zeros(2)
    return shifts[usable].mean(axis=0)


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
) -> FrameResults:
    """Estimate frames ``start:stop`` of the stack against the template.

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

    Returns
    -------
    FrameResults
        Raw shifts (engine convention), quality and flags of these frames.
    """
    if not 0 <= start <= stop <= job.n_frames:
        raise ValueError(f"frame range {start}:{stop} is outside the {job.n_frames} frames.")
    preparer = job.preparer() if preparer is None else preparer
    estimator = job.estimator(state.template) if estimator is None else estimator
    return run_frames(
        stack,
        np.arange(start - offset, stop - offset),
        preparer,
        estimator,
        pool=pool,
        chunk_size=job.chunk_size,
        progress=progress,
        stage="estimate",
        done_offset=start if done_offset is None else done_offset,
        total=job.n_frames if total is None else total,
        init=state.init_for(start, stop),
        init_level=state.init_level,
    )


def concat_results(parts: Sequence[FrameResults]) -> FrameResults:
    """Join the results of consecutive frame ranges (in frame order)."""
    if not parts:
        return FrameResults(np.zeros((0, 2)), np.zeros(0), np.zeros(0, np.int64))
    return FrameResults(
        np.concatenate([p.shifts for p in parts]),
        np.concatenate([p.quality for p in parts]),
        np.concatenate([p.flags for p in parts]),
    )


def corrections(job: PyramidJob, shifts: np.ndarray, **fields: Any) -> FrameTransforms:
    """The transforms that undo the (anchored) engine shifts ``s``: ``dy, dx
    = -s`` about the frame centre, with any other ``FrameTransforms`` fields."""
    height, width = job.frame_shape
    return FrameTransforms(
        dy=-shifts[:, 0], dx=-shifts[:, 1], center=((height - 1) / 2.0, (width - 1) / 2.0), **fields
    )


def finish(
    job: PyramidJob, state: TemplateState, results: FrameResults, *, levels_used: Sequence[float]
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
    ok = usable & ((flags & (FLAG_AT_EDGE | FLAG_FAILED | FLAG_NOT_CONVERGED)) == 0)
    finite_q = np.isfinite(quality)
    if finite_q.any():
        median_q = float(np.median(quality[finite_q]))
        ok &= finite_q & (quality >= QUALITY_FRACTION * median_q)
    else:
        ok[:] = False
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
    }
    raw = corrections(job, shifts, quality=quality, ok=ok, method="pyramid", params=params)
    final = smooth_transforms(raw, window_length=job.window_length, polyorder=job.polyorder) if job.smooth else raw
    return raw, final


def run_stages(
    stack: Any,
    job: PyramidJob,
    *,
    reference: np.ndarray | None = None,
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

    Returns
    -------
    (raw, final) : FrameTransforms
        As :func:`finish` returns them.
    """
    state = build_template(stack, job, reference=reference, pool=pool, progress=progress)
    estimator = job.estimator(state.template)
    preparer = job.preparer()
    parts: list[FrameResults] = []
    for start in range(0, job.n_frames, job.chunk_size):
        stop = min(start + job.chunk_size, job.n_frames)
        parts.append(
            estimate_range(
                stack, job, state, start, stop, preparer=preparer, estimator=estimator, pool=pool, progress=progress
            )
        )
        if on_chunk is not None:
            on_chunk(start, stop, parts, state)
    return finish(job, state, concat_results(parts), levels_used=estimator.active_rates)
