"""Pyramid registration and resampling in one call, overlapped.

:func:`register_and_apply` gives what
``apply_transforms(stack, register_pyramid(stack))`` gives, bit for bit, in
less time. Without smoothing, the only stack-wide step that moves a usable
frame is the anchoring, and its offset is fixed with the template (see
:class:`~napari_stackalign.core.pyramid._stages.TemplateState`), so a frame's correction is final
as soon as the frame is estimated. Each chunk is resampled in a background
thread while the next chunk is estimated, which uses the cores that
estimation (bound by the GIL, one thread) leaves idle.

After the stack-wide steps, every frame whose final matrix differs from the
one it was resampled with (an unusable frame, whose shift is interpolated
from its neighbours) is resampled again, so the output never depends on the
overlap. With ``smooth=True`` or a dask stack the two steps run one after the
other.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple

import cv2
import numpy as np

from ...progress import ProgressCallback, report
from ...transforms import FAILED_POLICIES, FrameTransforms
from ..apply import (
    APPLY_DEFAULTS,
    applicable_matrices,
    apply_transforms,
    check_warp_options,
    is_dask,
    result_dtype,
    warp_chunk,
)
from ..checks import check_stack
from ..workers import default_workers, estimation_workers, thread_pool
from ._engine import FrameResults
from ._options import PYRAMID_DEFAULTS, PyramidOptions
from ._stages import (
    PyramidJob,
    TemplateState,
    concat_results,
    corrections,
    plan_pyramid,
    run_stages,
)

__all__ = ["AlignedStack", "register_and_apply"]


class AlignedStack(NamedTuple):
    """What :func:`register_and_apply` returns."""

    #: the registered frames (numpy array; lazy dask array for dask input)
    data: Any
    #: the transforms applied (smoothed when ``smooth=True``)
    transforms: FrameTransforms
    #: the transforms before smoothing (the same object without smoothing)
    raw_transforms: FrameTransforms


_opencv_lock = threading.Lock()
_opencv_users = 0
_opencv_before = 0


@contextlib.contextmanager
def _opencv_single_thread() -> Iterator[None]:
    """OpenCV's own thread pool off for the duration (restored after).

    Estimation holds one core; a resampling that OpenCV splits over every
    core preempts it, so the overlap gains little (measured, 512x512 x1000:
    overlapped 702 frames/s with OpenCV's threads, 1077 without). The setting
    is process-wide: other OpenCV calls made meanwhile run single-threaded
    too (slower, never different). Overlapping calls share it: the first in
    saves the thread count, the last out restores it.
    """
    global _opencv_users, _opencv_before
    with _opencv_lock:
        if _opencv_users == 0:
            _opencv_before = cv2.getNumThreads()
            cv2.setNumThreads(1)
        _opencv_users += 1
    try:
        yield
    finally:
        with _opencv_lock:
            _opencv_users -= 1
            if _opencv_users == 0:
                cv2.setNumThreads(_opencv_before)


def register_and_apply(
    stack: Any,
    *,
    num_frames: int = PYRAMID_DEFAULTS.num_frames,
    reference_mode: str = PYRAMID_DEFAULTS.reference_mode,
    reference_frames: tuple[int, int] | None = PYRAMID_DEFAULTS.reference_frames,
    running_frames: int = PYRAMID_DEFAULTS.running_frames,
    keyframe_every: int = PYRAMID_DEFAULTS.keyframe_every,
    downsample_rates: Sequence[float] = PYRAMID_DEFAULTS.downsample_rates,
    max_movement: float = PYRAMID_DEFAULTS.max_movement,
    iterate: int = PYRAMID_DEFAULTS.iterate,
    smooth: bool = PYRAMID_DEFAULTS.smooth,
    window_length: int = PYRAMID_DEFAULTS.window_length,
    polyorder: int = PYRAMID_DEFAULTS.polyorder,
    roi: tuple[int, int, int, int] | None = PYRAMID_DEFAULTS.roi,
    mask: np.ndarray | None = PYRAMID_DEFAULTS.mask,
    normalize: bool = PYRAMID_DEFAULTS.normalize,
    kernel: str = PYRAMID_DEFAULTS.kernel,
    chunk_size: int = PYRAMID_DEFAULTS.chunk_size,
    reference: np.ndarray | None = None,
    order: int = APPLY_DEFAULTS.order,
    border: str = APPLY_DEFAULTS.border,
    cval: float = APPLY_DEFAULTS.cval,
    failed: str = APPLY_DEFAULTS.failed,
    output_dtype: Any = None,
    workers: int | None = None,
    apply_workers: int | None = None,
    progress: ProgressCallback | None = None,
    options: PyramidOptions | None = None,
) -> AlignedStack:
    """Register a (T, Y, X) stack by pyramid registration and resample it.

    The result equals ``apply_transforms(stack, register_pyramid(stack))``
    exactly; resampling runs in the background while frames are estimated.

    Parameters
    ----------
    stack : array-like, shape (T, Y, X)
        Numpy array, memmap, h5py dataset or dask array (dask input gives a
        lazy dask output, computed after the estimation).
    num_frames, reference_mode, reference_frames, running_frames, keyframe_every, downsample_rates, max_movement, iterate, smooth, window_length, polyorder, roi, mask, normalize, kernel, chunk_size
        The registration's options, as for
        :func:`~napari_stackalign.core.pyramid.register_pyramid` (see
        :class:`~napari_stackalign.core.pyramid.PyramidOptions`).
    reference : ndarray, shape (Y, X), optional
        A template to register to (see
        :func:`~napari_stackalign.core.pyramid.register_pyramid`).
    order, border, cval, failed, output_dtype
        Resampling options of
        :func:`~napari_stackalign.core.apply.apply_transforms`; by default
        a failed frame (``ok`` False) is not resampled with its estimate but
        with the transform interpolated from the trustworthy frames
        (``failed="interpolate"``; ``"identity"`` leaves it unshifted), and a
        warning names those frames.
    workers : int, optional
        Threads that estimate frames (default 1, see ``register_pyramid``).
    apply_workers : int, optional
        Threads that resample the frames left once every frame is estimated
        (default: all cores). During the estimation one background thread
        resamples.
    progress : callable, optional
        ``progress(done, total, stage)``: stages ``"reference"``,
        ``"estimate"``, ``"apply"`` (resampling the frames left once every
        frame is estimated: the last chunk, every frame when the template
        frames are the whole stack, and unusable frames) and ``"done"``; may raise
        :class:`~napari_stackalign.core.Cancelled`, which stops both steps.
    options : PyramidOptions, optional
        The registration's options in one object; an explicit keyword that
        differs from its default overrides it.

    Returns
    -------
    AlignedStack
        ``data`` (the registered frames, in the input's dtype unless
        ``output_dtype`` or ``border="nan"`` say otherwise),
        ``transforms`` and ``raw_transforms``.

    Raises
    ------
    ValueError
        As ``register_pyramid`` and ``apply_transforms`` do.
    """
    opts = PyramidOptions.from_call(options, locals())
    n_total = check_stack(stack)[0]
    check_warp_options(order, border)
    if failed not in FAILED_POLICIES:
        raise ValueError(f"failed must be one of {FAILED_POLICIES}, got {failed!r}.")
    out_dtype = result_dtype(np.dtype(stack.dtype), border, output_dtype)
    job = plan_pyramid(tuple(stack.shape), stack.dtype, opts)
    n_est = estimation_workers(workers)
    est_pool = thread_pool(n_est) if n_est > 1 else contextlib.nullcontext()

    if opts.smooth or is_dask(stack) or job.chained:
        # smoothing moves every frame once all are known; dask stays lazy;
        # a chain knows its frames' final shifts only at its end (a frame
        # whose link fails is interpolated)
        with est_pool as pool:
            raw, final = run_stages(stack, job, pool=pool, progress=progress)
        data = apply_transforms(
            stack, final, order=order, border=border, cval=cval, failed=failed, output_dtype=output_dtype,
            workers=apply_workers, progress=progress,
        )
        report(progress, n_total, n_total, "done")
        return AlignedStack(data, final, raw)

    overlap = _Overlap(stack, job, np.empty(tuple(stack.shape), dtype=out_dtype), order, border, cval)
    try:
        with _opencv_single_thread(), est_pool as pool:
            raw, final = run_stages(
                stack, job, pool=pool, progress=progress, on_chunk=overlap.on_chunk
            )
        overlap.wait()
    finally:
        overlap.shutdown()
    overlap.warp_tail(final, failed, apply_workers, progress)
    report(progress, n_total, n_total, "done")
    return AlignedStack(overlap.out, final, raw)


@dataclass(eq=False)
class _Overlap:
    """Resamples the frames of ``stack`` into ``out`` while they are estimated.

    While estimating, one background thread resamples chunk after chunk
    (:meth:`on_chunk`); :meth:`warp_tail` resamples, on every core, the frames
    left once every frame is estimated.
    """

    stack: Any
    job: PyramidJob
    out: np.ndarray
    order: int
    border: str
    cval: float

    def __post_init__(self) -> None:
        n_total = self.job.n_frames
        #: the matrix each frame was resampled with
        self.used = np.full((n_total, 2, 3), np.nan)
        self.pending: list[Future] = []
        self.background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stackalign-apply")
        #: frames 0:warped are handed to the background thread
        self.warped = 0

    def warp(self, start: int, stop: int, mats: np.ndarray, pool: Any = None) -> None:
        """Resample frames ``start:stop`` with ``mats`` into ``out``."""
        chunk = np.asarray(self.stack[start:stop])
        warp_chunk(
            chunk, mats, pool=pool, result=self.out[start:stop], order=self.order, border=self.border,
            cval=self.cval, out_dtype=self.out.dtype,
        )

    def on_chunk(self, start: int, stop: int, parts: list[FrameResults], template: TemplateState) -> None:
        """The :data:`~napari_stackalign.core.pyramid._stages.ChunkHook`: hand the new frames to the background."""
        if stop >= self.job.n_frames:
            return  # nothing left to overlap with: resampled below on every core
        # parts cover frames 0:stop in order; frames warped:stop are new
        warped = self.warped
        shifts = parts[-1].shifts if warped == start else concat_results(parts).shifts[warped:stop]
        if template.anchor is not None:
            shifts = shifts - template.anchor
        mats = corrections(self.job, shifts).to_cv2_matrices()
        self.used[warped:stop] = mats
        self.pending.append(self.background.submit(self.warp, warped, stop, mats))
        self.warped = stop

    def wait(self) -> None:
        """Wait for the background resampling (and raise what it raised)."""
        for future in self.pending:
            future.result()

    def shutdown(self) -> None:
        """Stop the background thread."""
        self.background.shutdown(wait=True, cancel_futures=True)

    def warp_tail(
        self, final: FrameTransforms, failed: str, apply_workers: int | None, progress: ProgressCallback | None
    ) -> None:
        """Resample the frames not resampled yet (the last chunk; every frame
        when the template frames are the whole stack) and those whose final
        matrix differs from the one they were resampled with: unusable frames
        and failed frames, whose estimate is replaced as ``failed`` says
        (exactly as ``apply_transforms`` replaces it)."""
        final_mats = applicable_matrices(final, self.job.frame_shape, failed)
        tail = np.flatnonzero(~np.all(self.used == final_mats, axis=(1, 2)))
        if not tail.size:
            return
        chunk_size = self.job.chunk_size
        report(progress, 0, tail.size, "apply")
        done = 0
        with thread_pool(default_workers(apply_workers)) as pool:
            for run in np.split(tail, np.flatnonzero(np.diff(tail) != 1) + 1):
                for a in range(int(run[0]), int(run[-1]) + 1, chunk_size):
                    b = min(a + chunk_size, int(run[-1]) + 1)
                    self.warp(a, b, final_mats[a:b], pool)
                    done += b - a
                    report(progress, done, tail.size, "apply")
