"""PyramidOptions is the one definition of the pyramid options: the public
signatures read their defaults from it, it checks every value, and
``options=`` gives what the keywords give."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from napari_stackalign.core.pyramid import (
    DEFAULT_RATES,
    PYRAMID_DEFAULTS,
    PyramidOptions,
    register_and_apply,
    register_file,
    register_pyramid,
    register_pyramid_distributed,
    register_stack_to_file,
)
from napari_stackalign.core.smoothing import smooth_transforms
from napari_stackalign.io import read_stack, write_stack
from napari_stackalign.synthetic import make_stack

ENTRY_POINTS = [register_pyramid, register_and_apply, register_stack_to_file, register_file, register_pyramid_distributed]


@pytest.mark.parametrize("function", ENTRY_POINTS, ids=lambda f: f.__name__)
def test_signature_defaults_are_the_options_defaults(function):
    params = inspect.signature(function).parameters
    for name, default in PyramidOptions.defaults().items():
        assert name in params, f"{function.__name__} lacks {name}"
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY
        assert params[name].default == default, (function.__name__, name)
    assert params["options"].default is None


def test_defaults():
    assert PyramidOptions() == PYRAMID_DEFAULTS
    assert PYRAMID_DEFAULTS.downsample_rates == DEFAULT_RATES
    smoothing = inspect.signature(smooth_transforms).parameters
    assert smoothing["window_length"].default == PYRAMID_DEFAULTS.window_length
    assert smoothing["polyorder"].default == PYRAMID_DEFAULTS.polyorder


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_frames": 0}, "num_frames"),
        ({"num_frames": 2.5}, "num_frames"),
        ({"num_frames": True}, "num_frames"),
        ({"downsample_rates": []}, "downsample_rates is empty"),
        ({"downsample_rates": "1/8,1/4"}, "downsample_rates must be a sequence"),
        ({"downsample_rates": (0.5, "x")}, "downsample_rates must hold numbers"),
        ({"downsample_rates": (0, 1)}, r"downsample rate must be in \(0, 1\]"),
        ({"downsample_rates": (1 / 2, 1 / 4)}, "downsample_rates must increase"),
        ({"max_movement": 0}, r"max_movement must be a number in \(0, 1\]"),
        ({"max_movement": 1.5}, r"max_movement must be a number in \(0, 1\]"),
        ({"max_movement": float("nan")}, "max_movement must be a finite number"),
        ({"max_movement": "far"}, "max_movement must be a number"),
        ({"iterate": 0}, "iterate"),
        ({"smooth": "yes"}, "smooth must be True or False"),
        ({"window_length": 0}, "window_length"),
        ({"polyorder": -1}, "polyorder"),
        ({"smooth": True, "window_length": 4}, "window_length must be a positive odd number"),
        ({"smooth": True, "window_length": 5, "polyorder": 5}, r"polyorder \(5\) must be smaller than window_length"),
        ({"roi": (0, 10, 0)}, "roi must be four integers"),
        ({"roi": (0, 10.5, 0, 10)}, "roi must be four integers"),
        ({"roi": "rows"}, "roi must be four integers"),
        ({"normalize": 2}, "normalize must be True or False"),
        ({"kernel": "cubic"}, "kernel must be one of 'lagrange4', 'lagrange6', 'lagrange8'"),
        ({"kernel": 6}, "kernel must be text"),
        ({"chunk_size": 0}, "chunk_size"),
    ],
)
def test_bad_values_raise_value_error_naming_the_option(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PyramidOptions(**kwargs)


def test_values_are_converted():
    opts = PyramidOptions(downsample_rates=[0.25, 1], roi=[0, 32.0, 0, 32], num_frames=np.int64(7), smooth=1)
    assert opts.downsample_rates == (0.25, 1.0)
    assert opts.roi == (0, 32, 0, 32)
    assert opts.num_frames == 7 and type(opts.num_frames) is int
    assert opts.smooth is True
    # an even window is fine while smoothing is off (it is not used)
    assert PyramidOptions(window_length=4).window_length == 4


def test_merge_keywords_that_differ_from_the_default_override_options():
    given = PyramidOptions(num_frames=20, iterate=2, kernel="lagrange8")
    assert PyramidOptions.merge(given, **PyramidOptions.defaults()) is given
    merged = PyramidOptions.merge(given, **dict(PyramidOptions.defaults(), iterate=3, max_movement=0.25))
    assert merged == PyramidOptions(num_frames=20, iterate=3, kernel="lagrange8", max_movement=0.25)
    assert PyramidOptions.merge(None, **dict(PyramidOptions.defaults(), chunk_size=8)) == PyramidOptions(chunk_size=8)
    with pytest.raises(ValueError, match="options must be a PyramidOptions"):
        PyramidOptions.merge({"iterate": 2}, **PyramidOptions.defaults())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown pyramid options"):
        given.replace(sigma=2)


@pytest.fixture(scope="module")
def drift():
    stack, _ = make_stack("texture", n_frames=16, shape=(64, 72), drift=6, snr=3, dtype=np.uint16, seed=5)
    return stack


CHOSEN = {"num_frames": 8, "iterate": 2, "max_movement": 0.4, "kernel": "lagrange4", "chunk_size": 5, "roi": (4, 60, 2, 70), "downsample_rates": (0.25, 0.5, 1)}


def _same(a, b) -> None:
    for name in ("dy", "dx", "quality", "ok"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.params == b.params


def test_register_pyramid_options_equal_keywords(drift):
    by_keywords = register_pyramid(drift, **CHOSEN)
    _same(register_pyramid(drift, options=PyramidOptions(**CHOSEN)), by_keywords)
    # a keyword that differs from its default overrides the options
    _same(register_pyramid(drift, options=PyramidOptions(**dict(CHOSEN, iterate=1)), iterate=2), by_keywords)
    assert by_keywords.params["num_frames"] == 8 and by_keywords.params["kernel"] == "lagrange4"


def test_register_and_apply_options_equal_keywords(drift):
    by_keywords = register_and_apply(drift, **CHOSEN)
    by_options = register_and_apply(drift, options=PyramidOptions(**CHOSEN))
    _same(by_options.transforms, by_keywords.transforms)
    np.testing.assert_array_equal(by_options.data, by_keywords.data)
    _same(by_keywords.transforms, register_pyramid(drift, **CHOSEN))


def test_register_stack_to_file_options_equal_keywords(drift, tmp_path):
    by_keywords = register_stack_to_file(drift, tmp_path / "k.h5", **CHOSEN)
    by_options = register_stack_to_file(drift, tmp_path / "o.h5", options=PyramidOptions(**CHOSEN))
    _same(by_options.transforms, by_keywords.transforms)
    np.testing.assert_array_equal(read_stack(tmp_path / "o.h5").data[:], read_stack(tmp_path / "k.h5").data[:])


def test_register_file_options_equal_keywords(drift, tmp_path):
    write_stack(tmp_path / "in.h5", drift)
    by_keywords = register_file(tmp_path / "in.h5", tmp_path / "k.h5", **CHOSEN)
    by_options = register_file(tmp_path / "in.h5", tmp_path / "o.h5", options=PyramidOptions(**CHOSEN))
    _same(by_options, by_keywords)
    _same(by_keywords, register_pyramid(drift, **CHOSEN))
