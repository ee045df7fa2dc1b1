"""Progress reporting and cancellation, shared by every long-running function.

Long-running functions (core, io) take ``progress: ProgressCallback | None``.
It is called as ``progress(done, total, stage)``; to cancel, the callback
raises :class:`Cancelled` (the widgets do this when the user presses Cancel,
the CLI never does). Library code only calls :func:`report`. This module sits
at the top of the package (not in ``core``) so that ``io`` can report progress
without importing the engine.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["Cancelled", "ProgressCallback", "report"]

ProgressCallback = Callable[[int, int, str], None]


class Cancelled(Exception):
    """Raised (by a progress callback) to stop a running computation."""


def report(progress: ProgressCallback | None, done: int, total: int, stage: str = "") -> None:
    """Call ``progress`` if given."""
    if progress is not None:
        progress(int(done), int(total), stage)
