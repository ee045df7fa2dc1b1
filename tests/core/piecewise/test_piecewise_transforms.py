"""PiecewiseTransforms: applying (one resampling), averaging, failed frames, files and display."""

from __future__ import annotations

import warnings

import dask.array as da
import numpy as np
import pytest

import napari_stackalign as sa
from napari_stackalign.core.piecewise import field_vectors, residual_motion_map
from napari_stackalign.piecewise_transforms import PiecewiseTransforms


def _make(n=6, shape=(40, 50), residual=None, ok=None):
    rigid = sa.FrameTransforms(dy=np.linspace(0, 2, n), dx=np.linspace(0, -1.5, n), ok=ok)
    rows, cols = np.array([10.0, 29.0]), np.array([12.0, 24.0, 37.0])
    if residual is None:
        residual = np.zeros((n, 2, 3, 2))
    return PiecewiseTransforms(rigid, rows, cols, residual, shape)


@pytest.fixture
def stack():
    rng = np.random.default_rng(0)
    from scipy.ndimage import gaussian_filter

    return np.stack([gaussian_filter(rng.normal(size=(40, 50)), 2) for _ in range(6)]).astype(np.float32)


def test_zero_residual_applies_like_the_rigid_transforms(stack):
    pw = _make()
    for order in (1, 3):  # (nearest: ties at half pixels round differently)
        a = sa.apply_transforms(stack, pw, order=order)
        b = sa.apply_transforms(stack, pw.rigid, order=order)
        np.testing.assert_allclose(a, b, atol=2e-3 * np.abs(stack).max())


def test_constant_residual_is_a_shift(stack):
    residual = np.zeros((6, 2, 3, 2))
    residual[..., 0], residual[..., 1] = 1.25, -0.5
    pw = _make(residual=residual)
    moved = sa.FrameTransforms(dy=pw.rigid.dy + 1.25, dx=pw.rigid.dx - 0.5)
    np.testing.assert_allclose(
        sa.apply_transforms(stack, pw), sa.apply_transforms(stack, moved), atol=2e-3 * np.abs(stack).max()
    )


def test_channels_dask_out_and_nan_border(stack):
    residual = np.random.default_rng(1).normal(scale=0.5, size=(6, 2, 3, 2))
    pw = _make(residual=residual)
    one = sa.apply_transforms(stack, pw)
    two = sa.apply_transforms(np.stack([stack, 2 * stack], axis=1), pw)
    np.testing.assert_allclose(two[:, 0], one, atol=1e-6)
    np.testing.assert_allclose(two[:, 1], 2 * one, atol=1e-5)
    lazy = sa.apply_transforms(da.from_array(stack, chunks=(2, 40, 50)), pw)
    np.testing.assert_allclose(lazy.compute(), one, atol=1e-6)
    out = np.zeros_like(stack)
    assert sa.apply_transforms(stack, pw, out=out) is out
    np.testing.assert_allclose(out, one, atol=1e-6)
    nan = sa.apply_transforms(stack.astype(np.uint16), pw, border="nan")
    assert nan.dtype == np.float32 and np.isnan(nan[-1]).any() and np.isfinite(nan[-1, 20, 25])
    ints = sa.apply_transforms((stack * 100 + 1000).astype(np.uint16), pw)
    assert ints.dtype == np.uint16
    with pytest.raises(ValueError, match="estimated on 40x50"):
        sa.apply_transforms(stack[:, :30], pw)
    with pytest.raises(ValueError, match="6 transforms"):
        sa.apply_transforms(stack[:4], pw)


def test_average_frames_takes_piecewise_transforms(stack):
    pw = _make(residual=np.full((6, 2, 3, 2), 0.3))
    avg = sa.average_frames(stack, pw)
    registered = sa.apply_transforms(stack, pw, border="nan")
    np.testing.assert_allclose(avg.image, np.nanmean(registered, axis=0), atol=1e-5, equal_nan=True)


def test_failed_frames_get_interpolated_fields(stack):
    residual = np.zeros((6, 2, 3, 2))
    residual[:, :, :, 0] = np.arange(6)[:, None, None]
    ok = np.ones(6, bool)
    ok[2] = False
    pw = _make(residual=residual, ok=ok)
    resolved, replaced = pw.resolve_failed("interpolate")
    assert list(replaced) == [2]
    np.testing.assert_allclose(resolved.residual[2, ..., 0], 2.0)
    ident, _ = pw.resolve_failed("identity")
    assert np.all(ident.residual[2] == 0) and ident.rigid.dy[2] == 0
    with pytest.warns(sa.FailedFramesWarning):
        sa.apply_transforms(stack, pw)


def test_save_and_load(tmp_path):
    pw = _make(residual=np.random.default_rng(2).normal(size=(6, 2, 3, 2)))
    pw.patch_flag[1, 0, 0] = 2
    pw.params["patch_size"] = 32
    path = pw.save(tmp_path / "field.npz")
    back = PiecewiseTransforms.load(path)
    assert back.allclose(pw) and back.params == {"patch_size": 32}
    assert not back.patch_ok[1, 0, 0] and back.frame_shape == (40, 50)
    with pytest.raises(ValueError, match=".npz"):
        pw.save(tmp_path / "field.csv")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="not a piecewise transforms file"):
        PiecewiseTransforms.load(tmp_path / "other.npz")
    (tmp_path / "junk.npz").write_text("junk")
    with pytest.raises(ValueError, match="cannot be read"):
        PiecewiseTransforms.load(tmp_path / "junk.npz")


def test_bad_shapes_are_refused():
    rigid = sa.FrameTransforms(dy=np.zeros(3), dx=np.zeros(3))
    with pytest.raises(ValueError, match="residual must have shape"):
        PiecewiseTransforms(rigid, [5.0], [5.0], np.zeros((2, 1, 1, 2)), (10, 10))
    with pytest.raises(ValueError, match="inside the frame"):
        PiecewiseTransforms(rigid, [5.0, 20.0], [5.0], np.zeros((3, 2, 1, 2)), (10, 10))
    with pytest.raises(ValueError, match="finite"):
        PiecewiseTransforms(rigid, [5.0], [5.0], np.full((3, 1, 1, 2), np.nan), (10, 10))


def test_vectors_and_motion_map():
    residual = np.zeros((6, 2, 3, 2))
    residual[3, 1, 2] = (1.0, -2.0)
    pw = _make(residual=residual)
    vec = field_vectors(pw, scale=2.0)
    assert vec.shape == (6 * 6, 2, 3)
    row = vec[(vec[:, 0, 0] == 3) & (vec[:, 0, 1] == 29.0) & (vec[:, 0, 2] == 37.0)]
    np.testing.assert_allclose(row[0, 1], [0, 2.0, -4.0])
    assert field_vectors(pw, 3).shape == (6, 2, 3)
    pw.patch_flag[3, 1, 2] = 2
    assert field_vectors(pw, 3, only_used=True).shape == (5, 2, 3)
    grid_map = residual_motion_map(pw, upsample=False)
    np.testing.assert_allclose(grid_map[1, 2], np.sqrt(5.0 / 6))
    dense = residual_motion_map(pw)
    assert dense.shape == (40, 50) and dense[29, 37] == pytest.approx(np.sqrt(5.0 / 6), rel=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert residual_motion_map(pw[:0] if False else pw).max() > 0
