"""Writing files safely, and values ready for JSON.

Every output of the package goes through :func:`atomic_path`: it is written
to a temporary file beside the target and renamed into place, so a failed or
cancelled run leaves nothing half-written and never touches an existing file.
This module imports nothing from the package, so every layer (``transforms``,
``io``, ``core``, ``cli``) can use it.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["atomic_path", "atomic_write_text", "check_writable_dir", "jsonable"]


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


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path`` and rename it into place."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def jsonable(value: Any) -> Any:
    """``value`` converted to plain JSON types.

    Numpy scalars and arrays, tuples and sets become lists and numbers, bytes
    text, NaN and infinities None, objects with a ``to_dict`` method (such as
    :class:`~napari_stackalign.FrameTransforms`) their dict; anything else
    becomes its ``str``.
    """
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return jsonable(to_dict())
    return str(value)
