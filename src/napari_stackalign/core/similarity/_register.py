"""Similarity registration: rotation, scale and translation of every frame
onto a template, measured on one channel.

Per frame, three stages (the template's spectra and gradients are computed
once):

1. **Rotation and scale** from the phase correlation of the log-polar
   resampled spectrum magnitudes of the apodised frame and template (see
   :mod:`.logpolar`), searched only within ``angle_range`` / ``scale_range``.
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
   pyramid, with gain and offset removed (see :mod:`.similarity_refine`).
   This removes the sub-pixel bias of peak interpolation and reaches
   about 0.01 degree, 1e-4 in scale and 0.01-0.03 px on textured frames.

With ``template="mean"`` a second pass refines every frame (stage 3 only)
against the mean of the *other* well-registered frames of the first pass
(leave-one-out, so a frame's own noise cannot hold it where it was).

Success score
-------------
``quality`` of the returned transforms is the *normalised cross-correlation*
(Pearson's r) between the template and the registered frame, both smoothed by
a Gaussian of ``sigma`` px, over the pixels both cover (gain and offset do not
matter): 1 is a perfect match, about 0 unrelated content. A frame is flagged
(``ok=False``) when its score is below ``min_success`` (by default half the
median score of the stack, at least 0.1), when it has NaN values or is
constant, when it covers less than a quarter of the template, when the
refinement diverges, or when the result falls outside ``angle_range`` /
``scale_range`` (by more than one log-polar bin: about ``180 / n_angles``
degrees and 1 % in scale). A flagged frame's transform is replaced by the
``fallback``: ``"interpolate"`` (default; linear in time between the nearest
good frames, in angle, log scale and shift, held constant beyond the
first/last good frame) or ``"identity"``. A template frame (``"middle"``,
``"first"`` or an index) is the identity with score 1 and is never flagged;
``params["flagged"]`` says why each flagged frame was.

The returned :class:`~napari_stackalign.FrameTransforms` is centred on the
frame centre ``((H - 1) / 2, (W - 1) / 2)`` and follows the package's sign
convention: it is the correction that maps frame coordinates onto the
template, so ``apply_transforms(stack, result)`` registers the stack
(every channel of a (T, C, Y, X) stack gets the same transform).
"""

from __future__ import annotations

import time
from concurrent.futures import Future
from typing import Any

import numpy as np

from ...progress import ProgressCallback, report
from ...transforms import FrameTransforms
from ..apply import coverage_mask, warp_frame
from ..workers import default_workers, thread_pool
from ._estimator import (
    MIN_OVERLAP,
    SCALE_LIMITS,
    FrameResult,
    SimilarityEstimator,
    _angle_in_range,
    _frame_problem,
    _overlap_problem,
    _wrap_angle,
)
from ._refine import SimilarityRefiner

__all__ = ["register_similarity", "SimilarityEstimator", "fill_failed", "FALLBACKS", "TEMPLATES"]

TEMPLATES = ("middle", "first", "mean")
FALLBACKS = ("interpolate", "identity")


# ------------------------------------------------------------------ checks
def _check_range(value: Any, name: str, *, positive: bool = False) -> tuple[float, float] | None:
    if value is None:
        return None
    if isinstance(value, str):
        raise ValueError(f"{name} must be a (min, max) pair of numbers, got {value!r}.")
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a (min, max) pair of numbers, got {value!r}.") from exc
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo > hi:
        raise ValueError(f"{name} must be (min, max) with min <= max, got {value!r}.")
    if positive and lo <= 0:
        raise ValueError(f"{name} must hold positive scales, got {value!r}.")
    return lo, hi


# ------------------------------------------------------------ whole stacks
def _stack_geometry(stack: Any, channel: int | None) -> tuple[int, tuple[int, int], int | None]:
    shape = tuple(getattr(stack, "shape", ()))
    if len(shape) == 2:
        raise ValueError(
            f"got a single 2-D image of shape {shape}: similarity stacking needs a (T, Y, X) or (T, C, Y, X) stack."
        )
    if len(shape) == 3:
        if channel not in (None, 0):
            raise ValueError(f"channel={channel!r} given, but the stack {shape} has no channel axis: leave channel unset.")
        channel = None
    elif len(shape) == 4:
        if channel is None:
            raise ValueError(
                f"the stack {shape} has a channel axis (T, C, Y, X): pass channel=0..{shape[1] - 1} "
                "to choose the channel the registration is measured on."
            )
        if not isinstance(channel, (int, np.integer)) or not 0 <= channel < shape[1]:
            raise ValueError(f"channel must be an integer in 0..{shape[1] - 1}, got {channel!r}.")
        channel = int(channel)
    else:
        raise ValueError(f"expected a (T, Y, X) or (T, C, Y, X) stack, got shape {shape}.")
    n_frames = shape[0]
    frame_shape = (int(shape[-2]), int(shape[-1]))
    if n_frames < 2:
        raise ValueError(f"the stack has {n_frames} frame(s): registration needs at least 2.")
    if min(frame_shape) < 32:
        raise ValueError(f"frames of {frame_shape} px are too small: similarity registration needs at least 32x32.")
    return n_frames, frame_shape, channel


def _read_frames(stack: Any, start: int, stop: int, channel: int | None) -> np.ndarray:
    part = stack[start:stop] if channel is None else stack[start:stop, channel]
    return np.asarray(part, dtype=np.float32)


def _read_indexed(stack: Any, idx: np.ndarray, channel: int | None) -> np.ndarray:
    """Frames ``idx`` (sorted) as float32: one slice read when they are
    nearly contiguous, else frame by frame (memory stays bounded)."""
    lo, hi = int(idx[0]), int(idx[-1]) + 1
    if hi - lo <= 2 * len(idx):
        block = _read_frames(stack, lo, hi, channel)
        return block[np.asarray(idx) - lo]
    return np.stack([_read_frames(stack, int(t), int(t) + 1, channel)[0] for t in idx])


def _template_index(template: Any, n_frames: int) -> int | None:
    """Index of the template frame, or None for ``"mean"``."""
    if isinstance(template, str):
        if template == "middle":
            return n_frames // 2
        if template == "first":
            return 0
        if template == "mean":
            return None
        raise ValueError(f"template must be one of {TEMPLATES} or a frame index, got {template!r}.")
    if isinstance(template, (bool, np.bool_)) or not isinstance(template, (int, np.integer)):
        raise ValueError(f"template must be one of {TEMPLATES} or a frame index, got {template!r}.")
    idx = int(template)
    if not -n_frames <= idx < n_frames:
        raise ValueError(f"template frame {idx} is out of range: the stack has {n_frames} frames (0..{n_frames - 1}).")
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


def _run_frames(
    stack: Any,
    channel: int | None,
    frames: np.ndarray,
    task: Any,
    *,
    chunk_size: int,
    workers: int,
    bar: _Progress,
    stage: str,
) -> dict[int, FrameResult]:
    """``task(t, frame) -> FrameResult`` for the listed frames, chunk by chunk
    in a thread pool."""
    results: dict[int, FrameResult] = {}
    report(bar.progress, bar.done, bar.total, stage)
    with thread_pool(workers) as pool:
        for start in range(0, len(frames), chunk_size):
            idx = frames[start : start + chunk_size]
            block = _read_indexed(stack, idx, channel)
            futures: list[tuple[int, Future]] = [
                (int(t), pool.submit(task, int(t), block[k])) for k, t in enumerate(idx)
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


def _to_transforms(
    results: dict[int, FrameResult], n_frames: int, center: tuple[float, float]
) -> tuple[FrameTransforms, np.ndarray, dict[int, str]]:
    mats = np.stack([results[t].matrix for t in range(n_frames)])
    success = np.array([results[t].success for t in range(n_frames)], dtype=np.float64)
    failures = {t: results[t].failure for t in range(n_frames) if results[t].failure}
    return FrameTransforms.from_matrices(mats, center=center), success, failures


def _judge(
    ft: FrameTransforms,
    success: np.ndarray,
    failures: dict[int, str],
    *,
    min_success: float | None,
    angle_range: tuple[float, float] | None,
    scale_range: tuple[float, float] | None,
    angle_tol: float,
    log_scale_tol: float,
    reference: int,
    exclude: int | None = None,
    used: dict | None = None,
) -> np.ndarray:
    """The ok flags; adds a reason to ``failures`` for each flagged frame.

    With ``min_success=None`` the threshold is ``max(0.1, 0.5 * median)`` of
    the finite scores (frame ``exclude``, a template frame, left out); it is
    stored in ``used["min_success_used"]``. The ``reference`` frame defines
    the template's coordinates and is exempt from the range checks.
    """
    if min_success is None:
        scores = np.delete(success, exclude) if exclude is not None else success
        scores = scores[np.isfinite(scores)]
        min_success = max(0.1, 0.5 * float(np.median(scores))) if scores.size else 0.1
    if used is not None:
        used["min_success_used"] = float(min_success)
    ok = np.ones(len(ft), dtype=bool)
    for t in range(len(ft)):
        reason = failures.get(t, "")
        if not reason and not np.isfinite(success[t]):
            reason = "no success score"
        if not reason and success[t] < min_success:
            reason = f"success {success[t]:.3f} below min_success {min_success:g}"
        if not reason and t != reference and not _angle_in_range(ft.angle[t], angle_range, angle_tol):
            reason = f"angle {ft.angle[t]:.3f} outside angle_range {angle_range}"
        if not reason and t != reference and scale_range is not None:
            ls = np.log(ft.scale[t])
            if not np.log(scale_range[0]) - log_scale_tol <= ls <= np.log(scale_range[1]) + log_scale_tol:
                reason = f"scale {ft.scale[t]:.5f} outside scale_range {scale_range}"
        if reason:
            ok[t] = False
            failures[t] = reason
    return ok


def fill_failed(transforms: FrameTransforms, ok: np.ndarray, fallback: str = "interpolate") -> FrameTransforms:
    """Replace the transforms of frames where ``ok`` is False.

    ``"interpolate"``: linear in time between the nearest good frames (angle
    unwrapped, scale in log, shift about the transforms' centre), held
    constant before the first and after the last good frame; identity when no
    frame is good. ``"identity"``: no correction.
    """
    if fallback not in FALLBACKS:
        raise ValueError(f"fallback must be one of {FALLBACKS}, got {fallback!r}.")
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


def _registered(frame: np.ndarray, correction: FrameTransforms) -> tuple[np.ndarray, np.ndarray]:
    """One frame warped onto the template (bilinear) and the pixels it fully
    covers, exactly as :func:`~napari_stackalign.average_frames` counts them."""
    warped = warp_frame(frame, correction.to_cv2_matrices()[0], order=1, border="nan", output_dtype=np.float32)
    covered = coverage_mask(frame.shape, correction, 0) & np.isfinite(warped)
    return np.where(covered, warped, 0.0).astype(np.float32), covered


def register_similarity(
    stack: Any,
    *,
    template: str | int = "middle",
    channel: int | None = None,
    angle_range: tuple[float, float] | None = None,
    scale_range: tuple[float, float] | None = None,
    min_success: float | None = None,
    fallback: str = "interpolate",
    refine: bool = True,
    sigma: float = 1.0,
    chunk_size: int = 32,
    workers: int | None = None,
    progress: ProgressCallback | None = None,
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

    Returns
    -------
    FrameTransforms
        Corrections about the frame centre; ``quality`` is the success
        score, ``ok`` False for flagged frames (whose transform is the
        fallback), ``params["flagged"]`` maps each flagged frame to the
        reason, ``params["template_index"]`` is the template frame (the
        middle frame for ``"mean"``).

    Raises
    ------
    ValueError
        For a 2-D image, fewer than 2 frames, frames under 32x32 px, a
        missing or wrong ``channel``, a constant or non-finite template, or
        bad option values.
    """
    n_frames, frame_shape, channel = _stack_geometry(stack, channel)
    t_index = _template_index(template, n_frames)
    angle_range = _check_range(angle_range, "angle_range")
    if angle_range is not None and angle_range[1] - angle_range[0] >= 360:
        angle_range = None
    scale_range = _check_range(scale_range, "scale_range", positive=True)
    if scale_range is not None and (scale_range[0] < SCALE_LIMITS[0] or scale_range[1] > SCALE_LIMITS[1]):
        raise ValueError(
            f"scale_range must lie within {SCALE_LIMITS[0]}..{SCALE_LIMITS[1]} (the log-polar method cannot "
            f"measure larger scale changes), got {scale_range}."
        )
    if fallback not in FALLBACKS:
        raise ValueError(f"fallback must be one of {FALLBACKS}, got {fallback!r}.")
    if min_success is not None and (
        isinstance(min_success, str) or not np.isfinite(min_success) or not -1.0 <= float(min_success) <= 1.0
    ):
        raise ValueError(f"min_success is a correlation threshold in -1..1 (or None for automatic), got {min_success!r}.")
    if not np.isfinite(sigma) or not 0.0 < float(sigma) <= 10.0:
        raise ValueError(f"sigma must be a smoothing width in px between 0 and 10, got {sigma!r}.")
    if int(chunk_size) < 1:
        raise ValueError("chunk_size must be at least 1.")
    n_workers = default_workers(workers)
    chunk_size = int(chunk_size)
    mean_mode = t_index is None
    ref = n_frames // 2 if mean_mode else t_index
    bar = _Progress(progress, (3 if mean_mode else 1) * n_frames)

    tpl = _read_frames(stack, ref, ref + 1, channel)[0]
    est = SimilarityEstimator(tpl, angle_range=angle_range, scale_range=scale_range, sigma=sigma, refine=refine)
    others = np.array([t for t in range(n_frames) if t != ref], dtype=int)
    stage = "similarity (pass 1 of 2)" if mean_mode else "similarity"
    results = _run_frames(
        stack, channel, others, lambda t, f: est.estimate(f), chunk_size=chunk_size, workers=n_workers, bar=bar,
        stage=stage,
    )
    results[ref] = FrameResult(np.eye(3), 1.0, "")
    bar.step(stage)
    judge = dict(
        min_success=min_success,
        angle_range=angle_range,
        scale_range=scale_range,
        angle_tol=est.grid.angle_step,
        log_scale_tol=est.grid.log_step,
    )
    ft, success, failures = _to_transforms(results, n_frames, est.center)
    used: dict = {}
    ok = _judge(ft, success, failures, **judge, reference=ref, exclude=None if mean_mode else ref, used=used)
    ft = fill_failed(ft, ok, fallback)

    if mean_mode:
        ft, success, failures, ok = _refine_against_mean(
            stack,
            channel,
            ft,
            ok,
            frame_shape=frame_shape,
            sigma=sigma,
            chunk_size=chunk_size,
            workers=n_workers,
            bar=bar,
            judge=judge,
            used=used,
            reference=ref,
        )
        ft = fill_failed(ft, ok, fallback)

    params = {
        "template": template if isinstance(template, str) else int(template),
        "template_index": int(ref),
        "channel": channel,
        "angle_range": None if angle_range is None else list(angle_range),
        "scale_range": None if scale_range is None else list(scale_range),
        "min_success": min_success,
        "min_success_used": used["min_success_used"],
        "fallback": fallback,
        "refine": bool(refine),
        "sigma": float(sigma),
        "flagged": {str(t): r for t, r in sorted(failures.items())},
    }
    return FrameTransforms(
        dy=ft.dy,
        dx=ft.dx,
        angle=ft.angle,
        scale=ft.scale,
        center=est.center,
        quality=success,
        ok=ok,
        method="similarity",
        params=params,
    )


def _refine_against_mean(
    stack: Any,
    channel: int | None,
    first: FrameTransforms,
    ok: np.ndarray,
    *,
    frame_shape: tuple[int, int],
    sigma: float,
    chunk_size: int,
    workers: int,
    bar: _Progress,
    judge: dict,
    used: dict,
    reference: int,
) -> tuple[FrameTransforms, np.ndarray, dict[int, str], np.ndarray]:
    """Pass 2 of ``template="mean"``: refine every frame against the mean of
    the other well-registered frames."""
    n_frames = len(first)
    h, w = frame_shape
    total = np.zeros((h, w), dtype=np.float64)
    count = np.zeros((h, w), dtype=np.int32)
    members = np.flatnonzero(ok)
    for start in range(0, members.size, chunk_size):
        idx = members[start : start + chunk_size]
        block = _read_indexed(stack, idx, channel)
        for k, t in enumerate(idx):
            values, covered = _registered(block[k], first[int(t)])
            total += values
            count += covered
            bar.step("mean template")
    bar.step("mean template", n_frames - members.size)
    in_mean = np.zeros(n_frames, dtype=bool)
    in_mean[members] = True
    fill = float(total.sum() / max(int(count.sum()), 1))

    def task(t: int, frame: np.ndarray) -> FrameResult:
        problem = _frame_problem(frame)
        if problem:
            return FrameResult(np.eye(3), np.nan, problem)
        s, c = total, count
        if in_mean[t]:
            values, covered = _registered(frame, first[t])
            s, c = total - values, count - covered
        valid = c >= 1
        if valid.mean() < MIN_OVERLAP:
            return FrameResult(first[t].to_matrices()[0], np.nan, "too few other frames for a mean template")
        with np.errstate(invalid="ignore", divide="ignore"):
            tpl = np.where(valid, s / np.maximum(c, 1), fill).astype(np.float32)
        refiner = SimilarityRefiner(tpl, sigma=sigma, valid=valid)
        start_matrix = first[t].to_matrices()[0]
        res = refiner.refine(frame, np.linalg.inv(start_matrix))
        if not np.isfinite(res.ncc):
            return FrameResult(start_matrix, np.nan, "refinement diverged")
        return FrameResult(np.linalg.inv(res.matrix), res.ncc, _overlap_problem(res.overlap))

    results = _run_frames(
        stack, channel, np.arange(n_frames), task, chunk_size=chunk_size, workers=workers, bar=bar,
        stage="similarity (pass 2 of 2)",
    )
    ft, success, failures = _to_transforms(results, n_frames, first.center)
    ok2 = _judge(ft, success, failures, **judge, reference=reference, used=used)
    return ft, success, failures, ok2
