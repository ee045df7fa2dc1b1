"""A matplotlib plot inside a dock widget, with a Save PNG button.

:class:`PlotPanel` holds a figure and its Qt canvas; :class:`DriftPlot`
draws a :class:`~napari_stackalign.FrameTransforms` as the sample drift per
frame (raw and smoothed), using the same drawing code as the command line
(:mod:`napari_stackalign.plots`). Any widget that wants a plot embeds one.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from napari.utils.notifications import show_info
from qtpy.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from ..plots import draw_drift, new_figure, save_figure
from ..transforms import FrameTransforms
from ._runner import notify_user_error

__all__ = ["DriftPlot", "PlotPanel"]


class PlotPanel(QWidget):
    """A figure, its canvas and a "Save PNG…" button.

    Parameters
    ----------
    empty_text : str
        Text shown until something is drawn.
    default_name : str
        File name the save dialog proposes.
    height : int
        Minimum canvas height in pixels.
    """

    def __init__(
        self,
        empty_text: str = "Nothing to plot yet.",
        *,
        default_name: str = "plot.png",
        height: int = 240,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.default_name = default_name
        self.figure = new_figure(5.0, 3.0)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(height)
        self.canvas.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.empty_note = QLabel(empty_text)
        self.empty_note.setWordWrap(True)
        self.save_button = QPushButton("Save plot as PNG…")
        self.save_button.setEnabled(False)
        self.save_button.clicked.connect(self._on_save_clicked)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.save_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.empty_note)
        layout.addWidget(self.canvas, 1)
        layout.addLayout(row)
        self.canvas.setVisible(False)
        self.has_plot = False

    def draw(self, painter: Callable[..., object], *args: object, **kwargs: object) -> None:
        """Call ``painter(figure, *args, **kwargs)`` and show the result."""
        painter(self.figure, *args, **kwargs)
        self.empty_note.setVisible(False)
        self.canvas.setVisible(True)
        self.canvas.draw_idle()
        self.save_button.setEnabled(True)
        self.has_plot = True

    def clear(self, text: str | None = None) -> None:
        """Remove the plot and show ``text`` (or the empty text) instead."""
        self.figure.clear()
        if text is not None:
            self.empty_note.setText(text)
        self.empty_note.setVisible(True)
        self.canvas.setVisible(False)
        self.save_button.setEnabled(False)
        self.has_plot = False

    def save_png(self, path: str | Path) -> Path:
        """Save the current plot as a PNG file.

        Raises
        ------
        ValueError
            When there is nothing to save yet or the path does not end in
            ``.png``.
        """
        if not self.has_plot:
            raise ValueError("there is no plot to save yet: run first.")
        return save_figure(self.figure, path)

    def _on_save_clicked(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save plot", self.default_name, "PNG images (*.png)")
        if not path:
            return
        if not path.lower().endswith(".png"):
            path += ".png"
        try:
            self.save_png(path)
            show_info(f"Plot saved to {path}")
        except (ValueError, OSError) as exc:
            notify_user_error(exc)


class DriftPlot(PlotPanel):
    """The sample drift per frame (minus the correction), raw and smoothed."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(
            "The drift plot appears here after a run: sample drift per frame in pixels "
            "(the negative of the correction applied).",
            default_name="drift.png",
            height=300,
            parent=parent,
        )

    def show_transforms(
        self,
        transforms: FrameTransforms,
        smoothed: FrameTransforms | None = None,
        *,
        title: str | None = None,
    ) -> None:
        """Plot ``transforms`` (raw) and, when given, ``smoothed`` over them."""
        self.draw(draw_drift, transforms, smoothed, title=title)
