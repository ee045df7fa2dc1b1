"""The terminal progress bar of the ``stackalign`` subcommands: tqdm on stderr, stages in plain words.

The core reports ``progress(done, total, stage)`` through the callbacks of
:mod:`napari_stackalign.progress` with short stage codes (``"reference"``,
``"estimate"``, ``"apply"``, ...). The bar names each stage in words, draws
nothing when stderr is not a terminal (a log file, a pipe, a batch scheduler)
or with ``--quiet``, and in a batch says which file it is on.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from tqdm import tqdm

from ..progress import ProgressCallback

__all__ = ["STAGE_WORDS", "bar_enabled", "progress_bar", "stage_words"]

#: the core's stage codes, in words
STAGE_WORDS = {
    "reference": "building the template",
    "estimate": "measuring the drift",
    "apply": "correcting the frames",
    "write": "writing the output",
    "warp": "correcting the frames",
    "average": "averaging the frames",
    "mean image": "averaging the frames",
    "spectra": "Fourier transforms of the frames",
    "pairs": "correlating every pair of frames",
    "correlation": "correlating the frames",
    "track": "tracking the particles",
    "validate": "checking the correction",
    "residual motion": "measuring the residual motion",
}

#: what is prefixed to every stage while a batch runs ("file 2/5 run42.h5")
_PREFIX: list[str] = []


def stage_words(stage: str) -> str:
    """The stage in words (an unknown code is shown as it is)."""
    words = STAGE_WORDS.get(stage, stage or "working")
    return f"{_PREFIX[-1]}: {words}" if _PREFIX else words


def bar_enabled(quiet: bool = False, stream: object = None) -> bool:
    """Whether to draw: not ``--quiet``, and stderr (or ``stream``) is a terminal."""
    if quiet:
        return False
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except (OSError, ValueError):  # a closed stream
        return False


@contextlib.contextmanager
def batch_item(label: str) -> Iterator[None]:
    """Prefix every stage with ``label`` (the file of a batch) while the block runs."""
    _PREFIX.append(label)
    try:
        yield
    finally:
        _PREFIX.pop()


@contextlib.contextmanager
def progress_bar(enabled: bool = True) -> Iterator[ProgressCallback | None]:
    """A ``progress(done, total, stage)`` callback drawing one tqdm bar per stage on stderr.

    Parameters
    ----------
    enabled : bool
        False (``--quiet``): no callback. A stderr that is not a terminal
        draws nothing either.
    """
    if not (enabled and bar_enabled()):
        yield None
        return
    bars: dict[str, tqdm] = {}

    def callback(done: int, total: int, stage: str) -> None:
        if stage == "done":  # a final marker some engines send; nothing to draw
            return
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = tqdm(total=total, desc=stage_words(stage), unit="frame", file=sys.stderr, leave=True)
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        yield callback
    finally:
        for bar in bars.values():
            bar.close()
