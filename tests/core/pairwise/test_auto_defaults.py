"""The pairwise defaults: the "auto" mask chosen from the spectrum, the Newton refinement, the trust flags."""

import warnings

import numpy as np
import pytest

from napari_stackalign import NoSignalWarning
from napari_stackalign.core.pairwise import PAIRWISE_DEFAULTS, register_pairwise
from napari_stackalign.core.pairwise._automask import auto_masks, full_plane
from napari_stackalign.synthetic import alignment_error, drifting_beads, stem_stack


@pytest.fixture(scope="module")
def lattice_stack():
    return stem_stack(12, (128, 128), period=8.0, snr=1.0, seed=2)


def test_defaults_are_auto_and_newton():
    assert PAIRWISE_DEFAULTS.mask == "auto" and PAIRWISE_DEFAULTS.maxima == "newton"


def test_lattice_is_found_periodic_with_its_bragg_peaks(lattice_stack):
    stack, _ = lattice_stack
    masks = auto_masks(stack, (128, 128))
    info = masks.info
    assert info["periodic"] and len(info["bragg"]) >= 2
    radii = [np.hypot(fy, fx) for fy, fx in info["bragg"]]
    # a lattice of period 8 px: first-order peaks at 1/8 (square) or 2/(sqrt(3) 8) (hexagonal) cycles/px
    assert min(abs(r - 0.125) for r in radii) < 0.03 or min(abs(r - 0.144) for r in radii) < 0.03
    # the peaks weigh in the precision mask; the choice mask stops at its cutoff
    fy, fx = info["bragg"][0]
    row, col = round(fy * 128) % 128, round(fx * 128)
    if col < 0:  # the partner -k lies in the half plane
        row, col = (-row) % 128, -col
    assert masks.precision[row, col] > 0.1
    f = np.hypot(np.fft.fftfreq(128)[:, None], np.fft.rfftfreq(128)[None, :])
    assert info["choice_cutoff"] == 0.125 and not masks.choice[f > 0.125 + 1e-9].any()


def test_beads_are_not_periodic():
    scene = drifting_beads(n_frames=12, shape=(128, 128), seed=1)
    masks = auto_masks(scene.stack, (128, 128))
    assert not masks.info["periodic"] and masks.info["bragg"] == []
    assert masks.info["signal"] > 0
    # a low-pass: the weights fall with frequency
    f = np.hypot(np.fft.fftfreq(128)[:, None], np.fft.rfftfreq(128)[None, :])
    assert masks.precision[(f > 0.02) & (f < 0.05)].mean() > masks.precision[f > 0.4].mean()


def test_noisier_stack_gets_a_narrower_mask():
    clean = stem_stack(12, (128, 128), snr=4.0, seed=5)[0]
    noisy = stem_stack(12, (128, 128), snr=0.3, seed=5)[0]
    assert auto_masks(clean, (128, 128)).info["signal"] > auto_masks(noisy, (128, 128)).info["signal"]


def test_full_plane_is_the_hermitian_expansion():
    img = np.random.default_rng(0).normal(size=(9, 12))
    full = np.abs(np.fft.fft2(img)) ** 2
    half = full[:, :7]
    np.testing.assert_allclose(full_plane(half, 12), full, rtol=1e-10)


def test_defaults_recover_lattice_shifts(lattice_stack):
    stack, truth = lattice_stack
    res = register_pairwise(stack, workers=1, average=None)
    err = alignment_error(res.transforms, truth)
    old = alignment_error(
        register_pairwise(stack, mask="hann", n=4, maxima="gf", workers=1, average=None).transforms, truth
    )
    assert err["rms"] < 0.15 and err["rms"] < 0.5 * old["rms"], (err, old)  # the old defaults: 0.50 px
    assert res.frame_ok.all()
    assert res.params["mask"] == "auto" and res.params["auto"]["periodic"]


def test_defaults_beat_the_old_fixed_mask_on_beads():
    scene = drifting_beads(n_frames=12, shape=(128, 128), seed=3)
    auto = alignment_error(register_pairwise(scene.stack, workers=1, average=None).transforms, scene.truth)
    fixed = alignment_error(
        register_pairwise(scene.stack, mask="hann", n=4, maxima="gf", workers=1, average=None).transforms, scene.truth
    )
    assert auto["rms"] <= fixed["rms"] * 1.05, (auto, fixed)


def test_reevaluate_refines_again(lattice_stack):
    stack, _ = lattice_stack
    res = register_pairwise(stack, workers=1, average=None)
    again = res.reevaluate()
    np.testing.assert_allclose(again.shifts, res.shifts, atol=1e-9)
    loose = res.reevaluate(threshold=None)
    assert np.max(np.abs(loose.shifts - res.shifts)) < 0.05  # refined too, not the raw whole-pixel solve


def test_noise_only_stack_flags_every_frame_with_a_reason():
    rng = np.random.default_rng(4)
    stack = rng.poisson(5.0, size=(12, 96, 96)).astype(np.float32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = register_pairwise(stack, workers=1, average=None)
    assert not res.frame_ok.any()
    assert any(issubclass(w.category, NoSignalWarning) for w in caught)
    assert all(r for r in res.transforms.reason)
    assert "noise floor" in res.transforms.reason[0]


def test_failed_frames_carry_reasons(lattice_stack):
    stack, _ = lattice_stack
    res = register_pairwise(stack, workers=1, average=None, bad_frames=[3])
    assert not res.frame_ok[3] and res.transforms.reason[3] == "marked bad"
    assert all(r == "" for i, r in enumerate(res.transforms.reason) if i != 3)
