"""average_frames: full field with coverage, crop to the common area."""

import numpy as np
import pytest

from napari_stackalign import FrameTransforms, average_frames
from napari_stackalign.core.average import largest_rectangle
from napari_stackalign.synthetic import make_stack


def test_full_mode_counts_coverage_from_transforms_not_values():
    data = np.zeros((3, 20, 30), dtype=np.float32)  # true zeros are data
    data[:, 5:10, 5:10] = 4.0
    ft = FrameTransforms(dy=[0, 2, -3], dx=[0, -4, 1])
    avg = average_frames(data, ft, mode="full")
    assert avg.coverage.max() == 3
    assert avg.coverage.min() >= 1
    # where every frame covers, the mean of zeros is zero, not NaN
    r0, r1, c0, c1 = avg.crop
    assert (r0, r1, c0, c1) == (2, 17, 1, 26)
    assert np.isfinite(avg.image).all()
    assert avg.image[r0:r1, c0:c1].min() == 0.0


def test_crop_mode_is_common_rectangle_and_recovers_content():
    stack, truth = make_stack("texture", n_frames=8, shape=(64, 80), drift=6, snr=None, seed=3)
    avg = average_frames(stack, truth, mode="crop", order=3)
    full = average_frames(stack, truth, mode="full", order=3)
    r0, r1, c0, c1 = avg.crop
    assert avg.image.shape == (r1 - r0, c1 - c0)
    assert (avg.coverage == 8).all()
    assert np.allclose(avg.image, full.image[r0:r1, c0:c1])
    # every warped frame equals the first one inside the crop
    ref = average_frames(stack[:1], truth[:1], mode="full", order=3).image[r0:r1, c0:c1]
    assert np.abs(avg.image - ref).max() < 0.02 * np.ptp(ref)


def test_crop_with_rotation_uses_largest_rectangle():
    stack, truth = make_stack("beads", n_frames=4, shape=(60, 90), drift=2, rotation=8, snr=None, seed=1)
    avg = average_frames(stack, truth, mode="crop")
    assert (avg.coverage == 4).all()
    assert avg.image.shape[0] * avg.image.shape[1] > 0.4 * 60 * 90


def test_already_registered_stack_with_nan_borders_and_channels():
    data = np.ones((2, 2, 10, 12), dtype=np.float32)
    data[0, :, :2] = np.nan
    data[:, 1] *= 3
    avg = average_frames(data, mode="full")
    assert avg.image.shape == (2, 10, 12)
    assert avg.coverage[0, 0] == 1 and avg.coverage[5, 5] == 2
    assert np.allclose(avg.image[1], 3)


def test_frame_selection_and_errors():
    data = np.arange(3 * 4 * 4, dtype=np.float32).reshape(3, 4, 4)
    avg = average_frames(data, frames=[True, False, True])
    assert avg.n_frames == 2
    assert np.allclose(avg.image, (data[0] + data[2]) / 2)
    with pytest.raises(ValueError, match="mode"):
        average_frames(data, mode="median")
    with pytest.raises(ValueError, match="no frames"):
        average_frames(data, frames=[False, False, False])
    with pytest.raises(ValueError, match="transforms"):
        average_frames(data, FrameTransforms.identity(2))


def test_largest_rectangle():
    mask = np.zeros((6, 7), dtype=bool)
    mask[1:5, 2:6] = True
    mask[0, 0] = True
    assert largest_rectangle(mask) == (1, 5, 2, 6)
    assert largest_rectangle(np.zeros((3, 3), bool)) == (0, 0, 0, 0)
