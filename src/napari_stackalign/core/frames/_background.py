"""Blocks of frames produced in order by a background thread, a few ahead of
their reader.

:class:`BlockProducer` holds the thread, the bounded queue and the clean
stop that :class:`~napari_stackalign.core.frames.ReadAhead` (reading) and
:class:`~napari_stackalign.core.apply.WarpedFrames` (reading and warping) share; each
gives only the function that makes one block.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable
from typing import Any, Self

import numpy as np

__all__ = ["READ_AHEAD_BLOCKS", "BlockProducer"]

#: blocks a producer prepares ahead of its reader by default
READ_AHEAD_BLOCKS = 2


class BlockProducer:
    """Produces ``ranges`` of frames in a background thread, ``depth`` blocks ahead.

    ``produce(start, stop)`` makes the block of frames ``start:stop`` (it is
    called in the background thread). Blocks come out of :meth:`_next_item` in order, as ``(start, stop,
    block)``. An exception raised making a block is handed to the reader
    (raised by :meth:`_next_item`) and ends the production. Use as a context
    manager, or call :meth:`start` and :meth:`close`.
    """

    thread_name = "stackalign-producer"

    def __init__(
        self,
        ranges: Iterable[tuple[int, int]],
        produce: Callable[[int, int], np.ndarray],
        *,
        depth: int = READ_AHEAD_BLOCKS,
    ) -> None:
        self._ranges = [(int(a), int(b)) for a, b in ranges]
        self._produce = produce
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        for a, b in self._ranges:
            if self._stop.is_set():
                return
            try:
                item: Any = (a, b, self._produce(a, b))
            except BaseException as exc:  # noqa: BLE001 - handed to the reader
                item = (a, b, exc)
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.05)
                    break
                except queue.Full:
                    continue
            if isinstance(item[2], BaseException):
                return

    @property
    def started(self) -> bool:
        """Whether the background thread runs (or ran and was not closed)."""
        return self._thread is not None

    def start(self) -> Self:
        """Start the background thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
            self._thread.start()
        return self

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the background thread and drop what it made."""
        self._stop.set()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _next_item(self) -> tuple[int, int, np.ndarray]:
        """The next block as ``(start, stop, block)`` (waits for it); raises
        what making it raised."""
        start, stop, block = self._queue.get()
        if isinstance(block, BaseException):
            raise block
        return start, stop, block
