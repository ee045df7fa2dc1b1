"""textfiles: the shared reading of user files (regular-file check, text
decoding, numbers with their place, CSV tables with ragged rows refused)."""

from __future__ import annotations

import math
import os
import socket

import pytest

from napari_stackalign.textfiles import (
    MissingFileError,
    check_regular_file,
    parse_number,
    read_csv_table,
    read_text_file,
)


def test_regular_file_checks(tmp_path):
    good = tmp_path / "a.txt"
    good.write_text("x")
    assert check_regular_file(good) == good
    with pytest.raises(MissingFileError, match="does not exist"):
        check_regular_file(tmp_path / "nope.txt", "table")
    with pytest.raises(ValueError, match="is a folder"):
        check_regular_file(tmp_path, "table")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_and_socket_refused(tmp_path):
    os.mkfifo(tmp_path / "p")
    with pytest.raises(ValueError, match="named pipe"):
        read_text_file(tmp_path / "p")
    if hasattr(socket, "AF_UNIX") and len(str(tmp_path / "s")) < 100:
        sock = socket.socket(socket.AF_UNIX)
        try:
            sock.bind(str(tmp_path / "s"))
            with pytest.raises(ValueError, match="a socket"):
                read_text_file(tmp_path / "s")
        finally:
            sock.close()


def test_device_refused():
    if not os.path.exists("/dev/null"):
        pytest.skip("no /dev/null")
    with pytest.raises(ValueError, match="a device"):
        read_text_file("/dev/null")


def test_text_decoding(tmp_path):
    p = tmp_path / "t.csv"
    p.write_bytes("\ufeffé,1\n".encode())
    assert read_text_file(p) == "é,1\n"
    p.write_bytes("caf\xe9\n".encode("latin-1"))
    assert read_text_file(p) == "café\n"
    p.write_bytes(b"ok\n\x01\x02\xff\xfe\n")
    with pytest.raises(ValueError, match="undecodable bytes on line 2"):
        read_text_file(p, "picks file")
    p.write_bytes(b"a\x00b")
    with pytest.raises(ValueError, match="binary file"):
        read_text_file(p)


def test_parse_number():
    assert parse_number(" 1.5 ", "here") == 1.5
    assert parse_number(3, "here") == 3.0
    assert math.isnan(parse_number("", "here")) and math.isnan(
        parse_number(None, "here")
    )
    assert math.isnan(parse_number("NaN", "here"))
    assert parse_number("-inf", "here") == -math.inf
    for bad in ("abc", True, [1], {"a": 1}, "1,5"):
        with pytest.raises(
            ValueError, match=r"^t\.csv, row 1, column dx: .* is not a number\.$"
        ):
            parse_number(bad, "t.csv, row 1, column dx")
    with pytest.raises(ValueError, match=r"\.\.\. is not a number"):
        parse_number("x" * 100, "here")


def test_csv_table(tmp_path):
    path = tmp_path / "t.csv"
    table = read_csv_table(path, [(2, "a, b"), (3, "1,2"), (5, "3,x")], "table")
    assert table.columns == ["a", "b"]
    assert table.numbers("a") == [1.0, 3.0]
    with pytest.raises(
        ValueError, match=r"t\.csv, row 2 \(line 5\), column b: 'x' is not a number"
    ):
        table.numbers("b")
    with pytest.raises(ValueError, match="line 3: 1 value"):
        read_csv_table(path, [(1, "a,b"), (3, "1")], "table")
    with pytest.raises(ValueError, match="holds no table"):
        read_csv_table(path, [], "table")
