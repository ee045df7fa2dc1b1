"""Matplotlib drawings of a pairwise result (no pyplot, no GUI backend).

Used by the PDF/PNG report (:mod:`~napari_stackalign.core.pairwise._report`)
and by the napari widget, which draws the same axes on a Qt canvas.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._masks import centered_mask

__all__ = [
    "draw_image",
    "draw_shift_matrix",
    "draw_shifts",
    "draw_spectrum_with_mask",
    "log_power",
    "symmetric_limit",
]


def log_power(image: np.ndarray) -> np.ndarray:
    """Centred ``log10(1 + |FFT|**2)`` of a 2-D image (mean removed), for display."""
    img = np.asarray(image, dtype=np.float64)
    img = np.where(np.isfinite(img), img, np.nanmean(img) if np.isfinite(img).any() else 0.0)
    spec = np.fft.fftshift(np.abs(np.fft.fft2(img - img.mean())) ** 2)
    return np.log10(1.0 + spec / max(float(np.median(spec)), 1e-30))


def draw_image(ax: Any, image: np.ndarray, title: str, *, cmap: str = "gray") -> None:
    """Show an image with robust (0.5-99.5 %) contrast."""
    ax.clear()
    img = np.asarray(image, dtype=np.float64)
    finite = img[np.isfinite(img)]
    if finite.size:
        lo, hi = np.percentile(finite, [0.5, 99.5])
        if hi <= lo:
            hi = lo + 1.0
        ax.imshow(img, cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])


def draw_spectrum_with_mask(ax: Any, frame: np.ndarray, mask_half: np.ndarray, padded: tuple[int, int], title: str) -> None:
    """The frame's log power spectrum (grey) with the Fourier mask overlaid
    (semi-transparent colour), both centred."""
    ax.clear()
    h, w = frame.shape
    hp, wp = padded
    padded_frame = np.zeros((hp, wp))
    padded_frame[:h, :w] = np.asarray(frame, dtype=np.float64) - float(np.mean(frame))
    spec = log_power(padded_frame)
    mask = centered_mask(np.asarray(mask_half), padded)
    lo, hi = np.percentile(spec, [1, 99.8])
    ax.imshow(spec, cmap="gray", vmin=lo, vmax=max(hi, lo + 1e-9), interpolation="nearest")
    overlay = np.ma.masked_less_equal(mask, 1e-4 * max(float(mask.max()), 1e-30))
    ax.imshow(overlay, cmap="viridis", alpha=0.35, vmin=0, vmax=max(float(mask.max()), 1e-30), interpolation="nearest")
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])


def symmetric_limit(*mats: np.ndarray) -> float:
    """A colour limit covering the finite values of the matrices (at least 0.5)."""
    vals = np.concatenate([np.abs(np.asarray(m, dtype=np.float64)[np.isfinite(m)]).ravel() for m in mats] or [np.zeros(1)])
    return float(max(np.percentile(vals, 99) if vals.size else 0.0, 0.5))


def draw_shift_matrix(
    ax: Any,
    matrix: np.ndarray,
    outliers: np.ndarray,
    title: str,
    *,
    limit: float | None = None,
    bad_frames: Any = (),
    colorbar_fig: Any = None,
    ylabel: bool = True,
) -> Any:
    """A shift matrix (px, diverging colours) with outlier pairs marked by
    red crosses and bad frames by grey rows/columns. Returns the image."""
    ax.clear()
    mat = np.asarray(matrix, dtype=np.float64)
    n = mat.shape[0]
    lim = symmetric_limit(mat) if limit is None else float(limit)
    im = ax.imshow(mat, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
    rows, cols = np.nonzero(np.asarray(outliers, dtype=bool))
    if rows.size:
        size = max(4.0, min(40.0, 2000.0 / max(n, 1) ** 1.2))
        ax.scatter(cols, rows, marker="x", s=size, c="red", linewidths=0.8, label="outlier")
    for b in bad_frames:
        ax.axhspan(b - 0.5, b + 0.5, color="0.5", alpha=0.5, lw=0)
        ax.axvspan(b - 0.5, b + 0.5, color="0.5", alpha=0.5, lw=0)
    ax.set_xlim(-0.5, n - 0.5)
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_title(title, fontsize=8)
    ax.set_xlabel("frame j", fontsize=7)
    if ylabel:
        ax.set_ylabel("frame i", fontsize=7)
    ax.tick_params(labelsize=6)
    if colorbar_fig is not None:
        cb = colorbar_fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        cb.ax.tick_params(labelsize=6)
    return im


def draw_shifts(ax: Any, shifts: np.ndarray, ok: np.ndarray, title: str = "correction per frame") -> None:
    """The per-frame corrections (dy, dx) against frame index; frames left
    out of the average are drawn as open circles."""
    ax.clear()
    shifts = np.asarray(shifts, dtype=np.float64)
    ok = np.asarray(ok, dtype=bool)
    t = np.arange(shifts.shape[0])
    for k, (name, colour) in enumerate((("dy (rows)", "tab:blue"), ("dx (cols)", "tab:orange"))):
        ax.plot(t, shifts[:, k], "-", color=colour, lw=1, label=name)
        ax.plot(t[ok], shifts[ok, k], "o", color=colour, ms=2.5)
        if (~ok).any():
            ax.plot(t[~ok], shifts[~ok, k], "o", mfc="none", mec=colour, ms=5)
    ax.axhline(0, color="0.6", lw=0.5)
    ax.set_xlabel("frame", fontsize=7)
    ax.set_ylabel("px (correction to the mean position)", fontsize=7)
    ax.set_title(title, fontsize=8)
    ax.tick_params(labelsize=6)
    ax.legend(fontsize=6, loc="best")
