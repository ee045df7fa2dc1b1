"""Savitzky-Golay smoothing of per-frame transforms."""

from __future__ import annotations

import numpy as np
import pytest

from napari_stackalign.core.smoothing import smooth_transforms
from napari_stackalign.transforms import FrameTransforms


def _transforms(dy, dx, **kwargs) -> FrameTransforms:
    return FrameTransforms(dy=dy, dx=dx, center=(10.0, 20.0), method="pyramid", params={"a": 1}, **kwargs)


def test_removes_jitter_and_keeps_the_drift():
    rng = np.random.default_rng(0)
    t = np.arange(60, dtype=float)
    drift_y, drift_x = 0.002 * (t - 30) ** 2, -0.15 * t
    noisy = _transforms(drift_y + rng.normal(0, 0.3, t.size), drift_x + rng.normal(0, 0.3, t.size))
    out = smooth_transforms(noisy, window_length=21, polyorder=3)
    before = np.sqrt(np.mean((noisy.dy - drift_y) ** 2 + (noisy.dx - drift_x) ** 2))
    after = np.sqrt(np.mean((out.dy - drift_y) ** 2 + (out.dx - drift_x) ** 2))
    assert after < 0.5 * before


def test_polynomial_of_the_filter_order_is_kept_exactly():
    t = np.arange(25, dtype=float)
    cubic = 0.001 * t**3 - 0.02 * t**2 + 0.3 * t - 1
    out = smooth_transforms(_transforms(cubic, -cubic), window_length=9, polyorder=3)
    np.testing.assert_allclose(out.dy, cubic, atol=1e-9)
    np.testing.assert_allclose(out.dx, -cubic, atol=1e-9)


def test_keeps_metadata_and_records_the_settings():
    t = np.arange(15, dtype=float)
    q = np.linspace(0.2, 0.9, 15)
    ok = np.ones(15, bool)
    ok[3] = False
    src = _transforms(np.sin(t), np.cos(t), quality=q, ok=ok, angle=0.1 * t, scale=1 + 0.001 * t)
    out = smooth_transforms(src, window_length=5, polyorder=2)
    assert out.center == src.center and out.method == "pyramid"
    np.testing.assert_array_equal(out.quality, q)
    np.testing.assert_array_equal(out.ok, ok)
    assert out.params["a"] == 1
    assert out.params["smoothing"] == {"method": "savgol", "window_length": 5, "polyorder": 2}
    np.testing.assert_allclose(out.angle, 0.1 * t, atol=1e-9)  # linear: unchanged
    np.testing.assert_allclose(out.scale, src.scale, rtol=1e-6)
    # the input is not modified
    np.testing.assert_array_equal(src.dy, np.sin(t))


def test_constant_series_unchanged():
    out = smooth_transforms(_transforms(np.full(12, 2.5), np.zeros(12)))
    np.testing.assert_array_equal(out.dy, 2.5)
    np.testing.assert_array_equal(out.dx, 0.0)


def test_too_short_stack_suggests_a_window_that_fits():
    with pytest.raises(ValueError, match=r"10 frames.*at most 9"):
        smooth_transforms(_transforms(np.arange(10.0), np.zeros(10)), window_length=11, polyorder=3)
    with pytest.raises(ValueError, match="smaller polyorder"):
        smooth_transforms(_transforms(np.arange(3.0), np.zeros(3)), window_length=11, polyorder=3)


@pytest.mark.parametrize(
    "window, order, match",
    [(10, 3, "odd"), (0, 0, "odd"), (5, 5, "smaller than window_length"), (5, -1, "0 or more"), (5.0, 2, "odd integer"),
     (5, 1.5, "integer")],
)
def test_bad_settings(window, order, match):
    with pytest.raises(ValueError, match=match):
        smooth_transforms(_transforms(np.arange(20.0), np.zeros(20)), window_length=window, polyorder=order)


def test_nan_values_are_rejected():
    dy = np.arange(20.0)
    dy[4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        smooth_transforms(_transforms(dy, np.zeros(20)))


def test_smoothing_keeps_each_failed_frames_reason():
    """A failed frame's reason survives smoothing (it used to become 'flagged (no reason recorded)')."""
    n = 9
    ok = np.ones(n, bool)
    ok[4] = False
    reason = [""] * n
    reason[4] = "not significant (z 2.1 < 5.5)"
    ft = FrameTransforms(dy=np.linspace(0, 2, n), dx=np.zeros(n), ok=ok, reason=reason)
    smoothed = smooth_transforms(ft, window_length=5, polyorder=2)
    assert list(smoothed.reason) == reason
    assert list(smoothed.ok) == list(ok)
