"""Plot of similarity transforms per frame: angle, scale and shift, flagged frames marked."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..transforms import FrameTransforms

__all__ = ["draw_similarity"]

ROW_COLOR = "#1f77b4"
COL_COLOR = "#d62728"
FLAG_COLOR = "#ff7f0e"


def draw_similarity(fig: Figure, transforms: FrameTransforms, *, title: str | None = None) -> Figure:
    """Draw the correction angle, scale and shift (dy, dx) per frame.

    Three stacked panels sharing the frame axis. Frames flagged as failed
    (``ok`` False, shown with their fallback transform) are ringed in orange.
    The values are the *correction* (frame onto template), as in the CSV
    table; the sample's motion is its inverse.
    """
    fig.clear()
    frames = np.arange(len(transforms))
    bad = ~np.asarray(transforms.ok, dtype=bool)
    axes = fig.subplots(3, 1, sharex=True)
    series = (
        (axes[0], [(transforms.angle, "angle", ROW_COLOR)], "angle (deg)"),
        (axes[1], [(transforms.scale, "scale", ROW_COLOR)], "scale"),
        (axes[2], [(transforms.dy, "dy (rows)", ROW_COLOR), (transforms.dx, "dx (columns)", COL_COLOR)], "shift (px)"),
    )
    for ax, lines, label in series:
        for values, name, color in lines:
            ax.plot(frames, values, "o-", ms=3, lw=1, color=color, label=name)
            if bad.any():
                ax.plot(frames[bad], values[bad], "o", ms=8, mfc="none", mec=FLAG_COLOR, mew=1.5)
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        ax.ticklabel_format(axis="y", useOffset=False)
    axes[2].legend(loc="best", fontsize="small")
    axes[2].set_xlabel("frame")
    axes[2].xaxis.set_major_locator(MaxNLocator(integer=True))
    heading = title or "Correction per frame (frame onto template)"
    if bad.any():
        heading += f"; {int(bad.sum())} flagged (ringed)"
    axes[0].set_title(heading, fontsize="medium")
    return fig
