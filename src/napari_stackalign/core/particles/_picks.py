"""Particle picks: read and write the clicked particle positions as CSV.

A pick is ``(frame, y, x)`` in pixel coordinates (pixel centre = integer).
Three CSV layouts are read:

* this package's picks table (``particle, frame, y, x, ok, r2, reason``);
* napari's Points layer CSV (``index, axis-0, axis-1[, axis-2]``), written by
  *File > Save Selected Layers*; with three axes the first is the frame;
* any table with ``y`` and ``x`` columns (and optionally ``frame``, ``t`` or
  ``z``).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

from ...files import atomic_write_text
from ...textfiles import read_csv_table, read_text_file

__all__ = ["as_picks", "read_picks", "write_picks"]


def as_picks(picks: Any, *, frame0: int = 0) -> np.ndarray:
    """Normalise picks to an (N, 3) float array of (frame, y, x).

    ``(N, 2)`` arrays are (y, x) in ``frame0``; ``(N, 3)`` arrays (a napari
    Points layer's data on a (T, Y, X) image) are (frame, y, x) with the
    frame rounded to the nearest integer.
    """
    arr = np.asarray(picks, dtype=np.float64)
    if arr.ndim == 1 and arr.size in (2, 3):
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] not in (2, 3):
        raise ValueError(
            f"picks must be an (N, 2) array of (y, x) or an (N, 3) array of (frame, y, x), got shape {arr.shape}."
        )
    if arr.shape[0] == 0:
        raise ValueError("no picks: click at least one particle.")
    if not np.all(np.isfinite(arr)):
        raise ValueError("picks contain NaN or infinite coordinates.")
    if arr.shape[1] == 2:
        arr = np.column_stack([np.full(arr.shape[0], float(frame0)), arr])
    else:
        arr = arr.copy()
        arr[:, 0] = np.round(arr[:, 0])
    return arr


def write_picks(
    path: str | Path,
    picks: Any,
    *,
    ok: Any = None,
    r2: Any = None,
    reason: Any = None,
) -> Path:
    """Write picks ``(N, 3)`` (frame, y, x) or ``(N, 2)`` as a CSV table.

    ``ok``, ``r2`` and ``reason`` (per pick) are written when given, so the
    file also records which clicks passed the fit's quality gate.
    """
    arr = as_picks(picks)
    n = arr.shape[0]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    header = ["particle", "frame", "y", "x"]
    extra = [
        (name, values)
        for name, values in (("ok", ok), ("r2", r2), ("reason", reason))
        if values is not None
    ]
    writer.writerow(header + [name for name, _ in extra])
    for i in range(n):
        row: list[Any] = [
            i,
            int(arr[i, 0]),
            repr(float(arr[i, 1])),
            repr(float(arr[i, 2])),
        ]
        for name, values in extra:
            v = list(values)[i]
            if name == "ok":
                row.append(int(bool(v)))
            elif name == "r2":
                row.append(repr(float(v)))
            else:
                row.append(str(v))
        writer.writerow(row)
    path = Path(path)
    atomic_write_text(path, buf.getvalue())
    return path


def read_picks(path: str | Path, *, only_ok: bool = False) -> np.ndarray:
    """Read picks from a CSV file as an (N, 3) array of (frame, y, x).

    Parameters
    ----------
    path : str or Path
        A picks table, a napari Points CSV or any CSV with ``y`` and ``x``
        columns.
    only_ok : bool
        Keep only rows whose ``ok`` column is true (when there is one).
    """
    path = Path(path).expanduser()
    text = read_text_file(path, "picks file")
    lines = [
        (number, ln)
        for number, ln in enumerate(text.splitlines(), start=1)
        if ln.strip() and not ln.startswith("#")
    ]
    if not lines:
        raise ValueError(f"{path} holds no picks.")
    table = read_csv_table(path, lines, "picks file")
    if not table.rows:
        raise ValueError(f"{path} has a header but no rows: it holds no picks.")
    cols = {name.lower(): name for name in table.columns}

    def column(name: str) -> np.ndarray:
        """The column as numbers; an empty or NaN cell is refused with its place."""
        values = np.array(table.numbers(cols[name]), dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise ValueError(
                f"{table.where(int(bad[0]), cols[name])}: a pick needs a finite number here."
            )
        return values

    if "y" in cols and "x" in cols:
        y, x = column("y"), column("x")
        frame_key = next((k for k in ("frame", "t", "z") if k in cols), None)
        frame = column(frame_key) if frame_key else np.zeros(len(table.rows))
    elif "axis-0" in cols and "axis-1" in cols:
        if "axis-3" in cols:
            raise ValueError(f"{path} holds 4-D points; pick on a (T, Y, X) image.")
        if "axis-2" in cols:
            frame, y, x = column("axis-0"), column("axis-1"), column("axis-2")
        else:
            frame, y, x = np.zeros(len(table.rows)), column("axis-0"), column("axis-1")
    else:
        raise ValueError(
            f"{path} has columns {table.columns}: expected 'y' and 'x' (and optionally 'frame'), "
            "or napari's 'axis-0', 'axis-1'[, 'axis-2']."
        )
    picks = np.column_stack([np.round(frame), y, x])
    if only_ok and "ok" in cols:
        keep = np.array(
            [
                str(v).strip().lower() in ("1", "true", "1.0", "yes")
                for v in table.texts(cols["ok"])
            ]
        )
        picks = picks[keep]
        if picks.shape[0] == 0:
            raise ValueError(
                f"no pick in {path} passed the fit's quality gate (ok column)."
            )
    return as_picks(picks)
