"""The options machinery: validation, help text, merging keywords with options=."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest

from napari_stackalign.core.options import Options, option


def _even(value: int) -> int:
    if value % 2:
        raise ValueError(f"count must be even, got {value}.")
    return value


@dataclass(frozen=True)
class Demo(Options):
    method: ClassVar[str] = "demo"

    count: int = option(4, "how many", kind="int", minimum=2, check=_even)
    ratio: float = option(0.5, "a fraction", kind="float", minimum=0, maximum=1, exclusive_minimum=True)
    flag: bool = option(False, "turn it on", kind="bool")
    mode: str = option("full", "how to average", kind="str", choices=("full", "crop"))
    limit: float | None = option(None, "an optional bound", kind="float", optional=True, minimum=0)
    weights: np.ndarray | None = option(None, "per-pixel weights", optional=True, compare=False)

    def check(self) -> None:
        if self.mode == "crop" and self.flag:
            raise ValueError("flag cannot be on with mode='crop'.")


def test_defaults_validate_and_describe_themselves():
    d = Demo()
    assert d.to_dict() == {"count": 4, "ratio": 0.5, "flag": False, "mode": "full", "limit": None, "weights": None}
    assert Demo.defaults()["ratio"] == 0.5 and Demo.default("mode") == "full"
    assert list(Demo.specs()) == ["count", "ratio", "flag", "mode", "limit", "weights"]
    assert Demo.help("ratio") == "a fraction (default 0.5; in (0, 1])."
    assert Demo.help("count") == "how many (default 4; of at least 2)."
    assert Demo.help("flag") == "turn it on (default off)."
    assert Demo.help("limit") == "an optional bound (of at least 0)."
    assert Demo.specs()["mode"].range_text() == "one of 'full', 'crop'"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"count": 1}, "count must be an integer of at least 2, got 1"),
        ({"count": 2.5}, "count must be an integer"),
        ({"count": True}, "count must be an integer"),
        ({"count": 3}, "count must be even"),
        ({"ratio": 0}, r"ratio must be a number in \(0, 1\], got 0.0"),
        ({"ratio": float("nan")}, "ratio must be a finite number"),
        ({"ratio": "abc"}, "ratio must be a number"),
        ({"flag": 2}, "flag must be True or False"),
        ({"mode": "middle"}, "mode must be one of 'full', 'crop', got 'middle'"),
        ({"mode": 3}, "mode must be text"),
        ({"limit": -1.0}, "limit must be a number of at least 0"),
        ({"ratio": None}, "ratio must be given"),
        ({"mode": "crop", "flag": True}, "flag cannot be on"),
    ],
)
def test_bad_values_name_the_option(changes, message):
    with pytest.raises(ValueError, match=message):
        Demo(**changes)


def test_values_are_converted_once():
    d = Demo(count=np.int64(6), ratio=1, flag=np.bool_(True), limit=3)
    assert type(d.count) is int and d.count == 6
    assert type(d.ratio) is float and type(d.limit) is float
    assert d.flag is True
    assert Demo(flag=1).flag is True and Demo(count=8.0).count == 8


def test_frozen_and_replace_validates_again():
    d = Demo()
    with pytest.raises(AttributeError):
        d.count = 6  # type: ignore[misc]
    assert d.replace(count=6).count == 6
    with pytest.raises(ValueError, match="count must be even"):
        d.replace(count=7)
    with pytest.raises(ValueError, match="unknown demo options"):
        d.replace(colour="red")


def test_arrays_are_kept_and_not_compared():
    w = np.ones((3, 3))
    d = Demo(weights=w)
    assert d.weights is w
    assert d == Demo(weights=np.zeros(2))  # compare=False: arrays never decide equality


def test_merge_keywords_that_differ_from_the_default_override_options():
    base = Demo(count=6, mode="crop")
    assert Demo.merge(None, count=8) == Demo(count=8)
    assert Demo.merge(base, **Demo.defaults()) is base
    merged = Demo.merge(base, **{**Demo.defaults(), "ratio": 0.25})
    assert (merged.count, merged.mode, merged.ratio) == (6, "crop", 0.25)
    with pytest.raises(ValueError, match="options must be a Demo"):
        Demo.merge({"count": 6}, **Demo.defaults())  # type: ignore[arg-type]


def test_from_call_picks_the_options_out_of_locals():
    defaults = Demo()

    def run(stack, *, count=defaults.count, ratio=defaults.ratio, flag=defaults.flag, mode=defaults.mode,
            limit=defaults.limit, weights=defaults.weights, options=None, progress=None):
        return Demo.from_call(options, locals())

    assert run(None) == Demo()
    assert run(None, count=10).count == 10
    got = run(None, options=Demo(mode="crop"), ratio=0.1)
    assert (got.mode, got.ratio) == ("crop", 0.1)
