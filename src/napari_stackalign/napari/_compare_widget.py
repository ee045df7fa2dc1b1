"""Dock widget "Compare": before/after views and quality figures for two layers.

Pick any two image layers (typically ``X`` and ``"X registered (...)"``; the
other widgets' "Compare with input" opens this one on such a pair):

- *Side by side* turns on the viewer's grid with only the two layers
  visible; pressing it again restores the grid and every layer's visibility.
- *Difference* adds ``"<A> - <B> (difference, mean images)"``: of the mean
  images, or frame by frame (a lazy dask array, computed only for the frame
  on screen).
- *Checkerboard* adds ``"<A> | <B> (checkerboard, ...)"``: tiles of
  adjustable size taken alternately from A and B.
- Each new view replaces the previous view of the same kind and pair, or is
  kept next to it, as the user chooses.
- *Flicker* alternates the two layers' visibility at an adjustable rate;
  Stop restores them.
- *Measure quality* computes, in a worker, each layer's mean-image
  sharpness and every frame's correlation with its mean image, shown as
  numbers and a plot that can be saved as PNG.

The input layers' data are never touched: views change only visibility and
the grid, and restore them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, SpinBox
from napari.layers import Image
from napari.utils.notifications import show_info
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QGroupBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from ..core.checks import STACK_AXES
from ..core.quality import (
    CHECKER_TILE,
    checkerboard,
    common_region,
    difference,
    mean_image,
    quality_report,
    sharpness,
)
from ..plots import draw_correlations
from ._drift_plot import PlotPanel
from ._forms import layer_picker
from ._layers import derived_image_kwargs, provenance, same_layer, transforms_from_layer
from ._progress import Stage
from ._results import ResultsRow, result_name
from ._runner import TaskRunner, notify_user_error
from ._scrolling import ScrollingDock
from ._volume_run import volumes_elsewhere

__all__ = ["CompareWidget"]

SOURCES = ("mean images", "every frame (lazy)")


def _grid(viewer: Any) -> Any:
    canvas = getattr(viewer, "canvas", None)
    return canvas.grid if canvas is not None and hasattr(canvas, "grid") else viewer.grid


def _image_data(layer: Any) -> Any:
    """A layer's data as (T, Y, X) (a 2-D image becomes one frame)."""
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    if getattr(layer, "rgb", False):
        raise ValueError(f"layer {layer.name!r} is RGB: split its channels first (right-click > Split RGB).")
    if data.ndim == 2:
        return data[None]
    volumes_elsewhere(layer, "Compare")
    if data.ndim != 3:
        raise ValueError(f"layer {layer.name!r} has {data.ndim} dimensions: compare {STACK_AXES} stacks or 2-D images.")
    return data


def _mean_of(data: Any, progress: Any) -> np.ndarray:
    return mean_image(data, progress=progress)


def _means_task(a: Any, b: Any, *, progress: Any = None) -> tuple[np.ndarray, np.ndarray]:
    return _mean_of(a, progress), _mean_of(b, progress)


def _region_for(ft: Any, n_frames: int, shape: tuple[int, int]) -> tuple[int, int, int, int] | None:
    if ft is None or len(ft) != n_frames:
        return None
    return common_region(shape, ft)


def _intersect(a: tuple | None, b: tuple | None) -> tuple | None:
    if a is None:
        return b
    if b is None:
        return a
    r = (max(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), min(a[3], b[3]))
    if r[1] - r[0] < 2 or r[3] - r[2] < 2:
        raise ValueError("the two layers' registered areas do not overlap: untick 'Leave out the registered margin'.")
    return r


def _regions(a: Any, b: Any, transforms: tuple) -> tuple:
    """The rectangles to measure A and B on: where every registered frame has data.

    A layer that carries transforms (made by this plugin) contributes the
    area all its registered frames cover; with equal frame sizes both layers
    are measured on the intersection, so they are compared on the same pixels.
    """
    shape_a, shape_b = tuple(a.shape[-2:]), tuple(b.shape[-2:])
    ra = _region_for(transforms[0], a.shape[0], shape_a)
    rb = _region_for(transforms[1], b.shape[0], shape_b)
    if shape_a == shape_b:
        common = _intersect(ra, rb)
        return (common, common)
    return (ra, rb)


def _labelled(progress: Any, label: str) -> Any:
    """``progress`` with ``label`` after each stage's name (both layers go through the same stages)."""
    if progress is None:
        return None
    return lambda done, total, stage: progress(done, total, f"{stage} · {label}")


#: the stages of measuring quality, in order, for both layers
QUALITY_STAGES = tuple(
    Stage(f"{stage} · layer {which}") for which in "AB" for stage in ("mean image", "correlation")
)


def _quality_task(a: Any, b: Any, transforms: tuple | None, *, progress: Any = None) -> tuple[dict, dict, tuple]:
    """Quality reports of both stacks with the same sharpness normalisation (worker thread).

    ``transforms`` is None to measure whole frames, else the layers' stored
    transforms (None for a layer without), used to leave out the margin.
    """
    regions = (None, None) if transforms is None else _regions(a, b, transforms)
    region_a, region_b = regions
    rep_a = quality_report(a, roi=region_a, progress=_labelled(progress, "layer A"))
    rep_b = quality_report(b, roi=region_b, progress=_labelled(progress, "layer B"))
    if rep_a["sharpness_normalization"] != rep_b["sharpness_normalization"]:
        # one of them has a non-positive mean: compare both the same way
        for rep in (rep_a, rep_b):
            rep["sharpness"] = sharpness(rep["mean_image"], normalize="variance")
            rep["sharpness_normalization"] = "variance"
    return rep_a, rep_b, regions


class CompareWidget(ScrollingDock):
    """Compare two image layers: grid, difference, checkerboard, flicker, quality.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer.
    """

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.reports: dict[str, dict] = {}
        self._saved_view: dict | None = None
        self._flicker_saved: dict | None = None
        self._flicker_state = 0

        self.inputs = self.add_magic(self._layer_form())
        self.layer_a = self.inputs.layer_a
        self.layer_b = self.inputs.layer_b
        self.body_layout.addWidget(self._views_box())
        self.body_layout.addWidget(self._quality_box(), 1)

        self.layer_a.changed.connect(self._stop_views)
        self.layer_b.changed.connect(self._stop_views)
        napari_viewer.layers.events.removed.connect(self._on_layer_removed)
        self.reset_choices()
        self._pick_default_pair()

    # ---------------------------------------------------------------- building
    def _layer_form(self) -> Container:
        """The two layer pickers."""
        return Container(
            widgets=[
                layer_picker(Image, "layer_a", "Layer A (before)", "Usually the input stack."),
                layer_picker(Image, "layer_b", "Layer B (after)", "Usually the registered stack."),
            ]
        )

    def _views_box(self) -> QGroupBox:
        """Side by side, difference, checkerboard and flicker."""
        self.side_by_side_button = QPushButton("Side by side")
        self.side_by_side_button.setCheckable(True)
        self.side_by_side_button.setToolTip("Grid view with only A and B visible; press again to restore.")
        self.side_by_side_button.toggled.connect(self._on_side_by_side)
        self.source = ComboBox(
            name="source", label="Made from", value=SOURCES[0], choices=SOURCES,
            tooltip="Mean images: one 2-D result from the two stacks' means. "
            "Every frame: a lazy stack, computed for the frame on screen.",
        )
        self.tile = SpinBox(name="tile", label="Tiles (px)", value=CHECKER_TILE, min=2, max=4096,
                            tooltip="The checkerboard's tile size in pixels.")
        self.rate = FloatSpinBox(name="rate", label="Flicker (Hz)", value=2.0, min=0.2, max=30.0, step=0.5,
                                 tooltip="How often A and B alternate.")
        self.rate.changed.connect(self._on_rate_changed)
        self.view_form = self.add_magic(Container(widgets=[self.source, self.tile, self.rate]))
        self.difference_button = QPushButton("Add A − B")
        self.difference_button.clicked.connect(lambda *_: self.add_difference())
        self.checker_button = QPushButton("Add checkerboard")
        self.checker_button.clicked.connect(lambda *_: self.add_checkerboard())
        self.flicker_button = QPushButton("Start flicker")
        self.flicker_button.setCheckable(True)
        self.flicker_button.toggled.connect(self._on_flicker_toggled)
        self.timer = QTimer(self)
        self.timer.timeout.connect(self._flick)
        self.results = ResultsRow(self.viewer, "compare", scripting=False)

        views = QGroupBox("Views")
        layout = QVBoxLayout(views)
        layout.addWidget(self.side_by_side_button)
        layout.addWidget(self.view_form.native)
        row = QHBoxLayout()
        for button in (self.difference_button, self.checker_button, self.flicker_button):
            row.addWidget(button)
        layout.addLayout(row)
        layout.addWidget(self.results)
        return views

    def _quality_box(self) -> QGroupBox:
        """The margin option, the measure button, the figures and the correlation plot."""
        self.common_area = CheckBox(
            name="common_area", text="Leave out the registered margin", value=True,
            tooltip="Measure only where every registered frame has data. "
            "Registration leaves an empty margin where frames were moved. When a layer carries its "
            "transforms (it was made by this plugin), both layers are measured on the rectangle every "
            "registered frame covers, so the margin does not count against it.",
        )
        self.runner = TaskRunner("Measure quality", self.measure)
        self.table = QLabel("Press 'Measure quality' to compare sharpness and frame-to-mean correlation.")
        self.table.setWordWrap(True)
        self.plot = PlotPanel(
            "Each frame's correlation with its stack's mean image is plotted here.",
            default_name="compare.png",
            height=280,
        )
        quality = QGroupBox("Quality")
        qlayout = QVBoxLayout(quality)
        qlayout.addWidget(self.common_area.native)
        qlayout.addWidget(self.runner)
        qlayout.addWidget(self.table)
        qlayout.addWidget(self.plot, 1)
        return quality

    # ----------------------------------------------------------- layer choice
    def _layer_named(self, name: str) -> Any:
        for layer in self.layer_a.choices:
            if layer is not None and layer.name == name:
                return layer
        raise ValueError(f"there is no image layer {name!r} to compare.")

    def set_pair(self, first: str, second: str) -> None:
        """Compare layer ``first`` (A) with layer ``second`` (B), by name."""
        self.reset_choices()
        self.layer_a.value = self._layer_named(first)
        self.layer_b.value = self._layer_named(second)

    def _pick_default_pair(self) -> None:
        """Start with ``X`` and ``"X registered ..."`` when such a pair exists."""
        names = [layer.name for layer in reversed(self.layer_a.choices)]
        for name in names:
            for other in names:
                if other.startswith(f"{name} registered"):
                    self.set_pair(name, other)
                    return
        if len(names) >= 2:
            self.set_pair(names[1], names[0])

    def parameters(self) -> dict[str, Any]:
        """The views' and the measurement's settings."""
        return {
            "source": self.source.value, "tile": int(self.tile.value), "rate": float(self.rate.value),
            "common_area": bool(self.common_area.value),
        }

    def _pair(self) -> tuple[Any, Any]:
        a, b = self.layer_a.value, self.layer_b.value
        if a is None or b is None:
            raise ValueError("choose two image layers to compare (A and B).")
        if same_layer(a, b):
            raise ValueError(f"A and B are both {a.name!r}: choose two different layers.")
        return a, b

    def _on_layer_removed(self, event: Any = None) -> None:
        try:
            self._stop_views()
        except RuntimeError:  # widget already deleted
            return

    def _layers_by_name(self) -> dict[str, Any]:
        return {layer.name: layer for layer in self.viewer.layers}

    # ------------------------------------------------------------- grid view
    def _on_side_by_side(self, checked: bool) -> None:
        if checked:
            try:
                a, b = self._pair()
            except ValueError as exc:
                notify_user_error(exc)
                self.side_by_side_button.blockSignals(True)
                self.side_by_side_button.setChecked(False)
                self.side_by_side_button.blockSignals(False)
                return
            self._stop_flicker()
            grid = _grid(self.viewer)
            self._saved_view = {
                "grid": (grid.enabled, tuple(grid.shape), grid.stride),
                "visible": {layer.name: layer.visible for layer in self.viewer.layers},
            }
            for layer in self.viewer.layers:
                layer.visible = same_layer(layer, a) or same_layer(layer, b)
            grid.shape = (1, 2)
            grid.stride = 1
            grid.enabled = True
            self.side_by_side_button.setText("Side by side (press to restore)")
        else:
            self._restore_side_by_side()

    def _restore_side_by_side(self) -> None:
        saved, self._saved_view = self._saved_view, None
        if saved is not None:
            grid = _grid(self.viewer)
            enabled, shape, stride = saved["grid"]
            grid.enabled = enabled
            grid.shape = shape
            grid.stride = stride
            layers = self._layers_by_name()
            for name, visible in saved["visible"].items():
                if name in layers:
                    layers[name].visible = visible
        self.side_by_side_button.blockSignals(True)
        self.side_by_side_button.setChecked(False)
        self.side_by_side_button.setText("Side by side")
        self.side_by_side_button.blockSignals(False)

    # --------------------------------------------------------------- flicker
    def _on_rate_changed(self, value: float, *_: Any) -> None:
        self.timer.setInterval(max(1, round(1000.0 / float(value))))

    def _on_flicker_toggled(self, checked: bool) -> None:
        if checked:
            self.start_flicker()
        else:
            self._stop_flicker()

    def start_flicker(self) -> None:
        """Alternate A and B at the chosen rate (only their visibility changes)."""
        try:
            a, b = self._pair()
        except ValueError as exc:
            notify_user_error(exc)
            self._stop_flicker()
            return
        if self._flicker_saved is not None:
            return
        self._restore_side_by_side()
        self._flicker_saved = {a.name: a.visible, b.name: b.visible}
        self._flicker_state = 0
        a.visible, b.visible = True, False
        self._on_rate_changed(self.rate.value)
        self.timer.start()
        self.flicker_button.blockSignals(True)
        self.flicker_button.setChecked(True)
        self.flicker_button.setText("Stop flicker")
        self.flicker_button.blockSignals(False)

    def _flick(self) -> None:
        saved = self._flicker_saved
        layers = self._layers_by_name()
        if saved is None or any(name not in layers for name in saved):
            self._stop_flicker()
            return
        a, b = (layers[name] for name in saved)
        self._flicker_state ^= 1
        a.visible = self._flicker_state == 0
        b.visible = self._flicker_state == 1

    def _stop_flicker(self) -> None:
        self.timer.stop()
        saved, self._flicker_saved = self._flicker_saved, None
        if saved is not None:
            layers = self._layers_by_name()
            for name, visible in saved.items():
                if name in layers:
                    layers[name].visible = visible
        self.flicker_button.blockSignals(True)
        self.flicker_button.setChecked(False)
        self.flicker_button.setText("Start flicker")
        self.flicker_button.blockSignals(False)

    def _stop_views(self, *args: Any) -> None:
        """Stop flicker and grid view, restoring what they changed."""
        self._stop_flicker()
        self._restore_side_by_side()

    def on_close(self) -> None:
        """Closing restores what the views changed, and cancels a measurement."""
        self._stop_views()
        super().on_close()

    # ------------------------------------------------- difference/checkerboard
    def _frame_wise(self) -> bool:
        return self.source.value == SOURCES[1]

    def _check_frame_shapes(self, a: Any, b: Any, frames: bool) -> tuple[Any, Any]:
        da, db = _image_data(a), _image_data(b)
        if tuple(da.shape[-2:]) != tuple(db.shape[-2:]):
            raise ValueError(
                f"{a.name!r} frames are {tuple(da.shape[-2:])} and {b.name!r} frames are {tuple(db.shape[-2:])}: "
                "difference and checkerboard need the same frame size."
            )
        if frames and da.shape[0] != db.shape[0]:
            raise ValueError(
                f"{a.name!r} has {da.shape[0]} frames and {b.name!r} {db.shape[0]}: a frame-wise view needs "
                "the same number of frames; choose 'mean images'."
            )
        return da, db

    def add_difference(self) -> Any:
        """Add ``"<A> - <B>"`` (mean images in a worker, or every frame lazily).

        Returns the worker for mean images (tests wait on it), else None.
        """
        return self._add_view("difference")

    def add_checkerboard(self) -> Any:
        """Add ``"<A> | <B> checkerboard"`` with the chosen tile size."""
        return self._add_view("checkerboard")

    def _add_view(self, kind: str) -> Any:
        try:
            a, b = self._pair()
            frames = self._frame_wise() and _image_data(a).shape[0] > 1
            da, db = self._check_frame_shapes(a, b, frames)
        except ValueError as exc:
            notify_user_error(exc)
            return None
        tile = int(self.tile.value)
        if frames:
            try:
                self._add_view_layer(kind, a, b, da, db, tile, frame_axis=a.ndim == 3)
            except ValueError as exc:
                notify_user_error(exc)
            return None
        return self.runner.start(
            _means_task,
            da,
            db,
            on_result=lambda means: self._add_view_layer(kind, a, b, means[0], means[1], tile, frame_axis=False),
            stages=(Stage("mean image", 1),),
        )

    def _add_view_layer(self, kind: str, a: Any, b: Any, xa: Any, xb: Any, tile: int, *, frame_axis: bool) -> Any:
        source = "frames" if frame_axis else "mean images"
        params = {"a": a.name, "b": b.name, "source": source}
        keep_axes = frame_axis or a.ndim == 2  # a 2-D input has no frame axis to drop
        if kind == "difference":
            data = difference(xa, xb, lazy=frame_axis)
            kwargs = derived_image_kwargs(
                a, f"- {b.name}", provenance("compare-difference", params), frame_axis=keep_axes
            )
            kwargs["name"] = result_name(a.name, f"- {b.name}", "difference", [source])
            kwargs["colormap"] = "coolwarm"
            kwargs["blending"] = "translucent"
            sample = np.asarray(data[0] if frame_axis else data, dtype=np.float32)
            finite = np.abs(sample[np.isfinite(sample)])
            limit = float(np.percentile(finite, 99.5)) if finite.size else 1.0
            kwargs["contrast_limits"] = (-max(limit, 1e-6), max(limit, 1e-6))
        else:
            params["tile"] = tile
            data = checkerboard(xa, xb, tile=tile, lazy=frame_axis)
            kwargs = derived_image_kwargs(
                a, f"| {b.name} checkerboard", provenance("compare-checkerboard", params), frame_axis=keep_axes
            )
            kwargs["name"] = result_name(a.name, f"| {b.name}", "checkerboard", [source, f"{tile} px tiles"])
            sample = np.asarray(data[0] if frame_axis else data, dtype=np.float32)
            finite = sample[np.isfinite(sample)]
            if finite.size:
                lo, hi = np.percentile(finite, [0.5, 99.5])
                kwargs["contrast_limits"] = (float(lo), float(hi) if hi > lo else float(lo) + 1.0)
        if self.closed:
            return None
        # a new view of the same kind and pair replaces the previous one (or is kept, as chosen)
        (added,) = self.results.add_layers(f"{kind}: {a.name} | {b.name}", [(data, kwargs)], compare_with=None)
        return added

    # --------------------------------------------------------------- quality
    def measure(self) -> Any:
        """Measure both layers' quality in a worker; returns the worker (or None)."""
        try:
            a, b = self._pair()
            da, db = _image_data(a), _image_data(b)
            transforms = (transforms_from_layer(a), transforms_from_layer(b)) if self.common_area.value else None
        except ValueError as exc:
            notify_user_error(exc)
            return None
        names = (a.name, b.name)
        return self.runner.start(
            _quality_task, da, db, transforms, on_result=lambda res: self._show_reports(names, res),
            stages=QUALITY_STAGES,
        )

    def _show_reports(self, names: tuple[str, str], result: tuple) -> None:
        if self.closed:
            return
        *reports, regions = result
        self.reports = dict(zip(names, reports))
        rows = []
        for name, rep in self.reports.items():
            rows.append(
                f"<tr><td>{_escape(name)}</td><td align='right' nowrap>{rep['n_frames']}</td>"
                f"<td align='right' nowrap>{rep['sharpness']:.4g}</td>"
                f"<td align='right' nowrap>{rep['correlation_mean']:.3f}</td>"
                f"<td align='right' nowrap>{rep['correlation_min']:.3f}</td></tr>"
            )
        rep_a, rep_b = reports
        ratio = rep_b["sharpness"] / rep_a["sharpness"] if rep_a["sharpness"] > 0 else float("nan")
        region = regions[1] if regions[1] is not None else regions[0]
        where = (
            f"rows {region[0]}–{region[1]}, columns {region[2]}–{region[3]} (where every registered frame has data)"
            if region is not None
            else "whole frames"
        )
        self.table.setText(
            "<table cellspacing='4'><tr><th align='left'>layer</th><th nowrap>frames</th><th nowrap>sharpness</th>"
            "<th>mean&nbsp;r</th><th>min&nbsp;r</th></tr>"
            + "".join(rows)
            + "</table>"
            + f"<p>B/A sharpness: <b>{ratio:.2f}×</b>, measured on {where}.</p>"
        )
        self.table.setToolTip(
            "sharpness: normalised gradient energy of the mean image "
            f"({rep_a['sharpness_normalization']}-normalised; higher = sharper). "
            "r: each frame's Pearson correlation with its stack's mean image (1 = identical)."
        )
        self.plot.draw(draw_correlations, self.reports)
        show_info(f"Sharpness {names[0]}: {rep_a['sharpness']:.4g}, {names[1]}: {rep_b['sharpness']:.4g}")


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
