"""Average frames after the pairwise shifts: Fourier shifts or the shared warp.

``"fourier"``
    Each frame is shifted by the Fourier shift theorem (a periodic,
    sub-pixel shift: ``registered[p] = frame[p - (dy, dx)]`` with content
    wrapping around). Because the shift is linear, the *spectra* of the
    shifted frames are summed and one inverse FFT gives the mean: one
    forward FFT per frame, one inverse FFT in all. The result is real by
    construction; there is no ``abs()`` (the rigidregistration package takes
    the magnitude of each shifted frame, which rectifies ringing and any
    negative values).
``"warp"``
    :func:`~napari_stackalign.core.average.average_frames` with bilinear
    resampling (no wrap-around; the border no frame covers is NaN).

Either way the crop is the rectangle every averaged frame covers:
rows ``[ceil(max(0, max dy)), H - ceil(max(0, -min dy)))`` and the same for
columns (what the wrapped border leaves).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import fft as sfft

from ...progress import ProgressCallback, report
from ...transforms import FrameTransforms
from ..apply import apply_transforms
from ..average import average_frames
from ._spectra import read_frames

__all__ = ["fourier_average", "shift_crop", "warp_average"]

_EPS = 1e-6


def shift_crop(shifts: np.ndarray, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """``(row_start, row_stop, col_start, col_stop)`` every shifted frame covers."""
    h, w = shape
    if shifts.size == 0:
        return (0, h, 0, w)
    hi = np.maximum(shifts.max(axis=0), 0.0)
    lo = np.maximum(-shifts.min(axis=0), 0.0)
    r0 = int(np.ceil(hi[0] - _EPS))
    c0 = int(np.ceil(hi[1] - _EPS))
    r1 = h - int(np.ceil(lo[0] - _EPS))
    c1 = w - int(np.ceil(lo[1] - _EPS))
    if r1 <= r0 or c1 <= c0:
        return (0, 0, 0, 0)
    return (r0, r1, c0, c1)


def _ramp(shape: tuple[int, int], dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
    """Phase ramps (K, H, W//2+1) that shift content by (+dy, +dx)."""
    h, w = shape
    fy = sfft.fftfreq(h)[None, :, None]
    fx = sfft.rfftfreq(w)[None, None, :]
    phase = -2j * np.pi * (fy * dy[:, None, None] + fx * dx[:, None, None])
    return np.exp(phase).astype(np.complex64)


def fourier_average(
    stack: Any,
    shifts: np.ndarray,
    frames: np.ndarray,
    *,
    registered: bool = False,
    chunk_size: int = 16,
    workers: int = 1,
    progress: ProgressCallback | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Mean of ``frames`` shifted by ``shifts`` (T, 2) in Fourier space.

    Returns ``(mean, registered_stack)``; the registered stack (every frame,
    float32, periodic shift) only when ``registered`` is True.
    """
    n_frames, h, w = (int(s) for s in stack.shape[:3])
    include = np.zeros(n_frames, dtype=bool)
    include[np.asarray(frames, dtype=np.int64)] = True
    total = np.zeros((h, w // 2 + 1), dtype=np.complex128)
    reg = np.empty((n_frames, h, w), dtype=np.float32) if registered else None
    need = np.ones(n_frames, dtype=bool) if registered else include
    total_todo = int(need.sum())
    done = 0
    report(progress, 0, total_todo, "average")
    for lo in range(0, n_frames, chunk_size):
        hi = min(lo + chunk_size, n_frames)
        sel = np.flatnonzero(need[lo:hi]) + lo
        if sel.size == 0:
            continue
        chunk = read_frames(stack, lo, hi)[sel - lo]
        spec = sfft.rfft2(chunk, axes=(1, 2), workers=workers)
        spec *= _ramp((h, w), shifts[sel, 0], shifts[sel, 1])
        total += spec[include[sel]].sum(axis=0)
        if reg is not None:
            reg[sel] = sfft.irfft2(spec, s=(h, w), axes=(1, 2), workers=workers)
        done += sel.size
        report(progress, done, total_todo, "average")
    count = max(int(include.sum()), 1)
    mean = sfft.irfft2(total / count, s=(h, w), workers=workers).astype(np.float32)
    return mean, reg


def warp_average(
    stack: Any,
    transforms: FrameTransforms,
    frames: np.ndarray,
    *,
    registered: bool = False,
    workers: int | None = None,
    progress: ProgressCallback | None = None,
) -> tuple[np.ndarray, np.ndarray | None, tuple[int, int, int, int]]:
    """Mean with the shared warp (bilinear); returns (full mean, registered, crop)."""
    avg = average_frames(stack, transforms, mode="full", frames=frames, workers=workers, progress=progress)
    reg = None
    if registered:
        reg = apply_transforms(stack, transforms, output_dtype=np.float32, workers=workers, progress=progress)
        reg = np.asarray(reg)
    return avg.image, reg, avg.crop
