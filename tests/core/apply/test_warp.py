"""apply_transforms: geometry, dtypes, borders, lazy and chunked inputs."""

import dask.array as da
import h5py
import numpy as np
import pytest
from scipy import ndimage

from napari_stackalign import FrameTransforms, apply_transforms
from napari_stackalign.core import Cancelled


@pytest.fixture
def smooth_stack():
    rng = np.random.default_rng(0)
    base = ndimage.gaussian_filter(rng.random((6, 48, 56)), (0, 2, 2)).astype(np.float32)
    return base


def test_integer_translation_is_exact(smooth_stack):
    ft = FrameTransforms(dy=[2, -3, 0, 1, 0, 4], dx=[1, 0, -2, 5, 0, -1])
    out = apply_transforms(smooth_stack, ft, order=1)
    for t in range(6):
        expected = ndimage.shift(smooth_stack[t], ft.shifts[t], order=0, mode="constant")
        assert np.allclose(out[t], expected, atol=1e-6)


def test_subpixel_translation_matches_scipy(smooth_stack):
    ft = FrameTransforms(dy=np.full(6, 0.5), dx=np.full(6, -1.25))
    out = apply_transforms(smooth_stack, ft, order=1, border="edge")
    ref = ndimage.shift(smooth_stack[0], (0.5, -1.25), order=1, mode="nearest")
    # OpenCV quantises coordinates to 1/32 px; compare away from the border
    assert np.abs(out[0][4:-4, 4:-4] - ref[4:-4, 4:-4]).max() < 0.02 * np.ptp(ref)


def test_rotation_about_centre_matches_scipy():
    rng = np.random.default_rng(1)
    img = ndimage.gaussian_filter(rng.random((64, 64)), 3).astype(np.float64)
    centre = (31.5, 31.5)
    ft = FrameTransforms(dy=[0.0], dx=[0.0], angle=[10.0], center=centre)
    out = apply_transforms(img[None], ft, order=3)[0]
    m = np.linalg.inv(ft.to_matrices()[0])
    ref = ndimage.affine_transform(img, m[:2, :2], offset=m[:2, 2], order=3)
    assert np.abs(out[12:-12, 12:-12] - ref[12:-12, 12:-12]).max() < 0.01 * np.ptp(img)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.int32, np.float32, np.float64])
def test_dtype_follows_input(dtype):
    data = (np.arange(3 * 20 * 24).reshape(3, 20, 24) % 200).astype(dtype)
    out = apply_transforms(data, FrameTransforms(dy=[0.5, 0, 1], dx=[0, 0.5, 1]))
    assert out.dtype == np.dtype(dtype)


def test_uint16_values_above_32767_survive():
    data = np.full((2, 16, 16), 60000, dtype=np.uint16)
    out = apply_transforms(data, FrameTransforms(dy=[0.3, -0.3], dx=[0.2, 0]), border="edge")
    assert out.min() == 60000 and out.max() == 60000


def test_nan_border_promotes_integers_and_marks_outside():
    data = np.ones((1, 10, 10), dtype=np.uint16)
    out = apply_transforms(data, FrameTransforms(dy=[3], dx=[0]), border="nan")
    assert out.dtype == np.float32
    assert np.isnan(out[0, :3]).all() and np.isfinite(out[0, 3:]).all()


def test_constant_and_edge_borders():
    data = np.ones((1, 10, 10), dtype=np.float32)
    out = apply_transforms(data, FrameTransforms(dy=[0], dx=[2]), border="constant", cval=-1)
    assert (out[0, :, :2] == -1).all()
    out = apply_transforms(data, FrameTransforms(dy=[0], dx=[2]), border="edge")
    assert (out == 1).all()


def test_channels_get_the_same_transform(smooth_stack):
    stack4 = np.stack([smooth_stack, smooth_stack * 2], axis=1)
    ft = FrameTransforms(dy=np.linspace(-2, 2, 6), dx=np.linspace(1, -1, 6), angle=np.linspace(0, 3, 6), center=(24, 28))
    out = apply_transforms(stack4, ft)
    assert out.shape == stack4.shape
    assert np.allclose(out[:, 1], 2 * out[:, 0], atol=1e-5)


def test_lazy_and_on_disk_inputs_agree(tmp_path, smooth_stack):
    ft = FrameTransforms(dy=np.linspace(-2, 2, 6), dx=np.linspace(1, -1, 6))
    expected = apply_transforms(smooth_stack, ft, chunk_size=4)
    lazy = apply_transforms(da.from_array(smooth_stack, chunks=(2, 48, 56)), ft, chunk_size=4)
    assert isinstance(lazy, da.Array)
    assert np.array_equal(lazy.compute(), expected)
    with h5py.File(tmp_path / "s.h5", "w") as f:
        dset = f.create_dataset("image_data", data=smooth_stack, chunks=(1, 48, 56))
        out = f.create_dataset("out", shape=smooth_stack.shape, dtype=np.float32)
        apply_transforms(dset, ft, out=out, chunk_size=4)
        assert np.array_equal(out[()], expected)


def test_progress_and_cancel(smooth_stack):
    seen = []
    apply_transforms(smooth_stack, FrameTransforms.identity(6), chunk_size=2, progress=lambda d, t, s: seen.append((d, t, s)))
    assert seen[-1] == (6, 6, "apply")

    def cancel(done, total, stage):
        if done >= 2:
            raise Cancelled()

    with pytest.raises(Cancelled):
        apply_transforms(smooth_stack, FrameTransforms.identity(6), chunk_size=2, progress=cancel)


def test_bad_arguments(smooth_stack):
    with pytest.raises(ValueError, match="frames"):
        apply_transforms(smooth_stack, FrameTransforms.identity(5))
    with pytest.raises(ValueError, match="order"):
        apply_transforms(smooth_stack, FrameTransforms.identity(6), order=2)
    with pytest.raises(ValueError, match="border"):
        apply_transforms(smooth_stack, FrameTransforms.identity(6), border="wrap")
    with pytest.raises(ValueError, match=r"\(T, Y, X\)"):
        apply_transforms(smooth_stack[0], FrameTransforms.identity(48))
