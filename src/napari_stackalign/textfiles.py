"""Reading the small files a user gives (transforms tables, picks, masks):
one wording for what is wrong and where.

Every function raises ``ValueError`` naming the file (and the line, row and
column where it applies), never a raw ``UnicodeDecodeError``, ``TypeError``
or ``AttributeError``; a missing file raises :class:`MissingFileError` (both a
``FileNotFoundError`` and a ``ValueError``).
"""

from __future__ import annotations

import csv
import math
import os
import stat
from pathlib import Path
from typing import Any

__all__ = [
    "CsvTable",
    "MissingFileError",
    "check_regular_file",
    "parse_number",
    "read_csv_table",
    "read_text_file",
]

#: Largest text file read (bytes): a table of a million frames is about 100 MB.
MAX_TEXT_BYTES = 1 << 30


class MissingFileError(FileNotFoundError, ValueError):
    """A file that does not exist: a ``FileNotFoundError`` that is also a
    ``ValueError`` (the readers' one kind of bad input)."""


def check_regular_file(path: str | os.PathLike, what: str = "file") -> Path:
    """``path`` as a Path, after checking that it is an existing regular file.

    A FIFO, socket or device (which could block forever or never end) and a
    folder are refused before anything opens them.

    Raises
    ------
    MissingFileError
        When nothing is at ``path`` (a ``FileNotFoundError`` and a ``ValueError``).
    ValueError
        When ``path`` is a folder or not a regular file.
    """
    path = Path(path).expanduser()
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise MissingFileError(
            f"cannot read {what} {path}: it does not exist; check the path."
        ) from None
    except OSError as exc:
        raise ValueError(f"cannot read {what} {path}: {exc.strerror or exc}.") from exc
    if stat.S_ISDIR(mode):
        raise ValueError(f"{path} is a folder, not a {what}.")
    if not stat.S_ISREG(mode):
        kind = (
            "a named pipe (FIFO)"
            if stat.S_ISFIFO(mode)
            else "a socket"
            if stat.S_ISSOCK(mode)
            else "a device"
            if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "a special file"
        )
        raise ValueError(
            f"{path} is {kind}, not a regular file: reading it could wait forever. "
            f"Give the {what} as an ordinary file."
        )
    return path


def read_text_file(path: str | os.PathLike, what: str = "file") -> str:
    """The text of a UTF-8 (or plain ASCII) file, with a clear error for a
    binary file, a wrong encoding, a FIFO or an unreadable file."""
    path = check_regular_file(path, what)
    try:
        size = path.stat().st_size
        if size > MAX_TEXT_BYTES:
            raise ValueError(
                f"{path} is {size / 1e9:.1f} GB: too large for a {what}; is it the right file?"
            )
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read {what} {path}: {exc.strerror or exc}.") from exc
    if b"\x00" in data[:65536]:
        raise ValueError(
            f"{path} is a binary file, not a text {what}: is it the right file?"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        # a legacy 8-bit text (accented names): latin-1 decodes every byte
        if _looks_latin1(data):
            return data.decode("latin-1")
        line = data[: exc.start].count(b"\n") + 1
        raise ValueError(
            f"{path} is not a text {what} (undecodable bytes on line {line}): is it the right file? "
            "Save it as UTF-8 text."
        ) from None


def _looks_latin1(data: bytes) -> bool:
    """Text in a legacy 8-bit encoding (accented names) rather than binary data."""
    controls = sum(1 for b in data[:65536] if b < 32 and b not in (9, 10, 13))
    return controls == 0


def parse_number(value: Any, where: str) -> float:
    """``value`` (a table cell or a JSON item) as a float; empty, ``nan`` and
    None give NaN. ``where`` names the place for the message
    (``"t.csv, row 7 (line 9), column dx"``)."""
    if value is None:
        return math.nan
    if isinstance(value, bool):
        raise ValueError(f"{where}: {value!r} is not a number.")  # noqa: TRY004 - bad values raise ValueError (house rule)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if text == "" or text.lower() == "nan":
            return math.nan
        try:
            return float(text)
        except ValueError:
            pass
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    raise ValueError(f"{where}: {shown} is not a number.")


class CsvTable:
    """A CSV table: its column names, and each data row with its line number.

    Attributes
    ----------
    path : Path
    columns : list of str
        Header names, stripped.
    rows : list of (int, list of str)
        ``(line number in the file, cells)`` for every data row; every row has
        exactly ``len(columns)`` cells.
    """

    def __init__(
        self, path: Path, columns: list[str], rows: list[tuple[int, list[str]]]
    ) -> None:
        self.path = path
        self.columns = columns
        self.rows = rows

    def where(self, index: int, column: str) -> str:
        """``"t.csv, row 7 (line 9), column dx"`` for data row ``index`` (0-based)."""
        return f"{self.path.name}, row {index + 1} (line {self.rows[index][0]}), column {column}"

    def numbers(self, column: str) -> list[float]:
        """The column as floats (a clear error naming the first bad cell)."""
        j = self.columns.index(column)
        return [
            parse_number(cells[j], self.where(i, column))
            for i, (_, cells) in enumerate(self.rows)
        ]

    def texts(self, column: str) -> list[str]:
        j = self.columns.index(column)
        return [cells[j] for _, cells in self.rows]


def read_csv_table(path: Path, lines: list[tuple[int, str]], what: str) -> CsvTable:
    """Parse ``(line number, text)`` lines (comments already removed) as a CSV
    table with a header row; ragged rows and duplicate columns are refused."""
    if not lines:
        raise ValueError(f"{path} holds no table: is it a {what}?")
    try:
        parsed = [
            (num, row)
            for (num, _), row in zip(lines, csv.reader([text for _, text in lines]))
        ]
    except csv.Error as exc:
        raise ValueError(f"{path} is not a readable CSV {what}: {exc}.") from exc
    header_line, header = parsed[0]
    columns = [c.strip() for c in header]
    dupes = sorted({c for c in columns if columns.count(c) > 1 and c})
    if dupes:
        raise ValueError(
            f"{path}, line {header_line}: column(s) {', '.join(dupes)} appear more than once."
        )
    rows = []
    for num, cells in parsed[1:]:
        if len(cells) != len(columns):
            raise ValueError(
                f"{path.name}, line {num}: {len(cells)} value(s) but the header (line {header_line}) has "
                f"{len(columns)} columns ({', '.join(columns)}): every row needs one value per column."
            )
        rows.append((num, cells))
    return CsvTable(path, columns, rows)
