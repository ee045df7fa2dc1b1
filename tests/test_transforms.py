"""FrameTransforms: conventions, matrices, composition, tables."""

import json

import numpy as np
import pytest
from scipy import ndimage
from skimage.registration import phase_cross_correlation

from napari_stackalign import FrameTransforms
from napari_stackalign.transforms import stack_transforms


def _random(n=6, seed=0, center=(31.5, 40.0)):
    rng = np.random.default_rng(seed)
    return FrameTransforms(
        dy=rng.normal(0, 5, n),
        dx=rng.normal(0, 5, n),
        angle=rng.normal(0, 10, n),
        scale=rng.uniform(0.8, 1.2, n),
        center=center,
        quality=rng.random(n),
        ok=rng.random(n) > 0.3,
        method="test",
        params={"a": 1, "rates": [0.125, 1]},
    )


def test_sign_matches_skimage_phase_cross_correlation():
    rng = np.random.default_rng(1)
    ref = ndimage.gaussian_filter(rng.random((64, 64)), 2)
    moving = ndimage.shift(ref, (3, -5), order=1, mode="grid-wrap")
    shift, _, _ = phase_cross_correlation(ref, moving)
    ft = FrameTransforms.from_shifts(shift[None])
    # our correction applied with ndimage.shift convention: registered[p] = frame[p - d]
    assert np.allclose(ft.shifts[0], (-3, 5))
    registered = ndimage.shift(moving, ft.shifts[0], order=1, mode="grid-wrap")
    assert np.allclose(registered, ref, atol=1e-6)


def test_matrix_maps_point_as_documented():
    ft = FrameTransforms(dy=[2.0], dx=[-1.0], angle=[90.0], scale=[2.0], center=(10.0, 10.0))
    m = ft.to_matrices()[0]
    # a point one column right of the centre, rotated +90 deg (counter-clockwise
    # as displayed) lands above the centre, twice as far, then shifted by (dy, dx)
    p = m @ np.array([10.0, 11.0, 1.0])
    assert np.allclose(p[:2], (10 - 2 + 2, 10 - 1))


def test_from_matrices_round_trip_any_centre():
    ft = _random()
    back = FrameTransforms.from_matrices(ft.to_matrices(), center=ft.center)
    for name in ("dy", "dx", "angle", "scale"):
        assert np.allclose(getattr(back, name), getattr(ft, name))
    moved = ft.with_center((0.0, 0.0))
    assert moved.allclose(ft)
    assert moved.center == (0.0, 0.0)


def test_from_matrices_rejects_shear():
    m = np.eye(3)[None].copy()
    m[0, 0, 1] = 0.3
    with pytest.raises(ValueError, match="similarity"):
        FrameTransforms.from_matrices(m)


def test_compose_and_invert():
    a, b = _random(seed=1), _random(seed=2)
    ab = a.compose(b)
    assert np.allclose(ab.to_matrices(), b.to_matrices() @ a.to_matrices())
    ident = a.compose(a.invert())
    assert ident.allclose(FrameTransforms.identity(len(a)), atol=1e-9)
    assert np.array_equal(ab.ok, a.ok & b.ok)


def test_relative_to_leaves_frame_unchanged():
    ft = _random()
    rel = ft.relative_to(3)
    assert np.allclose(rel.to_matrices()[3], np.eye(3))


def test_csv_and_json_round_trip(tmp_path):
    ft = _random()
    ft.quality[2] = np.nan
    for name in ("t.csv", "t.json"):
        path = ft.save(tmp_path / name)
        back = FrameTransforms.load(path)
        assert back.allclose(ft)
        assert np.array_equal(back.ok, ft.ok)
        assert np.isnan(back.quality[2])
        assert back.center == ft.center
        assert back.method == "test"
        assert back.params == {"a": 1, "rates": [0.125, 1]}
    json.loads(ft.to_json())  # strict JSON (NaN as null)
    assert "NaN" not in ft.to_json()


def test_plain_csv_with_dy_dx(tmp_path):
    path = tmp_path / "plain.csv"
    path.write_text("dy,dx\n1.5,2\n-1,0.25\n")
    ft = FrameTransforms.from_csv(path)
    assert np.allclose(ft.shifts, [[1.5, 2], [-1, 0.25]])
    assert ft.is_translation


def test_bad_tables(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="dy"):
        FrameTransforms.from_csv(path)
    with pytest.raises(ValueError, match="cannot read"):
        FrameTransforms.from_csv(tmp_path / "missing.csv")
    with pytest.raises(ValueError, match=".csv or .json"):
        FrameTransforms.load(tmp_path / "x.xlsx")


def test_validation_of_lengths_and_scale():
    with pytest.raises(ValueError, match="frames"):
        FrameTransforms(dy=[0, 1], dx=[0, 1, 2])
    with pytest.raises(ValueError, match="scale"):
        FrameTransforms(dy=[0], dx=[0], scale=[0])


def test_slicing_and_concatenation():
    ft = _random(n=10)
    parts = [ft[0:4], ft[4:10]]
    assert stack_transforms(parts).allclose(ft)
    assert len(ft[ft.ok]) == ft.ok.sum()


# ----------------------------------------------------------------- failed frames and validation
def test_failed_frames_carry_a_reason_through_csv_json_and_slicing(tmp_path):
    ft = FrameTransforms(dy=[0.0, 1.0, np.nan, 3.0], dx=[0.0, 1.0, np.nan, 3.0], ok=[True, True, False, True])
    assert list(ft.reason) == ["", "", "flagged (no reason recorded)", ""]
    ft = ft.flag([1], "peak not significant")
    assert list(ft.ok) == [True, False, False, True]
    assert ft.reason[1] == "peak not significant"
    for suffix in (".csv", ".json"):
        back = FrameTransforms.load(ft.save(tmp_path / f"t{suffix}"))
        assert list(back.reason) == list(ft.reason)
        assert list(back.ok) == list(ft.ok)
        assert np.isnan(back.dy[2])
    assert list(ft[1:3].reason) == list(ft.reason[1:3])
    assert "peak not significant" in ft.failure_summary()


def test_nan_is_refused_on_a_trustworthy_frame_and_inf_everywhere():
    with pytest.raises(ValueError, match="NaN at frame"):
        FrameTransforms(dy=[0.0, np.nan], dx=[0.0, 0.0])
    with pytest.raises(ValueError, match="infinite"):
        FrameTransforms(dy=[0.0, np.inf], dx=[0.0, 0.0], ok=[True, False])


def test_lengths_must_agree_a_scalar_is_broadcast():
    with pytest.raises(ValueError, match="dx has 1 values"):
        FrameTransforms(dy=[1.0, 2.0], dx=[5.0])
    assert list(FrameTransforms(dy=[1.0, 2.0], dx=5.0).dx) == [5.0, 5.0]


def test_resolve_failed_interpolates_from_trustworthy_neighbours():
    ft = FrameTransforms(dy=[0.0, 9.0, 2.0, np.nan], dx=[0.0, 9.0, 4.0, np.nan], ok=[True, False, True, False])
    resolved, replaced = ft.resolve_failed("interpolate")
    assert list(replaced) == [1, 3]
    np.testing.assert_allclose(resolved.dy, [0.0, 1.0, 2.0, 2.0])
    np.testing.assert_allclose(resolved.dx, [0.0, 2.0, 4.0, 4.0])
    assert list(resolved.ok) == list(ft.ok)  # still flagged
    resolved, _ = ft.resolve_failed("identity")
    np.testing.assert_allclose(resolved.dy, [0.0, 0.0, 2.0, 0.0])
    with pytest.raises(ValueError, match="no transform"):
        ft.resolve_failed("apply")


def test_no_trustworthy_frame_warns_and_corrects_nothing():
    from napari_stackalign import NoSignalWarning

    ft = FrameTransforms(dy=[3.0, 4.0], dx=[1.0, 2.0], ok=[False, False], reason="no signal")
    with pytest.warns(NoSignalWarning, match="nothing was corrected"):
        resolved, _ = ft.resolve_failed()
    np.testing.assert_allclose(resolved.shifts, 0.0)


def test_apply_does_not_apply_a_failed_estimate_and_never_warps_nan():
    from napari_stackalign import FailedFramesWarning, apply_transforms

    stack = np.zeros((3, 16, 16), np.float32)
    stack[:, 8, 8] = 1
    ft = FrameTransforms(dy=[0.0, np.nan, 2.0], dx=[0.0, np.nan, 0.0], ok=[True, False, True], reason="test")
    with pytest.warns(FailedFramesWarning, match="interpolated"):
        out = apply_transforms(stack, ft, order=0, border="edge")
    assert out[1, 9, 8] == 1  # interpolated: dy = 1
    with pytest.raises(ValueError, match="no transform"):
        apply_transforms(stack, ft, failed="apply")


def test_a_shift_beyond_the_frame_is_an_error_when_applied():
    from napari_stackalign import apply_transforms

    ft = FrameTransforms(dy=[0.0, 1e300], dx=[0.0, 0.0])
    with pytest.raises(ValueError, match="more than the frame"):
        apply_transforms(np.zeros((2, 8, 8), np.float32), ft)


def test_hdf5_table_keeps_reasons(tmp_path):
    from napari_stackalign import read_stack, write_stack

    ft = FrameTransforms(dy=[0.0, 1.0], dx=[0.0, 1.0]).flag([1], "drift at the search bound")
    path = write_stack(tmp_path / "o.h5", np.zeros((2, 8, 8), np.float32), transforms=ft)
    back = read_stack(path).transforms
    assert list(back.reason) == ["", "drift at the search bound"]


def test_to_matrices_of_chosen_frames_equal_the_rows_of_all_matrices() -> None:
    rng = np.random.default_rng(3)
    ft = FrameTransforms(
        dy=rng.normal(size=7), dx=rng.normal(size=7), angle=rng.normal(size=7), scale=1 + 0.01 * rng.normal(size=7),
        center=(10.5, 20.0),
    )
    every = ft.to_matrices()
    np.testing.assert_array_equal(ft.to_matrices(3), every[3])
    assert ft.to_matrices(3).shape == (3, 3)
    np.testing.assert_array_equal(ft.to_matrices(np.int64(-1)), every[-1])
    np.testing.assert_array_equal(ft.to_matrices(slice(2, 5)), every[2:5])
    np.testing.assert_array_equal(ft.to_matrices([0, 6]), every[[0, 6]])
