"""The transforms panel every method that makes transforms shares.

A summary line, a plot of the transforms (drift, or angle / scale / shift),
buttons that save and load the table, and a list of other layers (same frame
count and frame size; never the input itself, nor a layer a run made) that get
the same transforms.
The list is a magicgui ``Select`` of layer names, refreshed with the widget's
layer pickers.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from magicgui.widgets import Select
from napari.layers import Image
from napari.utils.notifications import show_info
from qtpy.QtWidgets import QGroupBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from ..transforms import FrameTransforms
from ._file_dialogs import TABLE_FILTERS, open_file, save_file
from ._layers import same_layer
from ._runner import notify_user_error
from ._volume_run import is_labelled_volume, is_volume_transforms

__all__ = ["TransformsPanel", "describe_drift"]


def describe_drift(transforms: FrameTransforms) -> str:
    """The drift range and the frames that failed, in a sentence or two."""
    drift = -transforms.shifts
    bad = int(np.sum(~transforms.ok))
    planes = ""
    if is_volume_transforms(transforms):  # volumes: the drift along Z too
        dz = -np.asarray(transforms.dz)
        planes = f"planes {dz.min():+.2f} … {dz.max():+.2f}, "
    text = (
        f"{len(transforms)} frames. Sample drift: {planes}rows {drift[:, 0].min():+.2f} … {drift[:, 0].max():+.2f} px, "
        f"columns {drift[:, 1].min():+.2f} … {drift[:, 1].max():+.2f} px."
    )
    if bad == len(transforms):
        text += " No frame has a trustworthy transform: the stack has no usable signal, nothing was corrected."
    elif bad:
        text += (
            f" {bad} frame(s) failed (× in the plot) and were interpolated from their neighbours, not applied as "
            f"estimated: {transforms.failure_summary(limit=5)}"
        )
    return text


class TransformsPanel(QGroupBox):
    """Summary, plot, save / load the table, and apply to other layers.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer.
    plot : PlotPanel
        The plot widget (a :class:`~napari_stackalign.napari._drift_plot.DriftPlot`
        or a :class:`~napari_stackalign.napari._drift_plot.PlotPanel`).
    show : callable
        ``show(plot, raw, final, source)`` draws the transforms in ``plot``.
    describe : callable
        ``describe(transforms) -> str``, the summary.
    apply : callable
        ``apply(names)``: apply the current transforms to the layers with these
        names (the widget starts the run); returns the worker.
    default_name : str
        The table's default file name.
    """

    def __init__(
        self,
        viewer: Any,
        plot: QWidget,
        *,
        show: Callable[[Any, FrameTransforms, FrameTransforms | None, str | None], None],
        describe: Callable[[FrameTransforms], str] = describe_drift,
        apply: Callable[[list[str]], Any],
        default_name: str = "transforms.csv",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__("Transforms", parent)
        self.viewer = viewer
        self.plot = plot
        self._show = show
        self._describe = describe
        self._apply = apply
        self.default_name = default_name
        #: the current transforms (smoothed when smoothing was on), the unsmoothed estimate, their source
        self.transforms: FrameTransforms | None = None
        self.raw_transforms: FrameTransforms | None = None
        self.source_name: str | None = None
        #: the frame size (Y, X) of the layers offered, when it matters (None: any size)
        self.frame_shape: tuple[int, int] | None = None
        self.summary = QLabel("No transforms yet: run, or load a saved table.")
        self.summary.setWordWrap(True)
        self.save_table_button = QPushButton("Save table…")
        self.load_table_button = QPushButton("Load table…")
        self.save_table_button.setEnabled(False)
        self.save_table_button.clicked.connect(self._on_save_table)
        self.load_table_button.clicked.connect(self._on_load_table)
        self.apply_to = Select(
            choices=self._candidate_names,
            label="Apply to",
            tooltip="Layers with the same number and size of frames (e.g. other channels).",
        )
        self.apply_to.native.setMaximumHeight(90)
        self.apply_button = QPushButton("Apply to selected layers")
        self.apply_button.clicked.connect(lambda *_: self.apply_to_checked())
        table_row = QHBoxLayout()
        table_row.addWidget(self.save_table_button)
        table_row.addWidget(self.load_table_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(plot)
        layout.addLayout(table_row)
        layout.addWidget(QLabel("Apply the same transforms to (Ctrl-click for several):"))
        layout.addWidget(self.apply_to.native)
        layout.addWidget(self.apply_button)
        self.refresh()

    # --------------------------------------------------------- candidates
    def _candidate_names(self, *_: Any) -> list[str]:
        if self.transforms is None:
            return []
        n = len(self.transforms)
        shape = self.frame_shape
        source = self._source_layer()
        volume = is_volume_transforms(self.transforms)  # (dz, dy, dx) apply to (T, Z, Y, X) layers only
        names = []
        for layer in reversed(list(self.viewer.layers)):
            if not isinstance(layer, Image) or getattr(layer, "rgb", False) or layer.ndim not in (3, 4):
                continue
            if (volume and layer.ndim != 4) or (not volume and is_labelled_volume(layer)):
                continue
            if int(layer.data.shape[0]) != n or (source is not None and same_layer(layer, source)):
                continue
            if (dict(layer.metadata).get("stackalign") or {}).get("run_id"):
                continue  # a result of a run: already corrected
            if shape and tuple(layer.data.shape[-2:]) != tuple(shape):
                continue
            names.append(layer.name)
        return names

    def _source_layer(self) -> Any:
        if self.source_name is None:
            return None
        for layer in self.viewer.layers:
            if layer.name == self.source_name:
                return layer
        return None

    def reset_choices(self, *_: Any) -> None:
        """Refresh the list of layers offered."""
        self.refresh()

    def refresh(self) -> None:
        try:
            keep = [name for name in self.apply_to.value if name in self._candidate_names()]
            self.apply_to.reset_choices()
            self.apply_to.value = keep
            self.apply_button.setEnabled(bool(self.apply_to.choices))
        except RuntimeError:  # the Qt widget was deleted; the viewer outlived it
            return

    def checked_layer_names(self) -> list[str]:
        """Names of the layers selected in the "apply to" list."""
        return list(self.apply_to.value)

    def set_checked(self, names: list[str]) -> None:
        """Select exactly these layers in the "apply to" list (ValueError for one not offered)."""
        offered = set(self.apply_to.choices)
        missing = set(names) - offered
        if missing:
            raise ValueError(
                f"not offered (no transforms yet, the input itself, or a different frame count): {sorted(missing)}"
            )
        self.apply_to.value = list(names)

    def apply_to_checked(self) -> Any:
        """Apply the current transforms to the selected layers (the widget's run); returns the worker."""
        try:
            if self.transforms is None:
                raise ValueError("there are no transforms yet: run a registration or load a table first.")
            names = self.checked_layer_names()
            if not names:
                raise ValueError("select at least one layer in the list to apply the transforms to.")
        except ValueError as exc:
            notify_user_error(exc)
            return None
        return self._apply(names)

    # -------------------------------------------------------- transforms
    def set_transforms(
        self,
        raw: FrameTransforms,
        smoothed: FrameTransforms | None = None,
        *,
        source: str | None = None,
        frame_shape: tuple[int, int] | None = None,
    ) -> None:
        """Show new transforms (``smoothed`` when smoothing was on) estimated on layer ``source``.

        ``frame_shape`` limits the layers offered to that frame size.
        """
        self.frame_shape = frame_shape
        self.raw_transforms = raw
        self.transforms = smoothed if smoothed is not None else raw
        self.source_name = source
        self._show(self.plot, raw, smoothed, source)
        self.summary.setText(self._describe(self.transforms))
        self.save_table_button.setEnabled(True)
        self.refresh()

    def save_transforms(self, path: str | Path) -> Path:
        """Save the current transforms as ``.csv`` or ``.json`` (ValueError when there are none yet).

        A piecewise-rigid result writes its rigid part there and the whole field
        beside it as ``.npz`` (as ``stackalign register --piecewise --transforms`` does).
        """
        if self.transforms is None:
            raise ValueError("there are no transforms to save yet: run a registration or load a table first.")
        rigid = getattr(self.transforms, "rigid", None)
        if rigid is not None and Path(path).suffix.lower() != ".npz":
            self.transforms.save(Path(path).with_suffix(".npz"))
            return rigid.save(path)
        return self.transforms.save(path)

    def load_transforms(self, path: str | Path) -> FrameTransforms:
        """Load a ``.csv`` or ``.json`` table; it becomes the current transforms."""
        transforms = FrameTransforms.load(path)
        self.set_transforms(transforms, None, source=None)
        self.summary.setText(f"Loaded from {Path(path).name}. " + self._describe(transforms))
        return transforms

    def _on_save_table(self) -> None:
        path = save_file(self, "Save transforms", self.default_name, TABLE_FILTERS)
        if path is None:
            return
        try:
            self.save_transforms(path)
            show_info(f"Transforms saved to {path}")
        except (ValueError, OSError) as exc:
            notify_user_error(exc)

    def _on_load_table(self) -> None:
        path = open_file(self, "Load transforms", TABLE_FILTERS)
        if path is None:
            return
        try:
            transforms = self.load_transforms(path)
            show_info(f"Loaded {len(transforms)} transforms from {path}: select layers below and apply.")
        except (ValueError, OSError) as exc:
            notify_user_error(exc)
