"""read_picks against bad files: a ValueError naming the file (and the row,
line and column), never a raw UnicodeDecodeError/TypeError."""

from __future__ import annotations

import os

import numpy as np
import pytest

from napari_stackalign import read_picks

BAD = {
    "binary": (bytes(range(256)) * 4, ["binary file"]),
    "garbage": ("hello world\nnot a table\n", ["expected 'y' and 'x'"]),
    "ragged": ("frame,y,x\n0,1\n", ["line 2", "2 value(s)", "3 columns"]),
    "non_numeric": (
        "frame,y,x\n0,1,2\n0,1,abc\n",
        ["row 2 (line 3)", "column x", "'abc' is not a number"],
    ),
    "empty_cell": (
        "frame,y,x\n0,,2\n",
        ["row 1 (line 2)", "column y", "finite number"],
    ),
    "nan_cell": ("y,x\nnan,2\n", ["column y", "finite number"]),
    "napari_bad": ("index,axis-0,axis-1,axis-2\n0,0,zz,3\n", ["column axis-1", "'zz'"]),
    "four_d": ("index,axis-0,axis-1,axis-2,axis-3\n0,0,1,2,3\n", ["4-D points"]),
    "header_only": ("frame,y,x\n", ["no rows"]),
    "empty": ("", ["holds no picks"]),
    "duplicate": ("y,x,x\n1,2,3\n", ["more than once"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_picks_files(tmp_path, case):
    content, words = BAD[case]
    path = tmp_path / f"{case}.csv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(ValueError) as info:
        read_picks(path)
    message = str(info.value)
    assert path.name in message
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"


def test_missing_picks_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_picks(tmp_path / "nope.csv")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_picks_file_is_refused(tmp_path):
    fifo = tmp_path / "picks.csv"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="named pipe"):
        read_picks(fifo)


def test_good_layouts_still_read(tmp_path):
    ours = tmp_path / "ours.csv"
    ours.write_text("particle,frame,y,x,ok\n0,2,10.5,20,1\n1,0,3,4,0\n")
    assert np.allclose(read_picks(ours), [[2, 10.5, 20], [0, 3, 4]])
    assert np.allclose(read_picks(ours, only_ok=True), [[2, 10.5, 20]])
    napari_csv = tmp_path / "points.csv"
    napari_csv.write_text("index,axis-0,axis-1,axis-2\n0,1.0,5.0,6.0\n")
    assert np.allclose(read_picks(napari_csv), [[1, 5, 6]])
    plain = tmp_path / "plain.csv"
    plain.write_text("\ufeffY, X\n1,2\n")
    assert np.allclose(read_picks(plain), [[0, 1, 2]])
