"""FFT helpers shared by the registration methods.

Fast real-FFT sizes (:func:`fast_shape`, ``next_fast_len``), the real FFT
with ``workers=`` (:func:`rfft2`), cached apodisation windows
(:func:`hann_window`) and a sub-pixel peak locator, :func:`parabolic_peak`: a
separable three-point parabola fit around an integer maximum (fast, but
biased towards whole pixels: use it only to seed a finer estimate).

Everything works in float32 / complex64 unless the input is float64.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import fft as sfft

__all__ = ["fast_shape", "hann_window", "parabolic_peak", "rfft2"]


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
