"""Volumes estimated on several threads, in order, with a bounded number in flight.

A volume is large (megabytes to gigabytes), so the number of volumes read and
held at once is what bounds memory: :func:`ordered_map` keeps at most
``in_flight`` calls running or finished-but-not-consumed, and yields their
results in the order of the items, so sums over them (template means) are
made in the same order as on one thread and the results are the same.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from ..workers import check_workers

__all__ = ["VolumeThreads", "ordered_map", "volume_threads"]

T = TypeVar("T")
R = TypeVar("R")


def ordered_map(
    fn: Callable[[T], R], items: Iterable[T], *, pool: ThreadPoolExecutor | None, in_flight: int
) -> Iterator[R]:
    """``map(fn, items)``, on ``pool`` with at most ``in_flight`` calls outstanding, results in order.

    Without a pool (or ``in_flight`` 1) the calls are made here, one after the other. When the
    consumer stops early (an exception, a cancellation), the calls still outstanding are waited
    for, so no thread keeps reading after the caller has moved on.
    """
    if pool is None or in_flight <= 1:
        for item in items:
            yield fn(item)
        return
    pending: deque[Future] = deque()
    try:
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= in_flight:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for fut in pending:
            fut.cancel()
        for fut in pending:
            if not fut.cancelled():
                fut.exception()  # wait for it; its error (if any) is not the one being raised


class VolumeThreads:
    """The threads that estimate volumes: a pool (None for one thread) and how many volumes
    may be in flight at once (``min(workers, chunk_size)``)."""

    def __init__(self, workers: int, chunk_size: int) -> None:
        self.workers = int(workers)
        self.in_flight = max(1, min(self.workers, int(chunk_size)))
        self.pool: ThreadPoolExecutor | None = None

    def __enter__(self) -> VolumeThreads:
        if self.in_flight > 1:
            self.pool = ThreadPoolExecutor(max_workers=self.in_flight, thread_name_prefix="stackalign-volume")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        """:func:`ordered_map` on these threads."""
        return ordered_map(fn, items, pool=self.pool, in_flight=self.in_flight)


def volume_threads(workers: int | None, chunk_size: int) -> VolumeThreads:
    """The threads for ``workers`` (None: one; volumes are estimated one at a time by default)
    and ``chunk_size`` (the most volumes read and held at once).

    Raises
    ------
    ValueError
        For ``workers`` below 1 or ``chunk_size`` below 1.
    """
    check_workers(workers)
    if int(chunk_size) < 1:
        raise ValueError(f"chunk_size must be at least 1 (volumes held at once), got {chunk_size}.")
    return VolumeThreads(1 if workers is None else int(workers), int(chunk_size))
