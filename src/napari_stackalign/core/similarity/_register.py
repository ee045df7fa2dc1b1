"""Similarity registration: rotation, scale and translation of every frame
onto a template, measured on one channel.

Per frame, three stages (the template's spectra and gradients are computed
once):

1. **Rotation and scale** from the phase correlation of the log-polar
   resampled spectrum magnitudes of the apodised frame and template (see
   :mod:`._logpolar`), searched only within ``angle_range`` / ``scale_range``.
   A magnitude spectrum cannot tell ``a`` from ``a + 180`` degrees.
2. **Translation, the 180-degree ambiguity and candidates**: a magnitude
   spectrum cannot tell ``a`` from ``a + 180`` degrees, and a scene with an
   almost isotropic spectrum can put the true rotation on a lower peak. The
   3 best log-polar peaks, each also turned by 180 degrees, and "no
   rotation" (those outside the ranges dropped) are each applied to a
   reduced copy of the frame (about 128 px) and phase-correlated with the
   template; the highest correlation peak wins and gives the shift.
3. **Refinement**: Gauss-Newton (inverse-compositional Lucas-Kanade) of the
   four similarity parameters against the template on a coarse-to-fine
   pyramid, with gain and offset removed (see :mod:`._refine`).
   This removes the sub-pixel bias of peak interpolation and reaches
   about 0.01 degree, 1e-4 in scale and 0.01-0.03 px on textured frames.
4. **Symmetry rivals** (only for a template that matches itself turned by
   60, 90 or 180 degrees or shifted by a lattice vector, see
   :mod:`._symmetry`): the refined winner's images under those symmetries
   are scored, the two closest refined; a better one replaces the winner,
   one within 4 sigma flags the frame (``ambiguous: the template matches
   itself turned by 60 deg ...``).

With ``template="mean"`` a second pass refines every frame (stage 3 only)
against the mean of the *other* well-registered frames of the first pass
(leave-one-out, so a frame's own noise cannot hold it where it was).

Success score
-------------
``quality`` of the returned transforms is the *normalised cross-correlation*
(Pearson's r) between the template and the registered frame, both smoothed by
a Gaussian of ``sigma`` px, over the pixels both cover (gain and offset do not
matter): 1 is a perfect match, about 0 unrelated content. A frame is flagged
(``ok=False``, with its reason in ``reason``) when its score is not
significant (below :data:`SIGNIFICANCE_Z` times the spread of the score
between unrelated frames of that size, :func:`chance_success`: the best match
found on pure noise reaches about 5 times it), when it is below ``min_success`` (by default half the
median score of the stack, at least 0.1), when it has NaN values or is
constant, when it covers less than a quarter of the template, when the
refinement diverges, or when the result falls outside ``angle_range`` /
``scale_range`` (by more than one log-polar bin: about ``180 / n_angles``
degrees and 1 % in scale). A flagged frame's transform is replaced by the
``fallback``: ``"interpolate"`` (default; linear in time between the nearest
good frames, in angle, log scale and shift, held constant beyond the
first/last good frame) or ``"identity"``. A template frame (``"middle"``,
``"first"`` or an index) is the identity with score 1, flagged only when no
other frame matched it (the stack has no usable signal: a
:class:`~napari_stackalign.NoSignalWarning` says so);
``params["flagged"]`` and ``reason`` say why each flagged frame was.

The returned :class:`~napari_stackalign.FrameTransforms` is centred on the
frame centre ``((H - 1) / 2, (W - 1) / 2)`` and follows the package's sign
convention: it is the correction that maps frame coordinates onto the
template, so ``apply_transforms(stack, result)`` registers the stack
(every channel of a (T, C, Y, X) stack gets the same transform).
"""

from __future__ import annotations

import time
import warnings
from concurrent.futures import Future
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np

from ...progress import ProgressCallback, report
from ...transforms import FrameTransforms, NoSignalWarning
from ..apply import coverage_mask, warp_frame
from ..checks import STACK_AXES, check_stack
from ..scaling import WorkingScale, has_spread, to_float32, working_scale
from ..workers import default_workers, thread_pool
from ._ambiguity import _corner_distance
from ._estimator import (
    MIN_OVERLAP,
    FrameResult,
    SimilarityEstimator,
    _angle_in_range,
    _frame_problem,
    _overlap_problem,
    _wrap_angle,
)
from ._logpolar import LogPolarGrid
from ._options import SIMILARITY_DEFAULTS, SimilarityOptions
from ._precision import IMPRECISE_PX
from ._refine import SimilarityRefiner

__all__ = ["fill_failed", "register_similarity"]

#: what the messages call the method
WHAT = "similarity stacking"
#: the smallest frame side the log-polar stage and the refinement work with
MIN_FRAME_SIZE = 32


# ------------------------------------------------------------ whole stacks
def _stack_geometry(
    stack: Any, channel: int | None
) -> tuple[int, tuple[int, int], int | None]:
    """Frames, frame shape and the channel measured on (None for a (T, Y, X) stack)."""
    shape = getattr(stack, "shape", None)
    ndim = None if shape is None else len(shape)
    if ndim == 4:
        channel = _check_channel(channel, tuple(shape))
        shape = (shape[0], *shape[2:])
    elif ndim == 3:
        if channel not in (None, 0):
            raise ValueError(
                f"channel={channel!r} given, but the stack {tuple(shape)} has no channel axis: leave channel unset."
            )
        channel = None
    elif ndim is not None and ndim != 2:
        raise ValueError(
            f"expected a {STACK_AXES} or (T, C, Y, X) stack, got shape {tuple(shape)}."
        )
    # only the shape and dtype are looked at: no data is read
    view = (
        stack
        if ndim != 4
        else SimpleNamespace(shape=shape, dtype=getattr(stack, "dtype", np.float32))
    )
    n_frames, h, w = check_stack(view, what=WHAT, min_frames=2, min_size=MIN_FRAME_SIZE)
    return n_frames, (h, w), channel


def _check_channel(channel: Any, shape: tuple[int, ...]) -> int:
    """The channel of a (T, C, Y, X) stack the motion is measured on."""
    if channel is None:
        raise ValueError(
            f"the stack {shape} has a channel axis (T, C, Y, X): pass channel=0..{shape[1] - 1} "
            "to choose the channel the registration is measured on."
        )
    if not isinstance(channel, (int, np.integer)) or not 0 <= channel < shape[1]:
        raise ValueError(
            f"channel must be an integer in 0..{shape[1] - 1}, got {channel!r}."
        )
    return int(channel)


def _template_index(template: str | int, n_frames: int) -> int | None:
    """Index of the template frame, or None for ``"mean"`` (``template`` is already checked)."""
    if template == "middle":
        return n_frames // 2
    if template == "first":
        return 0
    if template == "mean":
        return None
    idx = int(template)
    if not -n_frames <= idx < n_frames:
        raise ValueError(
            f"template frame {idx} is out of range: the stack has {n_frames} frames (0..{n_frames - 1})."
        )
    return idx % n_frames


class _Progress:
    """Counts finished frames over all passes; reports when the stage
    changes, at the end, and otherwise at most every 0.1 s."""

    def __init__(self, progress: ProgressCallback | None, total: int) -> None:
        self.progress = progress
        self.total = total
        self.done = 0
        self._last = 0.0
        self._stage = ""

    def step(self, stage: str, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if stage != self._stage or now - self._last >= 0.1 or self.done >= self.total:
            self._last = now
            self._stage = stage
            report(self.progress, self.done, self.total, stage)


@dataclass
class _Source:
    """The stack as the passes read it: one channel, ``chunk_size`` frames at
    a time, frames registered in a thread pool, one progress count over all
    passes."""

    stack: Any
    channel: int | None
    n_frames: int
    chunk_size: int
    workers: int
    bar: _Progress

    scale: WorkingScale | None = None

    def read(self, start: int, stop: int) -> np.ndarray:
        """Frames ``start:stop`` of the channel as float32 (data far from the usual
        range brought into it, with one scale for the whole stack)."""
        part = np.asarray(self.stack[start:stop] if self.channel is None else self.stack[start:stop, self.channel])
        scale = self.scale
        if scale is None:
            scale = working_scale(part)
            if has_spread(part):  # blank frames say nothing: decide on the next read
                self.scale = scale
        return to_float32(part, scale)

    def read_indexed(self, idx: np.ndarray) -> np.ndarray:
        """Frames ``idx`` (sorted) as float32: one slice read when they are
        nearly contiguous, else frame by frame (memory stays bounded)."""
        lo, hi = int(idx[0]), int(idx[-1]) + 1
        if hi - lo <= 2 * len(idx):
            block = self.read(lo, hi)
            return block[np.asarray(idx) - lo]
        return np.stack([self.read(int(t), int(t) + 1)[0] for t in idx])

    def run(self, frames: np.ndarray, task: Any, stage: str) -> dict[int, FrameResult]:
        """``task(t, frame) -> FrameResult`` for the listed frames, chunk by
        chunk in a thread pool."""
        bar = self.bar
        results: dict[int, FrameResult] = {}
        report(bar.progress, bar.done, bar.total, stage)
        with thread_pool(self.workers) as pool:
            for start in range(0, len(frames), self.chunk_size):
                idx = frames[start : start + self.chunk_size]
                block = self.read_indexed(idx)
                futures: list[tuple[int, Future]] = [
                    (int(t), pool.submit(task, int(t), block[k]))
                    for k, t in enumerate(idx)
                ]
                try:
                    for t, fut in futures:
                        results[t] = fut.result()
                        bar.step(stage)
                except BaseException:
                    for _, fut in futures:
                        fut.cancel()
                    raise
        return results


@dataclass
class _Outcome:
    """One pass's result: the transforms (flagged frames already replaced by
    the fallback), the success scores, the ok flags, why each flagged frame
    was, and the success threshold used."""

    transforms: FrameTransforms
    success: np.ndarray
    ok: np.ndarray
    failures: dict[int, str]
    min_success_used: float
    ambiguity: dict[int, str]
    predicted: np.ndarray
    #: frames whose symmetry ambiguity the smooth motion of the stack settled (:func:`resolve_by_motion`)
    resolved: list[int]


#: a symmetry ambiguity's note starts so (see ``._symmetry``)
SYMMETRY_NOTE = "ambiguous: the template matches itself"
#: the stack's motion settles a symmetry ambiguity when its largest frame-to-frame step is below this
#: share of the jump the symmetry would make (:func:`resolve_by_motion`)
MOTION_SHARE = 0.25

#: a frame's success must be this many times the chance level (:func:`chance_success`);
#: on pure noise the best match found reaches about 5 (64 to 256 px frames)
SIGNIFICANCE_Z = 8.0


def chance_success(shape: tuple[int, int], sigma: float) -> float:
    """The spread of the success score (a correlation of frames smoothed by
    ``sigma``) between unrelated frames of ``shape``: one over the square root
    of the number of independent smoothed pixels, ``H W / (4 pi sigma^2)``."""
    n_independent = shape[0] * shape[1] / (4.0 * np.pi * max(sigma, 0.5) ** 2)
    return 1.0 / np.sqrt(max(n_independent, 1.0))


def _judge(
    ft: FrameTransforms,
    success: np.ndarray,
    failures: dict[int, str],
    opts: SimilarityOptions,
    grid: LogPolarGrid,
    *,
    shape: tuple[int, int],
    reference: int,
    exclude: int | None = None,
    predicted: np.ndarray | None = None,
    ambiguity: dict[int, str] | None = None,
) -> tuple[np.ndarray, float]:
    """The ok flags and the success threshold used; adds a reason to
    ``failures`` for each flagged frame.

    With ``min_success=None`` the threshold is ``max(0.1, 0.5 * median)`` of
    the finite scores (frame ``exclude``, a template frame, left out). The
    ``reference`` frame defines the template's coordinates and is exempt from
    the range checks, which allow one log-polar bin (of ``grid``) of slack.
    ``ambiguity`` holds why a frame's candidate choice was ambiguous, and
    ``predicted`` each frame's predicted error (px at the frame corners;
    NaN where unknown), flagged beyond :data:`IMPRECISE_PX`.
    """
    ambiguity = ambiguity or {}
    min_success = opts.min_success
    angle_range, scale_range = opts.angle_range, opts.scale_range
    if min_success is None:
        scores = np.delete(success, exclude) if exclude is not None else success
        scores = scores[np.isfinite(scores)]
        min_success = max(0.1, 0.5 * float(np.median(scores))) if scores.size else 0.1
    ok = np.ones(len(ft), dtype=bool)
    floor = chance_success(shape, opts.sigma)
    for t in range(len(ft)):
        reason = failures.get(t, "")
        if not reason and not np.isfinite(success[t]):
            reason = "no success score"
        if not reason and t != reference and success[t] < SIGNIFICANCE_Z * floor:
            reason = (
                f"no significant match: success {success[t]:.3f} is {success[t] / floor:.1f} times what noise "
                f"gives by chance (at least {SIGNIFICANCE_Z:g} needed)"
            )
        if not reason and success[t] < min_success:
            reason = f"success {success[t]:.3f} below min_success {min_success:g}"
        if (
            not reason
            and t != reference
            and not _angle_in_range(ft.angle[t], angle_range, grid.angle_step)
        ):
            reason = f"angle {ft.angle[t]:.3f} outside angle_range {angle_range}"
        if not reason and t != reference and scale_range is not None:
            ls = np.log(ft.scale[t])
            if (
                not np.log(scale_range[0]) - grid.log_step
                <= ls
                <= np.log(scale_range[1]) + grid.log_step
            ):
                reason = f"scale {ft.scale[t]:.5f} outside scale_range {scale_range}"
        if not reason and t != reference:
            reason = ambiguity.get(t, "")
        if not reason and t != reference and predicted is not None and not predicted[t] <= IMPRECISE_PX:
            if not np.isnan(predicted[t]):
                reason = f"imprecise: predicted error {predicted[t]:.2f} px > {IMPRECISE_PX:g} px at the frame corners"
        if reason:
            ok[t] = False
            failures[t] = reason
    return ok, float(min_success)


def _outcome(
    results: dict[int, FrameResult],
    est: SimilarityEstimator,
    opts: SimilarityOptions,
    *,
    reference: int,
    exclude: int | None = None,
) -> _Outcome:
    """Judge one pass's per-frame results and replace the flagged frames' transforms."""
    n_frames = len(results)
    failures = {t: results[t].failure for t in range(n_frames) if results[t].failure}
    ambiguity, resolved = resolve_by_motion(results, failures, est)
    mats = np.stack([results[t].matrix for t in range(n_frames)])
    success = np.array([results[t].success for t in range(n_frames)], dtype=np.float64)
    predicted = np.array([results[t].predicted_error for t in range(n_frames)], dtype=np.float64)
    ft = FrameTransforms.from_matrices(mats, center=est.center)
    ok, threshold = _judge(
        ft,
        success,
        failures,
        opts,
        est.grid,
        shape=est.shape,
        reference=reference,
        exclude=exclude,
        predicted=predicted,
        ambiguity=ambiguity,
    )
    return _Outcome(
        fill_failed(ft, ok, opts.fallback), success, ok, failures, threshold, ambiguity, predicted, resolved
    )


def resolve_by_motion(
    results: dict[int, FrameResult], failures: dict[int, str], est: SimilarityEstimator
) -> tuple[dict[int, str], list[int]]:
    """Settle the symmetry ambiguities by the stack's own motion, when it is smooth.

    A frame flagged because the template matches itself at another pose (a
    lattice vector, a turn) has rivals as good as its pose; its refined
    poses are in ``FrameResult.alternatives``. Among them, the path through
    the usable frames (the template frame's identity among them) with the
    least squared steps between consecutive frames (at the frame corners) is
    found. When its largest step is below :data:`MOTION_SHARE` of the
    smallest distance between any frame's alternatives, the stack drifts
    smoothly at the scale of its symmetries: each flagged frame takes its
    pose on that path (``results`` are updated) and loses its note. A frame
    really put one symmetry off is then a jump of a whole symmetry, and
    nothing is settled.

    Returns
    -------
    (ambiguity, settled)
        The ambiguity notes left, and the frames settled.
    """
    ambiguity = {t: r.ambiguity for t, r in results.items() if r.ambiguity}
    symmetric = {t for t, note in ambiguity.items() if note.startswith(SYMMETRY_NOTE) and results[t].alternatives}
    usable = [t for t in sorted(results) if t not in failures]
    if not symmetric or len(usable) < 3:
        return ambiguity, []
    shape = est.shape
    options = [
        [m for m, _, _ in results[t].alternatives] if t in symmetric else [results[t].matrix] for t in usable
    ]
    apart = min(
        _corner_distance(a, b, shape) for opts in options for i, a in enumerate(opts) for b in opts[i + 1 :]
    ) if any(len(o) > 1 for o in options) else np.inf
    # least squared steps through the options (Viterbi over the frames in order)
    cost = np.zeros(len(options[0]))
    back: list[np.ndarray] = []
    for prev, cur in zip(options[:-1], options[1:]):
        step = np.array([[_corner_distance(a, b, shape) ** 2 for a in prev] for b in cur])
        total = step + cost[None, :]
        back.append(np.argmin(total, axis=1))
        cost = total.min(axis=1)
    pick = [int(np.argmin(cost))]
    for b in reversed(back):
        pick.append(int(b[pick[-1]]))
    pick.reverse()
    chosen = [opts[k] for opts, k in zip(options, pick)]
    largest = max(_corner_distance(a, b, shape) for a, b in zip(chosen[:-1], chosen[1:]))
    if not largest < MOTION_SHARE * apart:
        return ambiguity, []
    for t, opts_k in zip(usable, pick):
        if t in symmetric:
            m, success, error = results[t].alternatives[opts_k]
            results[t].matrix, results[t].success, results[t].predicted_error = m, success, error
            results[t].ambiguity = ""
    return {t: note for t, note in ambiguity.items() if t not in symmetric}, sorted(symmetric)


def fill_failed(
    transforms: FrameTransforms,
    ok: np.ndarray,
    fallback: str = SIMILARITY_DEFAULTS.fallback,
) -> FrameTransforms:
    """Replace the transforms of frames where ``ok`` is False.

    Parameters
    ----------
    transforms : FrameTransforms
        One transform per frame.
    ok : array of bool
        False for the frames to replace.
    fallback : {"interpolate", "identity"}
        ``"interpolate"``: linear in time between the nearest good frames
        (angle unwrapped, scale in log, shift about the transforms' centre),
        held constant before the first and after the last good frame;
        identity when no frame is good. ``"identity"``: no correction.

    Returns
    -------
    FrameTransforms
        A copy with the flagged frames replaced.
    """
    fallback = SimilarityOptions.specs()["fallback"].validate("fallback", fallback)
    ok = np.asarray(ok, dtype=bool)
    out = transforms.copy()
    bad = ~ok
    if not bad.any():
        return out
    if fallback == "identity" or not ok.any():
        out.angle[bad] = 0.0
        out.scale[bad] = 1.0
        out.dy[bad] = 0.0
        out.dx[bad] = 0.0
        return out
    t = np.arange(len(out))
    good = np.flatnonzero(ok)
    angle = np.rad2deg(np.unwrap(np.deg2rad(out.angle[good])))
    out.angle[bad] = [_wrap_angle(a) for a in np.interp(t[bad], good, angle)]
    out.scale[bad] = np.exp(np.interp(t[bad], good, np.log(out.scale[good])))
    out.dy[bad] = np.interp(t[bad], good, out.dy[good])
    out.dx[bad] = np.interp(t[bad], good, out.dx[good])
    return out


def _registered(
    frame: np.ndarray, correction: FrameTransforms
) -> tuple[np.ndarray, np.ndarray]:
    """One frame warped onto the template (bilinear) and the pixels it fully
    covers, exactly as :func:`~napari_stackalign.average_frames` counts them."""
    warped = warp_frame(
        frame,
        correction.to_cv2_matrices()[0],
        order=1,
        border="nan",
        output_dtype=np.float32,
    )
    covered = coverage_mask(frame.shape, correction, 0) & np.isfinite(warped)
    return np.where(covered, warped, 0.0).astype(np.float32), covered


def register_similarity(
    stack: Any,
    *,
    template: str | int = SIMILARITY_DEFAULTS.template,
    channel: int | None = None,
    angle_range: tuple[float, float] | None = SIMILARITY_DEFAULTS.angle_range,
    scale_range: tuple[float, float] | None = SIMILARITY_DEFAULTS.scale_range,
    min_success: float | None = SIMILARITY_DEFAULTS.min_success,
    fallback: str = SIMILARITY_DEFAULTS.fallback,
    refine: bool = SIMILARITY_DEFAULTS.refine,
    sigma: float = SIMILARITY_DEFAULTS.sigma,
    chunk_size: int = SIMILARITY_DEFAULTS.chunk_size,
    workers: int | None = None,
    progress: ProgressCallback | None = None,
    options: SimilarityOptions | None = None,
) -> FrameTransforms:
    """Measure rotation, scale and translation of every frame against a template.

    Parameters
    ----------
    stack : array-like, shape (T, Y, X) or (T, C, Y, X)
        Numpy array, memmap, h5py dataset or dask array; read ``chunk_size``
        frames at a time.
    template : {"middle", "first", "mean"} or int
        The reference: the middle frame ``T // 2`` (default), the first
        frame, a frame index, or ``"mean"``: the frames are first registered
        to the middle frame, averaged, and then every frame is refined
        against that average *without itself* (leave-one-out, so its own
        noise cannot pull it back to where it was).
    channel : int, optional
        For (T, C, Y, X) stacks (required there): the channel the motion is
        measured on. The result applies to every channel.
    angle_range : (float, float), optional
        Allowed correction angle in degrees, ``(min, max)``, e.g.
        ``(-30, 30)``; taken modulo 360. Default: any angle.
    scale_range : (float, float), optional
        Allowed correction scale ``(min, max)`` within 0.5..2, e.g.
        ``(0.8, 1.25)``. Default 0.5..2.
    min_success : float, optional
        Frames whose success score (see the module docstring; normalised
        correlation, -1..1) is below this are flagged. Default (None): half
        the median score of the stack's frames, and at least 0.1, so a frame
        that matches much worse than its neighbours is flagged whatever the
        noise level.
    fallback : {"interpolate", "identity"}
        What replaces a flagged frame's transform.
    refine : bool
        Run the Gauss-Newton refinement (default True; False leaves the
        peak-interpolated estimate, about 10x less accurate).
    sigma : float
        Gaussian smoothing (px) of the refinement and the success score.
    chunk_size : int
        Frames read at a time.
    workers : int, optional
        Threads (frames are registered in parallel); all cores by default.
    progress : callable, optional
        ``progress(done, total, stage)``; may raise
        :class:`~napari_stackalign.core.Cancelled`.
    options : SimilarityOptions, optional
        All the options above in one object (built and checked once); a
        keyword given with a value other than its default overrides it.
        The defaults, ranges and help of every option are those of
        :class:`SimilarityOptions`.

    Returns
    -------
    FrameTransforms
        Corrections about the frame centre; ``quality`` is the success
        score, ``ok`` False for flagged frames (whose transform is the
        fallback), ``params["flagged"]`` maps each flagged frame to the
        reason, ``params["template_index"]`` is the template frame (the
        middle frame for ``"mean"``), ``params["predicted_error_px"]`` each
        frame's predicted error (px, one sigma, at the frame corners; None
        where it is not known, e.g. the template frame or a failed frame).

    Raises
    ------
    ValueError
        For a 2-D image, fewer than 2 frames, frames under 32x32 px, a
        missing or wrong ``channel``, a constant or non-finite template, or
        bad option values.
    """
    opts = SimilarityOptions.from_call(options, locals())
    n_frames, _, channel = _stack_geometry(stack, channel)
    t_index = _template_index(opts.template, n_frames)
    n_workers = default_workers(workers)
    mean_mode = t_index is None
    ref = n_frames // 2 if mean_mode else t_index
    bar = _Progress(progress, (3 if mean_mode else 1) * n_frames)
    source = _Source(stack, channel, n_frames, opts.chunk_size, n_workers, bar)

    est = SimilarityEstimator(source.read(ref, ref + 1)[0], opts)
    outcome = _first_pass(source, est, opts, reference=ref, mean_mode=mean_mode)
    if mean_mode:
        outcome = _refine_against_mean(source, est, outcome, opts, reference=ref)
    return _result(outcome, est, opts, channel=channel, reference=ref)


def _first_pass(
    source: _Source,
    est: SimilarityEstimator,
    opts: SimilarityOptions,
    *,
    reference: int,
    mean_mode: bool,
) -> _Outcome:
    """Every frame but the template frame registered onto it (stages 1-3)."""
    others = np.array([t for t in range(source.n_frames) if t != reference], dtype=int)
    stage = "similarity (pass 1 of 2)" if mean_mode else "similarity"
    results = source.run(others, lambda t, f: est.estimate(f), stage)
    results[reference] = FrameResult(np.eye(3), 1.0, "")
    source.bar.step(stage)
    return _outcome(
        results,
        est,
        opts,
        reference=reference,
        exclude=None if mean_mode else reference,
    )


def _result(
    outcome: _Outcome,
    est: SimilarityEstimator,
    opts: SimilarityOptions,
    *,
    channel: int | None,
    reference: int,
) -> FrameTransforms:
    """The returned transforms, with the parameters and the flagged frames in ``params``."""
    params = {
        "template": opts.template,
        "template_index": int(reference),
        "channel": channel,
        "angle_range": None if opts.angle_range is None else list(opts.angle_range),
        "scale_range": None if opts.scale_range is None else list(opts.scale_range),
        "min_success": opts.min_success,
        "min_success_used": outcome.min_success_used,
        "fallback": opts.fallback,
        "refine": opts.refine,
        "sigma": opts.sigma,
        "flagged": {str(t): r for t, r in sorted(outcome.failures.items())},
        "predicted_error_px": [None if not np.isfinite(e) else round(float(e), 4) for e in outcome.predicted],
        "symmetry_settled_by_motion": list(outcome.resolved),
    }
    ft = outcome.transforms
    ok = outcome.ok.copy()
    reasons = [outcome.failures.get(t, "") for t in range(len(ft))]
    if len(ft) > 1 and not np.delete(ok, reference).any():
        ok[reference] = False
        reasons[reference] = "the template frame: no other frame matched it"
        warnings.warn(
            f"no frame of the {len(ft)} matched the template significantly: the stack has no usable signal for "
            "similarity registration, so nothing will be corrected. Check the channel, the ROI and the content.",
            NoSignalWarning,
            stacklevel=4,
        )
    return FrameTransforms(
        dy=ft.dy,
        dx=ft.dx,
        angle=ft.angle,
        scale=ft.scale,
        center=est.center,
        quality=outcome.success,
        ok=ok,
        reason=reasons,
        method="similarity",
        params=params,
    )


# ------------------------------------------------------ template="mean"
def _refine_against_mean(
    source: _Source,
    est: SimilarityEstimator,
    first: _Outcome,
    opts: SimilarityOptions,
    *,
    reference: int,
) -> _Outcome:
    """Pass 2 of ``template="mean"``: refine every frame against the mean of
    the other well-registered frames."""
    total, count = _sum_registered(source, first.transforms, first.ok, est.shape)
    task = _LeaveOneOut(first.transforms, first.ok, total, count, opts.sigma)
    results = source.run(np.arange(source.n_frames), task, "similarity (pass 2 of 2)")
    # the refinement does not revisit the candidate choice: an ambiguous first pass stays ambiguous
    for t, note in first.ambiguity.items():
        results[t].ambiguity = note
    return _outcome(results, est, opts, reference=reference)


def _sum_registered(
    source: _Source,
    transforms: FrameTransforms,
    ok: np.ndarray,
    frame_shape: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray]:
    """Sum and count of the registered ``ok`` frames per pixel (the mean template's parts)."""
    h, w = frame_shape
    total = np.zeros((h, w), dtype=np.float64)
    count = np.zeros((h, w), dtype=np.int32)
    members = np.flatnonzero(ok)
    for start in range(0, members.size, source.chunk_size):
        idx = members[start : start + source.chunk_size]
        block = source.read_indexed(idx)
        for k, t in enumerate(idx):
            values, covered = _registered(block[k], transforms[int(t)])
            total += values
            count += covered
            source.bar.step("mean template")
    source.bar.step("mean template", source.n_frames - members.size)
    return total, count


class _LeaveOneOut:
    """Refines one frame (from its first-pass transform) against the mean of
    the *other* registered frames: the frame's own part is taken out of the
    sum when it is in it."""

    def __init__(
        self,
        first: FrameTransforms,
        in_mean: np.ndarray,
        total: np.ndarray,
        count: np.ndarray,
        sigma: float,
    ) -> None:
        self.first = first
        self.in_mean = np.asarray(in_mean, dtype=bool)
        self.total = total
        self.count = count
        self.sigma = sigma
        # the value of template pixels no frame covers
        self.fill = float(total.sum() / max(int(count.sum()), 1))

    def __call__(self, t: int, frame: np.ndarray) -> FrameResult:
        problem = _frame_problem(frame)
        if problem:
            return FrameResult(np.eye(3), np.nan, problem)
        s, c = self.total, self.count
        if self.in_mean[t]:
            values, covered = _registered(frame, self.first[t])
            s, c = self.total - values, self.count - covered
        valid = c >= 1
        if valid.mean() < MIN_OVERLAP:
            return FrameResult(
                self.first[t].to_matrices()[0],
                np.nan,
                "too few other frames for a mean template",
            )
        with np.errstate(invalid="ignore", divide="ignore"):
            tpl = np.where(valid, s / np.maximum(c, 1), self.fill).astype(np.float32)
        refiner = SimilarityRefiner(tpl, sigma=self.sigma, valid=valid)
        start_matrix = self.first[t].to_matrices()[0]
        res = refiner.refine(frame, np.linalg.inv(start_matrix))
        if not np.isfinite(res.ncc):
            return FrameResult(start_matrix, np.nan, "refinement diverged")
        return FrameResult(
            np.linalg.inv(res.matrix), res.ncc, _overlap_problem(res.overlap), res.predicted_error
        )
