"""The real-space Hann window's overlap: how much two windowed frames shifted by ``d`` still share."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["envelope_table"]


@lru_cache(maxsize=16)
def envelope_table(length: int) -> tuple[np.ndarray, np.ndarray]:
    """Autocorrelation of the 1-D Hann window of ``length`` samples (lags, values / max)."""
    w = np.sin(np.pi * np.arange(length) / length) ** 2
    auto = np.correlate(w, w, mode="full")
    return np.arange(-(length - 1), length, dtype=np.float64), auto / auto.max()
