"""Dock widget "Pyramid registration": coarse-to-fine translation registration.

Collects the parameters of :func:`~napari_stackalign.core.pyramid._register.register_pyramid`,
runs estimation and resampling in a worker (Run / Cancel / progress), and adds
``"<input> registered"`` with the input's scale, translate and units and the
transforms and parameters in ``metadata["stackalign"]``. It plots the drift,
applies the same transforms to other layers with the same frame count (other
channels), and saves or loads the transform table.

The rectangle ROI comes from a Shapes layer (the selected shape, else the
first; its bounding box, mapped through both layers' world transforms into
the image's pixel grid). The mask comes from a Labels layer the size of a
frame: by default its labelled pixels are *ignored* (paint over a burned-in
label or a bright static object), or optionally the only ones compared.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from napari.layers import Image, Labels, Shapes
from napari.utils.notifications import show_info
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..core.apply import apply_transforms
from ..core.pyramid import (
    DEFAULT_RATES,
    register_and_apply,
    register_stack_to_file,
    suggest_output_path,
)
from ..core.smoothing import check_savgol
from ..io import read_stack
from ..parsing import format_downsample_rates, parse_downsample_rates
from ..transforms import FrameTransforms
from ._drift_plot import DriftPlot
from ._layer_choice import LayerChoice
from ._layers import derived_image_kwargs, frame_stack, provenance
from ._runner import TaskRunner, notify_user_error
from ._scrolling import ScrollingDock

__all__ = ["PyramidWidget"]

MASK_MODES = ("ignored", "the only ones compared")


# ------------------------------------------------------------ worker tasks
def _register_task(
    stack: Any,
    params: dict,
    smooth: dict | None,
    *,
    progress: Any = None,
) -> tuple[FrameTransforms, FrameTransforms, Any]:
    """Estimate, smooth (optionally) and apply; runs in the worker thread.

    One call to :func:`~napari_stackalign.core.pyramid._register_apply.register_and_apply`:
    without smoothing the resampling overlaps the estimation (same result as
    estimating, then applying).
    """
    options = dict(params)
    if smooth is not None:
        options.update(smooth=True, **smooth)
    result = register_and_apply(stack, **options, progress=progress)
    return result.raw_transforms, result.transforms, result.data


def _register_to_disk_task(
    stack: Any,
    output: Path,
    params: dict,
    smooth: dict | None,
    *,
    progress: Any = None,
) -> tuple[FrameTransforms, FrameTransforms, Any]:
    """Estimate, smooth (optionally) and apply chunk by chunk, streaming the
    result into ``output`` (flat memory; a cancel leaves no file), then open it
    lazily; runs in the worker thread."""
    options = dict(params)
    if smooth is not None:
        options.update(smooth=True, **smooth)
    result = register_stack_to_file(stack, output, **options, progress=progress)
    return result.raw_transforms, result.transforms, read_stack(result.path, lazy=True).data


def _is_lazy(data: Any) -> bool:
    """A dask array: the layer reads its file on demand (napari-stackalign's
    reader does so for files larger than a quarter of the memory)."""
    return type(data).__module__.startswith("dask.")


def _source_path(layer: Any) -> str | None:
    """The file a layer was read from, if any."""
    return getattr(getattr(layer, "source", None), "path", None) or layer.metadata.get("source_path")


def _apply_task(stacks: list, transforms: FrameTransforms, *, progress: Any = None) -> list:
    return [apply_transforms(stack, transforms, progress=progress) for stack in stacks]


# ------------------------------------------------------------- geometry
def roi_from_shape(shapes: Any, image: Any) -> tuple[int, int, int, int]:
    """The image pixels inside a Shapes layer's shape, as ``(r0, r1, c0, c1)``.

    Uses the selected shape when exactly one is selected, else the first.
    Its vertices go through the Shapes layer's data-to-world transform and
    the image's world-to-data transform (scale, translate, rotation...), and
    the ROI is the bounding box of the pixel centres inside, clipped to the
    frame.

    Raises
    ------
    ValueError
        If the layer has no shape or the shape misses the image.
    """
    if len(shapes.data) == 0:
        raise ValueError(
            f"Shapes layer {shapes.name!r} is empty: draw a rectangle around the region to compare, "
            "or choose '(whole frame)'."
        )
    selected = sorted(shapes.selected_data)
    index = selected[0] if len(selected) == 1 else 0
    vertices = np.asarray(shapes.data[index], dtype=float)
    corners = []
    for vertex in vertices:
        world = np.asarray(shapes.data_to_world(vertex), dtype=float)
        corners.append(np.asarray(image.world_to_data(world), dtype=float)[-2:])
    corners = np.array(corners)
    h, w = (int(n) for n in image.data.shape[-2:])
    r0 = max(0, math.ceil(corners[:, 0].min() - 1e-6))
    r1 = min(h, math.floor(corners[:, 0].max() + 1e-6) + 1)
    c0 = max(0, math.ceil(corners[:, 1].min() - 1e-6))
    c1 = min(w, math.floor(corners[:, 1].max() + 1e-6) + 1)
    if r1 <= r0 or c1 <= c0:
        raise ValueError(f"the shape in {shapes.name!r} does not overlap image {image.name!r}: draw it over the image.")
    return int(r0), int(r1), int(c0), int(c1)


def mask_from_labels(labels: Any, frame_shape: tuple[int, int], mode: str) -> np.ndarray:
    """A boolean compare-mask (True = compare) from a Labels layer.

    A (T, Y, X) labels layer counts a pixel as labelled when it is labelled
    in any frame.

    Raises
    ------
    ValueError
        If the labels' frame size differs from the image's, nothing is
        labelled, or ``mode`` is unknown.
    """
    if mode not in MASK_MODES:
        raise ValueError(f"mask mode must be one of {MASK_MODES}, got {mode!r}.")
    data = np.asarray(labels.data)
    if tuple(data.shape[-2:]) != tuple(frame_shape):
        raise ValueError(
            f"Labels layer {labels.name!r} is {data.shape[-2]}x{data.shape[-1]} but the frames are "
            f"{frame_shape[0]}x{frame_shape[1]}: make the labels from this image (Layer > New Labels Layer)."
        )
    labelled = data != 0
    while labelled.ndim > 2:
        labelled = labelled.any(axis=0)
    if not labelled.any():
        raise ValueError(
            f"nothing is painted in Labels layer {labels.name!r}: paint the pixels first, or choose '(none)'."
        )
    return ~labelled if mode == MASK_MODES[0] else labelled


def _describe(transforms: FrameTransforms) -> str:
    drift = -transforms.shifts
    bad = int(np.sum(~transforms.ok))
    text = (
        f"{len(transforms)} frames. Sample drift: rows {drift[:, 0].min():+.2f} … {drift[:, 0].max():+.2f} px, "
        f"columns {drift[:, 1].min():+.2f} … {drift[:, 1].max():+.2f} px."
    )
    if bad:
        text += f" {bad} frame(s) flagged as unreliable (× in the plot)."
    return text


# ---------------------------------------------------------------- widget
class PyramidWidget(ScrollingDock):
    """Pyramid (coarse-to-fine) translation registration of an image layer.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer.
    """

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        #: the transforms of the last run (smoothed when smoothing was on) or the loaded table
        self.transforms: FrameTransforms | None = None
        #: the unsmoothed estimate of the last run
        self.raw_transforms: FrameTransforms | None = None
        self.source_name: str | None = None
        self._last_params: dict = {}

        # -- input
        self.layer = LayerChoice(napari_viewer, Image)
        self.layer.setToolTip("A (T, Y, X) time series.")
        input_form = QFormLayout()
        input_form.addRow("Image layer:", self.layer)

        # -- parameters
        self.num_frames = QSpinBox()
        self.num_frames.setRange(1, 10_000_000)
        self.num_frames.setValue(100)
        self.num_frames.setToolTip("The template is built from the first N frames, registered among themselves.")
        self.rates = QLineEdit(format_downsample_rates(DEFAULT_RATES))
        self.rates.setToolTip("Pyramid levels, coarse to fine, e.g. 1/8, 1/4, 1/2, 1 (1 = full resolution).")
        self.max_movement = QDoubleSpinBox()
        self.max_movement.setRange(0.01, 1.0)
        self.max_movement.setSingleStep(0.05)
        self.max_movement.setDecimals(2)
        self.max_movement.setValue(0.5)
        self.max_movement.setToolTip("Largest motion searched, as a fraction of the frame (0.5 = ±25 %).")
        self.iterate = QSpinBox()
        self.iterate.setRange(1, 20)
        self.iterate.setValue(1)
        self.iterate.setToolTip("Passes; each re-estimates against a template refined from registered frames.")
        self.normalize = QCheckBox("Normalise intensity")
        self.normalize.setChecked(True)
        self.normalize.setToolTip("Robust to slow intensity changes (bleaching, a darkening sample).")
        self.smooth = QCheckBox("Smooth the drift")
        self.window_length = QSpinBox()
        self.window_length.setRange(3, 100_001)
        self.window_length.setSingleStep(2)
        self.window_length.setValue(11)
        self.window_length.setToolTip("Odd number of frames in the smoothing window.")
        self.polyorder = QSpinBox()
        self.polyorder.setRange(0, 20)
        self.polyorder.setValue(3)
        self.polyorder.setToolTip("Polynomial order of the Savitzky-Golay fit (smaller than the window).")
        self.smooth.setToolTip("Savitzky-Golay smoothing of the per-frame offsets (removes jitter, keeps drift).")
        self.smooth.toggled.connect(self._on_smooth_toggled)
        self._on_smooth_toggled(False)
        params_box = QGroupBox("Parameters")
        pform = QFormLayout(params_box)
        pform.addRow("Template frames:", self.num_frames)
        pform.addRow("Downsample rates:", self.rates)
        pform.addRow("Max movement:", self.max_movement)
        pform.addRow("Iterations:", self.iterate)
        pform.addRow(self.normalize)
        pform.addRow(self.smooth)
        pform.addRow("Smoothing window:", self.window_length)
        pform.addRow("Smoothing order:", self.polyorder)

        # -- region compared
        self.roi_layer = LayerChoice(napari_viewer, Shapes, none_text="(whole frame)")
        self.roi_layer.setToolTip(
            "Compare only inside a rectangle drawn in this Shapes layer (selected shape, else the first)."
        )
        self.mask_layer = LayerChoice(napari_viewer, Labels, none_text="(none)")
        self.mask_layer.setToolTip("Paint a static label or a bright static object in a Labels layer to keep it out.")
        self.mask_mode = QComboBox()
        self.mask_mode.addItems(MASK_MODES)
        self.mask_mode.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.mask_mode.setMinimumContentsLength(10)
        region_box = QGroupBox("Region compared")
        rform = QFormLayout(region_box)
        rform.addRow("ROI (Shapes):", self.roi_layer)
        rform.addRow("Mask (Labels):", self.mask_layer)
        rform.addRow("Labelled pixels are:", self.mask_mode)

        # -- run
        self.runner = TaskRunner("Register", self.run)

        # -- result: plot, table, apply to others
        self.drift_plot = DriftPlot()
        self.summary = QLabel("No transforms yet: run, or load a saved table.")
        self.summary.setWordWrap(True)
        self.save_table_button = QPushButton("Save table…")
        self.load_table_button = QPushButton("Load table…")
        self.save_table_button.setEnabled(False)
        self.save_table_button.clicked.connect(self._on_save_table)
        self.load_table_button.clicked.connect(self._on_load_table)
        table_row = QHBoxLayout()
        table_row.addWidget(self.save_table_button)
        table_row.addWidget(self.load_table_button)
        self.apply_list = QListWidget()
        self.apply_list.setMaximumHeight(90)
        self.apply_list.setToolTip("Layers with the same number of frames (e.g. other channels).")
        self.apply_button = QPushButton("Apply to checked layers")
        self.apply_button.clicked.connect(self.apply_to_checked)
        result_box = QGroupBox("Transforms")
        result_layout = QVBoxLayout(result_box)
        result_layout.addWidget(self.summary)
        result_layout.addWidget(self.drift_plot)
        result_layout.addLayout(table_row)
        result_layout.addWidget(QLabel("Apply the same transforms to:"))
        result_layout.addWidget(self.apply_list)
        result_layout.addWidget(self.apply_button)

        layout = self.body_layout
        layout.addLayout(input_form)
        layout.addWidget(params_box)
        layout.addWidget(region_box)
        layout.addWidget(self.runner)
        layout.addWidget(result_box, 1)

        events = napari_viewer.layers.events
        events.inserted.connect(self._refresh_apply_list)
        events.removed.connect(self._refresh_apply_list)
        self._refresh_apply_list()

    # -------------------------------------------------------- parameters
    def _on_smooth_toggled(self, checked: bool) -> None:
        self.window_length.setEnabled(checked)
        self.polyorder.setEnabled(checked)

    def parameters(self) -> dict:
        """The engine parameters set in the widget (rates parsed and checked).

        Raises
        ------
        ValueError
            If the rates cannot be read.
        """
        return {
            "num_frames": int(self.num_frames.value()),
            "downsample_rates": parse_downsample_rates(self.rates.text()),
            "max_movement": float(self.max_movement.value()),
            "iterate": int(self.iterate.value()),
            "normalize": bool(self.normalize.isChecked()),
        }

    def _smoothing(self, n_frames: int) -> dict | None:
        if not self.smooth.isChecked():
            return None
        settings = {"window_length": int(self.window_length.value()), "polyorder": int(self.polyorder.value())}
        check_savgol(n_frames, **settings)
        return settings

    # --------------------------------------------------------------- run
    def run(self) -> Any:
        """Register the chosen layer in a worker; returns the worker (None on a user error)."""
        try:
            layer = self.layer.value
            if layer is None:
                raise ValueError("add or choose an image layer (a time series) to register.")
            stack = frame_stack(layer)
            if stack.shape[0] < 2:
                raise ValueError(f"layer {layer.name!r} has a single frame: registration needs a time series.")
            params = self.parameters()
            smooth = self._smoothing(int(stack.shape[0]))
            frame_shape = tuple(int(n) for n in stack.shape[-2:])
            shapes = self.roi_layer.value
            roi = roi_from_shape(shapes, layer) if shapes is not None else None
            labels = self.mask_layer.value
            mode = self.mask_mode.currentText()
            mask = mask_from_labels(labels, frame_shape, mode) if labels is not None else None
        except ValueError as exc:
            notify_user_error(exc)
            return None
        engine = dict(params, roi=roi, mask=mask)
        record = dict(params)
        record["downsample_rates"] = list(params["downsample_rates"])
        record.update(
            roi=list(roi) if roi is not None else None,
            roi_layer=shapes.name if shapes is not None else None,
            mask_layer=labels.name if labels is not None else None,
            mask_mode=mode if labels is not None else None,
            smooth=smooth is not None,
            **(smooth or {}),
        )
        if _is_lazy(stack):
            # a big, lazily opened stack: register file to file and open the result lazily
            output = suggest_output_path(_source_path(layer), layer.name)
            record["output"] = str(output)
            show_info(f"Registering {layer.name!r} to disk: {output}")
            return self.runner.start(
                _register_to_disk_task,
                stack,
                output,
                engine,
                smooth,
                on_result=lambda result: self._on_registered(layer, record, result),
            )
        return self.runner.start(
            _register_task,
            stack,
            engine,
            smooth,
            on_result=lambda result: self._on_registered(layer, record, result),
        )

    def _on_registered(self, layer: Any, params: dict, result: tuple) -> None:
        raw, final, registered = result
        smoothed = params.get("smooth", False)
        extra = {"raw_transforms": raw.to_dict()} if smoothed else {}
        block = provenance("pyramid", params, final, **extra)
        kwargs = derived_image_kwargs(layer, "registered", block)
        kwargs["contrast_limits"] = tuple(layer.contrast_limits)
        self.viewer.add_image(registered, **kwargs)
        self._set_transforms(raw, final if smoothed else None, source=layer.name)
        self._last_params = params

    # ------------------------------------------------------ transforms
    def _set_transforms(self, raw: FrameTransforms, smoothed: FrameTransforms | None, *, source: str | None) -> None:
        self.raw_transforms = raw
        self.transforms = smoothed if smoothed is not None else raw
        self.source_name = source
        title = "Sample drift (= −correction applied)"
        if source:
            title = f"{title}\n{source}"
        self.drift_plot.show_transforms(raw, smoothed, title=title)
        self.summary.setText(_describe(self.transforms))
        self.save_table_button.setEnabled(True)
        self._refresh_apply_list()

    def save_transforms(self, path: str | Path) -> Path:
        """Save the current transforms as ``.csv`` or ``.json``.

        Raises
        ------
        ValueError
            When there are no transforms yet or the extension is unknown.
        """
        if self.transforms is None:
            raise ValueError("there are no transforms to save yet: run a registration or load a table first.")
        return self.transforms.save(path)

    def load_transforms(self, path: str | Path) -> FrameTransforms:
        """Load a ``.csv`` or ``.json`` table; it becomes the current transforms."""
        transforms = FrameTransforms.load(path)
        self._last_params = {"table": str(Path(path).resolve())}
        self._set_transforms(transforms, None, source=Path(path).name)
        return transforms

    def _on_save_table(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Save transforms", "transforms.csv", "CSV table (*.csv);;JSON (*.json)"
        )
        if not path:
            return
        if Path(path).suffix.lower() not in (".csv", ".json"):
            path += ".csv"
        try:
            self.save_transforms(path)
            show_info(f"Transforms saved to {path}")
        except (ValueError, OSError) as exc:
            notify_user_error(exc)

    def _on_load_table(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load transforms", "", "Transform tables (*.csv *.json)")
        if not path:
            return
        try:
            transforms = self.load_transforms(path)
            show_info(f"Loaded {len(transforms)} transforms from {path}: check layers below and apply.")
        except (ValueError, OSError) as exc:
            notify_user_error(exc)

    # ------------------------------------------------ apply to others
    def _candidates(self) -> list[Any]:
        if self.transforms is None:
            return []
        n = len(self.transforms)
        return [
            layer
            for layer in reversed(list(self.viewer.layers))
            if isinstance(layer, Image)
            and not getattr(layer, "rgb", False)
            and layer.ndim == 3
            and int(layer.data.shape[0]) == n
        ]

    def _refresh_apply_list(self, event: Any = None) -> None:
        try:
            checked = set(self.checked_layer_names())
            self.apply_list.clear()
            for layer in self._candidates():
                item = QListWidgetItem(layer.name)
                item.setFlags(item.flags() | Qt.ItemIsUserCheckable)
                item.setCheckState(Qt.Checked if layer.name in checked else Qt.Unchecked)
                self.apply_list.addItem(item)
            self.apply_button.setEnabled(self.apply_list.count() > 0)
        except RuntimeError:  # widget deleted, viewer still alive
            return

    def checked_layer_names(self) -> list[str]:
        """Names of the layers ticked in the "apply to" list."""
        return [
            self.apply_list.item(i).text()
            for i in range(self.apply_list.count())
            if self.apply_list.item(i).checkState() == Qt.Checked
        ]

    def set_checked(self, names: list[str]) -> None:
        """Tick exactly these layers in the "apply to" list."""
        wanted = set(names)
        missing = wanted - {self.apply_list.item(i).text() for i in range(self.apply_list.count())}
        if missing:
            raise ValueError(f"not offered (no transforms, or a different frame count): {sorted(missing)}")
        for i in range(self.apply_list.count()):
            item = self.apply_list.item(i)
            item.setCheckState(Qt.Checked if item.text() in wanted else Qt.Unchecked)

    def apply_to_checked(self) -> Any:
        """Apply the current transforms to every ticked layer (in a worker).

        Each layer gets a new ``"<name> registered"``. Returns the worker.
        """
        try:
            if self.transforms is None:
                raise ValueError("there are no transforms yet: run a registration or load a table first.")
            names = self.checked_layer_names()
            if not names:
                raise ValueError("tick at least one layer in the list to apply the transforms to.")
            layers = [self.viewer.layers[name] for name in names]
            stacks = [frame_stack(layer) for layer in layers]
        except (ValueError, KeyError) as exc:
            notify_user_error(exc if isinstance(exc, ValueError) else ValueError(f"layer {exc} is gone."))
            return None
        transforms = self.transforms
        params = dict(self._last_params, applied_from=self.source_name)

        def added(results: list) -> None:
            for layer, data in zip(layers, results):
                kwargs = derived_image_kwargs(layer, "registered", provenance("pyramid", params, transforms))
                kwargs["contrast_limits"] = tuple(layer.contrast_limits)
                self.viewer.add_image(data, **kwargs)

        return self.runner.start(_apply_task, stacks, transforms, on_result=added)
