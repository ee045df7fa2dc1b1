"""The two plots of the pairwise widget: the mask preview and the shift matrices.

Both are matplotlib figures on a Qt canvas; the drawing itself is the core's
(:mod:`napari_stackalign.core.pairwise._plots`), shared with the PDF report.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from qtpy.QtWidgets import QSizePolicy

from ..core.pairwise import (
    MaskPreview,
    PairwiseResult,
    draw_shift_matrix,
    symmetric_limit,
)

__all__ = ["MatrixCanvas", "PreviewCanvas"]


def _canvas(fig: Figure, height: int) -> FigureCanvasQTAgg:
    canvas = FigureCanvasQTAgg(fig)
    canvas.setMinimumHeight(height)
    canvas.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Preferred)
    return canvas


class PreviewCanvas:
    """Left: frame i's power spectrum with the mask; right: the pair's correlation."""

    def __init__(self, height: int = 230) -> None:
        self.figure = Figure(figsize=(4.6, 2.4), dpi=100)
        self.figure.patch.set_facecolor("white")
        self.canvas = _canvas(self.figure, height)
        self.ax_fft, self.ax_corr = self.figure.subplots(1, 2)
        self.figure.subplots_adjust(left=0.02, right=0.98, bottom=0.03, top=0.85, wspace=0.06)
        for ax in (self.ax_fft, self.ax_corr):
            ax.set_xticks([])
            ax.set_yticks([])
        self.last: MaskPreview | None = None

    def show(self, preview: MaskPreview, i: int, j: int) -> None:
        """Draw a :class:`~napari_stackalign.core.pairwise.MaskPreview`."""
        self.last = preview
        ax = self.ax_fft
        ax.clear()
        spec = preview.spectrum
        lo, hi = np.percentile(spec, [1, 99.8])
        ax.imshow(spec, cmap="gray", vmin=lo, vmax=max(hi, lo + 1e-9), interpolation="nearest")
        mask = preview.mask
        peak = max(float(mask.max()), 1e-30)
        overlay = np.ma.masked_less_equal(mask, 1e-4 * peak)
        ax.imshow(overlay, cmap="viridis", alpha=0.22, vmin=0, vmax=peak, interpolation="nearest")
        if np.ptp(mask) > 0:
            ax.contour(mask, levels=[0.1 * peak, 0.5 * peak, 0.9 * peak], colors=["#3b528b", "#21918c", "#fde725"], linewidths=0.8)
        # zoom on the part of the spectrum the mask keeps (with a margin)
        rows = np.flatnonzero((mask > 1e-4 * peak).any(axis=1))
        cols = np.flatnonzero((mask > 1e-4 * peak).any(axis=0))
        if rows.size and cols.size:
            hp, wp = mask.shape
            ry = min(int((rows[-1] - rows[0]) * 0.75) + 4, hp // 2)
            rx = min(int((cols[-1] - cols[0]) * 0.75) + 4, wp // 2)
            ax.set_xlim(wp // 2 - rx - 0.5, wp // 2 + rx - 0.5)
            ax.set_ylim(hp // 2 + ry - 0.5, hp // 2 - ry - 0.5)
        ax.set_title(f"frame {i} spectrum\nmask contours 10/50/90 %", fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
        ax = self.ax_corr
        ax.clear()
        corr = preview.correlation
        ry, rx = corr.shape[0] // 2, corr.shape[1] // 2
        ax.imshow(corr, cmap="inferno", extent=(-rx - 0.5, rx + 0.5, ry + 0.5, -ry - 0.5), interpolation="nearest")
        ax.plot([preview.peak[1]], [preview.peak[0]], "+", color="cyan", ms=9, mew=1.2)
        ax.set_title(f"correlation {i}→{j}\npeak ({preview.peak[0]:+.0f}, {preview.peak[1]:+.0f}) px", fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
        self.canvas.draw_idle()


class MatrixCanvas:
    """The measured shift of every pair (frame j relative to frame i) in rows and in columns,
    outliers as red crosses."""

    def __init__(self, height: int = 220) -> None:
        self.figure = Figure(figsize=(4.6, 2.2), dpi=100)
        self.figure.patch.set_facecolor("white")
        self.canvas = _canvas(self.figure, height)
        self.has_plot = False

    def show(self, result: PairwiseResult) -> None:
        """Draw the matrices of ``result`` with its current outliers."""
        fig = self.figure
        fig.clear()
        # constrained layout keeps the colour bars and their labels inside the figure at any width
        fig.set_layout_engine("constrained")
        ax_y, ax_x = fig.subplots(1, 2)
        bad = result.bad_frames
        # colours scaled on the pairs kept: outliers saturate instead of washing the rest out
        kept = result.valid
        lim_y = symmetric_limit(np.where(kept, result.dy, np.nan))
        lim_x = symmetric_limit(np.where(kept, result.dx, np.nan))
        draw_shift_matrix(ax_y, result.dy, result.outliers, "Vertical shift (rows, px)", limit=lim_y, bad_frames=bad, colorbar_fig=fig)
        draw_shift_matrix(
            ax_x, result.dx, result.outliers, "Horizontal shift (columns, px)", limit=lim_x, bad_frames=bad, colorbar_fig=fig, ylabel=False
        )
        self.canvas.draw_idle()
        self.has_plot = True

    def save_png(self, path: Any) -> None:
        """Save the figure as PNG."""
        self.figure.savefig(path, dpi=150)
