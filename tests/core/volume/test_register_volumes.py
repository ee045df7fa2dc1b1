"""3-D pyramid registration of (T, Z, Y, X) and (T, C, Z, Y, X) stacks: accuracy, trust flags, options."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from napari_stackalign import VolumeTransforms, apply_transforms, register_pyramid
from napari_stackalign.synthetic_volume import make_volume_stack, volume_error
from napari_stackalign.transforms import NoSignalWarning

SHAPE = (16, 48, 48)


@pytest.mark.parametrize("scene", ["beads", "texture"])
def test_sub_voxel_accuracy_on_every_axis(scene):
    vols = make_volume_stack(8, SHAPE, scene=scene, snr=5.0, seed=3)
    result = register_pyramid(vols.data, axes="TZYX")
    assert isinstance(result, VolumeTransforms)
    err = volume_error(result, vols.truth)
    assert err["rms_z"] < 0.05 and err["rms_y"] < 0.05 and err["rms_x"] < 0.05, err
    assert result.ok.all(), result.failure_summary()
    assert np.ptp(vols.truth.dz) > 1.0  # the drift does move along z
    assert result.params["axes"] == "TZYX" and result.params["volume_shape"] == list(SHAPE)


def test_template_frames_stay_in_place_on_average():
    vols = make_volume_stack(8, SHAPE, scene="beads", snr=8.0, seed=4)
    result = register_pyramid(vols.data, axes="TZYX")
    # the anchor: the template frames (all 8) move by nothing on average
    np.testing.assert_allclose(result.shifts_zyx.mean(axis=0), 0.0, atol=0.05)


def test_one_channel_estimates_the_transform_and_all_channels_move():
    vols = make_volume_stack(6, SHAPE, scene="beads", snr=6.0, seed=5, channels=2)
    on_second = register_pyramid(vols.data, axes="TCZYX", channel=1)
    alone = register_pyramid(np.ascontiguousarray(vols.data[:, 1]), axes="TZYX")
    np.testing.assert_allclose(on_second.shifts_zyx, alone.shifts_zyx, atol=1e-9)
    assert on_second.params["channel"] == 1
    registered = apply_transforms(vols.data, on_second, order=3, border="nan")
    assert registered.shape == vols.data.shape
    inner = (slice(None), slice(4, -4), slice(10, -10), slice(10, -10))
    for c in range(2):
        frames = registered[:, c][inner]
        spread = np.nanstd(frames, axis=0).mean()
        before = vols.data[:, c][inner].std(axis=0).mean()
        assert spread < 0.6 * before  # every channel is aligned, not only the estimated one


def test_pure_noise_is_flagged_with_its_reason():
    rng = np.random.default_rng(0)
    noise = rng.normal(size=(8, *SHAPE)).astype(np.float32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = register_pyramid(noise, axes="TZYX")
    assert not result.ok.any()
    assert any(issubclass(w.category, NoSignalWarning) for w in caught)
    assert all(r for r in result.reason)
    assert any("not significant" in r or "template frames are trustworthy" in r for r in result.reason)


def test_a_constant_volume_is_flagged_unusable_and_interpolated():
    vols = make_volume_stack(7, SHAPE, scene="beads", snr=6.0, seed=6)
    data = vols.data.copy()
    data[5] = 3.0
    result = register_pyramid(data, axes="TZYX")
    assert not result.ok[5] and "no usable pixels" in result.reason[5]
    assert np.all(np.isfinite(result.shifts_zyx[5]))
    assert result.ok[[0, 1, 2, 3, 4, 6]].all(), result.failure_summary()


def test_a_user_reference_volume_sets_the_frame():
    vols = make_volume_stack(5, SHAPE, scene="texture", snr=8.0, seed=7)
    result = register_pyramid(vols.data, axes="TZYX", reference=vols.data[2])
    expected = vols.truth.shifts_zyx - vols.truth.shifts_zyx[2]
    np.testing.assert_allclose(result.shifts_zyx, expected, atol=0.08)
    assert result.params["reference"] == "user"


def test_smoothing_and_iterate_keep_dz():
    t = np.arange(7.0)[:, None]
    drift = t * np.array([0.4, -0.7, 0.55]) + np.array([0.0, 0.2, -0.1])  # linear: the filter keeps it
    vols = make_volume_stack(7, SHAPE, scene="beads", snr=6.0, seed=8, drift=drift)
    result = register_pyramid(vols.data, axes="TZYX", smooth=True, window_length=5, polyorder=2, iterate=2)
    assert "smoothing" in result.params and result.params["reference_passes"] == 3
    assert volume_error(result, vols.truth)["rms"] < 0.05
    np.testing.assert_allclose(np.diff(result.dz), -0.4, atol=0.03)


@pytest.mark.parametrize(
    ("shape", "kwargs", "match"),
    [
        ((4, 8, 32, 32), {}, "name its axes"),
        ((4, 8, 32, 32), {"axes": "TCZYX"}, "needs 5-D"),
        ((4, 32, 32), {"axes": "TZYX"}, "needs 4-D"),
        ((4, 1, 32, 32), {"axes": "TZYX"}, "not volumes"),
        ((4, 8, 10, 32), {"axes": "TZYX"}, "too small"),
        ((4, 8, 32, 32), {"axes": "TZCYX"}, "'TYX' \\(default\\), 'TZYX' or 'TCZYX'"),
        ((4, 2, 8, 32, 32), {"axes": "TCZYX", "channel": 2}, "channel must be one of 0..1"),
        ((4, 8, 32, 32), {"axes": "TZYX", "channel": 1}, "no channel axis"),
        ((4, 8, 32, 32), {"axes": "TZYX", "downsample_rates": (1 / 3, 1)}, "powers of two"),
        ((4, 8, 32, 32), {"axes": "TZYX", "mask": np.ones((32, 32), bool)}, "mask is not supported"),
        ((4, 8, 32, 32), {"axes": "TZYX", "roi": (0, 8, 0, 32)}, "roi"),
        ((4, 8, 32, 32), {"axes": "TZYX", "smooth": True}, "fewer than the smoothing window"),
        ((4, 8, 32, 32), {"axes": "TZYX", "reference": np.ones((8, 32, 31))}, "reference has shape"),
    ],
)
def test_bad_shapes_and_options_are_refused(shape, kwargs, match):
    stack = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    with pytest.raises(ValueError, match=match):
        register_pyramid(stack, **kwargs)


def test_roi_crops_rows_and_columns_of_every_plane():
    vols = make_volume_stack(5, SHAPE, scene="beads", snr=6.0, seed=9, density=0.6)
    result = register_pyramid(vols.data, axes="TZYX", roi=(4, 44, 2, 46))
    assert volume_error(result, vols.truth)["rms"] < 0.1
    assert result.params["roi"] == [4, 44, 2, 46]
