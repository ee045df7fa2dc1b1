"""Safe parsing of user-typed rates and ROIs (never eval)."""

from __future__ import annotations

import pytest

from napari_stackalign.parsing import (
    format_downsample_rates,
    parse_downsample_rates,
    parse_roi,
)


@pytest.mark.parametrize(
    "text",
    [
        "[1/8,1/4,1/2,1]",
        "1/8,1/4,1/2,1",
        "0.125,0.25,0.5,1",
        "(1/8, 1/4, 0.5, 1)",
        " [0.125 0.25 1/2 1] ",
        "1/8;1/4;1/2;1",
    ],
)
def test_rate_syntaxes(text):
    assert parse_downsample_rates(text) == (0.125, 0.25, 0.5, 1.0)


def test_rates_keep_order_and_format_back():
    assert parse_downsample_rates("1e-1, 1") == (0.1, 1.0)
    assert format_downsample_rates((0.125, 0.25, 0.5, 1.0)) == "1/8, 1/4, 1/2, 1"
    assert parse_downsample_rates(format_downsample_rates((1 / 3, 2 / 3, 1))) == pytest.approx((1 / 3, 2 / 3, 1))


@pytest.mark.parametrize(
    "text, match",
    [
        ("", "empty"),
        ("[]", "empty"),
        ("[1/8,abc]", "not a number or fraction"),
        ("__import__('os').getcwd()", "not a number or fraction"),
        ("1/0", "not a number or fraction"),
        ("0,1", "outside"),
        ("-1/2,1", "outside"),
        ("2", "outside"),
    ],
)
def test_bad_rates(text, match):
    with pytest.raises(ValueError, match=match):
        parse_downsample_rates(text)


def test_roi():
    assert parse_roi("40,290,0,325") == (40, 290, 0, 325)
    assert parse_roi("[1, 5, 2, 9]") == (1, 5, 2, 9)
    for bad, match in [
        ("1,2,3", "four integers"),
        ("a,b,c,d", "four integers"),
        ("1.5,4,0,4", "four integers"),
        ("5,2,0,4", "empty or negative"),
        ("-1,2,0,4", "empty or negative"),
    ]:
        with pytest.raises(ValueError, match=match):
            parse_roi(bad)
