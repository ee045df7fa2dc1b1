"""FFT helpers of ``core.fourier`` against direct computations."""

from __future__ import annotations

import numpy as np
import pytest

from napari_stackalign.core import fourier


def test_fast_shape_pads_to_fast_sizes():
    shape = fourier.fast_shape((97, 120), (10, 3))
    assert shape[0] >= 107 and shape[1] >= 123
    from scipy.fft import next_fast_len

    assert shape == (next_fast_len(107, real=True), next_fast_len(123, real=True))
    with pytest.raises(ValueError):
        fourier.fast_shape((10, 10), (1, 2, 3))


def test_linear_cross_correlation_matches_brute_force():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(20, 24)).astype(np.float32)
    mov = rng.normal(size=(20, 24)).astype(np.float32)
    out = fourier.linear_cross_correlation(mov, ref, (3, 4))
    assert out.shape == (7, 9)
    for sy in range(-3, 4):
        for sx in range(-4, 5):
            r0, r1 = max(0, -sy), min(20, 20 - sy)
            c0, c1 = max(0, -sx), min(24, 24 - sx)
            direct = (mov[r0 + sy : r1 + sy, c0 + sx : c1 + sx] * ref[r0:r1, c0:c1]).sum()
            assert out[3 + sy, 4 + sx] == pytest.approx(direct, rel=1e-4, abs=1e-3)


def test_parabolic_peak_of_a_sampled_parabola():
    y, x = np.mgrid[0:7, 0:7]
    surface = -((y - 3.3) ** 2) - 0.5 * (x - 2.8) ** 2
    py, px = fourier.parabolic_peak(surface)
    assert py == pytest.approx(3.3, abs=1e-9) and px == pytest.approx(2.8, abs=1e-9)
    # on the border the offset along that axis is 0
    assert fourier.parabolic_peak(-((y - 0.0) ** 2) - x**2) == (0.0, 0.0)


@pytest.mark.parametrize("shift", [(2.37, -4.81), (-0.5, 0.25), (7.02, 3.99)])
def test_upsampled_peak_recovers_a_fourier_shift(shift):
    rng = np.random.default_rng(1)
    img = rng.normal(size=(64, 80))
    from scipy import ndimage

    img = ndimage.gaussian_filter(img, 2.0)
    moved = fourier.fourier_shift(img, shift)  # moved[p] = img[p - shift]
    cps = fourier.cross_power(fourier.rfft2(moved), fourier.rfft2(img))
    # the peak is the s with moved[p + s] ~ img[p], i.e. s = shift
    coarse = (round(shift[0] + 0.3), round(shift[1] - 0.4))
    est = fourier.upsampled_peak(cps, img.shape, coarse, upsample=100)
    np.testing.assert_allclose(est, shift, atol=0.011)


def test_hann_window_is_cached_and_read_only():
    a = fourier.hann_window((8, 6))
    assert a is fourier.hann_window((8, 6))
    assert a.dtype == np.float32 and not a.flags.writeable
    assert a.max() <= 1 and a[0, 0] == 0
    with pytest.raises(ValueError):
        fourier.hann_window((0, 4))


def test_cross_power_phase_only_is_unit_magnitude():
    rng = np.random.default_rng(2)
    a = fourier.rfft2(rng.normal(size=(16, 16)))
    b = fourier.rfft2(rng.normal(size=(16, 16)))
    p = fourier.cross_power(a, b, normalize=True)
    np.testing.assert_allclose(np.abs(p), 1.0, atol=1e-9)
