"""Pyramid registration of a file on a dask.distributed cluster.

The split follows the stages of :mod:`~napari_stackalign.core.pyramid._stages`:

1. this process (the client) builds the template once from the first
   ``num_frames`` frames and scatters it to every worker;
2. the stack is split into ranges of frames; each range is one task, and the
   worker running it opens the file itself by its path (no pixels travel
   through the scheduler), estimates the frames against the template and
   returns three small arrays per range (shifts, quality, flags);
3. the client gathers the ranges in frame order and does the stack-wide steps
   once (quality threshold, anchoring on the template frames, smoothing).

A frame's estimate depends only on the frame and the template, so the
result is identical, bit for bit, to
:func:`~napari_stackalign.core.pyramid.register_pyramid` in one process,
whatever the cluster and the split. Writing the registered stack (see
:func:`~napari_stackalign.core.pyramid.register_file`) stays in the client:
one HDF5 file has one writer.

Needs the ``distributed`` package (``pip install "napari-stackalign[distributed]"``).
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...progress import ProgressCallback, report
from ...transforms import FrameTransforms
from ..frames import FileFrames, ReadAhead, frame_ranges
from ..workers import default_workers, thread_pool
from ._engine import FrameResults
from ._options import PYRAMID_DEFAULTS, PyramidOptions
from ._stages import (
    PyramidJob,
    TemplateState,
    build_template,
    concat_results,
    estimate_range,
    finish,
    plan_pyramid,
    stack_wide_checks,
)

__all__ = [
    "check_cluster_mode",
    "check_cluster_request", "cluster_estimator", "connect", "estimate_on_cluster", "register_pyramid_distributed"]

#: largest number of frames in one task
MAX_TASK_FRAMES = 1024
#: tasks per worker thread the stack is split into (so progress moves and
#: faster workers take more)
TASKS_PER_THREAD = 8
#: how often (s) progress is reported while waiting for the cluster
POLL_SECONDS = 0.2


def _distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise ValueError(
            "running on a dask cluster needs dask.distributed: pip install 'napari-stackalign[distributed]' "
            "(or pip install distributed)."
        ) from exc
    return distributed


def check_cluster_request(scheduler: Any, n_workers: int | None) -> None:
    """Raise unless exactly one of ``scheduler`` and ``n_workers`` is given."""
    if (scheduler is None) == (n_workers is None):
        raise ValueError("give either scheduler= (an address or a Client) or n_workers= (a local cluster), not both.")


@contextlib.contextmanager
def connect(
    scheduler: Any = None,
    n_workers: int | None = None,
    *,
    threads_per_worker: int = 1,
    processes: bool = True,
) -> Iterator[Any]:
    """A ``distributed.Client`` for ``scheduler`` or for a new local cluster.

    Parameters
    ----------
    scheduler : str or distributed.Client, optional
        A scheduler address (``"tcp://host:8786"``) or a connected client
        (used as is and left open).
    n_workers : int, optional
        Without ``scheduler``: start a ``LocalCluster`` of this many workers
        listening on loopback (127.0.0.1) only, without a dashboard; it is
        shut down on exit.
    threads_per_worker : int
        Threads per local worker.
    processes : bool
        Local workers as processes (True) or threads of this process.

    Raises
    ------
    ValueError
        Without either argument, with both, with ``n_workers < 1``, or when
        dask.distributed is not installed.
    """
    check_cluster_request(scheduler, n_workers)
    distributed = _distributed()
    if isinstance(scheduler, distributed.Client):
        yield scheduler
        return
    if scheduler is not None:
        if not isinstance(scheduler, str) or not scheduler.strip():
            raise ValueError(f"scheduler must be an address such as 'tcp://10.0.0.5:8786' or a Client, got {scheduler!r}.")
        try:
            client = distributed.Client(scheduler.strip(), timeout="20s")
        except OSError as exc:
            raise ValueError(f"cannot reach the dask scheduler at {scheduler!r}: {exc}. Check the address.") from exc
        try:
            yield client
        finally:
            client.close()
        return
    if isinstance(n_workers, bool) or not isinstance(n_workers, (int, np.integer)) or n_workers < 1:
        raise ValueError(f"n_workers must be a whole number of at least 1, got {n_workers!r}.")
    if isinstance(threads_per_worker, bool) or threads_per_worker < 1:
        raise ValueError(f"threads_per_worker must be at least 1, got {threads_per_worker!r}.")
    # loopback only, on free ports: the scheduler and worker processes, and the
    # HTTP endpoints of the scheduler and of every worker (thread workers talk
    # in-process)
    where = {"host": "127.0.0.1", "scheduler_port": 0} if processes else {}
    cluster = distributed.LocalCluster(
        n_workers=int(n_workers),
        threads_per_worker=int(threads_per_worker),
        processes=bool(processes),
        dashboard_address="127.0.0.1:0",
        worker_dashboard_address="127.0.0.1:0",
        silence_logs=40,
        **where,
    )
    try:
        client = distributed.Client(cluster)
        try:
            yield client
        finally:
            client.close()
    finally:
        cluster.close()


# ----------------------------------------------------------- worker side
@dataclass(frozen=True)
class _Payload:
    """What every task needs besides its frame range (scattered once)."""

    run_id: str
    job: PyramidJob
    state: TemplateState


_RUNS: dict[str, tuple[Any, Any, Any, Any]] = {}
_RUNS_LOCK = threading.Lock()
_MALLOC_TUNED = False
#: glibc ``mallopt`` parameter and the value set in worker processes
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_BYTES = 32 * 2**20


def _tune_malloc() -> None:
    """Let glibc serve the engine's per-frame buffers (about 1 MB) from the heap.

    dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which
    also freezes glibc's mmap threshold at 128 kB: every frame-sized
    temporary then costs an ``mmap``/``munmap`` pair and fresh page faults,
    and the estimation runs about 2.5 times slower than in a plain process
    (measured here: 0.30 s against 0.73-0.89 s for 250 frames of 512x512).
    Raising the mmap threshold to 32 MB restores the plain-process speed;
    memory is still returned to the system by the trim threshold. Only on
    glibc; elsewhere nothing is changed.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return
    _MALLOC_TUNED = True
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES)
    except (OSError, AttributeError):
        pass


def _worker_run(source: FileFrames, channel: int | None, payload: _Payload) -> tuple[Any, Any, Any]:
    """This process's open file, preparer and estimator for a run (cached)."""
    with _RUNS_LOCK:
        entry = _RUNS.get(payload.run_id)
        if entry is None:
            _tune_malloc()
            opened = source.open()
            try:
                frames = opened.channel(channel)
                preparer = payload.job.preparer()
                estimator = payload.job.estimator(payload.state.template)
            except BaseException:
                opened.close()
                raise
            entry = _RUNS[payload.run_id] = (opened, frames, preparer, estimator)
    return entry[1], entry[2], entry[3]


def _estimate_task(source: FileFrames, channel: int | None, payload: _Payload, start: int, stop: int) -> FrameResults:
    """One task: frames ``start:stop`` read from the file on the worker."""
    frames, preparer, estimator = _worker_run(source, channel, payload)
    if tuple(frames.shape) != (payload.job.n_frames, *payload.job.frame_shape):
        raise ValueError(
            f"{source.path} on this worker holds {tuple(frames.shape)} frames, not the "
            f"{(payload.job.n_frames, *payload.job.frame_shape)} the client read: the workers must see the same file."
        )
    ranges = frame_ranges(start, stop, payload.job.chunk_size)
    with ReadAhead(frames, ranges) as ahead:
        return estimate_range(ahead, payload.job, payload.state, start, stop, preparer=preparer, estimator=estimator)


def _release_run(run_id: str) -> bool:
    """Close the file a run opened in this process (run on every worker at the end)."""
    with _RUNS_LOCK:
        entry = _RUNS.pop(run_id, None)
    if entry is not None:
        entry[0].close()
    return entry is not None


# ----------------------------------------------------------- client side
def _task_frames(n_frames: int, n_threads: int, chunk_size: int) -> int:
    per = math.ceil(n_frames / max(1, TASKS_PER_THREAD * n_threads))
    return int(min(MAX_TASK_FRAMES, max(chunk_size, per)))


def estimate_on_cluster(
    client: Any,
    source: FileFrames,
    channel: int | None,
    job: PyramidJob,
    state: TemplateState,
    *,
    task_frames: int | None = None,
    progress: ProgressCallback | None = None,
) -> FrameResults:
    """Estimate every frame of ``source`` against ``state.template`` on the cluster.

    Parameters
    ----------
    client : distributed.Client
        Connected client.
    source : FileFrames
        The file; every worker opens it by this path.
    channel : int, optional
        Channel of (T, C, Y, X) files.
    job, state
        From :func:`~napari_stackalign.core.pyramid._stages.plan_pyramid` and
        :func:`~napari_stackalign.core.pyramid._stages.build_template`.
    task_frames : int, optional
        Frames per task (default: about 8 tasks per worker thread, at most
        1024 frames).
    progress : callable, optional
        ``progress(done, total, "estimate")``, called at least every 0.2 s;
        raising :class:`~napari_stackalign.core.Cancelled` cancels the tasks.

    Returns
    -------
    FrameResults
        All frames, in order.
    """
    distributed = _distributed()
    n = job.n_frames
    if task_frames is None:
        n_threads = sum(client.nthreads().values()) or 1
        task_frames = _task_frames(n, n_threads, job.chunk_size)
    if isinstance(task_frames, bool) or int(task_frames) < 1:
        raise ValueError(f"task_frames must be at least 1, got {task_frames!r}.")
    run_id = uuid.uuid4().hex
    payload = _Payload(run_id, job, state)
    report(progress, 0, n, "estimate")
    shared = client.scatter(payload, broadcast=True, hash=False)
    ranges = frame_ranges(0, n, int(task_frames))
    futures = {
        client.submit(
            _estimate_task, source, channel, shared, a, b, key=f"stackalign-estimate-{run_id}-{a}", pure=False
        ): (a, b)
        for a, b in ranges
    }
    parts: dict[int, FrameResults] = {}
    pending = set(futures)
    done = 0
    try:
        while pending:
            finished = [f for f in pending if f.done()]
            for fut in finished:
                pending.discard(fut)
                a, b = futures[fut]
                parts[a] = fut.result()
                done += b - a
            report(progress, done, n, "estimate")
            if pending and not finished:
                with contextlib.suppress(TimeoutError):
                    distributed.wait(list(pending), timeout=POLL_SECONDS, return_when="FIRST_COMPLETED")
    except BaseException:
        client.cancel(list(pending))
        raise
    finally:
        with contextlib.suppress(Exception):
            client.cancel([shared])
        with contextlib.suppress(Exception):
            client.run(_release_run, run_id)
    return concat_results([parts[a] for a, _ in ranges])


def check_cluster_mode(options: PyramidOptions) -> None:
    """Raise for a reference mode a cluster cannot run: the chained modes
    register each frame to the frames before it, one after the other."""
    if options.chained:
        raise ValueError(
            f"reference_mode {options.reference_mode!r} registers each frame to the frames before it, in order: "
            "it cannot be split over a cluster. Run it without a cluster (streamed, flat memory), or use "
            "reference_mode 'template', 'frames' or 'image'."
        )


def cluster_estimator(source: FileFrames, channel: int | None, *, scheduler: Any = None, n_workers: int | None = None) -> Any:
    """An ``estimate(frames, job, *, workers, progress) -> (raw, final)``
    for :mod:`~napari_stackalign.core.pyramid._to_file`: the template is built here
    (from ``frames``), every frame is estimated on the cluster (connected for
    the estimation only, so a local cluster is shut down before the writing
    starts), and the stack-wide steps run here."""
    check_cluster_request(scheduler, n_workers)
    _distributed()

    def estimate(
        frames: Any,
        job: PyramidJob,
        *,
        workers: int,
        progress: ProgressCallback | None,
    ) -> tuple[FrameTransforms, FrameTransforms]:
        check_cluster_mode(job.options)
        with thread_pool(workers) if workers > 1 else contextlib.nullcontext() as pool:
            state = build_template(frames, job, pool=pool, progress=progress)
        estimator = job.estimator(state.template)
        with connect(scheduler=scheduler, n_workers=n_workers) as client:
            results = estimate_on_cluster(client, source, channel, job, state, progress=progress)
        # the stack-wide checks read frames here, as a single process does (lattice sites, turns, weak stacks)
        results, notes, extra = stack_wide_checks(frames, job, state, results, estimator=estimator)
        return finish(job, state, results, levels_used=estimator.active_rates, notes=notes, extra_params=extra)

    return estimate


def register_pyramid_distributed(
    path: str | os.PathLike,
    *,
    dataset: str | None = None,
    channel: int | None = None,
    scheduler: Any = None,
    n_workers: int | None = None,
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
    reference: np.ndarray | None = None,
    kernel: str = PYRAMID_DEFAULTS.kernel,
    chunk_size: int = PYRAMID_DEFAULTS.chunk_size,
    task_frames: int | None = None,
    workers: int | None = None,
    progress: ProgressCallback | None = None,
    options: PyramidOptions | None = None,
) -> FrameTransforms:
    """Estimate the transforms of a file's frames on a dask.distributed cluster.

    The same result, bit for bit, as
    :func:`~napari_stackalign.core.pyramid.register_pyramid` on the whole
    stack in one process. To also apply and write the registered stack, use
    :func:`~napari_stackalign.core.pyramid.register_file` with the same
    ``scheduler``/``n_workers``.

    Parameters
    ----------
    path : str or path-like
        TIFF or HDF5 file, readable under this path on every worker (a shared
        file system) and here.
    dataset : str, optional
        HDF5 dataset.
    channel : int, optional
        (T, C, Y, X) input: the channel to estimate on.
    scheduler : str or distributed.Client, optional
        Scheduler address or connected client.
    n_workers : int, optional
        Start a local cluster of this many worker processes (loopback only)
        instead.
    num_frames, reference_mode, reference_frames, running_frames, keyframe_every, downsample_rates, max_movement, iterate, smooth, window_length, polyorder, roi, mask, normalize, reference, kernel, chunk_size
        As for :func:`~napari_stackalign.core.pyramid.register_pyramid`.
    task_frames : int, optional
        Frames per task (see :func:`estimate_on_cluster`).
    workers : int, optional
        Threads here for the template (all cores by default).
    progress : callable, optional
        ``progress(done, total, stage)``; stages ``"reference"``,
        ``"template k/n"`` and ``"estimate"``. Raising
        :class:`~napari_stackalign.core.Cancelled` cancels the tasks.
    options : PyramidOptions, optional
        The registration's options in one object; an explicit keyword that
        differs from its default overrides it.

    Returns
    -------
    FrameTransforms

    Raises
    ------
    ValueError
        For bad parameters or files, neither or both of ``scheduler`` and
        ``n_workers``, or dask.distributed missing.
    """
    opts = PyramidOptions.from_call(options, locals())
    check_cluster_mode(opts)
    src = Path(path).expanduser()
    if not src.exists():
        raise FileNotFoundError(f"input {src} does not exist: check the path.")
    check_cluster_request(scheduler, n_workers)
    source = FileFrames(str(src), dataset)
    with source.open() as opened:
        frames = opened.channel(channel)
        job = plan_pyramid(frames.shape, frames.dtype, opts)
        with thread_pool(default_workers(workers)) as pool:
            state = build_template(frames, job, pool=pool, progress=progress)
    estimator = job.estimator(state.template)
    with connect(scheduler=scheduler, n_workers=n_workers) as client:
        results = estimate_on_cluster(
            client, source, channel, job, state, task_frames=task_frames, progress=progress
        )
    # the stack-wide checks read frames here, as a single process does (lattice sites, turns, weak stacks)
    with source.open() as opened:
        results, notes, extra = stack_wide_checks(opened.channel(channel), job, state, results, estimator=estimator)
    _, final = finish(job, state, results, levels_used=estimator.active_rates, notes=notes, extra_params=extra)
    report(progress, job.n_frames, job.n_frames, "done")
    return final
