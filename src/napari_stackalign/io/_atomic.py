"""Atomic file writing: write to a temporary file, then rename into place."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "check_writable_dir"]


def check_writable_dir(path: str | os.PathLike) -> Path:
    """Return the folder of ``path`` after checking it exists and is writable.

    Raises
    ------
    ValueError
        With a message that says what to do.
    """
    folder = Path(path).expanduser().resolve().parent
    if not folder.is_dir():
        raise ValueError(f"output folder {folder} does not exist: create it first or choose another path.")
    if not os.access(folder, os.W_OK):
        raise ValueError(f"output folder {folder} is not writable: choose a folder you can write to.")
    return folder


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    On any exception (including KeyboardInterrupt and cancellation) the
    temporary file is removed and an existing file at ``path`` is untouched.
    """
    target = Path(path).expanduser()
    folder = check_writable_dir(target)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=folder)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
