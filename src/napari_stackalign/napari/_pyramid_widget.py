"""Dock widget "Pyramid registration": coarse-to-fine translation registration.

Collects the parameters of :func:`~napari_stackalign.core.pyramid.register_pyramid`
into one :class:`~napari_stackalign.core.pyramid.PyramidOptions` (which gives
the form its defaults, ranges and tooltips, and checks what was typed),
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

import functools
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
from ..core.checks import check_stack
from ..core.pyramid import (
    PyramidOptions,
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
#: upper ends of the spin boxes (the options set no maximum)
SPIN_MAXIMA = {"num_frames": 10_000_000, "iterate": 20, "window_length": 100_001, "polyorder": 20}
#: the smallest smoothing window offered (a window of one frame does not smooth)
MIN_WINDOW = 3
#: the estimation options a registered layer records (the smoothing ones only when smoothing is on)
RECORDED_OPTIONS = ("num_frames", "downsample_rates", "max_movement", "iterate", "normalize")


# ------------------------------------------------------------ worker tasks
def _register_task(
    stack: Any, options: PyramidOptions, *, progress: Any = None
) -> tuple[FrameTransforms, FrameTransforms, Any]:
    """Estimate, smooth (when the options ask) and apply; runs in the worker thread.

    One call to :func:`~napari_stackalign.core.pyramid.register_and_apply`:
    without smoothing the resampling overlaps the estimation (same result as
    estimating, then applying).
    """
    result = register_and_apply(stack, **options.to_dict(), progress=progress)
    return result.raw_transforms, result.transforms, result.data


def _register_to_disk_task(
    stack: Any, output: Path, options: PyramidOptions, *, progress: Any = None
) -> tuple[FrameTransforms, FrameTransforms, Any]:
    """Estimate, smooth (when the options ask) and apply chunk by chunk, streaming the
    result into ``output`` (flat memory; a cancel leaves no file), then open it
    lazily; runs in the worker thread."""
    result = register_stack_to_file(stack, output, **options.to_dict(), progress=progress)
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
    if bad == len(transforms):
        text += " No frame has a trustworthy transform: the stack has no usable signal, nothing was corrected."
    elif bad:
        text += (
            f" {bad} frame(s) failed (× in the plot) and were interpolated from their neighbours, not applied as "
            f"estimated: {transforms.failure_summary(limit=5)}"
        )
    return text


def _record(options: PyramidOptions, shapes: Any, labels: Any, mode: str) -> dict:
    """The parameters a registered layer records in ``metadata["stackalign"]``."""
    record: dict[str, Any] = {name: getattr(options, name) for name in RECORDED_OPTIONS}
    record["downsample_rates"] = list(options.downsample_rates)
    record.update(
        roi=list(options.roi) if options.roi is not None else None,
        roi_layer=shapes.name if shapes is not None else None,
        mask_layer=labels.name if labels is not None else None,
        mask_mode=mode if labels is not None else None,
        smooth=options.smooth,
    )
    if options.smooth:
        record.update(window_length=options.window_length, polyorder=options.polyorder)
    return record


# ----------------------------------------------------------------- form
def _tooltip(name: str) -> str:
    """The option's help (with its default and range), as a sentence."""
    text = PyramidOptions.help(name)
    return text[:1].upper() + text[1:]


def _int_spin(name: str, *, minimum: int | None = None, step: int = 1) -> QSpinBox:
    """A spin box for an integer option: its default, its range (capped by ``SPIN_MAXIMA``) and its help."""
    spec = PyramidOptions.specs()[name]
    spin = QSpinBox()
    spin.setRange(int(spec.minimum) if minimum is None else minimum, SPIN_MAXIMA[name])
    spin.setSingleStep(step)
    spin.setValue(PyramidOptions.default(name))
    spin.setToolTip(_tooltip(name))
    return spin


def _fraction_spin(name: str, *, decimals: int = 2, step: float = 0.05) -> QDoubleSpinBox:
    """A spin box for a number option with a range, e.g. ``max_movement`` in (0, 1]."""
    spec = PyramidOptions.specs()[name]
    resolution = 10.0**-decimals
    spin = QDoubleSpinBox()
    spin.setDecimals(decimals)
    spin.setRange(spec.minimum + (resolution if spec.exclusive_minimum else 0), spec.maximum)
    spin.setSingleStep(step)
    spin.setValue(PyramidOptions.default(name))
    spin.setToolTip(_tooltip(name))
    return spin


def _check_box(name: str, text: str) -> QCheckBox:
    """A check box for a switch option: its default and its help."""
    box = QCheckBox(text)
    box.setChecked(PyramidOptions.default(name))
    box.setToolTip(_tooltip(name))
    return box


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

        layout = self.body_layout
        layout.addLayout(self._build_layer_row())
        layout.addWidget(self._build_parameters())
        layout.addWidget(self._build_region())
        self.runner = TaskRunner("Register", self.run)
        layout.addWidget(self.runner)
        layout.addWidget(self._build_result(), 1)

        events = napari_viewer.layers.events
        events.inserted.connect(self._refresh_apply_list)
        events.removed.connect(self._refresh_apply_list)
        self._refresh_apply_list()

    # ------------------------------------------------------------ sections
    def _build_layer_row(self) -> QFormLayout:
        """The image layer to register."""
        self.layer = LayerChoice(self.viewer, Image)
        self.layer.setToolTip("A (T, Y, X) time series.")
        form = QFormLayout()
        form.addRow("Image layer:", self.layer)
        return form

    def _build_parameters(self) -> QGroupBox:
        """The pyramid options: defaults, ranges and tooltips from :class:`PyramidOptions`."""
        self.num_frames = _int_spin("num_frames")
        self.rates = QLineEdit(format_downsample_rates(PyramidOptions.default("downsample_rates")))
        self.rates.setToolTip(_tooltip("downsample_rates") + " Separate them with commas, e.g. 1/4, 1/2, 1.")
        self.max_movement = _fraction_spin("max_movement")
        self.iterate = _int_spin("iterate")
        self.normalize = _check_box("normalize", "Normalise intensity")
        self.smooth = _check_box("smooth", "Smooth the drift")
        self.window_length = _int_spin("window_length", minimum=MIN_WINDOW, step=2)
        self.polyorder = _int_spin("polyorder")
        self.smooth.toggled.connect(self._on_smooth_toggled)
        self._on_smooth_toggled(self.smooth.isChecked())
        box = QGroupBox("Parameters")
        form = QFormLayout(box)
        form.addRow("Template frames:", self.num_frames)
        form.addRow("Downsample rates:", self.rates)
        form.addRow("Max movement:", self.max_movement)
        form.addRow("Iterations:", self.iterate)
        form.addRow(self.normalize)
        form.addRow(self.smooth)
        form.addRow("Smoothing window:", self.window_length)
        form.addRow("Smoothing order:", self.polyorder)
        return box

    def _build_region(self) -> QGroupBox:
        """The ROI (a Shapes layer) and the mask (a Labels layer) that limit the comparison."""
        self.roi_layer = LayerChoice(self.viewer, Shapes, none_text="(whole frame)")
        self.roi_layer.setToolTip(
            "Compare only inside a rectangle drawn in this Shapes layer (selected shape, else the first)."
        )
        self.mask_layer = LayerChoice(self.viewer, Labels, none_text="(none)")
        self.mask_layer.setToolTip("Paint a static label or a bright static object in a Labels layer to keep it out.")
        self.mask_mode = QComboBox()
        self.mask_mode.addItems(MASK_MODES)
        self.mask_mode.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.mask_mode.setMinimumContentsLength(10)
        box = QGroupBox("Region compared")
        form = QFormLayout(box)
        form.addRow("ROI (Shapes):", self.roi_layer)
        form.addRow("Mask (Labels):", self.mask_layer)
        form.addRow("Labelled pixels are:", self.mask_mode)
        return box

    def _build_result(self) -> QGroupBox:
        """The drift plot, the summary, the table buttons and the "apply to" list."""
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
        box = QGroupBox("Transforms")
        layout = QVBoxLayout(box)
        layout.addWidget(self.summary)
        layout.addWidget(self.drift_plot)
        layout.addLayout(table_row)
        layout.addWidget(QLabel("Apply the same transforms to:"))
        layout.addWidget(self.apply_list)
        layout.addWidget(self.apply_button)
        return box

    # -------------------------------------------------------- parameters
    def _on_smooth_toggled(self, checked: bool) -> None:
        self.window_length.setEnabled(checked)
        self.polyorder.setEnabled(checked)

    def options(self) -> PyramidOptions:
        """The pyramid options set in the form (the region compared is added by :meth:`run`).

        Raises
        ------
        ValueError
            If the rates cannot be read or the values do not fit together
            (the options' message).
        """
        values = {
            "num_frames": self.num_frames.value(),
            "downsample_rates": parse_downsample_rates(self.rates.text()),
            "max_movement": self.max_movement.value(),
            "iterate": self.iterate.value(),
            "normalize": self.normalize.isChecked(),
            "smooth": self.smooth.isChecked(),
        }
        if values["smooth"]:  # the smoothing fields are disabled (and not used) otherwise
            values.update(window_length=self.window_length.value(), polyorder=self.polyorder.value())
        return PyramidOptions(**values)

    def parameters(self) -> dict:
        """The estimation parameters set in the widget (rates parsed and checked), without smoothing.

        Raises
        ------
        ValueError
            If the rates cannot be read.
        """
        options = self.options()
        return {name: getattr(options, name) for name in RECORDED_OPTIONS}

    # --------------------------------------------------------------- run
    def run(self) -> Any:
        """Register the chosen layer in a worker; returns the worker (None on a user error)."""
        try:
            layer, stack, options, record = self._prepare()
        except ValueError as exc:
            notify_user_error(exc)
            return None
        on_result = functools.partial(self._on_registered, layer, record)
        if _is_lazy(stack):
            # a big, lazily opened stack: register file to file and open the result lazily
            output = suggest_output_path(_source_path(layer), layer.name)
            record["output"] = str(output)
            show_info(f"Registering {layer.name!r} to disk: {output}")
            return self.runner.start(_register_to_disk_task, stack, output, options, on_result=on_result)
        return self.runner.start(_register_task, stack, options, on_result=on_result)

    def _prepare(self) -> tuple[Any, Any, PyramidOptions, dict]:
        """The layer, its frames, the options (with the region compared) and the parameters to record.

        Raises
        ------
        ValueError
            For a missing or unsuitable layer, bad values, or a region that does not fit.
        """
        layer = self.layer.value
        if layer is None:
            raise ValueError("add or choose an image layer (a time series) to register.")
        stack = frame_stack(layer)
        try:
            n_frames = check_stack(stack, what="registration", min_frames=2)[0]
        except ValueError as exc:
            raise ValueError(f"layer {layer.name!r}: {exc}") from exc
        options = self.options()
        if options.smooth:
            check_savgol(n_frames, options.window_length, options.polyorder)
        frame_shape = tuple(int(n) for n in stack.shape[-2:])
        shapes = self.roi_layer.value
        roi = roi_from_shape(shapes, layer) if shapes is not None else None
        labels = self.mask_layer.value
        mode = self.mask_mode.currentText()
        mask = mask_from_labels(labels, frame_shape, mode) if labels is not None else None
        options = options.replace(roi=roi, mask=mask)
        return layer, stack, options, _record(options, shapes, labels, mode)

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
