"""apply_transforms and average_frames with VolumeTransforms: one shift per volume, every channel."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from scipy import ndimage

from napari_stackalign import VolumeTransforms, apply_transforms, average_frames
from napari_stackalign.core.apply import FailedFramesWarning


def _volumes(channels: int | None = None) -> np.ndarray:
    rng = np.random.default_rng(1)
    base = ndimage.gaussian_filter(rng.normal(size=(3, 12, 24, 24)), 1.5).astype(np.float32)
    return base if channels is None else np.stack([base * (c + 1) for c in range(channels)], axis=1)


def test_whole_voxel_shifts_move_every_channel_exactly():
    data = _volumes(channels=2)
    tf = VolumeTransforms(dz=[0, 1, -2], dy=[0, 2, 0], dx=[0, -3, 1])
    out = apply_transforms(data, tf, order=1)
    for c in range(2):
        # registered[p] = volume[p - d]: frame 1's voxel (z, y, x) comes from (z - 1, y - 2, x + 3)
        np.testing.assert_allclose(out[1, c, 1:, 2:, :-3], data[1, c, :-1, :-2, 3:], atol=1e-6)
        np.testing.assert_allclose(out[2, c, :-2, :, 1:], data[2, c, 2:, :, :-1], atol=1e-6)


def test_sub_voxel_shift_matches_scipy_and_nan_marks_the_uncovered():
    data = _volumes()
    tf = VolumeTransforms(dz=[0.5, 0, 0], dy=[0, -1.25, 0], dx=[0, 0, 2.5])
    out = apply_transforms(data, tf, order=3, border="nan")
    assert out.dtype == np.float32
    inner = ndimage.shift(data[0], (0.5, 0, 0), order=3, mode="nearest")
    np.testing.assert_allclose(out[0, 1:], inner[1:], atol=1e-5)
    assert np.isnan(out[0, 0]).all() and not np.isnan(out[0, 1:]).any()
    assert np.isnan(out[1, :, -2:]).all() and np.isnan(out[2, :, :, :3]).all()


def test_dask_input_stays_lazy_and_matches():
    data = _volumes(channels=2)
    tf = VolumeTransforms(dz=[0, 0.5, 1], dy=[0.25, 0, 0], dx=[0, 0, -1])
    lazy = apply_transforms(da.from_array(data, chunks=(1, 1, 12, 24, 24)), tf)
    assert isinstance(lazy, da.Array)
    np.testing.assert_allclose(lazy.compute(), apply_transforms(data, tf), atol=1e-6)


def test_integer_output_and_failed_frames():
    data = (_volumes() * 1000 + 2000).astype(np.uint16)
    tf = VolumeTransforms(
        dz=[0, np.nan, 2], dy=[0, np.nan, 0], dx=[0, np.nan, 0], ok=[True, False, True], reason=["", "lost", ""]
    )
    with pytest.warns(FailedFramesWarning, match="lost"):
        out = apply_transforms(data, tf)
    assert out.dtype == np.uint16


def test_bad_combinations_are_refused():
    data = _volumes()
    with pytest.raises(ValueError, match="3 frames but there are 2"):
        apply_transforms(data, VolumeTransforms(dz=[0, 0], dy=[0, 0], dx=[0, 0]))
    with pytest.raises(ValueError, match="apply to \\(T, Z, Y, X\\)"):
        apply_transforms(data[:, 0], VolumeTransforms(dz=[0, 0, 0], dy=[0, 0, 0], dx=[0, 0, 0]))
    with pytest.raises(ValueError, match="more than the volume itself"):
        apply_transforms(data, VolumeTransforms(dz=[0, 20, 0], dy=[0, 0, 0], dx=[0, 0, 0]))


def test_average_of_registered_volumes_recovers_the_scene():
    base = _volumes()[0]
    d = np.array([[0, 0, 0], [1, -2, 1], [-1, 1, 2]], float)
    frames = np.stack([ndimage.shift(base, s, order=1, mode="nearest") for s in d])
    tf = VolumeTransforms.from_shifts(-d)
    avg = average_frames(frames, tf, mode="crop")
    z0, z1, y0, y1, x0, x1 = avg.crop
    assert (z0, z1, y0, y1, x0, x1) == (1, 11, 2, 23, 0, 22)
    assert avg.image.shape == (10, 21, 22) and (avg.coverage == 3).all()
    np.testing.assert_allclose(
        avg.image[1:-1, 1:-1, 1:-1], base[z0 + 1 : z1 - 1, y0 + 1 : y1 - 1, x0 + 1 : x1 - 1], atol=1e-5
    )
    full = average_frames(frames, tf)
    assert full.image.shape == base.shape and full.coverage.max() == 3
