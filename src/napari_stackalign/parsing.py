"""Parse user-typed parameters (CLI flags, widget text fields) safely.

Nothing here evaluates code: numbers are read with :class:`fractions.Fraction`,
which understands ``1/8``, ``0.125``, ``1`` and ``1e-1`` and nothing else.
"""

from __future__ import annotations

import math
import numbers
import re
from fractions import Fraction

__all__ = [
    "format_downsample_rates",
    "parse_byte_size",
    "parse_downsample_rates",
    "parse_index_list",
    "parse_roi",
]

_SPLIT = re.compile(r"[,\s;]+")


def parse_downsample_rates(text: str) -> tuple[float, ...]:
    """Read a list of pyramid downsampling rates.

    Accepts the reference tool's syntax ``[1/8,1/4,1/2,1]`` and the plain
    forms ``1/8,1/4,1/2,1``, ``0.125, 0.25 0.5 1`` or ``(0.5, 1)``.

    Parameters
    ----------
    text : str
        The rates, separated by commas, semicolons or spaces, optionally in
        brackets or parentheses.

    Returns
    -------
    tuple of float
        The rates in the order given (each in (0, 1]).

    Raises
    ------
    ValueError
        If the text is empty, holds anything but numbers and fractions, or a
        rate is not in (0, 1].
    """
    body = str(text).strip()
    if len(body) >= 2 and body[0] + body[-1] in ("[]", "()"):
        body = body[1:-1]
    tokens = [t for t in _SPLIT.split(body.strip()) if t]
    if not tokens:
        raise ValueError(f"downsample rates {text!r} are empty: give rates in (0, 1] such as [1/8,1/4,1/2,1].")
    rates = []
    for token in tokens:
        try:
            value = Fraction(token)
        except (ValueError, ZeroDivisionError):
            raise ValueError(
                f"downsample rate {token!r} in {text!r} is not a number or fraction: "
                "write rates like [1/8,1/4,1/2,1] or 0.125,0.25,0.5,1."
            ) from None
        if not 0 < value <= 1:
            raise ValueError(
                f"downsample rate {token} is outside (0, 1]: each rate is a fraction of the full size "
                "(1 = full resolution, 1/8 = an eighth)."
            )
        rates.append(float(value))
    return tuple(rates)


def format_downsample_rates(rates: tuple[float, ...] | list[float]) -> str:
    """The rates as short fractions, e.g. ``"1/8, 1/4, 1/2, 1"``."""
    return ", ".join(str(Fraction(float(r)).limit_denominator(1024)) for r in rates)


def parse_roi(text: str) -> tuple[int, int, int, int]:
    """Read ``r0,r1,c0,c1`` (row start/stop, column start/stop) as integers.

    Raises
    ------
    ValueError
        Unless there are exactly four non-negative integers with
        ``r0 < r1`` and ``c0 < c1``.
    """
    tokens = [t for t in _SPLIT.split(str(text).strip().strip("[]()")) if t]
    try:
        values = tuple(int(t) for t in tokens)
    except ValueError:
        values = ()
    if len(values) != 4:
        raise ValueError(
            f"ROI {text!r} must be four integers row_start,row_stop,col_start,col_stop (e.g. 40,290,0,325)."
        )
    r0, r1, c0, c1 = values
    if min(values) < 0 or r0 >= r1 or c0 >= c1:
        raise ValueError(
            f"ROI {text!r} is empty or negative: it needs 0 <= row_start < row_stop and 0 <= col_start < col_stop."
        )
    return values


def parse_index_list(
    text: str | None,
    *,
    what: str = "frames",
    noun: str = "frame numbers",
    example: str = "3, 7, 12",
    count: int | None = None,
    allow_empty: bool = True,
) -> list[int]:
    """Indices (frames, particles) typed as ``"3, 7, 12"``: sorted, without repeats.

    Commas, semicolons and spaces separate the numbers.

    Parameters
    ----------
    text : str or None
        What the user typed; None or blank means none.
    what : str
        Where the numbers were typed, for the messages ("bad frames", "--holdout").
    noun : str
        What the numbers are ("frame numbers", "particle numbers").
    example : str
        An example shown in the messages.
    count : int, optional
        How many items there are: every index must be in ``0 .. count - 1``.
    allow_empty : bool
        False: naming nothing is an error.

    Returns
    -------
    list of int

    Raises
    ------
    ValueError
        For anything that is not whole numbers, negative numbers, numbers
        outside ``0 .. count - 1``, or an empty list when ``allow_empty`` is False.
    """
    items = [t for t in _SPLIT.split(str(text or "").strip()) if t]
    try:
        values = sorted({int(t) for t in items})
    except ValueError as exc:
        raise ValueError(f"{what}: expected {noun} separated by commas, e.g. {example}; got {text!r}.") from exc
    if not values and not allow_empty:
        raise ValueError(f"{what} names nothing: give {noun} like {example}.")
    if values and values[0] < 0:
        raise ValueError(f"{what}: {noun} start at 0, got {text!r}.")
    if count is not None:
        outside = [v for v in values if v >= count]
        if outside:
            raise ValueError(f"{what} {outside} are outside the stack (0..{count - 1}).")
    return values


#: the units a byte size may be written in (decimal k/M/G/T, binary KiB/MiB/GiB/TiB)
_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
          "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_byte_size(value: float | str, *, what: str = "size") -> int:
    """Bytes from ``value``: a number of bytes or a text such as ``"2GB"``, ``"512 MiB"``.

    Raises
    ------
    ValueError
        For anything else, or a value that is not positive.
    """
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        digits = text.rstrip("abcdefghijklmnopqrstuvwxyz")
        unit = text[len(digits):]
        if unit not in _UNITS or not digits:
            raise ValueError(
                f"{what} {value!r} is not understood: give bytes or a number with a unit "
                "(B, kB, MB, GB, TB, KiB, MiB, GiB, TiB), e.g. '2GB'."
            )
        try:
            number = float(digits) * _UNITS[unit]
        except ValueError as exc:
            raise ValueError(f"{what} {value!r} is not understood: use e.g. '2GB' or 2e9.") from exc
    else:
        # house rule: a bad value, whatever its type, raises ValueError
        raise ValueError(f"{what} must be a number of bytes or a text like '2GB', got {value!r}.")  # noqa: TRY004
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"{what} must be positive, got {value!r}.")
    return int(number)
