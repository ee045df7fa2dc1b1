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


def _new_file_mode(target: Path) -> int:
    """Permissions the finished file should get: the replaced file's, else 0o666 minus the umask."""
    try:
        return target.stat().st_mode & 0o7777
    except OSError:
        pass
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # no other portable way to read it
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    On any exception (including KeyboardInterrupt and cancellation) the
    temporary file is removed and an existing file at ``path`` is untouched.
    The finished file gets the permissions of the file it replaces, or the
    usual ones for a new file (``0o666`` minus the umask), not the private
    mode of the temporary file.
    """
    target = Path(path).expanduser()
    folder = check_writable_dir(target)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=folder)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with contextlib.suppress(OSError):
            os.chmod(tmp, _new_file_mode(target))
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
