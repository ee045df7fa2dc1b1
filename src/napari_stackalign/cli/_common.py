"""Helpers shared by the subcommands: a terminal progress bar."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from tqdm import tqdm

from ..core import ProgressCallback

__all__ = ["terminal_progress"]


@contextlib.contextmanager
def terminal_progress(enabled: bool = True) -> Iterator[ProgressCallback | None]:
    """A ``progress(done, total, stage)`` callback drawing a tqdm bar on stderr."""
    if not enabled:
        yield None
        return
    bars: dict[str, tqdm] = {}

    def callback(done: int, total: int, stage: str) -> None:
        if stage == "done":  # a final marker some engines send; nothing to draw
            return
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = tqdm(total=total, desc=stage or "working", unit="frame", file=sys.stderr, leave=True)
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        yield callback
    finally:
        for bar in bars.values():
            bar.close()
