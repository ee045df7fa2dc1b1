"""Ground truth: the truth transforms undo the motion, noise hits the asked SNR."""

import inspect

import numpy as np
import pytest

from napari_stackalign import FrameTransforms, apply_transforms
from napari_stackalign.synthetic import (
    KINDS,
    MOTION_DEFAULTS,
    alignment_error,
    make_stack,
    random_motion,
)


def _residual(stack, truth, margin=12):
    reg = apply_transforms(stack, truth, order=3, border="nan")
    ref = reg[0][margin:-margin, margin:-margin]
    return max(
        np.nanstd(reg[t][margin:-margin, margin:-margin] - ref) / np.nanstd(ref) for t in range(1, len(reg))
    )


@pytest.mark.parametrize("kind", KINDS)
def test_truth_undoes_translation(kind):
    stack, truth = make_stack(kind, n_frames=6, shape=(72, 91), drift=7, snr=None, seed=2)
    assert stack.shape == (6, 72, 91) and stack.dtype == np.float32
    assert _residual(stack, truth) < 0.1


@pytest.mark.parametrize("kind", KINDS)
def test_truth_undoes_rotation_and_scale(kind):
    stack, truth = make_stack(kind, n_frames=4, shape=(80, 80), drift=3, rotation=5, scale=0.04, snr=None, seed=5)
    assert not truth.is_translation
    assert _residual(stack, truth, margin=16) < 0.12


def test_a_wrong_truth_is_detected():
    stack, truth = make_stack("texture", n_frames=4, shape=(64, 64), drift=5, snr=None, seed=0)
    wrong = FrameTransforms(dy=truth.dy + 0.5, dx=truth.dx, center=truth.center)
    wrong.dy[0] = truth.dy[0]
    assert _residual(stack, wrong) > 3 * _residual(stack, truth)


def test_exact_motion_is_honoured():
    motion = FrameTransforms(dy=[0, 1.25, -2.5], dx=[0, 0.5, 3], center=(31.5, 31.5))
    _, truth = make_stack("beads", n_frames=3, shape=(64, 64), motion=motion, snr=None)
    assert np.allclose(truth.shifts, -motion.shifts)


@pytest.mark.parametrize("noise", ["poisson", "gaussian"])
def test_snr_is_as_asked(noise):
    clean, _ = make_stack("texture", n_frames=2, shape=(128, 128), snr=None, seed=4)
    noisy, _ = make_stack("texture", n_frames=2, shape=(128, 128), snr=2.0, noise=noise, seed=4)
    if noise == "poisson":
        gain = noisy[0].mean() / clean[0].mean()
        clean = clean * gain
    snr = clean[0].std() / (noisy[0] - clean[0]).std()
    assert snr == pytest.approx(2.0, rel=0.1)


def test_drift_amplitude_jitter_and_seed():
    motion = random_motion(200, (64, 64), drift=10, jitter=0.0, rng=1)
    assert np.abs(motion.shifts).max() == pytest.approx(10)
    a, ta = make_stack("beads", n_frames=5, shape=(40, 40), seed=7)
    b, tb = make_stack("beads", n_frames=5, shape=(40, 40), seed=7)
    assert np.array_equal(a, b) and ta.allclose(tb)


def test_decay_label_channels_dtype():
    stack, truth = make_stack(
        "beads", n_frames=5, shape=(64, 64), snr=None, intensity_decay=0.3, static_label=True, drift=0, jitter=0,
        n_channels=2, dtype=np.uint16, seed=1,
    )
    assert stack.shape == (5, 2, 64, 64) and stack.dtype == np.uint16
    label = stack[:, 0, 2:8, 2:22]
    assert (label == label[0]).all()  # the label does not move
    body = stack[:, 0, 20:, 20:].astype(float)
    assert body[-1].mean() == pytest.approx(0.7 * body[0].mean(), rel=0.01)  # darkens by 30%
    assert not np.array_equal(stack[0, 0], stack[0, 1])  # channels differ
    assert "bead_positions" in truth.params


def test_alignment_error_removes_constant_offset():
    _, truth = make_stack("beads", n_frames=10, shape=(32, 32), snr=None)
    shifted = FrameTransforms(dy=truth.dy + 3, dx=truth.dx - 1, center=truth.center)
    err = alignment_error(shifted, truth)
    assert err["rms"] < 1e-9 and err["frac_over_1px"] == 0
    noisy = FrameTransforms(dy=truth.dy + np.r_[5, np.zeros(9)], dx=truth.dx, center=truth.center)
    assert alignment_error(noisy, truth)["frac_over_1px"] == pytest.approx(0.1)


def test_bad_parameters():
    with pytest.raises(ValueError, match="kind"):
        make_stack("stars")
    with pytest.raises(ValueError, match="snr"):
        make_stack("beads", n_frames=2, shape=(16, 16), snr=-1)
    with pytest.raises(ValueError, match="8x8"):
        make_stack("beads", shape=(4, 4))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("snr", [None, 3.0])
def test_integer_output_does_not_clip(dtype, snr):
    stack, _ = make_stack("texture", n_frames=3, shape=(32, 32), snr=snr, dtype=dtype, seed=2)
    assert stack.dtype == dtype
    assert stack.max() < np.iinfo(dtype).max
    assert all(np.ptp(frame) > 10 for frame in stack)


def test_scene_signatures_share_the_motion_defaults():
    """make_stack and random_motion read one set of motion defaults."""
    for function in (make_stack, random_motion):
        params = inspect.signature(function).parameters
        assert {name: params[name].default for name in MOTION_DEFAULTS._fields} == MOTION_DEFAULTS._asdict()
