"""How many threads the engine uses, and the thread pools it runs them in."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

__all__ = ["check_workers", "default_workers", "estimation_workers", "thread_pool"]


def check_workers(workers: int | None) -> int | None:
    """``workers`` (a thread count, None = every core) checked: at least 1."""
    if workers is not None and workers < 1:
        raise ValueError("workers must be at least 1.")
    return workers


def default_workers(workers: int | None = None) -> int:
    """Number of threads to use: ``workers`` or all available cores."""
    if check_workers(workers) is not None:
        return int(workers)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def estimation_workers(workers: int | None = None) -> int:
    """Threads that estimate frames: ``workers``, or 1 by default.

    Estimating a frame is a few dozen short numpy and OpenCV calls, each of
    which gives up and takes back the GIL; a second estimating thread spends
    more time waiting for the GIL than it gains (measured on 2 cores, final
    pass, per frame: 512x512 texture 687 us with 1 thread, 701 us with 2;
    256x256 texture 293 us against 433 us; ``tests/benchmarks/bench_threads.py``,
    ``docs/benchmarks-threads.md``). The exception is content the coarse
    levels cannot see (a lattice), whose search is a large FFT correlation:
    512x512, 1832 us against 1410 us; pass ``workers=2`` there when only
    estimating (with :func:`~napari_stackalign.core.pyramid.register_and_apply`
    the other core is busy resampling and 2 threads were slower: 382 against
    447 frames/s). The other cores resample frames meanwhile.
    """
    if workers is None:
        return 1
    return default_workers(workers)


def thread_pool(workers: int | None = None) -> ThreadPoolExecutor:
    """A thread pool sized by :func:`default_workers`."""
    return ThreadPoolExecutor(max_workers=default_workers(workers))
