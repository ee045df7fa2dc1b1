"""Fourier masks that weight spatial frequencies in a cross-correlation.

The masks follow the cutoff convention of the rigidregistration package
(Savitzky et al., Ultramicroscopy 2018): the parameter ``n`` means that
*features smaller than about n pixels are ignored*. Frequencies are measured
in cycles per pixel on each axis separately, so the masks are correct for
non-square and odd-sized frames::

    f_y = scipy.fft.fftfreq(H)          f_x = scipy.fft.rfftfreq(W)  (or fftfreq(W))
    f   = sqrt(f_y**2 + f_x**2)         cutoff f_c = 1 / (2 n)

For a square N x N frame, ``f * N`` is the integer frequency radius ``k_r``
the reference uses and ``f_c * N = N / (2 n)`` its ``k_max``, so the masks
are identical there. (The reference builds its grid with ``arange(-N//2,
N//2)`` on both axes, which is one sample short for odd sizes and assumes
square frames: a 201 x 199 frame crashes it.)

=====================  ===========================================================
kind                   mask value at radial frequency ``f`` (0 where ``f >= f_c``)
=====================  ===========================================================
``"bandpass"``         ``sin(2 pi n f)**2``  (0 at DC, largest at ``f_c / 2``)
``"hann"``             ``cos(pi n f)**2``    (1 at DC, 0 at ``f_c``)
``"lowpass"``          same as ``"hann"`` (the reference's alias)
``"hamming"``          ``0.54 + 0.46 cos(pi f / f_c)``
``"blackman"``         ``0.42 + 0.5 cos(pi f / f_c) + 0.08 cos(2 pi f / f_c)``
``"gaussian"``         ``exp(-(f / s)**2)`` with ``s = f_c / 3``, no cutoff
                       (no factor 1/2 in the exponent, as in the reference)
``"none"``             1 everywhere
``"elliptical"``       ``exp(-(a fy**2 + 2 b fy fx + c fx**2))`` (no cutoff) with
                       ``s1 = f_c(n) / 3``, ``s2 = f_c(n2) / 3``, ``t = theta``:
                       ``a = cos(t)**2 / (2 s1**2) + sin(t)**2 / (2 s2**2)``,
                       ``b = sin(2t) / (4 s2**2) - sin(2t) / (4 s1**2)``,
                       ``c = sin(t)**2 / (2 s1**2) + cos(t)**2 / (2 s2**2)``.
                       The ``n`` axis (width ``s1``) points along
                       ``(cos t, -sin t)`` in (row, column) frequency
                       coordinates: ``theta = 0`` is the vertical frequency
                       axis and a positive ``theta`` turns it clockwise as
                       displayed. Same form as the reference's
                       ``makeFourierMask_eg(n1, n2, theta)`` with ``n1 = n``,
                       except that ``theta`` is in degrees here.
``"user"``             a user-supplied centred mask (see below)
=====================  ===========================================================

Layout
------
:func:`fourier_mask` returns the mask in the layout of :func:`scipy.fft.rfft2`
(the half plane, shape ``(H, W // 2 + 1)``, DC at ``[0, 0]``), ready to
multiply a real FFT. ``centered=True`` returns the full ``(H, W)`` plane with
DC at ``(H // 2, W // 2)`` (the layout of :func:`numpy.fft.fftshift`) for
display; :func:`centered_mask` converts a half-plane mask the same way.

A user mask is given centred (full plane, DC at ``(H // 2, W // 2)``), like
the reference's ``makeUserDefinedFourierMask``. A correlation of real images
only sees the part of a mask that is symmetric under ``k -> -k``, so the mask
is symmetrised, ``(M(k) + M(-k)) / 2``, before use. Masks must be finite and
non-negative.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import fft as sfft

from ._options import (
    FIXED_MASK_DEFAULT,
    MASK_KINDS,
    PAIRWISE_DEFAULTS,
    canonical_mask_kind,
    check_mask_size,
    validate_option,
)

__all__ = ["MASK_KINDS", "centered_mask", "fourier_mask", "mask_cutoff", "radial_frequency"]


def _check_shape(shape: Any) -> tuple[int, int]:
    try:
        h, w = (int(s) for s in shape)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"shape must be a (rows, cols) pair of integers, got {shape!r}.") from exc
    if h < 2 or w < 2:
        raise ValueError(f"shape must be at least 2 x 2 pixels, got {(h, w)}.")
    return h, w


def mask_cutoff(n: float) -> float:
    """Cutoff frequency ``f_c = 1 / (2 n)`` in cycles per pixel for a mask size ``n``."""
    return 1.0 / (2.0 * check_mask_size(n))


def _frequency_grid(shape: tuple[int, int], half: bool) -> tuple[np.ndarray, np.ndarray]:
    h, w = shape
    fy = sfft.fftfreq(h)[:, None]
    fx = (sfft.rfftfreq(w) if half else sfft.fftfreq(w))[None, :]
    return fy, fx


def radial_frequency(shape: tuple[int, int], *, half: bool = True) -> np.ndarray:
    """Radial frequency (cycles/px) of every FFT sample, unshifted layout.

    ``half=True`` gives the :func:`scipy.fft.rfft2` half plane.
    """
    fy, fx = _frequency_grid(_check_shape(shape), half)
    return np.hypot(fy, fx)


def _radial_mask(kind: str, f: np.ndarray, n: float) -> np.ndarray:
    fc = 1.0 / (2.0 * n)
    inside = f < fc
    if kind == "bandpass":
        return np.where(inside, np.sin(2.0 * np.pi * n * f) ** 2, 0.0)
    if kind in ("hann", "lowpass"):
        return np.where(inside, np.cos(np.pi * n * f) ** 2, 0.0)
    if kind == "hamming":
        return np.where(inside, 0.54 + 0.46 * np.cos(np.pi * f / fc), 0.0)
    if kind == "blackman":
        return np.where(inside, 0.42 + 0.5 * np.cos(np.pi * f / fc) + 0.08 * np.cos(2.0 * np.pi * f / fc), 0.0)
    if kind == "gaussian":
        return np.exp(-((f / (fc / 3.0)) ** 2))
    if kind == "none":
        return np.ones_like(f)
    raise AssertionError(kind)  # pragma: no cover - checked by the caller


def _elliptical(fy: np.ndarray, fx: np.ndarray, n1: float, n2: float, theta_deg: float) -> np.ndarray:
    s1 = (1.0 / (2.0 * n1)) / 3.0
    s2 = (1.0 / (2.0 * n2)) / 3.0
    t = np.deg2rad(theta_deg)
    a = np.cos(t) ** 2 / (2 * s1**2) + np.sin(t) ** 2 / (2 * s2**2)
    b = np.sin(2 * t) / (4 * s2**2) - np.sin(2 * t) / (4 * s1**2)
    c = np.sin(t) ** 2 / (2 * s1**2) + np.cos(t) ** 2 / (2 * s2**2)
    return np.exp(-(a * fy**2 + 2 * b * fy * fx + c * fx**2))


def _user_half(user_mask: Any, shape: tuple[int, int]) -> np.ndarray:
    if user_mask is None:
        raise ValueError("kind='user' needs user_mask: a centred (rows, cols) array the size of the frames.")
    m = np.asarray(user_mask, dtype=np.float64)
    if m.shape != shape:
        raise ValueError(
            f"user_mask has shape {m.shape} but the frames are {shape}: give a centred mask the size of one frame "
            "(DC at (rows // 2, cols // 2))."
        )
    if not np.all(np.isfinite(m)):
        raise ValueError("user_mask contains NaN or infinite values.")
    if np.any(m < 0):
        raise ValueError("user_mask must be non-negative (it weights the cross-power spectrum).")
    unshifted = np.fft.ifftshift(m)
    # M(-k): index -k mod N on both axes
    flipped = np.roll(unshifted[::-1, ::-1], 1, axis=(0, 1))
    sym = 0.5 * (unshifted + flipped)
    return sym[:, : shape[1] // 2 + 1]


def fourier_mask(
    shape: tuple[int, int],
    kind: str = FIXED_MASK_DEFAULT,
    n: float = PAIRWISE_DEFAULTS.n,
    *,
    n2: float | None = PAIRWISE_DEFAULTS.n2,
    theta: float = PAIRWISE_DEFAULTS.theta,
    user_mask: Any = None,
    centered: bool = False,
) -> np.ndarray:
    """A Fourier-space weighting mask for frames of ``shape``.

    Parameters
    ----------
    shape : (int, int)
        Frame (or padded FFT) shape, rows x cols; any size, odd or even,
        square or not.
    kind : str
        One of :data:`MASK_KINDS` but ``"auto"`` (which needs the stack); see the
        module docstring for the formulas.
    n : float
        Cutoff size in pixels (>= 1): features smaller than about ``n`` px are
        ignored. For ``"elliptical"`` it is the size along the first axis.
    n2 : float, optional
        Second-axis size of the ``"elliptical"`` mask (default ``n``).
    theta : float
        Angle of the ``"elliptical"`` mask's first axis, in degrees (see the
        module docstring).
    user_mask : array_like, optional
        For ``kind="user"``: a centred, non-negative ``shape`` array.
    centered : bool
        False (default): the :func:`scipy.fft.rfft2` half plane,
        shape ``(H, W // 2 + 1)``. True: the full plane with DC at
        ``(H // 2, W // 2)``, for display.

    Returns
    -------
    ndarray of float32
        The mask, with values in [0, 1] for the built-in kinds.

    Raises
    ------
    ValueError
        For an unknown kind, ``n < 1``, or a bad user mask.
    """
    shape = _check_shape(shape)
    key = canonical_mask_kind(kind)
    if key == "auto":
        raise ValueError(
            "the 'auto' mask is chosen from a stack's power spectrum: register_pairwise and mask_preview make it "
            "(core.pairwise._automask.auto_masks); fourier_mask makes the fixed kinds."
        )
    if key == "user":
        half = _user_half(user_mask, shape)
    else:
        n1 = check_mask_size(n)
        fy, fx = _frequency_grid(shape, half=True)
        if key == "elliptical":
            second = n1 if n2 is None else check_mask_size(n2, "n2")
            half = _elliptical(fy, fx, n1, second, validate_option("theta", theta))
        else:
            half = _radial_mask(key, np.hypot(fy, fx), n1)
    half = np.asarray(half, dtype=np.float32)
    if centered:
        return centered_mask(half, shape)
    return half


def centered_mask(half: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Expand an rfft half-plane mask (symmetric under ``k -> -k``) to the
    full ``shape`` plane with DC at ``(H // 2, W // 2)``, for display.

    Works for odd and even sizes.
    """
    h, w = _check_shape(shape)
    half = np.asarray(half)
    if half.shape != (h, w // 2 + 1):
        raise ValueError(f"half-plane mask has shape {half.shape}, expected {(h, w // 2 + 1)} for frames {(h, w)}.")
    full = np.empty((h, w), dtype=half.dtype)
    full[:, : w // 2 + 1] = half
    # columns kx > W/2 are the negative frequencies -(W - kx): M(ky, kx) = M(-ky, W - kx)
    cols = np.arange(w // 2 + 1, w)
    rows_neg = (-np.arange(h)) % h
    if cols.size:
        full[:, cols] = half[rows_neg][:, w - cols]
    return np.fft.fftshift(full)
