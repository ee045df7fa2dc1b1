"""VolumeTransforms: dz next to dy and dx, saved and loaded, refused where it would be dropped."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_stackalign import FrameTransforms, VolumeTransforms, smooth_transforms


def _example() -> VolumeTransforms:
    return VolumeTransforms(
        dz=[0.25, -1.5, np.nan],
        dy=[1.0, 2.0, np.nan],
        dx=[-0.5, 0.125, np.nan],
        center=(15.5, 15.5),
        quality=[0.9, 0.8, np.nan],
        ok=[True, True, False],
        reason=["", "", "no usable pixels"],
        method="pyramid",
        params={"axes": "TZYX"},
    )


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_dz_survives_save_and_load(tmp_path, suffix):
    tf = _example()
    path = tf.save(tmp_path / f"t{suffix}")
    back = FrameTransforms.load(path)
    assert isinstance(back, VolumeTransforms)
    np.testing.assert_array_equal(back.dz, tf.dz)
    np.testing.assert_array_equal(back.dy, tf.dy)
    assert list(back.reason) == list(tf.reason) and back.params == tf.params


def test_the_csv_has_a_dz_column_before_dy(tmp_path):
    text = _example().to_csv()
    header = next(line for line in text.splitlines() if not line.startswith("#"))
    assert header.split(",")[:4] == ["frame", "dz", "dy", "dx"]
    assert json.loads(_example().to_json())["dz"][:2] == [0.25, -1.5]


def test_2d_tables_still_load_as_frame_transforms(tmp_path):
    path = FrameTransforms(dy=[1.0, 2.0], dx=[0.0, 1.0]).save(tmp_path / "t.csv")
    assert type(FrameTransforms.load(path)) is FrameTransforms


def test_resolve_failed_interpolates_dz():
    tf = VolumeTransforms(dz=[0.0, np.nan, 2.0], dy=[0.0, np.nan, 4.0], dx=[0, np.nan, 0], ok=[True, False, True])
    resolved, replaced = tf.resolve_failed("interpolate")
    assert list(replaced) == [1]
    np.testing.assert_allclose(resolved.shifts_zyx[1], [1.0, 2.0, 0.0])
    identity, _ = tf.resolve_failed("identity")
    np.testing.assert_allclose(identity.shifts_zyx[1], 0.0)


def test_slicing_composing_inverting_keep_dz():
    tf = _example()[:2]
    assert isinstance(tf, VolumeTransforms) and list(tf.dz) == [0.25, -1.5]
    np.testing.assert_allclose(tf.compose(tf.invert()).shifts_zyx, 0.0)
    np.testing.assert_allclose(tf.relative_to(1).shifts_zyx[1], 0.0)
    assert tf.to_matrices().shape == (2, 4, 4) and tf.to_matrices()[0, 0, 3] == 0.25


def test_smoothing_keeps_dz_and_reasons():
    tf = VolumeTransforms(
        dz=np.arange(7.0) * 2, dy=np.zeros(7), dx=np.ones(7), ok=[True] * 6 + [False], reason=[""] * 6 + ["jumps"]
    )
    out = smooth_transforms(tf, window_length=5, polyorder=1)
    assert isinstance(out, VolumeTransforms)
    np.testing.assert_allclose(out.dz, tf.dz, atol=1e-9)


def test_what_would_drop_dz_is_refused():
    tf = _example()
    with pytest.raises(ValueError, match="cannot be applied frame by frame in 2-D"):
        tf.to_cv2_matrices()
    with pytest.raises(ValueError, match="translations only"):
        VolumeTransforms(dz=[0.0], dy=[0.0], dx=[0.0], angle=[3.0])
    with pytest.raises(ValueError, match="dz is NaN"):
        VolumeTransforms(dz=[np.nan], dy=[0.0], dx=[0.0])
    with pytest.raises(ValueError, match="dz has 2 values"):
        VolumeTransforms(dz=[0.0, 1.0], dy=[0.0], dx=[0.0])
    with pytest.raises(ValueError, match="compose only with volume"):
        tf.compose(FrameTransforms(dy=np.zeros(3), dx=np.zeros(3)))
