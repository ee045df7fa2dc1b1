"""Pyramid levels: geometry, anti-aliased downsampling, and which levels can
see a template's content."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np

from ..fourier import hann_window, rfft2

__all__ = ["LEVEL_BAND", "MIN_LEVEL_POWER", "MIN_LEVEL_SIZE", "MIN_SEARCH_SIZE", "Levels", "level_power"]

#: the smallest level (px per axis) the exhaustive search accepts
MIN_LEVEL_SIZE = 8
#: a level is used when its shorter side keeps at least this many px (the last level always is)
MIN_SEARCH_SIZE = 12
#: a level is used when at least this share of the template's (noise-free)
#: power lies in the band the level represents well
MIN_LEVEL_POWER = 0.05
#: band a level represents well, as a fraction of the full-resolution
#: frequencies it keeps (0.8 of its Nyquist limit)
LEVEL_BAND = 0.8

def _power_of_two(rate: float) -> int | None:
    """k when ``rate == 2**-k`` (k >= 1), else None."""
    k = -np.log2(rate)
    kr = round(k)
    return kr if kr >= 1 and abs(k - kr) < 1e-9 else None


@dataclass(frozen=True)
class Levels:
    """Pyramid level geometry for frames of ``shape`` (rates in visiting order).

    Rates that are powers of two (1/2, 1/4, 1/8, ...) are made by repeated
    ``cv2.pyrDown`` (Gaussian 5-tap low-pass, then every other pixel), which
    suppresses aliasing far better than box averaging; other rates use
    ``cv2.resize`` with ``INTER_AREA`` (area averaging). Both are symmetric
    filters, so they do not bias the shifts.
    """

    shape: tuple[int, int]
    rates: tuple[float, ...]

    @cached_property
    def shapes(self) -> list[tuple[int, int]]:
        h, w = self.shape
        out = []
        for r in self.rates:
            k = _power_of_two(r)
            if k is None:
                out.append((max(1, int(h * r)), max(1, int(w * r))))
            else:
                lh, lw = h, w
                for _ in range(k):
                    lh, lw = max(1, lh // 2), max(1, lw // 2)
                out.append((lh, lw))
        return out

    @cached_property
    def scales(self) -> list[tuple[float, float]]:
        """Exact per-axis factor from full-resolution displacements to level
        displacements."""
        h, w = self.shape
        out = []
        for r, (lh, lw) in zip(self.rates, self.shapes):
            k = _power_of_two(r)
            out.append((lh / h, lw / w) if k is None else (0.5**k, 0.5**k))
        return out

    def build(self, image: np.ndarray, needed: set[int] | None = None) -> dict[int, np.ndarray]:
        """The image at the levels ``needed`` (default all), by level index."""
        if needed is None:
            needed = set(range(len(self.rates)))
        chain = [image]
        out: dict[int, np.ndarray] = {}
        shapes = self.shapes
        for i in sorted(needed, key=lambda j: -self.rates[j]):
            r = self.rates[i]
            lh, lw = shapes[i]
            if r == 1:
                out[i] = image
                continue
            k = _power_of_two(r)
            if k is None:
                out[i] = cv2.resize(image, (lw, lh), interpolation=cv2.INTER_AREA)
                continue
            while len(chain) <= k:
                prev = chain[-1]
                chain.append(cv2.pyrDown(prev, dstsize=(max(1, prev.shape[1] // 2), max(1, prev.shape[0] // 2))))
            out[i] = chain[k]
        return out

    def build_one(self, image: np.ndarray, level: int) -> np.ndarray:
        """The image at one level."""
        return self.build(image, {level})[level]


def level_power(template: np.ndarray, valid: np.ndarray | None, scales: list[tuple[float, float]]) -> list[float]:
    """Share of the template's signal power each level represents well.

    The power spectrum of the template (its weighted mean removed, then
    Hann-windowed, invalid pixels set to zero), less a white-noise
    floor estimated from the outer band, is summed inside each level's band
    ``|f| < LEVEL_BAND * scale / 2`` (cycles per full-resolution pixel).
    Periodic detail finer than a level (an atomic lattice at 1/8) scores
    near 0 there: that level cannot see it and is skipped.
    """
    img = template.astype(np.float32)
    h, w = img.shape
    weights = hann_window((h, w)).astype(np.float32)
    if valid is not None:
        weights = np.where(valid, weights, np.float32(0))
    # remove the weighted mean first: a constant offset times the window
    # leaks into the lowest frequencies and would make every coarse level
    # look useful for content it cannot see (a fine lattice on a pedestal)
    wsum = float(weights.sum())
    mean = float((img * weights).sum() / wsum) if wsum > 0 else 0.0
    img = np.where(weights > 0, img - np.float32(mean), np.float32(0))
    power = np.abs(rfft2(img * weights)) ** 2
    fy = np.abs(np.fft.fftfreq(h))[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    outer = (fy > 0.35) | (fx > 0.35)
    floor = float(np.median(power[outer])) if outer.any() else 0.0
    signal = np.maximum(power - floor, 0)
    signal[0, 0] = 0
    total = float(signal.sum())
    if total <= 0:
        return [1.0 for _ in scales]
    out = []
    for sy, sx in scales:
        band = (fy < LEVEL_BAND * sy / 2) & (fx < LEVEL_BAND * sx / 2)
        out.append(float(signal[band].sum()) / total)
    return out
