"""Helpers shared by the subcommands: a terminal progress bar."""

from __future__ import annotations

from ._progress_bar import progress_bar

__all__ = ["terminal_progress"]


def terminal_progress(enabled: bool = True):
    """A ``progress(done, total, stage)`` callback drawing a tqdm bar on stderr
    (see :func:`~napari_stackalign.cli._progress_bar.progress_bar`: stages in words, off when stderr is no terminal)."""
    return progress_bar(enabled)
