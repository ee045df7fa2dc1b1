"""SimilarityOptions: one definition of each option, the public signatures built from it, its checks."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from napari_stackalign.core.similarity import (
    FALLBACKS,
    SCALE_LIMITS,
    SIMILARITY_DEFAULTS,
    TEMPLATES,
    SimilarityOptions,
    fill_failed,
    register_similarity,
)
from napari_stackalign.synthetic import make_stack
from napari_stackalign.transforms import FrameTransforms


def test_register_similarity_signature_matches_the_options():
    params = inspect.signature(register_similarity).parameters
    defaults = SimilarityOptions.defaults()
    for name, default in defaults.items():
        assert name in params, f"register_similarity lacks the option {name}"
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY
        assert params[name].default == default, name
    # every other keyword is not an option: the data, how the work runs, or the options object
    assert set(params) - set(defaults) == {"stack", "channel", "workers", "progress", "options"}
    assert params["options"].default is None


def test_fill_failed_default_is_the_options_default():
    assert inspect.signature(fill_failed).parameters["fallback"].default == SimilarityOptions.default("fallback")


def test_defaults_and_choices():
    opts = SimilarityOptions()
    assert opts == SIMILARITY_DEFAULTS
    assert opts.to_dict() == SimilarityOptions.defaults()
    assert SimilarityOptions.specs()["fallback"].choices == FALLBACKS
    assert opts.template in TEMPLATES and opts.fallback in FALLBACKS
    for name in SimilarityOptions.specs():
        assert SimilarityOptions.help(name)  # one line of help each
    assert "default middle" in SimilarityOptions.help("template")
    assert "in (0, 10]" in SimilarityOptions.help("sigma")


def test_values_are_converted_once():
    opts = SimilarityOptions(template=np.int64(3), angle_range=[-10, 20], scale_range=(0.9, 1.1), min_success=0)
    assert opts.template == 3 and type(opts.template) is int
    assert opts.angle_range == (-10.0, 20.0)
    assert opts.scale_range == (0.9, 1.1)
    assert opts.min_success == 0.0 and isinstance(opts.min_success, float)
    # a range of a full turn or more allows any angle
    assert SimilarityOptions(angle_range=(-180, 180)).angle_range is None
    assert SimilarityOptions(scale_range=SCALE_LIMITS).scale_range == SCALE_LIMITS


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"template": "median"}, r"template must be one of \('middle', 'first', 'mean'\) or a frame index"),
        ({"template": True}, "template must be one of"),
        ({"template": 1.5}, "template must be one of"),
        ({"angle_range": (10, -10)}, r"angle_range must be \(min, max\) with min <= max"),
        ({"angle_range": "30"}, r"angle_range must be a \(min, max\) pair of numbers"),
        ({"angle_range": (1, 2, 3)}, "pair of numbers"),
        ({"angle_range": (0, np.inf)}, "min <= max"),
        ({"scale_range": (0.2, 1.5)}, r"scale_range must lie within 0.5..2.0"),
        ({"scale_range": (-1, 1)}, "scale_range must hold positive scales"),
        ({"fallback": "zero"}, "fallback must be one of 'interpolate', 'identity', got 'zero'"),
        ({"min_success": 2.0}, r"min_success must be a number in \[-1, 1\], got 2.0"),
        ({"min_success": "high"}, "min_success must be a number"),
        ({"sigma": 0}, r"sigma must be a number in \(0, 10\], got 0"),
        ({"sigma": 12.0}, r"sigma must be a number in \(0, 10\]"),
        ({"refine": "yes"}, "refine must be True or False"),
        ({"chunk_size": 0}, "chunk_size must be an integer of at least 1, got 0"),
    ],
)
def test_validation_messages(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SimilarityOptions(**kwargs)


def test_replace_checks_again_and_knows_its_names():
    opts = SimilarityOptions(template="first")
    assert opts.replace(sigma=2.0).sigma == 2.0
    with pytest.raises(ValueError, match="sigma"):
        opts.replace(sigma=-1)
    with pytest.raises(ValueError, match="unknown similarity options"):
        opts.replace(channel=1)


def _same(a: FrameTransforms, b: FrameTransforms) -> bool:
    fields = ("angle", "scale", "dy", "dx", "quality", "ok")
    return all(np.array_equal(getattr(a, f), getattr(b, f), equal_nan=True) for f in fields) and a.params == b.params


@pytest.fixture(scope="module")
def stack():
    stack, _ = make_stack("texture", n_frames=6, shape=(96, 96), rotation=2.0, drift=3, snr=8, seed=4)
    return stack


def test_options_object_gives_the_same_result_as_keywords(stack):
    keywords = {"template": "first", "angle_range": (-20, 20), "scale_range": (0.9, 1.1), "min_success": 0.2,
                    "fallback": "identity", "sigma": 1.5, "chunk_size": 2}
    by_keywords = register_similarity(stack, workers=1, **keywords)
    by_options = register_similarity(stack, workers=1, options=SimilarityOptions(**keywords))
    assert _same(by_keywords, by_options)
    # a keyword that differs from its default overrides the options object
    mixed = register_similarity(stack, workers=1, sigma=1.5, options=SimilarityOptions(**{**keywords, "sigma": 1.0}))
    assert _same(mixed, by_keywords)
    assert register_similarity(stack, workers=1, options=SIMILARITY_DEFAULTS).params == register_similarity(
        stack, workers=1
    ).params


def test_bad_options_object(stack):
    with pytest.raises(ValueError, match="options must be a SimilarityOptions"):
        register_similarity(stack, options={"template": "first"})
