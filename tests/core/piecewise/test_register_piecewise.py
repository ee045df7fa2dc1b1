"""register_piecewise against synthetic stacks with a known deformation."""

from __future__ import annotations

import numpy as np
import pytest

import napari_stackalign as sa
from napari_stackalign.core.piecewise import PiecewiseOptions
from napari_stackalign.synthetic_warp import deformed_stack


def _field_error(result: sa.PiecewiseTransforms, truth: np.ndarray, margin: int = 8) -> float:
    """RMS (px) of the estimated correction field against the truth, up to a field fixed in time
    (the template's own deformation, which no method can see)."""
    est = np.stack([result.correction_field(t) for t in range(len(result))])
    err = est - truth
    err -= err.mean(axis=0, keepdims=True)
    m = margin
    return float(np.sqrt(np.mean(np.sum(err[:, :, m:-m, m:-m] ** 2, axis=1))))


@pytest.fixture(scope="module")
def deformed():
    return deformed_stack("neurons", n_frames=16, shape=(128, 128), drift=4.0, amplitude=3.0, snr=8.0, seed=3)


@pytest.fixture(scope="module")
def deformed_result(deformed):
    return sa.register_piecewise(deformed.stack, patch_size=48, patch_overlap=24)


def test_recovers_a_smooth_deformation(deformed, deformed_result):
    rigid_only = sa.PiecewiseTransforms(
        deformed_result.rigid,
        deformed_result.patch_rows,
        deformed_result.patch_cols,
        np.zeros_like(deformed_result.residual),
        deformed_result.frame_shape,
    )
    err_rigid = _field_error(rigid_only, deformed.truth)
    err = _field_error(deformed_result, deformed.truth)
    assert err_rigid > 0.7  # the deformation is there
    assert err < 0.4 * err_rigid, (err, err_rigid)
    assert deformed_result.patch_ok.mean() > 0.9


def test_result_describes_itself(deformed, deformed_result):
    r = deformed_result
    assert len(r) == 16 and r.frame_shape == (128, 128)
    assert r.residual.shape == (16, r.patch_rows.size, r.patch_cols.size, 2)
    assert r.params["patch_size"] == 48 and r.params["passes"] == 2
    assert r.params["rigid_method"] == "pyramid"
    assert np.all(np.isfinite(r.patch_quality[r.patch_ok]))
    # the total correction is the rigid shift plus the residual field
    field = r.correction_field(5)
    res = r.residual_field(5)
    np.testing.assert_allclose(field[0], r.dy[5] + res[0], atol=2e-3)
    np.testing.assert_allclose(field[1], r.dx[5] + res[1], atol=2e-3)


def test_rigid_motion_gives_no_deformation():
    data = deformed_stack("neurons", n_frames=12, shape=(128, 128), drift=5.0, amplitude=0.0, snr=8.0, seed=1)
    result = sa.register_piecewise(data.stack, patch_size=48, patch_overlap=24)
    rms = result.residual_rms()
    assert rms.mean() < 0.06 and rms.max() < 0.2, rms  # the estimation noise at this SNR
    assert not np.any(result.patch_ok & (np.abs(result.residual).max(axis=-1) > 0.3))
    truth_shift = data.truth[:, :, 64, 64]
    err = result.shifts - truth_shift
    err -= err.mean(axis=0)
    assert np.abs(err).max() < 0.1


def test_blank_patches_are_flagged_and_take_their_neighbours_value():
    data = deformed_stack("beads", n_frames=10, shape=(128, 128), drift=3.0, amplitude=1.0, snr=None, seed=2)
    stack = data.stack.copy()
    stack[:, :, 80:] = 0.0  # a blank strip: nothing to register there
    rng = np.random.default_rng(0)
    stack += rng.normal(scale=0.01 * data.stack.std(), size=stack.shape).astype(np.float32)
    result = sa.register_piecewise(stack, patch_size=32, patch_overlap=0, iterate=1)
    blank = result.patch_cols > 96  # patches entirely in the blank strip, however far the frames drift
    assert not result.patch_ok[:, :, blank].any()
    assert result.patch_ok[:, :, result.patch_cols < 64].mean() > 0.8
    # the blank column took the trustworthy patches' values: no wild shift there
    assert np.abs(result.residual[:, :, blank]).max() < 2.0


def test_a_given_rigid_step_is_used_and_checked(deformed, deformed_result):
    again = sa.register_piecewise(deformed.stack, patch_size=48, patch_overlap=24, rigid=deformed_result.rigid)
    assert again.allclose(deformed_result, atol=1e-6)
    with pytest.raises(ValueError, match="one transform per frame"):
        sa.register_piecewise(deformed.stack, rigid=deformed_result.rigid[:3])
    turned = sa.FrameTransforms(dy=np.zeros(16), dx=np.zeros(16), angle=np.ones(16))
    with pytest.raises(ValueError, match="translation"):
        sa.register_piecewise(deformed.stack, rigid=turned)


def test_options_object_and_keywords_agree(deformed):
    opts = PiecewiseOptions(patch_size=48, patch_overlap=24, iterate=1)
    a = sa.register_piecewise(deformed.stack[:6], options=opts)
    b = sa.register_piecewise(deformed.stack[:6], patch_size=48, patch_overlap=24, iterate=1)
    assert a.allclose(b)


def test_bad_stacks_are_refused():
    with pytest.raises(ValueError):
        sa.register_piecewise(np.zeros((4, 8)))
