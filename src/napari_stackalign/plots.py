"""Matplotlib figures shared by the dock widgets and the command line.

Only :mod:`matplotlib.figure` is used (no pyplot, no GUI backend), so these
functions draw the same figure into a widget's Qt canvas or, headless, into
a PNG file (``stackalign demo``).

Drift plots show the *drift of the sample* in pixels, which is the negative
of the correction :class:`~napari_stackalign.FrameTransforms` stores (the
correction moves each frame back onto the reference). Every plot says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .files import atomic_path
from .transforms import FrameTransforms

__all__ = ["draw_before_after", "draw_correlations", "draw_drift", "new_figure", "save_figure"]

ROW_COLOR = "#1f77b4"
COL_COLOR = "#d62728"
#: the drift along Z of volume transforms
PLANE_COLOR = "#2ca02c"


def new_figure(width: float = 6.0, height: float = 3.2, dpi: int = 100) -> Figure:
    """A pyplot-free figure (safe headless and inside Qt)."""
    return Figure(figsize=(width, height), dpi=dpi, layout="constrained")


def draw_drift(
    fig: Figure,
    transforms: FrameTransforms,
    smoothed: FrameTransforms | None = None,
    *,
    title: str | None = None,
    pixel_size: float | None = None,
    unit: str = "px",
) -> Figure:
    """Plot the sample drift (rows and columns, and planes for volume transforms) per frame.

    The planes (z) line of :class:`~napari_stackalign.VolumeTransforms` is in
    planes (not multiplied by ``pixel_size``).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        Cleared and drawn into.
    transforms : FrameTransforms
        The measured (raw) transforms.
    smoothed : FrameTransforms, optional
        Smoothed transforms, drawn as solid lines over the raw points.
    title : str, optional
        Figure title.
    pixel_size : float, optional
        Multiply by this to plot in physical units (``unit``).
    unit : str
        Unit label of the y axis.

    Returns
    -------
    Figure
    """
    fig.clear()
    ax = fig.add_subplot(1, 1, 1)
    frames = np.arange(len(transforms))
    factor = 1.0 if pixel_size is None else float(pixel_size)
    drift = -transforms.shifts * factor
    style = {"marker": "o", "markersize": 3}
    dz = getattr(transforms, "dz", None)  # volume transforms: the drift along Z, in planes
    if dz is not None:
        smoothed_dz = getattr(smoothed, "dz", None)
        ax.plot(frames, -np.asarray(dz), color=PLANE_COLOR, lw=1.2 if smoothed_dz is None else 0.8,
                alpha=1.0 if smoothed_dz is None else 0.45, **style)
        if smoothed_dz is not None:
            ax.plot(frames, -np.asarray(smoothed_dz), color=PLANE_COLOR, lw=2.0)
    if smoothed is not None:
        ax.plot(frames, drift[:, 0], color=ROW_COLOR, alpha=0.45, lw=0.8, **style)
        ax.plot(frames, drift[:, 1], color=COL_COLOR, alpha=0.45, lw=0.8, **style)
        sm = -smoothed.shifts * factor
        ax.plot(frames, sm[:, 0], color=ROW_COLOR, lw=2.0)
        ax.plot(frames, sm[:, 1], color=COL_COLOR, lw=2.0)
    else:
        ax.plot(frames, drift[:, 0], color=ROW_COLOR, lw=1.2, **style)
        ax.plot(frames, drift[:, 1], color=COL_COLOR, lw=1.2, **style)
    handles = [
        *([Line2D([], [], color=PLANE_COLOR, lw=2.0, label="planes (z)")] if dz is not None else []),
        Line2D([], [], color=ROW_COLOR, lw=2.0, label="rows (y)"),
        Line2D([], [], color=COL_COLOR, lw=2.0, label="columns (x)"),
    ]
    if smoothed is not None:
        handles += [
            Line2D([], [], color="0.45", lw=0.8, alpha=0.6, label="measured", **style),
            Line2D([], [], color="0.45", lw=2.0, label="smoothed"),
        ]
    bad = ~np.asarray(transforms.ok, dtype=bool)
    if bad.any():
        ax.plot(frames[bad], drift[bad, 0], "x", color="black", ms=7)
        ax.plot(frames[bad], drift[bad, 1], "x", color="black", ms=7)
        if dz is not None:
            ax.plot(frames[bad], -np.asarray(dz)[bad], "x", color="black", ms=7)
        handles.append(Line2D([], [], ls="", marker="x", color="black", ms=7, label="flagged"))
    ax.axhline(0.0, color="0.6", lw=0.6)
    ax.set_xlabel("frame")
    ax.set_ylabel(f"sample drift ({unit}; z in planes)" if dz is not None else f"sample drift ({unit})")
    ax.grid(True, alpha=0.3)
    if dz is not None:  # five or more entries: above the axes, where they hide no point
        ax.legend(handles=handles, fontsize="small", loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3,
                  frameon=False)
    else:
        ax.legend(handles=handles, fontsize="small", loc="best", ncol=2 if len(handles) > 2 else 1)
    fig.suptitle(title or "Sample drift (= −correction applied)", fontsize="medium")
    return fig


def draw_correlations(fig: Figure, reports: Mapping[str, Mapping[str, Any]], *, title: str | None = None) -> Figure:
    """Plot each frame's correlation with its stack's mean image.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        Cleared and drawn into.
    reports : mapping of str to dict
        Label -> :func:`~napari_stackalign.core.quality.quality_report`
        result (its ``correlations`` are drawn).
    title : str, optional
        Figure title.
    """
    fig.clear()
    ax = fig.add_subplot(1, 1, 1)
    colors = ["#7f7f7f", "#2ca02c", "#9467bd", "#ff7f0e"]
    for k, (label, rep) in enumerate(reports.items()):
        corr = np.asarray(rep["correlations"], dtype=float)
        text = label if len(label) <= 28 else label[:12] + "…" + label[-15:]
        if corr.size == 1:
            ax.plot([0], corr, "o", color=colors[k % len(colors)], label=text)
        else:
            ax.plot(np.arange(corr.size), corr, "-o", ms=2.5, lw=1.2, color=colors[k % len(colors)], label=text)
    ax.set_xlabel("frame")
    ax.set_ylabel("correlation with mean image")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", loc="best")
    fig.suptitle(title or "Frame-to-mean correlation\n(higher = better aligned)", fontsize="medium")
    return fig


def draw_before_after(
    fig: Figure,
    before: np.ndarray,
    after: np.ndarray,
    *,
    labels: tuple[str, str] = ("before", "after"),
    sharpness: tuple[float, float] | None = None,
    correlation: tuple[float, float] | None = None,
) -> Figure:
    """Two mean images side by side with the same contrast limits.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        Cleared and drawn into.
    before, after : ndarray (Y, X)
        The images (NaN shown as the background).
    labels : (str, str)
        Panel titles.
    sharpness, correlation : (float, float), optional
        Figures printed under each title.
    """
    fig.clear()
    both = np.concatenate([np.asarray(before, float).ravel(), np.asarray(after, float).ravel()])
    both = both[np.isfinite(both)]
    vmin, vmax = np.percentile(both, [0.5, 99.5]) if both.size else (0.0, 1.0)
    axes = fig.subplots(1, 2)
    for k, (ax, img, label) in enumerate(zip(axes, (before, after), labels)):
        ax.imshow(img, cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest")
        lines = [label]
        if sharpness is not None:
            lines.append(f"sharpness {sharpness[k]:.4g}")
        if correlation is not None:
            lines.append(f"mean frame-to-mean r {correlation[k]:.3f}")
        ax.set_title("\n".join(lines), fontsize="medium")
        ax.set_xticks([])
        ax.set_yticks([])
    return fig


def save_figure(fig: Figure, path: str | Path, *, dpi: int = 150) -> Path:
    """Save ``fig`` as PNG (atomically: a partial file never replaces a good one).

    Raises
    ------
    ValueError
        If ``path`` does not end in ``.png`` or its folder is missing.
    """

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"plots are saved as PNG: give a file name ending in .png, not {path.name!r}.")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight", pad_inches=0.1)
    return path
