"""FFT helpers shared by the registration methods.

Real FFTs (:func:`scipy.fft.rfft2`) on ``next_fast_len`` sizes with
``workers=``, cached apodisation windows, linear (zero-padded) cross-correlation
and two sub-pixel peak locators:

- :func:`parabolic_peak`: a separable three-point parabola fit around an
  integer maximum (fast, but biased towards whole pixels: use it only to seed a
  finer estimate);
- :func:`upsampled_peak`: the matrix-multiply DFT of the cross-power spectrum
  evaluated on a fine grid around a coarse peak (Guizar-Sicairos et al., 2008),
  accurate to ``1 / upsample`` px without padding the whole spectrum.

Everything works in float32 / complex64 unless the input is float64.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import fft as sfft

__all__ = [
    "cross_power",
    "fast_shape",
    "fourier_shift",
    "hann_window",
    "irfft2",
    "linear_cross_correlation",
    "parabolic_peak",
    "rfft2",
    "upsampled_peak",
]


def fast_shape(shape: tuple[int, ...], pad: tuple[int, ...] | int = 0) -> tuple[int, ...]:
    """The smallest fast real-FFT size of ``shape + pad`` on each axis.

    Parameters
    ----------
    shape : tuple of int
        Array shape.
    pad : int or tuple of int
        Extra samples per axis (for example the largest shift, so a
        correlation does not wrap around).
    """
    pads = (pad,) * len(shape) if np.isscalar(pad) else tuple(pad)
    if len(pads) != len(shape):
        raise ValueError("pad must be an int or have one value per axis.")
    return tuple(sfft.next_fast_len(int(s) + int(p), real=True) for s, p in zip(shape, pads))


def rfft2(image: np.ndarray, shape: tuple[int, int] | None = None, *, workers: int | None = None) -> np.ndarray:
    """2-D real FFT of the last two axes, zero-padded to ``shape``.

    float32 input gives complex64 output (scipy keeps single precision).
    ``workers`` is passed to :func:`scipy.fft.rfft2` (threads; None = 1,
    -1 = all cores).
    """
    return sfft.rfft2(image, s=shape, axes=(-2, -1), workers=workers)


def irfft2(spectrum: np.ndarray, shape: tuple[int, int], *, workers: int | None = None) -> np.ndarray:
    """Inverse of :func:`rfft2` for an output of ``shape`` (last two axes)."""
    return sfft.irfft2(spectrum, s=shape, axes=(-2, -1), workers=workers)


@lru_cache(maxsize=32)
def _hann_cached(shape: tuple[int, int], dtype: str) -> np.ndarray:
    wy = np.hanning(shape[0]) if shape[0] > 1 else np.ones(1)
    wx = np.hanning(shape[1]) if shape[1] > 1 else np.ones(1)
    win = np.outer(wy, wx).astype(dtype)
    win.setflags(write=False)
    return win


def hann_window(shape: tuple[int, int], dtype: np.dtype | str = np.float32) -> np.ndarray:
    """A separable 2-D Hann window (read-only, cached per shape and dtype)."""
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"hann_window needs a 2-D shape, got {shape!r}.")
    return _hann_cached((int(shape[0]), int(shape[1])), np.dtype(dtype).str)


def cross_power(moving_spectrum: np.ndarray, reference_spectrum: np.ndarray, *, normalize: bool = False) -> np.ndarray:
    """``moving * conj(reference)``; with ``normalize`` the phase-only
    (phase correlation) version, safe against zero magnitudes."""
    prod = moving_spectrum * np.conj(reference_spectrum)
    if normalize:
        mag = np.abs(prod)
        mag[mag < np.finfo(mag.dtype).tiny] = 1
        prod /= mag
    return prod


def linear_cross_correlation(
    moving: np.ndarray,
    reference: np.ndarray,
    max_shift: tuple[int, int],
    *,
    reference_spectrum: np.ndarray | None = None,
    workers: int | None = None,
) -> np.ndarray:
    """Non-circular cross-correlation for shifts within ``+/-max_shift``.

    ``out[max_shift[0] + sy, max_shift[1] + sx] = sum_p moving[p + s] * reference[p]``
    over the overlap (zero padding, so nothing wraps around).

    Parameters
    ----------
    moving, reference : ndarray, shape (H, W)
        Same shape.
    max_shift : (int, int)
        Largest shift magnitude per axis (at most H - 1, W - 1).
    reference_spectrum : ndarray, optional
        ``rfft2(reference, fast_shape((H, W), max_shift))``, to reuse across
        calls.
    """
    h, w = moving.shape
    ry, rx = int(max_shift[0]), int(max_shift[1])
    if not (0 <= ry < h and 0 <= rx < w):
        raise ValueError(f"max_shift {max_shift} must be within the frame size {moving.shape}.")
    shape = fast_shape((h, w), (ry, rx))
    if reference_spectrum is None:
        reference_spectrum = rfft2(reference, shape, workers=workers)
    corr = irfft2(rfft2(moving, shape, workers=workers) * np.conj(reference_spectrum), shape, workers=workers)
    rows = np.r_[shape[0] - ry : shape[0], 0 : ry + 1]
    cols = np.r_[shape[1] - rx : shape[1], 0 : rx + 1]
    return corr[np.ix_(rows, cols)]


def parabolic_peak(surface: np.ndarray, index: tuple[int, int] | None = None) -> tuple[float, float]:
    """Sub-pixel position of a maximum by separable three-point parabolas.

    Parameters
    ----------
    surface : ndarray, shape (H, W)
        A correlation (or score) surface.
    index : (int, int), optional
        The integer maximum (default: ``argmax``). On the border the offset
        along that axis is 0.

    Returns
    -------
    (float, float)
        Peak (row, col) position in array coordinates.
    """
    if index is None:
        index = np.unravel_index(int(np.nanargmax(surface)), surface.shape)
    iy, ix = int(index[0]), int(index[1])
    out = []
    for axis, i in ((0, iy), (1, ix)):
        n = surface.shape[axis]
        if 0 < i < n - 1:
            if axis == 0:
                a, b, c = float(surface[i - 1, ix]), float(surface[i, ix]), float(surface[i + 1, ix])
            else:
                a, b, c = float(surface[iy, i - 1]), float(surface[iy, i]), float(surface[iy, i + 1])
            den = a - 2 * b + c
            off = 0.5 * (a - c) / den if den < 0 else 0.0
            out.append(i + min(max(off, -0.5), 0.5))
        else:
            out.append(float(i))
    return out[0], out[1]


def _dft_matrix(n: int, upsample: float, count: int, offset: float, kind: str) -> np.ndarray:
    freqs = sfft.fftfreq(n) if kind == "full" else sfft.rfftfreq(n)
    samples = (np.arange(count) - offset) / upsample
    return np.exp(2j * np.pi * np.outer(samples, freqs))


def upsampled_peak(
    cross_power_spectrum: np.ndarray,
    shape: tuple[int, int],
    estimate: tuple[float, float],
    *,
    upsample: int = 100,
    radius: float = 1.5,
) -> tuple[float, float]:
    """Refine a correlation peak to ``1/upsample`` px by a local matrix DFT.

    Parameters
    ----------
    cross_power_spectrum : ndarray, shape (H, W // 2 + 1)
        ``rfft2(moving) * conj(rfft2(reference))`` (from :func:`rfft2` on a
        real (H, W) grid).
    shape : (int, int)
        The real-space grid (H, W).
    estimate : (float, float)
        Coarse peak (shift ``s`` such that ``moving[p + s] ~ reference[p]``),
        accurate to about a pixel.
    upsample : int
        Upsampling factor (0.01 px for 100).
    radius : float
        Half-width (px) of the refined neighbourhood.

    Returns
    -------
    (float, float)
        Refined shift (row, col).
    """
    h, w = shape
    if upsample < 1:
        raise ValueError("upsample must be at least 1.")
    count = int(np.ceil(2 * radius * upsample)) + 1
    center = count // 2
    sy, sx = float(estimate[0]), float(estimate[1])
    # evaluate c(s) = sum_k P(k) exp(2 pi i k.s) on the fine grid around the estimate
    rows = _dft_matrix(h, upsample, count, center - sy * upsample, "full")
    cols = _dft_matrix(w, upsample, count, center - sx * upsample, "half")
    weights = np.full(w // 2 + 1, 2.0)
    weights[0] = 1.0
    if w % 2 == 0:
        weights[-1] = 1.0
    surface = (rows @ cross_power_spectrum.astype(np.complex128) @ (cols * weights).T).real
    iy, ix = np.unravel_index(int(np.argmax(surface)), surface.shape)
    py, px = parabolic_peak(surface, (iy, ix))
    return sy + (py - center) / upsample, sx + (px - center) / upsample


def fourier_shift(image: np.ndarray, shift: tuple[float, float], *, workers: int | None = None) -> np.ndarray:
    """Shift a (periodic) image by a sub-pixel amount with the Fourier shift
    theorem: ``out[p] = image[p - shift]`` (circularly)."""
    h, w = image.shape
    spec = rfft2(image, workers=workers)
    ky = sfft.fftfreq(h)[:, None]
    kx = sfft.rfftfreq(w)[None, :]
    ramp = np.exp(-2j * np.pi * (ky * shift[0] + kx * shift[1]))
    return irfft2(spec * ramp.astype(spec.dtype), (h, w), workers=workers).astype(image.dtype, copy=False)
