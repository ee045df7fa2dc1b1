"""One wording for a file that another program is still writing or holds
locked (a truncated TIFF, a TIFF whose header does not yet describe all its
frames, an HDF5 file locked for writing)."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

__all__ = ["RECENT_SECONDS", "beyond_end", "incomplete_error", "locked_error"]

#: A file modified less than this many seconds ago is said to be probably still being written.
RECENT_SECONDS = 120.0


def _age(path: Path) -> float | None:
    try:
        return max(0.0, time.time() - os.stat(path).st_mtime)
    except OSError:
        return None


def incomplete_error(path: Path, detail: str) -> ValueError:
    """The file ends before the data it describes: still being written, or a broken copy."""
    age = _age(path)
    recent = age is not None and age < RECENT_SECONDS
    when = f" (it was modified {age:.0f} s ago)" if recent else ""
    return ValueError(
        f"cannot read {path}: the file is incomplete ({detail}). This file is still being written or is locked "
        f"by another program{when}: try again when it is complete. If no program is writing it, the copy is "
        "broken: copy or export it again."
    )


def locked_error(path: Path, exc: BaseException) -> ValueError:
    """Another program holds the file open for writing (HDF5 file locking)."""
    return ValueError(
        f"cannot read {path}: this file is still being written or is locked by another program ({exc}): "
        "try again when it is complete (or close it in the program that has it open)."
    )


def beyond_end(path: Path, message: str) -> bool:
    """Whether ``message`` (a reader's error) names an offset at or beyond the end of ``path``."""
    try:
        size = os.path.getsize(path)
    except OSError:
        return False
    numbers = [int(n) for n in re.findall(r"\b(\d{2,})\b", message)]
    return any(n >= size for n in numbers)
