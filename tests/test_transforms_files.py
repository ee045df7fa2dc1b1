"""Bad transforms files (CSV and JSON): every kind ends in a ValueError that
names the file (and the row, line and column where it applies), never a raw
UnicodeDecodeError, AttributeError, TypeError or JSONDecodeError."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from napari_stackalign import FrameTransforms
from napari_stackalign.textfiles import MissingFileError

GOOD = FrameTransforms(
    dy=[0.0, 1.5, -2.0],
    dx=[0.5, 0.0, 3.0],
    ok=[True, True, False],
    reason=["", "", "blurred"],
)

# name -> (file text or bytes, words the message must hold besides the file name)
BAD_CSV = {
    "garbage": ("hello world\nthis is not a table\n", ["no 'dy' and 'dx' columns"]),
    "binary": (bytes(range(256)) * 8, ["binary file"]),
    "latin1_garbage": (
        "caf\xe9,na\xefve\n1,2\n".encode("latin-1"),
        ["no 'dy' and 'dx'"],
    ),
    "ragged_short": (
        "frame,dy,dx\n0,1,2\n1,2\n",
        ["line 3", "2 value(s)", "3 columns"],
    ),
    "ragged_long": ("frame,dy,dx\n0,1,2\n1,2,3,4,5\n", ["line 3", "5 value(s)"]),
    "non_numeric": (
        "frame,dy,dx\n0,1,2\n1,2,3\n2,3,4\n3,4,5\n4,5,6\n5,6,7\n6,abc,8\n",
        ["row 7", "column dy", "'abc' is not a number"],
    ),
    "non_numeric_dx": (
        "# a comment\nframe,dy,dx\n0,1,x1\n",
        ["row 1 (line 3)", "column dx", "'x1'"],
    ),
    "missing_columns": ("frame,a,b\n0,1,2\n", ["no 'dy' and 'dx'", "'a'"]),
    "only_dy": ("frame,dy\n0,1\n", ["no 'dy' and 'dx'"]),
    "empty": ("", ["holds no table"]),
    "comments_only": ("# center=[0, 0]\n# params={}\n", ["holds no table"]),
    "header_only": ("frame,dy,dx\n", ["no rows"]),
    "bad_ok": ("dy,dx,ok\n0,1,maybe\n", ["column ok", "'maybe'"]),
    "bad_center_comment": (
        "# center=[1,\ndy,dx\n0,1\n",
        ["line 1", "center=", "not valid JSON"],
    ),
    "center_not_pair": ("# center=[1, 2, 3]\ndy,dx\n0,1\n", ["(row, col) pair"]),
    "params_not_object": ("# params=[1]\ndy,dx\n0,1\n", ["params=", "JSON object"]),
    "duplicate_column": ("dy,dx,dx\n0,1,2\n", ["more than once", "dx"]),
    "nan_on_ok_frame": ("dy,dx,ok\n0,nan,1\n", ["NaN", "ok=False"]),
    "inf": ("dy,dx\n0,inf\n", ["infinite"]),
}

BAD_JSON = {
    "not_json": ("{not json", ["not valid JSON", "line 1, column 2"]),
    "truncated": (GOOD.to_json()[:40], ["not valid JSON"]),
    "a_list": ("[1, 2, 3]", ["a JSON list", "'dy' and 'dx'"]),
    "a_number": ("42", ["int", "not a transforms dictionary"]),
    "a_string": ('"dy"', ["str", "not a transforms dictionary"]),
    "binary": (bytes(range(256)), ["binary file"]),
    "dy_string": ('{"dy": "abc", "dx": [1]}', ["'dy'", "list of numbers"]),
    "dy_number": ('{"dy": 5, "dx": 3}', ["'dy'", "single number"]),
    "dy_dict": ('{"dy": {"a": 1}, "dx": [1]}', ["'dy'", "dict"]),
    "item_not_number": (
        '{"dy": [0, "a"], "dx": [1, 2]}',
        ["'dy' item 1", "'a' is not a number"],
    ),
    "item_bool": ('{"dy": [0, true], "dx": [1, 2]}', ["'dy' item 1", "True"]),
    "item_list": ('{"dy": [0, [1]], "dx": [1, 2]}', ["'dy' item 1", "[1]"]),
    "missing_dx": ('{"dy": [1, 2]}', ["no 'dx'"]),
    "missing_both": (
        '{"format": "napari-stackalign transforms"}',
        ["no 'dy' and 'dx'"],
    ),
    "dy_null": ('{"dy": null, "dx": [1]}', ["not null"]),
    "lengths": ('{"dy": [1, 2], "dx": [1, 2, 3]}', ["'dx' has 3 values", "'dy' has 2"]),
    "ok_not_list": (
        '{"dy": [1], "dx": [1], "ok": "yes"}',
        ["'ok'", "list of true/false"],
    ),
    "ok_bad_item": (
        '{"dy": [1], "dx": [1], "ok": ["perhaps"]}',
        ["'ok' item 0", "'perhaps'"],
    ),
    "center_bad": (
        '{"dy": [1], "dx": [1], "center": "middle"}',
        ["'center'", "(row, col) pair"],
    ),
    "center_item": (
        '{"dy": [1], "dx": [1], "center": [1, "a"]}',
        ["'center'", "'a' is not a number"],
    ),
    "params_list": ('{"dy": [1], "dx": [1], "params": [1]}', ["'params'", "list"]),
    "reason_number": ('{"dy": [1], "dx": [1], "reason": 3}', ["'reason'", "int"]),
    "nan_on_ok": ('{"dy": [null], "dx": [1], "ok": [true]}', ["NaN", "ok=False"]),
}

RAW_ERRORS = (
    UnicodeDecodeError,
    AttributeError,
    TypeError,
    KeyError,
    IndexError,
    json.JSONDecodeError,
)


def _write(path, content):
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def _check_message(exc: BaseException, name: str, words: list[str]) -> None:
    message = str(exc)
    assert not isinstance(exc, RAW_ERRORS) or isinstance(exc, MissingFileError), repr(
        exc
    )
    assert name in message, message
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"


@pytest.mark.parametrize("case", sorted(BAD_CSV))
def test_bad_csv_tables(tmp_path, case):
    content, words = BAD_CSV[case]
    path = _write(tmp_path / f"{case}.csv", content)
    for read in (FrameTransforms.load, FrameTransforms.from_csv):
        with pytest.raises(ValueError) as info:
            read(path)
        _check_message(info.value, path.name, words)


@pytest.mark.parametrize("case", sorted(BAD_JSON))
def test_bad_json_files(tmp_path, case):
    content, words = BAD_JSON[case]
    path = _write(tmp_path / f"{case}.json", content)
    for read in (FrameTransforms.load, FrameTransforms.from_json):
        with pytest.raises(ValueError) as info:
            read(path)
        _check_message(info.value, path.name, words)


def test_the_exact_wording_of_a_bad_cell(tmp_path):
    path = _write(
        tmp_path / "transforms.csv",
        "frame,dy,dx\n" + "".join(f"{i},0,0\n" for i in range(6)) + "6,0,abc\n",
    )
    with pytest.raises(
        ValueError,
        match=r"^transforms\.csv, row 7 \(line 8\), column dx: 'abc' is not a number\.$",
    ):
        FrameTransforms.load(path)


def test_bad_dictionaries_name_their_source():
    with pytest.raises(ValueError, match="transforms holds a JSON list"):
        FrameTransforms.from_dict([1, 2])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^layer metadata, 'dy' item 0"):
        FrameTransforms.from_dict({"dy": ["x"], "dx": [0]}, source="layer metadata")


def test_json_text_errors_say_json_text():
    with pytest.raises(ValueError, match="the JSON text is not valid JSON"):
        FrameTransforms.from_json('{"dy": [1, }')


def test_missing_file_is_both_file_not_found_and_value_error(tmp_path):
    for name in ("missing.csv", "missing.json"):
        with pytest.raises(FileNotFoundError, match="does not exist"):
            FrameTransforms.load(tmp_path / name)
        with pytest.raises(ValueError, match=name):
            FrameTransforms.load(tmp_path / name)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
@pytest.mark.parametrize("name", ["t.csv", "t.json"])
def test_a_fifo_is_refused_without_blocking(tmp_path, name):
    fifo = tmp_path / name
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="named pipe"):
        FrameTransforms.load(fifo)


@pytest.mark.parametrize("name", ["t.csv", "t.json"])
def test_a_folder_is_refused(tmp_path, name):
    (tmp_path / name).mkdir()
    with pytest.raises(ValueError, match="is a folder"):
        FrameTransforms.load(tmp_path / name)


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_good_tables_still_round_trip(tmp_path, suffix):
    path = GOOD.save(tmp_path / f"t{suffix}")
    back = FrameTransforms.load(path)
    assert np.array_equal(back.dy, GOOD.dy) and np.array_equal(back.dx, GOOD.dx)
    assert list(back.ok) == list(GOOD.ok)
    assert list(back.reason) == list(GOOD.reason)


def test_plain_tables_with_utf8_bom_crlf_and_spaces(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(
        "\ufeffframe, dy , dx,ok\r\n0, 1.5, -2,true\r\n1,2,3,0\r\n".encode()
    )
    ft = FrameTransforms.load(path)
    assert np.allclose(ft.dy, [1.5, 2]) and np.allclose(ft.dx, [-2, 3])
    assert list(ft.ok) == [True, False]
