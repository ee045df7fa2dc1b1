"""Quality figures: known values on simple arrays, and registered beats unregistered."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_stackalign import FrameTransforms, apply_transforms
from napari_stackalign.core.quality import (
    common_region,
    frame_correlations,
    mean_image,
    quality_report,
    region_mask,
    residual_motion,
    sharpness,
)
from napari_stackalign.synthetic import make_stack

ROI = (10, 86, 10, 86)  # leaves out the empty margin a registered 96x96 stack gets


# ------------------------------------------------------------------ sharpness
def test_sharpness_of_a_ramp_has_its_known_value():
    ramp = np.tile(np.arange(10.0), (5, 1)) * 3.0 + 0.0
    assert sharpness(ramp, sigma=0) == pytest.approx(4 / 81)
    assert sharpness(ramp, sigma=0, normalize="variance") == pytest.approx(12 / 99)


def test_sharpness_of_white_noise_matches_theory():
    rng = np.random.default_rng(0)
    noise = rng.normal(100.0, 5.0, size=(400, 400))
    assert sharpness(noise, sigma=0, normalize="variance") == pytest.approx(4.0, rel=0.02)
    assert sharpness(noise, sigma=0) == pytest.approx(4 * 25 / 100**2, rel=0.02)


def test_sharpness_is_scale_invariant_and_zero_for_constant():
    rng = np.random.default_rng(1)
    img = rng.random((50, 60)) + 1
    assert sharpness(img * 7.5) == pytest.approx(sharpness(img))
    assert sharpness(img + 3, normalize="variance") == pytest.approx(sharpness(img, normalize="variance"))
    assert sharpness(np.full((20, 20), 4.0)) == 0.0


def test_sharpness_drops_when_blurred():
    stack, _ = make_stack("beads", n_frames=1, shape=(96, 96), drift=0, jitter=0, snr=None, seed=3)
    img = stack[0] + 1.0
    assert sharpness(ndi.gaussian_filter(img, 2)) < 0.5 * sharpness(img)


def test_sharpness_ignores_nan_and_masked_pixels():
    rng = np.random.default_rng(2)
    img = rng.random((40, 40)) + 1
    with_nan = img.copy()
    with_nan[:, :10] = np.nan
    assert np.isfinite(sharpness(with_nan))
    assert sharpness(with_nan, sigma=0) == pytest.approx(sharpness(img[:, 10:], sigma=0))
    mask = np.ones(img.shape, bool)
    mask[:, :10] = False
    spiky = img.copy()
    spiky[:, :10] = 1e6 * rng.random((40, 10))
    assert sharpness(spiky, mask=mask, sigma=0) == pytest.approx(sharpness(img[:, 10:], sigma=0))


@pytest.mark.parametrize(
    "image, kwargs, match",
    [
        (np.zeros((4, 4, 4)), {}, "2-D"),
        (np.full((1, 10), 1.0), {}, "2x2"),
        (np.random.default_rng(0).normal(size=(20, 20)), {}, "normalize='variance'"),
        (np.ones((5, 5)), {"normalize": "max"}, "normalize must be one of"),
        (np.ones((5, 5)), {"sigma": -1}, "sigma"),
    ],
)
def test_sharpness_rejects_bad_input(image, kwargs, match):
    with pytest.raises(ValueError, match=match):
        sharpness(image, **kwargs)


# ---------------------------------------------------------------- correlation
def test_correlations_of_known_frames():
    rng = np.random.default_rng(4)
    base = rng.random((32, 32))
    stack = np.stack([base, 2 * base + 5, -base, rng.random((32, 32)), np.full((32, 32), 3.0)])
    corr = frame_correlations(stack, base)
    assert corr[0] == pytest.approx(1.0)
    assert corr[1] == pytest.approx(1.0)
    assert corr[2] == pytest.approx(-1.0)
    assert abs(corr[3]) < 0.1
    assert np.isnan(corr[4])  # constant frame: no defined correlation


def test_correlations_default_reference_is_the_mean_and_reads_chunks():
    rng = np.random.default_rng(5)
    stack = rng.random((7, 20, 24)).astype(np.float32)
    ref = stack.mean(axis=0)
    expected = [np.corrcoef(f.ravel(), ref.ravel())[0, 1] for f in stack]
    calls = []
    got = frame_correlations(stack, chunk_size=3, progress=lambda d, t, s: calls.append((d, t, s)))
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert ("correlation", 7) == (calls[-1][2], calls[-1][0])
    np.testing.assert_allclose(
        frame_correlations(stack, 2), [np.corrcoef(f.ravel(), stack[2].ravel())[0, 1] for f in stack], atol=1e-6
    )


def test_correlations_skip_nan_pixels_and_respect_roi_and_mask():
    rng = np.random.default_rng(6)
    base = rng.random((30, 30))
    frame = base.copy()
    frame[:, :8] = rng.random((30, 8))  # a region that disagrees
    stack = np.stack([frame, frame])
    stack[1, :, :8] = np.nan
    corr = frame_correlations(stack, base, roi=(0, 30, 8, 30))
    np.testing.assert_allclose(corr, 1.0)
    mask = np.zeros((30, 30), bool)
    mask[:, 8:] = True
    np.testing.assert_allclose(frame_correlations(stack, base, mask=mask), 1.0)
    assert frame_correlations(stack, base)[1] == pytest.approx(1.0)  # NaN pixels left out
    assert frame_correlations(stack, base)[0] < 0.9


def test_mean_image_chunks_and_nan():
    rng = np.random.default_rng(7)
    stack = rng.random((9, 10, 12))
    stack[0, 0, 0] = np.nan
    stack[:, 1, 1] = np.nan
    mean = mean_image(stack, chunk_size=4)
    assert mean.dtype == np.float32
    assert mean[0, 0] == pytest.approx(stack[1:, 0, 0].mean(), rel=1e-5)
    assert np.isnan(mean[1, 1])
    np.testing.assert_allclose(mean_image(stack, roi=(2, 5, 3, 9)), np.nanmean(stack[:, 2:5, 3:9], axis=0), rtol=1e-5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"roi": (0, 50, 0, 5)}, "not a rectangle inside the 10x12 frame"),
        ({"roi": (5, 2, 0, 5)}, "not a rectangle inside the 10x12 frame"),
        ({"roi": "abc"}, "four integers"),
        ({"mask": np.ones((3, 3), bool)}, "mask has shape"),
        ({"mask": np.zeros((10, 12), bool)}, "at least 4 pixels"),
    ],
)
def test_region_mask_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        region_mask((10, 12), **kwargs)


def test_functions_reject_non_stacks():
    with pytest.raises(ValueError, match=r"\(T, Y, X\)"):
        frame_correlations(np.zeros((10, 10)))
    with pytest.raises(ValueError, match="no frames"):
        quality_report(np.zeros((0, 10, 10)))
    with pytest.raises(ValueError, match="does not exist"):
        frame_correlations(np.ones((3, 8, 8)), 5)


# -------------------------------------------------- registered vs unregistered
@pytest.mark.parametrize("kind", ["beads", "texture", "lattice"])
@pytest.mark.parametrize("snr", [5.0, 0.3])
def test_registered_stack_scores_better(kind, snr):
    stack, truth = make_stack(kind, n_frames=20, shape=(96, 96), drift=8, snr=snr, seed=1)
    registered = apply_transforms(stack, truth)
    before = quality_report(stack, roi=ROI)
    after = quality_report(registered, roi=ROI)
    assert after["sharpness"] > 1.5 * before["sharpness"]
    assert after["correlation_mean"] > before["correlation_mean"] + 0.1
    assert after["correlation_min"] > before["correlation_min"]
    if snr >= 5:
        assert after["correlation_mean"] > 0.98


def test_residual_motion_recovers_known_shifts():
    stack, truth = make_stack("texture", n_frames=8, shape=(96, 96), drift=6, snr=10, seed=2)
    shifts = residual_motion(stack, 0, roi=ROI)
    expected = truth.shifts - truth.shifts[0]
    np.testing.assert_allclose(shifts, expected, atol=0.25)
    registered = apply_transforms(stack, truth)
    report = quality_report(registered, roi=ROI, motion=True, motion_reference=0)
    assert report["residual_rms_px"] < 0.25
    unregistered = quality_report(stack, roi=ROI, motion=True, motion_reference=0)
    assert unregistered["residual_rms_px"] > 1.0


def test_quality_report_keys_and_dask_input():
    da = pytest.importorskip("dask.array")
    stack, _ = make_stack("beads", n_frames=6, shape=(48, 48), snr=5, seed=0)
    lazy = da.from_array(stack, chunks=(2, 48, 48))
    rep = quality_report(lazy, chunk_size=4)
    ref = quality_report(stack)
    assert rep["n_frames"] == 6 and rep["frame_shape"] == (48, 48)
    assert rep["mean_image"].shape == (48, 48)
    assert rep["sharpness"] == pytest.approx(ref["sharpness"], rel=1e-5)
    np.testing.assert_allclose(rep["correlations"], ref["correlations"], atol=1e-6)
    assert rep["sharpness_normalization"] == "mean"


def test_common_region_of_known_shifts():
    ft = FrameTransforms.from_shifts(np.array([[0.0, 0.0], [3.0, -2.0], [-1.0, 4.0]]))
    assert common_region((50, 60), ft) == (3, 49, 4, 58)
    half = FrameTransforms.from_shifts(np.array([[0.0, 0.0], [2.5, 0.0]]))
    r0, r1, c0, c1 = common_region((20, 20), half)
    assert (r0, r1, c0, c1) == (3, 20, 0, 20)
    with pytest.raises(ValueError, match="no area"):
        common_region((10, 10), FrameTransforms.from_shifts(np.array([[0.0, 0.0], [0.0, 12.0]])))
