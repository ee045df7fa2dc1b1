"""PairwiseOptions: one definition of each option, the public signatures read
from it, its validation messages, and options= doing what the keywords do."""

import inspect
from dataclasses import replace

import numpy as np
import pytest

from napari_stackalign.core.pairwise import (
    PAIRWISE_DEFAULTS,
    PairwiseOptions,
    PairwiseResult,
    fourier_mask,
    mask_preview,
    register_pairwise,
)
from napari_stackalign.core.pairwise._gaussfit import fit_peak_gaussians
from napari_stackalign.core.pairwise._options import FIXED_MASK_DEFAULT
from napari_stackalign.core.pairwise._outliers import transitivity_scores
from napari_stackalign.synthetic import stem_stack

#: parameters of register_pairwise that are not options (the data, threads, progress, the object itself)
NOT_OPTIONS = {"stack", "workers", "progress", "options"}


def _defaults(func, rename=None):
    """``{option name: default}`` of the keyword parameters of ``func`` that are options."""
    rename = rename or {}
    out = {}
    for name, par in inspect.signature(func).parameters.items():
        key = rename.get(name, name)
        if key in PairwiseOptions.specs():
            out[key] = par.default
    return out


def test_register_pairwise_signature_is_the_options():
    params = inspect.signature(register_pairwise).parameters
    assert set(params) - NOT_OPTIONS == set(PairwiseOptions.specs())
    assert list(_defaults(register_pairwise)) == list(PairwiseOptions.specs())  # same order
    assert _defaults(register_pairwise) == PairwiseOptions.defaults()
    assert all(params[name].kind is inspect.Parameter.KEYWORD_ONLY for name in PairwiseOptions.specs())


@pytest.mark.parametrize(
    "func, rename, names",
    [
        (mask_preview, {}, {"mask", "n", "n2", "theta", "correlation"}),
        (fourier_mask, {"kind": "mask"}, {"mask", "n", "n2", "theta"}),
        (transitivity_scores, {}, {"maxpaths"}),
        (fit_peak_gaussians, {}, {"sigma_guess"}),
        (PairwiseResult.with_average, {}, {"registered"}),
    ],
)
def test_other_signatures_read_the_same_defaults(func, rename, names):
    found = _defaults(func, rename)
    if func is PairwiseResult.with_average:
        found.pop("average")  # None there means "the result's own method"
    if func is fourier_mask:
        # fourier_mask makes the fixed kinds; the option's default "auto" needs a stack
        assert found.pop("mask") == FIXED_MASK_DEFAULT != PairwiseOptions.default("mask") == "auto"
        names = names - {"mask"}
    assert set(found) == names
    assert found == {name: PairwiseOptions.default(name) for name in names}


def test_defaults_object_and_help():
    assert PAIRWISE_DEFAULTS == PairwiseOptions()
    assert PairwiseOptions.default("n") == 4.0 and PairwiseOptions.default("threshold") == 2.0
    assert "default 2" in PairwiseOptions.help("threshold") and "(0, 1e+06]" in PairwiseOptions.help("threshold")
    assert "in [1, 20]" in PairwiseOptions.help("num_peaks")
    assert "default none" in PairwiseOptions.help("bad_frames")
    for name, spec in PairwiseOptions.specs().items():
        assert spec.help and "\n" not in spec.help, name


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"mask": "cosine"}, "mask kind must be one of"),
        ({"mask": "user"}, "pass the \\(centred\\) mask array itself"),
        ({"mask": np.ones(5)}, "or a centred 2-D array"),
        ({"n": 0.5}, "n must be a number of at least 1"),
        ({"n": "four"}, "n must be a number"),
        ({"n2": 0}, "n2 must be a number of at least 1"),
        ({"theta": float("inf")}, "theta must be a finite number"),
        ({"correlation": "xc"}, "correlation must be one of 'cc', 'mc', 'pc', got 'xc'"),
        ({"maxima": "max"}, "maxima must be one of 'newton', 'pixel', 'gf', 'dft'"),
        ({"num_peaks": 0}, "num_peaks must be an integer in \\[1, 20\\], got 0"),
        ({"num_peaks": 2.5}, "num_peaks must be an integer"),
        ({"sigma_guess": 0}, "sigma_guess must be a number in \\(0, 100\\]"),
        ({"window_radius": 51}, "window_radius must be an integer in \\[2, 50\\]"),
        ({"upsample": 0}, "upsample must be an integer in \\[1, 1000\\]"),
        ({"threshold": 0}, "threshold must be a number in \\(0, 1e\\+06\\]"),
        ({"maxpaths": True}, "maxpaths must be an integer"),
        ({"max_shift": float("nan")}, "max_shift must be a finite number"),
        ({"bad_frames": ["a"]}, "bad_frames must be a list of frame indices"),
        ({"bad_frames": 3}, "bad_frames must be a list of frame indices"),
        ({"weights": "snr"}, "weights must be one of 'quality', 'equal'"),
        ({"average": "median"}, "average must be one of 'fourier', 'warp'"),
        ({"registered": "yes"}, "registered must be True or False"),
    ],
)
def test_validation_messages(changes, match):
    with pytest.raises(ValueError, match=match):
        PairwiseOptions(**changes)
    with pytest.raises(ValueError, match=match):
        PAIRWISE_DEFAULTS.replace(**changes)


def test_values_are_converted_once():
    opts = PairwiseOptions(mask="hann", n=2, num_peaks=4.0, bad_frames=[7, 2, 2], threshold=None, registered=1)
    assert opts.n == 2.0 and isinstance(opts.n, float)
    assert opts.num_peaks == 4 and isinstance(opts.num_peaks, int)
    assert opts.bad_frames == (2, 7) and opts.threshold is None and opts.registered is True
    assert PairwiseOptions(bad_frames=None).bad_frames == ()  # None reads as no bad frames
    assert PairwiseOptions(mask="EG").mask == "EG"  # kept as given; the mask resolves the alias
    with pytest.raises(ValueError, match="unknown pairwise options"):
        PAIRWISE_DEFAULTS.replace(sigma=1)


def test_user_mask_arrays_compare_by_value():
    a = fourier_mask((32, 32), "hann", 2, centered=True)
    assert PairwiseOptions(mask=a) == PairwiseOptions(mask=a.copy())
    assert PairwiseOptions(mask=a) != PairwiseOptions(mask=2 * a)
    assert PairwiseOptions(mask=a) != PAIRWISE_DEFAULTS
    assert PairwiseOptions(mask="none") != PAIRWISE_DEFAULTS


@pytest.fixture(scope="module")
def stack():
    return stem_stack(6, (64, 64), snr=2.0, seed=2)[0]


def _same_result(a, b):
    for key in ("dy", "dx", "quality", "outliers", "valid", "average"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key), err_msg=key)
    np.testing.assert_array_equal(a.shifts, b.shifts)
    assert a.params == b.params and a.options == b.options


def test_options_give_the_result_of_the_keywords(stack):
    keywords = {"n": 2.0, "maxima": "dft", "upsample": 10, "threshold": 1.5, "bad_frames": [4], "weights": "equal"}
    by_keywords = register_pairwise(stack, workers=1, **keywords)
    by_options = register_pairwise(stack, workers=1, options=PairwiseOptions(**keywords))
    _same_result(by_keywords, by_options)
    assert by_options.options == PairwiseOptions(**keywords)
    # keywords given with options= replace its values
    mixed = register_pairwise(stack, workers=1, options=PairwiseOptions(**{**keywords, "upsample": 50}), upsample=10)
    _same_result(by_keywords, mixed)
    with pytest.raises(ValueError, match="options must be a PairwiseOptions"):
        register_pairwise(stack, options={"n": 2})


def test_preview_reads_the_same_options(stack):
    opts = PairwiseOptions(mask="bandpass", n=3, correlation="mc")
    a = mask_preview(stack[0], stack[1], options=opts)
    b = mask_preview(stack[0], stack[1], mask="bandpass", n=3, correlation="mc")
    np.testing.assert_array_equal(a.correlation, b.correlation)
    np.testing.assert_array_equal(a.mask, b.mask)


def test_reevaluate_starts_from_the_result_options(stack):
    res = register_pairwise(stack, mask="hann", n=2, threshold=1.0, maxpaths=3, workers=1)
    strict = res.reevaluate(weights="equal")
    assert strict.options == res.options.replace(weights="equal")
    assert (strict.params["threshold"], strict.params["maxpaths"], strict.params["weights"]) == (1.0, 3, "equal")
    # a result made by hand (no options) takes the settings its params record
    bare = replace(res, options=None)
    again = bare.reevaluate(weights="equal")
    np.testing.assert_array_equal(again.shifts, strict.shifts)
    assert again.params == strict.params
    with pytest.raises(ValueError, match="maxpaths must be an integer"):
        res.reevaluate(maxpaths=0)
    with pytest.raises(ValueError, match="outside the stack"):
        res.reevaluate(bad_frames=[6])
    averaged = strict.with_average(stack, average="warp")
    assert averaged.options.average == "warp" and averaged.params["average"] == "warp"


def test_checks_that_need_the_stack_stay_with_the_stack(stack):
    opts = PairwiseOptions(maxima="gf", window_radius=40, bad_frames=[9])  # valid on their own
    with pytest.raises(ValueError, match="window_radius 40 needs frames of at least 81 px"):
        register_pairwise(stack, options=opts)
    with pytest.raises(ValueError, match="outside the stack"):
        register_pairwise(stack, options=opts.replace(window_radius=6))
    with pytest.raises(ValueError, match="size of one frame"):
        register_pairwise(stack, mask=np.ones((10, 10)))
    measured_only = register_pairwise(stack, mask="hann", n=2, average=None, workers=1)
    with pytest.raises(ValueError, match="measures and solves only"):
        measured_only.with_average(stack)
