"""Reference modes of the pyramid registration: a fixed template (the first
frames, a frame range, a given image) or a chain (the previous frame, a
running template), checked on a stack without fixed structure (particles that
diffuse, carried by a common drift) and on a normal drifting stack; broken
links are flagged with their reason and do not break the later frames."""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pytest

from napari_stackalign.core.apply import apply_transforms
from napari_stackalign.core.pyramid import (
    PyramidOptions,
    register_and_apply,
    register_pyramid,
    register_pyramid_distributed,
    register_stack_to_file,
)
from napari_stackalign.core.pyramid._chain import MAX_GAP
from napari_stackalign.synthetic import make_stack


def _load_diffusing():
    spec = importlib.util.spec_from_file_location(
        "stackalign_tests_diffusing", Path(__file__).with_name("_diffusing.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.diffusing_stack


diffusing_stack = _load_diffusing()


def _correction(ft) -> np.ndarray:
    return np.stack([ft.dy, ft.dx], axis=1)


def _rms(est: np.ndarray, truth: np.ndarray) -> float:
    """RMS error after the common offset is removed (each mode has its own frame of reference)."""
    d = est - truth
    d = d - d.mean(axis=0)
    return float(np.sqrt((d**2).sum(axis=1).mean()))


@pytest.fixture(scope="module")
def diffusing():
    return diffusing_stack(seed=0)


@pytest.fixture(scope="module")
def drifting():
    return make_stack("beads", n_frames=30, shape=(96, 96), drift=8, jitter=0.3, snr=6, seed=3)


# ------------------------------------------------------------ options
@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"reference_mode": "first"}, "reference_mode must be one of 'template', 'frames'"),
        ({"reference_mode": 1}, "reference_mode must be text"),
        ({"reference_frames": (5, 5)}, "reference_frames must be two integers"),
        ({"reference_frames": (-1, 3)}, "reference_frames must be two integers"),
        ({"reference_frames": (1, 2, 3)}, "reference_frames must be two integers"),
        ({"reference_frames": "1:3"}, "reference_frames must be two integers"),
        ({"reference_frames": (1.5, 3)}, "reference_frames must be two integers"),
        ({"reference_mode": "frames"}, "needs reference_frames"),
        ({"reference_mode": "previous", "reference_frames": (0, 3)}, "reference_frames applies to reference_mode"),
        ({"reference_mode": "image"}, "needs a reference image"),
        ({"reference_mode": "running", "reference": np.ones((8, 8))}, "a reference image applies to"),
        ({"reference_frames": (0, 3), "reference": np.ones((8, 8))}, "either reference_frames or a reference image"),
        ({"reference": np.ones((2, 2, 8, 8))}, r"reference must be one \(Y, X\) image"),
        ({"reference": np.array([["a", "b"]])}, r"reference must be one \(Y, X\) image of numbers"),
        ({"running_frames": 0}, "running_frames"),
        ({"keyframe_every": 0}, "keyframe_every"),
        ({"reference_mode": "previous", "iterate": 2}, "iterate refines a fixed template"),
    ],
)
def test_bad_reference_options_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PyramidOptions(**kwargs)


def test_a_range_or_an_image_selects_its_mode():
    assert PyramidOptions().reference_mode == "template"
    assert PyramidOptions(reference_frames=(2, 9)).reference_mode == "frames"
    assert PyramidOptions(reference=np.ones((8, 8))).reference_mode == "image"
    assert not PyramidOptions().chained and PyramidOptions(reference_mode="running").chained


def test_the_stack_bound_checks(drifting):
    stack = drifting.stack
    with pytest.raises(ValueError, match="reference_frames 20:31 reach beyond the stack's 30 frames"):
        register_pyramid(stack, reference_frames=(20, 31))
    with pytest.raises(ValueError, match=r"reference has shape \(10, 10\)"):
        register_pyramid(stack, reference=np.ones((10, 10)))


def test_a_cluster_refuses_the_chained_modes(tmp_path):
    with pytest.raises(ValueError, match="cannot be split over a cluster"):
        register_pyramid_distributed(tmp_path / "missing.h5", n_workers=1, reference_mode="previous")


# ------------------------------------------------ no fixed structure
def test_chained_modes_follow_diffusing_particles_better_than_a_template(diffusing):
    truth = diffusing.correction
    errors = {}
    for mode in ("template", "previous", "running"):
        ft = register_pyramid(diffusing.data, reference_mode=mode)
        errors[mode] = _rms(_correction(ft), truth)
        assert ft.ok.mean() > 0.9, (mode, ft.failure_summary())
        assert ft.params["reference_mode"] == mode
    # measured 0.45 (template), 0.19 (previous), 0.12 (running) px
    assert errors["previous"] < 0.7 * errors["template"], errors
    assert errors["running"] < 0.5 * errors["template"], errors
    assert errors["running"] < 0.2, errors


def test_keyframes_bound_the_drift_of_the_chain():
    long = diffusing_stack(n_frames=120, seed=0)
    chained = register_pyramid(long.data, reference_mode="previous", keyframe_every=1)
    keyed = register_pyramid(long.data, reference_mode="previous", keyframe_every=5)
    assert chained.params["keyframe_links"] == 0 and keyed.params["keyframe_links"] > 15
    # measured 0.38 px (every frame to the previous one) against 0.18 px
    assert _rms(_correction(keyed), long.correction) < 0.7 * _rms(_correction(chained), long.correction)


def test_untrustworthy_links_are_flagged_and_crossed(diffusing):
    data = diffusing.data.copy()
    noise = np.random.default_rng(5).normal(0.1, 0.12, data.shape).astype(np.float32)
    data[20:22] = noise[20:22]  # a short gap: the next frame is registered across it
    data[40:48] = noise[40:48]  # longer than MAX_GAP: re-anchored, then registered across the gap
    truth = diffusing.correction
    for mode in ("previous", "running"):
        ft = register_pyramid(data, reference_mode=mode)
        bad = np.flatnonzero(~ft.ok)
        assert set(bad) == {20, 21, *range(40, 48)}, (mode, ft.failure_summary())
        assert ft.reason[20] and ft.reason[45]
        assert ft.params["gap_links"] == 2 and ft.params["chain_breaks"] == []
        good = ft.ok
        # every trustworthy frame, before and after the gaps, in one frame of
        # reference (without the gaps: 0.19 px previous, 0.12 px running)
        assert _rms(_correction(ft)[good], truth[good]) < 0.4, mode
        # the link across the long gap (frame 39 to 48) is measured, not assumed
        d = _correction(ft) - truth
        assert np.hypot(*(d[48] - d[39])) < 0.5, (mode, d[48] - d[39])


def test_a_chain_that_cannot_be_bridged_is_re_anchored_and_says_so():
    first = diffusing_stack(n_frames=30, seed=1)
    other = diffusing_stack(n_frames=30, seed=2)  # another field of view after the gap
    noise = np.random.default_rng(7).normal(0.1, 0.12, (MAX_GAP + 2, *first.data.shape[1:])).astype(np.float32)
    data = np.concatenate([first.data, noise, other.data])
    ft = register_pyramid(data, reference_mode="previous")
    start = 30 + len(noise)
    assert ft.params["chain_breaks"] == [start]
    assert not ft.ok[start] and "chain re-anchored here" in ft.reason[start]
    assert not ft.ok[30:start].any()
    # each segment is right within itself
    assert _rms(_correction(ft)[:30], first.correction) < 0.3
    after = slice(start + 1, None)
    assert ft.ok[after].mean() > 0.9
    assert _rms(_correction(ft)[after], other.correction[1:]) < 0.3


# ------------------------------------------------ a normal drifting stack
@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"reference_mode": "previous"},
        {"reference_mode": "running", "running_frames": 5},
        {"reference_frames": (10, 20)},
    ],
    ids=["template", "previous", "running", "frames"],
)
def test_every_mode_gets_a_drift_right(drifting, kwargs):
    ft = register_pyramid(drifting.stack, **kwargs)
    truth = np.stack([drifting.truth.dy, drifting.truth.dx], axis=1)
    assert ft.ok.all(), ft.failure_summary()
    assert _rms(_correction(ft), truth) < 0.1


def test_reference_frames_are_left_in_place(drifting):
    ft = register_pyramid(drifting.stack, reference_frames=(10, 20))
    assert ft.params["reference_frames"] == [10, 20] and ft.params["template_frames"] == 10
    np.testing.assert_allclose(_correction(ft)[10:20].mean(axis=0), 0, atol=0.02)
    # the frames of the range start from their template-building estimate, like the first frames do
    default = register_pyramid(drifting.stack, num_frames=10)
    np.testing.assert_allclose(_correction(default)[:10].mean(axis=0), 0, atol=0.02)


def test_reference_image_sets_the_frame(drifting):
    stack = drifting.stack
    ft = register_pyramid(stack, reference_mode="image", reference=stack[7])
    assert ft.params["reference"] == "user" and ft.params["reference_mode"] == "image"
    np.testing.assert_allclose(_correction(ft)[7], 0, atol=0.02)
    same = register_pyramid(stack, options=PyramidOptions(reference=stack[7]))
    np.testing.assert_array_equal(same.dy, ft.dy)


def test_the_first_usable_frame_starts_the_chain(drifting):
    stack = drifting.stack.copy()
    stack[0] = 0  # no usable pixels: interpolated, flagged
    ft = register_pyramid(stack, reference_mode="previous")
    assert not ft.ok[0] and "no usable pixels" in ft.reason[0]
    assert ft.ok[1:].all()
    np.testing.assert_allclose(_correction(ft)[1], 0, atol=1e-12)


def test_a_noise_frame_after_the_first_does_not_condemn_it(drifting):
    stack = drifting.stack.copy()
    stack[1] = np.random.default_rng(1).normal(stack.mean(), stack.std(), stack[1].shape)
    for mode in ("previous", "running"):
        ft = register_pyramid(stack, reference_mode=mode)
        assert list(np.flatnonzero(~ft.ok)) == [1], (mode, ft.failure_summary())


# ------------------------------------------------ the other entry points
def test_register_and_apply_and_the_streamed_path_give_the_same_chain(drifting, tmp_path):
    stack = drifting.stack
    ft = register_pyramid(stack, reference_mode="running", running_frames=4, chunk_size=7)
    aligned = register_and_apply(stack, reference_mode="running", running_frames=4)
    np.testing.assert_array_equal(aligned.transforms.dy, ft.dy)
    np.testing.assert_array_equal(aligned.data, apply_transforms(stack, ft))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        done = register_stack_to_file(stack, tmp_path / "out.h5", reference_mode="running", running_frames=4)
    np.testing.assert_array_equal(done.transforms.dx, ft.dx)
    np.testing.assert_array_equal(done.transforms.ok, ft.ok)


def test_a_volume_reference_on_a_2d_stack_is_refused_when_it_runs():
    """A (Z, Y, X) reference passes the options (it is the reference of volume stacks) but not a 2-D stack."""
    stack = np.random.default_rng(0).random((4, 16, 16)).astype(np.float32)
    with pytest.raises(ValueError, match="reference has shape"):
        register_pyramid(stack, reference=np.ones((2, 16, 16)))
