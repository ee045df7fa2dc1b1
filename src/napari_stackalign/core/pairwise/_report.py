"""A one-page report of a pairwise registration, as PDF or PNG (matplotlib Agg).

Panels: the average and its power spectrum, the Fourier mask, the raw and
corrected X (rows, ``dy``) and Y (columns, ``dx``) shift matrices with
outlier pairs marked, the final per-frame corrections, and the parameters.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ...files import atomic_path
from ._plots import (
    draw_image,
    draw_shift_matrix,
    draw_shifts,
    log_power,
    symmetric_limit,
)
from ._result import PairwiseResult

__all__ = ["report_figure", "save_pairwise_report"]

_FORMATS = {".pdf": "pdf", ".png": "png"}


def _param_text(result: PairwiseResult) -> str:
    p = result.params
    mask = p.get("mask")
    if mask == "elliptical":
        mask_txt = f"elliptical n={p.get('n')}, n2={p.get('n2')}, theta={p.get('theta')} deg"
    elif mask == "user":
        mask_txt = "user mask"
    else:
        mask_txt = f"{mask}, n={p.get('n')}"
    lines = [
        f"frames: {result.n_frames}, {result.frame_shape[0]} x {result.frame_shape[1]} px",
        f"mask: {mask_txt}",
        f"correlation: {p.get('correlation')}, maxima: {p.get('maxima')}",
        f"num_peaks {p.get('num_peaks')}, sigma_guess {p.get('sigma_guess')}, window_radius {p.get('window_radius')}",
        f"transitivity threshold: {p.get('threshold')} px, maxpaths {p.get('maxpaths')}",
        f"smoothness max_shift: {p.get('max_shift')} px",
        f"bad frames: {p.get('bad_frames')}",
        f"weights: {p.get('weights')}, average: {p.get('average')}",
        result.summary(),
        f"crop (rows, cols): {result.crop}",
    ]
    lines += [f"warning: {w}" for w in result.warnings]
    return "\n".join(lines)


def report_figure(result: PairwiseResult) -> Any:
    """The report as a :class:`matplotlib.figure.Figure` (Agg canvas attached)."""
    fig = Figure(figsize=(11.0, 8.5), dpi=100)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(3, 4, height_ratios=[1.0, 1.0, 0.9], hspace=0.45, wspace=0.35)
    avg = result.average if result.average is not None and result.average.size else result.average_full
    ax = fig.add_subplot(grid[0, 0])
    if avg is not None:
        draw_image(ax, avg, f"average ({int(result.frame_ok.sum())} frames, cropped)")
        ax2 = fig.add_subplot(grid[0, 1])
        draw_image(ax2, log_power(avg), "average: log power spectrum", cmap="magma")
    else:
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no average computed", ha="center", va="center")
    ax3 = fig.add_subplot(grid[0, 2])
    draw_image(ax3, result.mask_centered(), "Fourier mask (centred)", cmap="viridis")
    ax4 = fig.add_subplot(grid[0, 3])
    ax4.set_axis_off()
    ax4.text(0.0, 1.0, _param_text(result), fontsize=6, va="top", ha="left", family="monospace", wrap=True)
    # colours scaled on the pairs kept: outliers saturate instead of washing the rest out
    lim_y = symmetric_limit(np.where(result.valid, result.dy, np.nan), result.corrected_dy[result.frame_ok][:, result.frame_ok])
    lim_x = symmetric_limit(np.where(result.valid, result.dx, np.nan), result.corrected_dx[result.frame_ok][:, result.frame_ok])
    bad = result.bad_frames
    panels = (
        (grid[1, 0], result.dy, "raw X_ij = dy (rows, px)", lim_y),
        (grid[1, 1], result.dx, "raw Y_ij = dx (cols, px)", lim_x),
        (grid[1, 2], result.corrected_dy, "corrected dy (px)", lim_y),
        (grid[1, 3], result.corrected_dx, "corrected dx (px)", lim_x),
    )
    for k, (spec, mat, title, lim) in enumerate(panels):
        axm = fig.add_subplot(spec)
        draw_shift_matrix(axm, mat, result.outliers, title, limit=lim, bad_frames=bad, colorbar_fig=fig, ylabel=k == 0)
    ax5 = fig.add_subplot(grid[2, :3])
    draw_shifts(ax5, result.shifts, result.frame_ok, "final correction per frame (moves each frame onto the mean position)")
    ax6 = fig.add_subplot(grid[2, 3])
    res = result.residuals()
    vals = res[np.triu(result.valid, 1)]
    vals = vals[np.isfinite(vals)]
    if vals.size:
        ax6.hist(vals, bins=30, color="tab:gray")
    ax6.set_title("|pair - solution| of valid pairs (px)", fontsize=8)
    ax6.tick_params(labelsize=6)
    fig.suptitle("napari-stackalign: pairwise Fourier-masked averaging", fontsize=10)
    return fig


def save_pairwise_report(path: str | Path, result: PairwiseResult, *, dpi: int = 150) -> Path:
    """Write the report to ``path`` (``.pdf`` or ``.png``, by extension).

    Returns the written path.
    """
    p = Path(path).expanduser()
    fmt = _FORMATS.get(p.suffix.lower())
    if fmt is None:
        raise ValueError(f"{p.name}: the report is written as .pdf or .png.")
    fig = report_figure(result)
    with atomic_path(p) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi)
    return p
