"""Rotation and scale from the log-polar transform of spectrum magnitudes.

The magnitude of a frame's Fourier spectrum does not change when the frame
is translated, and it turns and shrinks with the frame: content rotated by
``a`` and scaled by ``s`` has the spectrum magnitude of the original rotated
by ``a`` and scaled by ``1 / s``. Resampled on a grid of (angle, log radius)
that rotation and scale become a plain 2-D shift, which phase correlation
finds (Reddy & Chatterji 1996; the method of imreg_dft).

Implementation notes

- The real FFT (``scipy.fft.rfft2``) holds the half plane ``kx >= 0``,
  which is all a magnitude spectrum needs (it is point-symmetric), so the
  log-polar grid spans angles ``[-90, 90)`` degrees and is resampled straight
  from the half spectrum with ``cv2.remap`` through maps computed once.
- Frequencies are in cycles per pixel along each axis, so non-square frames
  (and FFT padding) keep the geometry right.
- The radial band is limited to ``[r_min, r_max]``. The map is the
  magnitude (mean removed) times a radial weight: ``r**2`` (a high-pass
  that flattens the fall-off of image spectra), a Tukey taper along log
  radius (so the phase correlation sees no edge), and a Wiener-like factor
  ``max(P(r) - N, 0) / P(r)`` from the template's radial power ``P`` and its
  noise floor ``N`` (the power beyond 0.45 cycles/px), which silences
  radii where noise dominates. On synthetic stacks at SNR 0.7 this raised
  the share of correct rotation/scale estimates from about 50 % to 95 %;
  a log-magnitude map did slightly worse than the plain magnitude.
- The angle axis is periodic (180 degrees), the log-radius axis is padded
  so shifts do not wrap.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import fft as sfft

__all__ = [
    "SCALE_LIMITS",
    "LogPolarGrid",
    "apodization_window",
    "logpolar_magnitude",
    "make_logpolar_grid",
    "noise_weight",
    "subpixel_peak",
    "tukey_window",
]

#: scale changes the log-polar stage can measure
SCALE_LIMITS = (0.5, 2.0)


def tukey_window(n: int, fraction: float) -> np.ndarray:
    """1-D Tukey window of length ``n`` whose cosine ramps cover ``fraction`` of it."""
    w = np.ones(n, dtype=np.float64)
    ramp = int(round(fraction * n / 2))
    if ramp > 0:
        k = np.arange(ramp)
        edge = 0.5 * (1 - np.cos(np.pi * (k + 0.5) / ramp))
        w[:ramp] = edge
        w[n - ramp :] = edge[::-1]
    return w.astype(np.float32)


def apodization_window(shape: tuple[int, int], fraction: float = 0.25) -> np.ndarray:
    """Separable 2-D Tukey window: frames fade to their mean over ``fraction``
    of each side (split between both edges), which removes the cross of
    edge artefacts from their spectra."""
    return np.outer(tukey_window(shape[0], fraction), tukey_window(shape[1], fraction))


@dataclass(frozen=True)
class LogPolarGrid:
    """Sampling of a half spectrum on an (angle, log radius) grid.

    Attributes
    ----------
    fft_shape : (int, int)
        Padded frame shape the spectra are computed at.
    n_angles, n_radii : int
        Grid size: ``n_angles`` rows over 180 degrees, ``n_radii`` columns
        from ``r_min`` to ``r_max`` (cycles per pixel), geometrically spaced.
    map_rows, map_cols : ndarray, float32, (n_angles, n_radii)
        Where each grid point lies in the half spectrum after ``fftshift``
        along rows (for ``cv2.remap``).
    radii : ndarray, float64, (n_radii,)
        Radius of each column in cycles per pixel.
    weight : ndarray, float32, (n_radii,)
        Radial high-pass weight ``(r / r_max)**2`` times the Tukey taper
        along log radius.
    log_step : float
        ln(radius ratio) between neighbouring columns.
    angle_step : float
        Degrees between neighbouring rows.
    corr_shape : (int, int)
        Shape of the (padded) log-polar maps that are phase-correlated.
    """

    fft_shape: tuple[int, int]
    n_angles: int
    n_radii: int
    r_min: float
    r_max: float
    map_rows: np.ndarray
    map_cols: np.ndarray
    radii: np.ndarray
    weight: np.ndarray
    log_step: float
    angle_step: float
    corr_shape: tuple[int, int]


def make_logpolar_grid(
    fft_shape: tuple[int, int],
    *,
    n_angles: int | None = None,
    n_radii: int | None = None,
    r_min: float | None = None,
    r_max: float = 0.42,
    max_log_scale: float = np.log(2.0),
) -> LogPolarGrid:
    """Build the log-polar sampling for spectra of ``fft_shape`` frames.

    Parameters
    ----------
    fft_shape : (int, int)
        Shape the frames are zero-padded to before the FFT.
    n_angles : int, optional
        Rows over 180 degrees (default: about the frame's larger side,
        between 180 and 720).
    n_radii : int, optional
        Columns along log radius (default: about half the larger side,
        between 96 and 384).
    r_min, r_max : float
        Radial band in cycles per pixel (``r_min`` defaults to 4 cycles
        over the smaller side).
    max_log_scale : float
        Largest ``|ln(scale)|`` to be measured: the maps are zero-padded by
        that much along log radius so that the correlation does not wrap.
    """
    hf, wf = int(fft_shape[0]), int(fft_shape[1])
    big = max(hf, wf)
    if n_angles is None:
        n_angles = int(np.clip(big, 180, 720))
    if n_radii is None:
        n_radii = int(np.clip(big // 2, 96, 384))
    if r_min is None:
        r_min = 4.0 / min(hf, wf)
    if not 0 < r_min < r_max <= 0.5:
        raise ValueError(f"need 0 < r_min < r_max <= 0.5 cycles/px, got r_min={r_min}, r_max={r_max}.")
    log_step = float(np.log(r_max / r_min) / n_radii)
    radii = r_min * np.exp(log_step * np.arange(n_radii))
    angles = np.deg2rad(-90.0 + 180.0 * np.arange(n_angles) / n_angles)
    ky = np.sin(angles)[:, None] * radii[None, :]
    kx = np.cos(angles)[:, None] * radii[None, :]
    map_rows = (hf // 2 + ky * hf).astype(np.float32)
    map_cols = np.clip(kx * wf, 0.0, None).astype(np.float32)
    taper = tukey_window(n_radii, 0.3).astype(np.float64)
    weight = ((radii / r_max) ** 2 * taper).astype(np.float32)
    pad = int(np.ceil(max_log_scale / log_step)) + 4
    corr_shape = (n_angles, int(sfft.next_fast_len(n_radii + pad, real=True)))
    return LogPolarGrid(
        fft_shape=(hf, wf),
        n_angles=int(n_angles),
        n_radii=int(n_radii),
        r_min=float(r_min),
        r_max=float(r_max),
        map_rows=map_rows,
        map_cols=map_cols,
        radii=radii,
        weight=weight,
        log_step=log_step,
        angle_step=180.0 / n_angles,
        corr_shape=corr_shape,
    )


def _resample(values: np.ndarray, grid: LogPolarGrid) -> np.ndarray:
    shifted = np.fft.fftshift(values, axes=0)
    return cv2.remap(shifted, grid.map_cols, grid.map_rows, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def logpolar_magnitude(spectrum: np.ndarray, grid: LogPolarGrid, weight: np.ndarray | None = None) -> np.ndarray:
    """Resample ``|spectrum|`` (an ``rfft2`` of ``grid.fft_shape``) to the grid.

    Parameters
    ----------
    spectrum : ndarray, complex
        Half spectrum from ``scipy.fft.rfft2(frame, s=grid.fft_shape)``.
    grid : LogPolarGrid
        The sampling.
    weight : ndarray (n_radii,), optional
        Radial weight (default ``grid.weight``); use the same one for every
        map that is correlated.

    Returns
    -------
    ndarray, float32, (n_angles, n_radii)
        The mean-removed, weighted map.
    """
    lp = _resample(np.abs(spectrum).astype(np.float32, copy=False), grid)
    lp -= lp.mean()
    lp *= (grid.weight if weight is None else weight)[None, :]
    return lp


def noise_weight(spectrum: np.ndarray, grid: LogPolarGrid, *, noise_radius: float = 0.45) -> np.ndarray:
    """Radial weight ``grid.weight * max(P(r) - N, 0) / P(r)`` for a spectrum.

    ``P(r)`` is the spectrum's power averaged over angles at each grid
    radius, ``N`` the mean power beyond ``noise_radius`` cycles/px (white
    noise is flat, image content rarely reaches that far). Radii where the
    noise dominates get little weight.
    """
    power = (np.abs(spectrum) ** 2).astype(np.float32)
    profile = _resample(power, grid).mean(axis=0).astype(np.float64)
    hf, wf = grid.fft_shape
    ky = sfft.fftfreq(hf)[:, None]
    kx = sfft.rfftfreq(wf)[None, :]
    outer = np.hypot(ky, kx) > noise_radius
    noise = float(power[outer].mean()) if outer.any() else 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        snr_weight = np.clip((profile - noise) / profile, 0.0, 1.0)
    snr_weight = np.nan_to_num(snr_weight, nan=0.0)
    return (grid.weight * snr_weight).astype(np.float32)


def subpixel_peak(
    corr: np.ndarray, allowed: np.ndarray | None = None, *, wrap: tuple[bool, bool] = (True, True)
) -> tuple[float, float, float]:
    """Highest value of a 2-D correlation and its sub-pixel position.

    A parabola through the peak and its two neighbours on each axis refines
    the position (neighbours wrap around where ``wrap`` says the axis is
    periodic). ``allowed`` (boolean, same shape) restricts the search.

    Returns
    -------
    (row, col, value)
    """
    if allowed is not None:
        masked = np.where(allowed, corr, -np.inf)
        flat = int(np.argmax(masked))
    else:
        flat = int(np.argmax(corr))
    r, c = np.unravel_index(flat, corr.shape)
    value = float(corr[r, c])
    offsets = []
    for axis, (pos, n) in enumerate(((r, corr.shape[0]), (c, corr.shape[1]))):
        lo, hi = pos - 1, pos + 1
        if wrap[axis]:
            lo %= n
            hi %= n
        elif lo < 0 or hi >= n:
            offsets.append(0.0)
            continue
        if axis == 0:
            a, b = float(corr[lo, c]), float(corr[hi, c])
        else:
            a, b = float(corr[r, lo]), float(corr[r, hi])
        denom = a - 2 * value + b
        offsets.append(float(np.clip(0.5 * (a - b) / denom, -0.5, 0.5)) if denom < 0 else 0.0)
    return r + offsets[0], c + offsets[1], value
