"""ApplyOptions and AverageOptions: one definition of each option, the signatures read it, bad values are refused."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from napari_stackalign import FrameTransforms
from napari_stackalign.core.apply import (
    APPLY_DEFAULTS,
    ApplyOptions,
    WarpedFrames,
    apply_transforms,
    check_warp_options,
    warp_frame,
)
from napari_stackalign.core.average import AVERAGE_DEFAULTS, AverageOptions, average_frames
from napari_stackalign.core.frames import CHUNK_FRAMES


def _keyword_defaults(function):
    return {
        name: p.default
        for name, p in inspect.signature(function).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }


@pytest.mark.parametrize(
    "function, options",
    [(apply_transforms, ApplyOptions), (average_frames, AverageOptions)],
)
def test_public_signatures_are_the_options(function, options):
    """Every option is a keyword of the function with the options object's default, and options= exists."""
    keywords = _keyword_defaults(function)
    assert keywords.pop("options") is None
    assert {name: keywords[name] for name in options.specs()} == options.defaults()


@pytest.mark.parametrize("function", [warp_frame, WarpedFrames.__init__])
def test_warp_keywords_read_the_apply_defaults(function):
    keywords = _keyword_defaults(function)
    shared = set(keywords) & set(ApplyOptions.specs())
    assert shared >= {"order", "border", "cval", "output_dtype"}
    assert {name: keywords[name] for name in shared} == {name: APPLY_DEFAULTS.default(name) for name in shared}


def test_defaults_are_written_once():
    assert APPLY_DEFAULTS.chunk_size == AVERAGE_DEFAULTS.chunk_size == CHUNK_FRAMES
    assert APPLY_DEFAULTS.order == AVERAGE_DEFAULTS.order
    assert ApplyOptions.specs()["order"].help == AverageOptions.specs()["order"].help


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"order": 2}, r"order must be one of \[0, 1, 3\] \(0 nearest, 1 linear, 3 cubic\), got 2"),
        ({"order": 1.5}, "order must be an integer"),
        ({"border": "wrap"}, r"border must be one of \['constant', 'edge', 'nan', 'reflect'\], got 'wrap'"),
        ({"cval": "zero"}, "cval must be a number, got 'zero'"),
        ({"output_dtype": "pixels"}, "output_dtype must be a numpy dtype"),
        ({"chunk_size": 0}, "chunk_size must be a whole number of frames, at least 1, got 0"),
        ({"chunk_size": 2.5}, "chunk_size must be an integer"),
        ({"workers": 0}, "workers must be at least 1"),
    ],
)
def test_apply_options_refuse_bad_values(changes, match):
    with pytest.raises(ValueError, match=match):
        ApplyOptions(**changes)
    stack = np.zeros((2, 8, 8), np.float32)
    with pytest.raises(ValueError, match=match):
        apply_transforms(stack, FrameTransforms.identity(2), **changes)


def test_average_options_refuse_bad_values():
    with pytest.raises(ValueError, match=r"mode must be one of \('full', 'crop'\), got 'mean'"):
        AverageOptions(mode="mean")
    with pytest.raises(ValueError, match="order must be one of"):
        average_frames(np.zeros((2, 8, 8)), order=5)


def test_values_are_converted_and_nan_fill_is_allowed():
    opts = ApplyOptions(order=np.int64(3), cval=np.nan, output_dtype="uint16", chunk_size=8.0, workers=2)
    assert opts.order == 3 and np.isnan(opts.cval) and opts.output_dtype == np.dtype(np.uint16)
    assert opts.chunk_size == 8 and type(opts.chunk_size) is int


def test_check_warp_options_says_the_same():
    with pytest.raises(ValueError, match="order must be one of"):
        check_warp_options(2, "constant")
    with pytest.raises(ValueError, match="border must be one of"):
        check_warp_options(1, "wrap")


def test_options_and_keywords_give_the_same_result():
    rng = np.random.default_rng(0)
    stack = rng.random((5, 20, 24), dtype=np.float32)
    tf = FrameTransforms(dy=rng.normal(0, 2, 5), dx=rng.normal(0, 2, 5), angle=rng.normal(0, 3, 5), center=(9.5, 11.5))
    by_keywords = apply_transforms(stack, tf, order=3, border="edge", chunk_size=2)
    by_options = apply_transforms(stack, tf, options=ApplyOptions(order=3, border="edge", chunk_size=2))
    assert np.array_equal(by_keywords, by_options)
    # an explicit keyword that differs from its default replaces the option
    mixed = apply_transforms(stack, tf, options=ApplyOptions(order=3, border="edge"), border="nan")
    assert np.array_equal(mixed, apply_transforms(stack, tf, order=3, border="nan"), equal_nan=True)
    a = average_frames(stack, tf, mode="crop", order=3)
    b = average_frames(stack, tf, options=AverageOptions(mode="crop", order=3))
    assert np.array_equal(a.image, b.image) and a.crop == b.crop
    with pytest.raises(ValueError, match="options must be a ApplyOptions"):
        apply_transforms(stack, tf, options=AverageOptions())
