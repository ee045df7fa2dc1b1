"""FFT helpers of ``core.fourier`` against direct computations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import fft as sfft
from scipy.fft import next_fast_len

from napari_stackalign.core import fourier


def test_fast_shape_pads_to_fast_sizes():
    shape = fourier.fast_shape((97, 120), (10, 3))
    assert shape[0] >= 107 and shape[1] >= 123
    assert shape == (next_fast_len(107, real=True), next_fast_len(123, real=True))
    with pytest.raises(ValueError):
        fourier.fast_shape((10, 10), (1, 2, 3))


def test_parabolic_peak_of_a_sampled_parabola():
    y, x = np.mgrid[0:7, 0:7]
    surface = -((y - 3.3) ** 2) - 0.5 * (x - 2.8) ** 2
    py, px = fourier.parabolic_peak(surface)
    assert py == pytest.approx(3.3, abs=1e-9) and px == pytest.approx(2.8, abs=1e-9)
    # on the border the offset along that axis is 0
    assert fourier.parabolic_peak(-((y - 0.0) ** 2) - x**2) == (0.0, 0.0)


def test_hann_window_is_cached_and_read_only():
    a = fourier.hann_window((8, 6))
    assert a is fourier.hann_window((8, 6))
    assert a.dtype == np.float32 and not a.flags.writeable
    assert a.max() <= 1 and a[0, 0] == 0
    with pytest.raises(ValueError):
        fourier.hann_window((0, 4))


def test_rfft2_pads_the_last_two_axes_and_keeps_single_precision():
    image = np.random.default_rng(2).normal(size=(3, 10, 12)).astype(np.float32)
    spectrum = fourier.rfft2(image, (16, 16))
    assert spectrum.dtype == np.complex64 and spectrum.shape == (3, 16, 9)
    np.testing.assert_allclose(spectrum, sfft.rfft2(image.astype(np.float64), s=(16, 16)), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "shape", [(2, 2), (3, 5), (8, 8), (9, 16), (16, 9), (15, 15), (64, 80), (81, 75), (100, 100), (97, 101), (256, 256)]
)
def test_power_spectrum_matches_numpy_in_the_real_fft_layout(shape):
    image = np.random.default_rng(sum(shape)).normal(size=shape).astype(np.float32)
    expected = np.abs(np.fft.rfft2(image.astype(np.float64))) ** 2
    power = fourier.power_spectrum(image)
    assert power.dtype == np.float32
    assert power.shape == expected.shape
    np.testing.assert_allclose(power, expected, rtol=0, atol=2e-6 * expected.max())


def test_power_spectrum_needs_a_2d_image():
    with pytest.raises(ValueError, match="2-D"):
        fourier.power_spectrum(np.zeros((2, 4, 4), np.float32))
