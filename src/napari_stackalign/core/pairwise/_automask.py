"""The ``"auto"`` Fourier masks, chosen from the stack's own mean power spectrum.

The frames are windowed and transformed as the correlation sees them
(mean removed, real-space Hann window, :mod:`._spectra`). Their mean power
``P(k)`` is signal plus noise; Poisson and read noise are white, so the noise
floor ``N`` is the lowest median power of the annuli beyond 0.3 cycles/px
(robust to the sparse Bragg harmonics of a lattice). With the per-frequency
signal-to-noise ratio ``r(k) = P_s(k) / N - 1`` (``P_s`` the power smoothed
over 5 x 5 samples) the weight of a frequency in the cross-power is::

    M(k) = r / (1 + 2 r)        where r exceeds 3 times its own estimation noise, else 0

the inverse variance of the cross-power's phase at ``k`` divided by its
amplitude: the maximum-likelihood weighting of the phases of two noisy copies
of one image (``r`` small: weight ``r``; ``r`` large: weight 1/2). It is a
low-pass where the spectrum falls with frequency and follows its SNR: a
noisier stack gets a narrower mask. This is the **precision mask**: the
sub-pixel position is found on it (``maxima="newton"``).

Periodic content (lattices) puts its power into sharp **Bragg peaks**:
compact local maxima of ``r`` far above the median of their annulus. They
are detected (``periodic``, ``bragg`` in the record) and kept in the
precision mask, where they carry most of the position information.

The **choice mask**, on which each pair's peak is found to about a pixel
before the frames are refined, is the same weights limited to 1/8
cycles/px (a small correlation grid; whole-pixel choice needs no more)
unless that leaves too little signal (then no limit). With Bragg peaks
inside it the pair peaks are then compared as ``maxima="dft"`` does (the
guard against unit-cell hops); without, the correlation has one dominant
peak and its brightest sample is taken (``BandSpectra.single_peak``). When
Bragg peaks lie inside the choice band the frames are refined on the
choice band itself: the precision mask's many near peaks (several atoms
per cell) could pull a frame onto a neighbouring one.

The spectrum is the mean over every frame when their spectra fit in memory
(they are then made once for the masks and the correlations), else over
:data:`SPECTRUM_FRAMES` frames spread over the stack.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import fft as sfft
from scipy import ndimage

from ._spectra import hann2d, read_frames

__all__ = ["SPECTRUM_FRAMES", "AutoMasks", "auto_masks", "full_plane", "mean_power_spectrum"]

#: frames used for the mean power spectrum (spread evenly over the stack)
SPECTRUM_FRAMES = 24

#: side of the smoothing box of the power spectrum (samples)
_SMOOTH = 5

#: a sample is surely signal where r exceeds this many times its estimation noise
_SIGNIFICANT = 5.0

#: a frequency is weighted where r exceeds this many times its estimation noise (and the stack has signal)
_WEIGHTED = 3.0

#: fewer significant samples than this is no signal
_MIN_SAMPLES = 64

#: a Bragg peak: r at least this many times above its annulus (median + spread)
_BRAGG_CONTRAST = 8.0

#: the choice mask is limited to the first of these frequencies (cycles/px) that keeps
#: the given share of its weight (a small correlation grid: a whole-pixel choice needs no more)
_CHOICE_CUTOFFS = ((1.0 / 8.0, 0.05),)


@dataclass
class AutoMasks:
    """The two ``"auto"`` masks on the padded grid (rfft half-plane layout) and what was found.

    Attributes
    ----------
    precision : ndarray (Hp, Wp // 2 + 1)
        Weights for the sub-pixel position (Bragg peaks included).
    choice : ndarray (Hp, Wp // 2 + 1)
        Weights for choosing the peak (Bragg peaks removed, low-pass).
    info : dict
        ``noise`` (floor), ``periodic``, ``bragg`` (peak frequencies in
        cycles/px as (fy, fx)), ``extent`` (largest kept frequency),
        ``choice_cutoff``, ``frames`` (spectrum frames), ``signal`` (sum of
        the weights, 0 when no frequency carries signal).
    """

    precision: np.ndarray
    choice: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)


def mean_power_spectrum(stack: Any, padded: tuple[int, int], frames: int = SPECTRUM_FRAMES) -> tuple[np.ndarray, int]:
    """Mean power (full plane, FFT layout) of up to ``frames`` windowed frames, and how many were used."""
    n, h, w = (int(s) for s in stack.shape[:3])
    idx = np.unique(np.linspace(0, n - 1, min(frames, n)).round().astype(np.int64))
    window = hann2d((h, w))
    total = np.zeros(padded, dtype=np.float64)
    for start in range(0, idx.size, 8):
        sel = idx[start : start + 8]
        chunk = np.stack([read_frames(stack, int(i), int(i) + 1)[0] for i in sel])
        chunk -= chunk.mean(axis=(1, 2), keepdims=True)
        chunk *= window
        spec = sfft.fft2(chunk, s=padded, axes=(1, 2), workers=2)
        total += (spec.real**2 + spec.imag**2).sum(axis=0)
    return total / idx.size, int(idx.size)


def _noise_floor(power: np.ndarray, f: np.ndarray) -> float:
    """Lowest median power of the annuli of width 0.05 beyond 0.3 cycles/px."""
    meds = []
    for lo in np.arange(0.3, 0.71, 0.05):
        ring = (f >= lo) & (f < lo + 0.05)
        if ring.sum() >= 64:
            meds.append(float(np.median(power[ring])))
    if not meds:
        meds = [float(np.median(power))]
    return max(min(meds), 1e-30)


def _noise_spread(r: np.ndarray, f: np.ndarray) -> float:
    """Robust standard deviation of ``r`` beyond 0.3 cycles/px (where the noise floor was measured)."""
    outer = r[f >= 0.3]
    if outer.size < 64:
        return 0.0
    return float(1.4826 * np.median(np.abs(outer - np.median(outer))))


def _ring_statistic(r: np.ndarray, f: np.ndarray, width: float) -> tuple[np.ndarray, np.ndarray]:
    """Median and median absolute deviation of ``r`` in the annulus of every sample."""
    bins = np.minimum((f / width).astype(np.int64), int(0.75 / width))
    med = np.zeros(bins.max() + 1)
    mad = np.zeros(bins.max() + 1)
    for b in range(bins.max() + 1):
        vals = r[bins == b]
        if vals.size:
            med[b] = np.median(vals)
            mad[b] = np.median(np.abs(vals - med[b]))
    return med[bins], mad[bins]


def _bragg_peaks(r: np.ndarray, f: np.ndarray, sigma_r: float, step: float) -> np.ndarray:
    """Boolean map of the Bragg peaks: compact local maxima of ``r`` far above their annulus.

    Compact: at least :data:`_BRAGG_CONTRAST` times the largest ``r`` on the
    ring 4 samples away, which a ridge (the streak of an edge) is not."""
    med, mad = _ring_statistic(r, f, max(2.0 * step, 0.01))
    local_max = r >= ndimage.maximum_filter(r, size=7, mode="wrap")
    ring = np.ones((9, 9), dtype=bool)
    ring[1:-1, 1:-1] = False
    around = ndimage.maximum_filter(r, footprint=ring, mode="wrap")
    level = med + _BRAGG_CONTRAST * (1.4826 * mad + sigma_r)
    far = f > max(6.0 * step, 0.02)
    return local_max & far & (r > level) & (r > 1.0) & (r > _BRAGG_CONTRAST * np.maximum(around, sigma_r))


def _choice_band(choice: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, float | None]:
    """The choice mask limited to the lowest of :data:`_CHOICE_CUTOFFS` that keeps enough of its weight."""
    total = float(choice.sum())
    for cutoff, share in _CHOICE_CUTOFFS:
        low = np.where(f <= cutoff, choice, 0.0)
        if total > 0 and low.sum() >= share * total and np.count_nonzero(low) >= 16:
            return low, cutoff
    return choice, None


def full_plane(half: np.ndarray, width: int) -> np.ndarray:
    """A half-plane (rfft layout) array of a real image's spectrum symmetry expanded to the full plane."""
    h = half.shape[0]
    full = np.empty((h, width), dtype=half.dtype)
    full[:, : width // 2 + 1] = half
    cols = np.arange(width // 2 + 1, width)
    if cols.size:
        full[:, cols] = half[(-np.arange(h)) % h][:, width - cols]
    return full


def auto_masks(stack: Any, padded: tuple[int, int], spectra: np.ndarray | None = None) -> AutoMasks:
    """The precision and choice masks of ``stack`` on the ``padded`` grid (see the module docstring).

    ``spectra``: every frame's windowed spectrum (rfft layout), when already
    made; their mean power is used (all frames), else :func:`mean_power_spectrum`."""
    hp, wp = padded
    if spectra is not None:
        half = np.zeros(spectra.shape[1:], dtype=np.float64)
        for start in range(0, spectra.shape[0], 8):
            part = spectra[start : start + 8]
            half += (part.real.astype(np.float64) ** 2 + part.imag.astype(np.float64) ** 2).sum(axis=0)
        power, used = full_plane(half / spectra.shape[0], wp), int(spectra.shape[0])
    else:
        power, used = mean_power_spectrum(stack, padded)
    fy = sfft.fftfreq(hp)[:, None] * np.ones((1, wp))
    fx = np.ones((hp, 1)) * sfft.fftfreq(wp)[None, :]
    f = np.hypot(fy, fx)
    noise = _noise_floor(power, f)
    smooth = ndimage.uniform_filter(power, _SMOOTH, mode="wrap")
    r = smooth / noise - 1.0
    # estimation noise of r: a smoothed mean of `used` exponential powers would give 1 / sqrt(used * 25),
    # but the window correlates neighbouring samples; measured where there is only noise (beyond 0.3)
    sigma_r = max(1.0 / np.sqrt(used * _SMOOTH * _SMOOTH), _noise_spread(r, f))
    sure = r > _SIGNIFICANT * sigma_r
    sure[0, 0] = False
    # weights where r is above its noise (weak frequencies add up); signal at all only with enough sure samples:
    # a cluster or two above 5 sigma is what noise alone gives (the smoothing spreads one over 25 samples)
    keep = (r > _WEIGHTED * sigma_r) & (np.count_nonzero(sure) >= _MIN_SAMPLES)
    keep[0, 0] = False
    weight = np.where(keep, r / (1.0 + 2.0 * r), 0.0)
    step = 1.0 / min(hp, wp)
    peaks = _bragg_peaks(np.where(keep, r, 0.0), f, sigma_r, step)
    # each peak and its partner at -k are counted once (fy > 0, or fy == 0 and fx > 0)
    half_plane = (fy > 0) | ((fy == 0) & (fx > 0))
    bragg = np.column_stack([fy[peaks & half_plane], fx[peaks & half_plane]])
    periodic = bragg.shape[0] >= 2
    choice = weight.copy()
    choice, cutoff = _choice_band(choice, f)
    extent = float(f[weight > 0].max()) if np.any(weight > 0) else 0.0
    info = {
        "noise": noise,
        "periodic": bool(periodic),
        "bragg": [[round(float(a), 4), round(float(b), 4)] for a, b in bragg[:24]],
        "extent": round(extent, 4),
        "choice_cutoff": cutoff,
        "frames": used,
        "signal": float(weight.sum()),
    }
    w_half = wp // 2 + 1
    return AutoMasks(
        precision=weight[:, :w_half].astype(np.float32), choice=choice[:, :w_half].astype(np.float32), info=info
    )
