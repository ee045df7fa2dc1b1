"""Pyramid registration and resampling in one call, overlapped.

:func:`register_and_apply` gives what
``apply_transforms(stack, register_pyramid(stack))`` gives, bit for bit, in
less time. Without smoothing, the only stack-wide step that moves a usable
frame is the anchoring, and its offset is fixed with the template (see
:class:`~._pyramid_stages.TemplateState`), so a frame's correction is final
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
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, NamedTuple

import cv2
import numpy as np

from ...progress import ProgressCallback, report
from ...transforms import FrameTransforms
from ..apply import (
    apply_transforms,
    check_warp_options,
    is_dask,
    result_dtype,
    warp_chunk,
)
from ..workers import default_workers, estimation_workers, thread_pool
from ._engine import FrameResults
from ._register import _check_stack
from ._stages import (
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
    reference: np.ndarray | None = None,
    order: int = 1,
    border: str = "constant",
    cval: float = 0.0,
    output_dtype: Any = None,
    workers: int | None = None,
    apply_workers: int | None = None,
    progress: ProgressCallback | None = None,
    **options: Any,
) -> AlignedStack:
    """Register a (T, Y, X) stack by pyramid registration and resample it.

    The result equals ``apply_transforms(stack, register_pyramid(stack))``
    exactly; resampling runs in the background while frames are estimated.

    Parameters
    ----------
    stack : array-like, shape (T, Y, X)
        Numpy array, memmap, h5py dataset or dask array (dask input gives a
        lazy dask output, computed after the estimation).
    reference : ndarray, shape (Y, X), optional
        A template to register to (see
        :func:`~napari_stackalign.core.pyramid._register.register_pyramid`).
    order, border, cval, output_dtype
        Resampling options of
        :func:`~napari_stackalign.core.apply._warp.apply_transforms`.
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
    **options
        The other keywords of ``register_pyramid`` (``num_frames``,
        ``downsample_rates``, ``max_movement``, ``iterate``, ``smooth``,
        ``window_length``, ``polyorder``, ``roi``, ``mask``, ``normalize``,
        ``kernel``, ``chunk_size``).

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
    n_total = _check_stack(stack)[0]
    check_warp_options(order, border)
    out_dtype = result_dtype(np.dtype(stack.dtype), border, output_dtype)
    job = plan_pyramid(tuple(stack.shape), stack.dtype, user_reference=reference is not None, **options)
    warp_options = dict(order=order, border=border, cval=cval, output_dtype=output_dtype)
    n_est = estimation_workers(workers)
    est_pool = thread_pool(n_est) if n_est > 1 else contextlib.nullcontext()

    if job.smooth or is_dask(stack):
        # smoothing moves every frame once all are known; dask stays lazy
        with est_pool as pool:
            raw, final = run_stages(stack, job, reference=reference, pool=pool, progress=progress)
        data = apply_transforms(stack, final, workers=apply_workers, progress=progress, **warp_options)
        report(progress, n_total, n_total, "done")
        return AlignedStack(data, final, raw)

    out = np.empty(tuple(stack.shape), dtype=out_dtype)
    used = np.full((n_total, 2, 3), np.nan)  # the matrix each frame was resampled with
    chunk_kwargs = dict(order=order, border=border, cval=cval, out_dtype=out_dtype)
    pending: list[Future] = []
    # while estimating, one background thread resamples chunk after chunk
    background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stackalign-apply")
    warped = 0  # frames 0:warped are handed to the background thread

    def warp(start: int, stop: int, mats: np.ndarray, pool: Any = None) -> None:
        chunk = np.asarray(stack[start:stop])
        warp_chunk(chunk, mats, pool=pool, result=out[start:stop], **chunk_kwargs)

    def on_chunk(start: int, stop: int, parts: list[FrameResults], template: TemplateState) -> None:
        nonlocal warped
        if stop >= n_total:
            return  # nothing left to overlap with: resampled below on every core
        # parts cover frames 0:stop in order; frames warped:stop are new
        shifts = parts[-1].shifts if warped == start else concat_results(parts).shifts[warped:stop]
        if template.anchor is not None:
            shifts = shifts - template.anchor
        mats = corrections(job, shifts).to_cv2_matrices()
        used[warped:stop] = mats
        pending.append(background.submit(warp, warped, stop, mats))
        warped = stop

    try:
        with _opencv_single_thread():
            with est_pool as pool:
                raw, final = run_stages(stack, job, reference=reference, pool=pool, progress=progress, on_chunk=on_chunk)
        for future in pending:
            future.result()
    finally:
        background.shutdown(wait=True, cancel_futures=True)
    # the frames not resampled yet (the last chunk; every frame when the
    # template frames are the whole stack) and those whose final matrix
    # differs from the one they were resampled with (unusable frames)
    final_mats = final.to_cv2_matrices()
    tail = np.flatnonzero(~np.all(used == final_mats, axis=(1, 2)))
    if tail.size:
        report(progress, 0, tail.size, "apply")
        done = 0
        with thread_pool(default_workers(apply_workers)) as pool:
            for run in np.split(tail, np.flatnonzero(np.diff(tail) != 1) + 1):
                for a in range(int(run[0]), int(run[-1]) + 1, job.chunk_size):
                    b = min(a + job.chunk_size, int(run[-1]) + 1)
                    warp(a, b, final_mats[a:b], pool)
                    done += b - a
                    report(progress, done, tail.size, "apply")
    report(progress, n_total, n_total, "done")
    return AlignedStack(out, final, raw)
