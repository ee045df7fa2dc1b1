"""Dock widget "Similarity stacking": rotation + scale + shift registration, then averaging.

The motion is measured on one layer (one channel of a (T, C, Y, X) layer) by
:func:`~napari_stackalign.register_similarity`, then applied to every channel
of that layer and to the other layers ticked under *Also apply to* (same
frame count and frame size). For each of them the widget adds

- ``"<input> registered"``: the registered stack (all channels),
- ``"<input> average"``: the mean of the registered frames, full field or
  cropped to the region every frame covers,
- ``"<input> coverage"``: how many frames contributed to each average pixel,

each carrying the transforms in ``metadata["stackalign"]``. The angle, scale
and shift per frame are plotted (saveable as PNG) and the table can be
saved as CSV. Input layers are never modified.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from napari.layers import Image
from napari.utils.notifications import show_info, show_warning
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
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..core.apply import apply_transforms
from ..core.average import FrameAverage, average_frames
from ..core.checks import STACK_AXES
from ..core.similarity import (
    EXAMPLE_ANGLE_RANGE,
    EXAMPLE_SCALE_RANGE,
    SCALE_LIMITS,
    SIMILARITY_DEFAULTS,
    SimilarityOptions,
    register_similarity,
)
from ..transforms import FrameTransforms
from ._drift_plot import PlotPanel
from ._layer_choice import LayerChoice
from ._layers import derived_image_kwargs, provenance, same_layer
from ._runner import TaskRunner, notify_user_error
from ._similarity_plot import draw_similarity

__all__ = ["SimilarityWidget", "similarity_task"]

#: template combo text -> ``register_similarity`` value (None: the index box)
TEMPLATE_CHOICES = {
    "middle frame": "middle",
    "first frame": "first",
    "frame number…": None,
    "mean of all frames (2 passes)": "mean",
}
AVERAGE_MODES = {
    "full field (mean where covered)": "full",
    "crop to region all frames cover": "crop",
}
#: the angle boxes span one turn
ANGLE_BOX_LIMITS = (-180.0, 180.0)


def _label(name: str) -> str:
    """The form label of an option: its short name, capitalised."""
    spec = SimilarityOptions.specs()[name]
    return (spec.label or name.replace("_", " ")).capitalize()


def _layer_stack(layer: Any) -> Any:
    """A layer's data as (T, Y, X) or (T, C, Y, X), with a clear error otherwise."""
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    if getattr(layer, "rgb", False):
        raise ValueError(f"layer {layer.name!r} is RGB: split its channels first (right-click > Split RGB).")
    if data.ndim == 2:
        raise ValueError(f"layer {layer.name!r} is a single 2-D image: similarity stacking needs a time series.")
    if data.ndim not in (3, 4):
        raise ValueError(f"layer {layer.name!r} has {data.ndim} dimensions: use a {STACK_AXES} or (T, C, Y, X) layer.")
    return data


def similarity_task(
    data: Any,
    others: list[Any],
    *,
    channel: int | None,
    options: SimilarityOptions,
    mode: str,
    add_registered: bool,
    add_average: bool,
    progress: Any = None,
) -> dict[str, Any]:
    """Register ``data`` and apply the result to it and to ``others`` (worker thread).

    Returns ``{"transforms": FrameTransforms, "outputs": [(registered or None,
    FrameAverage or None), ...]}`` with one entry for ``data`` then each of
    ``others``.
    """
    transforms = register_similarity(data, channel=channel, options=options, progress=progress)
    outputs = []
    for stack in [data, *others]:
        registered = apply_transforms(stack, transforms, progress=progress) if add_registered else None
        average = average_frames(stack, transforms, mode=mode, progress=progress) if add_average else None
        outputs.append((registered, average))
    return {"transforms": transforms, "outputs": outputs}


class SimilarityWidget(QWidget):
    """Similarity stacking: measure rotation, scale and shift per frame; register; average.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer.
    """

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.transforms: FrameTransforms | None = None
        # the options the form does not show (refine, sigma, chunk_size) come from here
        self._options = SIMILARITY_DEFAULTS

        layout = QVBoxLayout(self)
        for group in (self._build_input(), self._build_estimation(), self._build_output()):
            layout.addWidget(group)
        for w in self._build_results():
            layout.addWidget(w)
        layout.addStretch(1)

        self.layer_choice.currentIndexChanged.connect(self._on_layer_changed)
        self.template.currentIndexChanged.connect(self._on_template_changed)
        self.limit_angle.toggled.connect(self._sync_ranges)
        self.limit_scale.toggled.connect(self._sync_ranges)
        napari_viewer.layers.events.inserted.connect(self._refresh_apply_list)
        napari_viewer.layers.events.removed.connect(self._refresh_apply_list)
        self.set_options(SIMILARITY_DEFAULTS)
        self._on_layer_changed()

    # -- sections ----------------------------------------------------------
    def _build_input(self) -> QGroupBox:
        self.layer_choice = LayerChoice(
            self.viewer, Image, accept=lambda layer: layer.ndim in (3, 4) and not getattr(layer, "rgb", False)
        )
        self.channel = QSpinBox()
        self.channel.setToolTip("For a (T, C, Y, X) layer: the channel the motion is measured on.")
        self.apply_list = QListWidget()
        self.apply_list.setMaximumHeight(72)
        self.apply_list.setToolTip(
            "Other layers with the same number and size of frames (e.g. the other channels "
            "of a split image) that get the same transforms."
        )
        inputs = QGroupBox("Input")
        form = QFormLayout(inputs)
        form.addRow("Register on", self.layer_choice)
        form.addRow("Channel", self.channel)
        form.addRow("Also apply to", self.apply_list)
        return inputs

    def _build_estimation(self) -> QGroupBox:
        """The options of ``register_similarity``: ranges and tooltips from :class:`SimilarityOptions`."""
        help_of = SimilarityOptions.help
        self.template = QComboBox()
        self.template.addItems(list(TEMPLATE_CHOICES))
        self.template_index = QSpinBox()
        self.template_index.setEnabled(False)
        self.limit_angle = QCheckBox("limit")
        self.angle_min = self._spin(ANGLE_BOX_LIMITS, EXAMPLE_ANGLE_RANGE[0], 1.0, " °")
        self.angle_max = self._spin(ANGLE_BOX_LIMITS, EXAMPLE_ANGLE_RANGE[1], 1.0, " °")
        self.limit_scale = QCheckBox("limit")
        self.scale_min = self._spin(SCALE_LIMITS, EXAMPLE_SCALE_RANGE[0], 0.01, "", decimals=3)
        self.scale_max = self._spin(SCALE_LIMITS, EXAMPLE_SCALE_RANGE[1], 0.01, "", decimals=3)
        spec = SimilarityOptions.specs()["min_success"]
        # the lowest value of the box stands for "unset" (automatic)
        self.min_success = self._spin((spec.minimum, spec.maximum), spec.minimum, 0.05, "", decimals=2)
        self.min_success.setSpecialValueText("auto")
        self.fallback = QComboBox()
        self.fallback.addItems(list(SimilarityOptions.specs()["fallback"].choices))
        tips = {
            "template": (self.template, self.template_index),
            "angle_range": (self.limit_angle, self.angle_min, self.angle_max),
            "scale_range": (self.limit_scale, self.scale_min, self.scale_max),
            "min_success": (self.min_success,),
            "fallback": (self.fallback,),
        }
        for name, boxes in tips.items():
            for box in boxes:
                box.setToolTip(help_of(name))
        estimation = QGroupBox("Estimation")
        form = QFormLayout(estimation)
        row = QHBoxLayout()
        row.addWidget(self.template, 1)
        row.addWidget(self.template_index)
        form.addRow(_label("template"), row)
        form.addRow(_label("angle_range"), self._range_row(self.limit_angle, self.angle_min, self.angle_max))
        form.addRow(_label("scale_range"), self._range_row(self.limit_scale, self.scale_min, self.scale_max))
        form.addRow(_label("min_success"), self.min_success)
        form.addRow(_label("fallback"), self.fallback)
        return estimation

    def _build_output(self) -> QGroupBox:
        self.mode = QComboBox()
        self.mode.addItems(list(AVERAGE_MODES))
        self.add_registered = QCheckBox("registered stack")
        self.add_registered.setChecked(True)
        self.add_average = QCheckBox("average + coverage")
        self.add_average.setChecked(True)
        output = QGroupBox("Output")
        form = QFormLayout(output)
        form.addRow("Averaging", self.mode)
        adds = QHBoxLayout()
        adds.addWidget(self.add_registered)
        adds.addWidget(self.add_average)
        form.addRow("Add", adds)
        return output

    def _build_results(self) -> list[QWidget]:
        """The run button, the summary, the plot and the table button."""
        self.runner = TaskRunner("Run similarity stacking", self._on_run)
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        self.plot = PlotPanel(
            "Angle, scale and shift per frame appear here after a run.", default_name="similarity.png", height=300
        )
        self.save_table_button = QPushButton("Save table as CSV…")
        self.save_table_button.setEnabled(False)
        self.save_table_button.clicked.connect(self._on_save_table)
        return [self.runner, self.summary, self.plot, self.save_table_button]

    # -- small builders ----------------------------------------------------
    @staticmethod
    def _spin(
        limits: tuple[float, float], value: float, step: float, suffix: str, decimals: int = 1
    ) -> QDoubleSpinBox:
        box = QDoubleSpinBox()
        box.setRange(*limits)
        box.setDecimals(decimals)
        box.setSingleStep(step)
        box.setValue(value)
        box.setSuffix(suffix)
        return box

    @staticmethod
    def _range_row(check: QCheckBox, lo: QDoubleSpinBox, hi: QDoubleSpinBox) -> QHBoxLayout:
        row = QHBoxLayout()
        row.addWidget(check)
        row.addWidget(lo, 1)
        row.addWidget(QLabel("to"))
        row.addWidget(hi, 1)
        return row

    # -- state -------------------------------------------------------------
    def _sync_ranges(self, *_: Any) -> None:
        for box in (self.angle_min, self.angle_max):
            box.setEnabled(self.limit_angle.isChecked())
        for box in (self.scale_min, self.scale_max):
            box.setEnabled(self.limit_scale.isChecked())

    def _on_template_changed(self, *_: Any) -> None:
        self.template_index.setEnabled(TEMPLATE_CHOICES[self.template.currentText()] is None)

    def _on_layer_changed(self, *_: Any) -> None:
        layer = self.layer_choice.value
        if layer is not None and layer.ndim == 4:
            self.channel.setEnabled(True)
            self.channel.setSpecialValueText("")
            self.channel.setRange(0, max(int(layer.data.shape[1]) - 1, 0))
        else:
            self.channel.setEnabled(False)
            self.channel.setRange(0, 0)
            self.channel.setSpecialValueText(f"{STACK_AXES} layer: no channel axis")
        n = int(layer.data.shape[0]) if layer is not None else 1
        self.template_index.setRange(0, max(n - 1, 0))
        self.template_index.setValue(n // 2)
        self._refresh_apply_list()

    def _refresh_apply_list(self, *_: Any) -> None:
        try:
            checked = {self.apply_list.item(i).text() for i in range(self.apply_list.count())
                       if self.apply_list.item(i).checkState() == Qt.Checked}
            self.apply_list.clear()
        except RuntimeError:  # widget deleted, viewer still alive
            return
        main = self.layer_choice.value
        if main is None:
            return
        frames, shape = main.data.shape[0], tuple(main.data.shape[-2:])
        for layer in self.viewer.layers:
            if same_layer(layer, main) or not isinstance(layer, Image) or layer.ndim not in (3, 4):
                continue
            if getattr(layer, "rgb", False) or layer.data.shape[0] != frames or tuple(layer.data.shape[-2:]) != shape:
                continue
            item = QListWidgetItem(layer.name)
            item.setFlags(item.flags() | Qt.ItemIsUserCheckable)
            item.setCheckState(Qt.Checked if layer.name in checked else Qt.Unchecked)
            self.apply_list.addItem(item)

    def set_apply_to(self, names: list[str]) -> None:
        """Tick the layers (by name) that get the same transforms."""
        wanted = set(names)
        for i in range(self.apply_list.count()):
            item = self.apply_list.item(i)
            item.setCheckState(Qt.Checked if item.text() in wanted else Qt.Unchecked)
        missing = wanted - {self.apply_list.item(i).text() for i in range(self.apply_list.count())}
        if missing:
            raise ValueError(f"cannot apply to {sorted(missing)}: not a layer with the same frames.")

    def _apply_layers(self) -> list[Any]:
        names = [self.apply_list.item(i).text() for i in range(self.apply_list.count())
                 if self.apply_list.item(i).checkState() == Qt.Checked]
        return [self.viewer.layers[n] for n in names if n in self.viewer.layers]

    # -- parameters --------------------------------------------------------
    def options(self) -> SimilarityOptions:
        """The :class:`SimilarityOptions` chosen in the widget (ValueError for values that do not fit)."""
        template = TEMPLATE_CHOICES[self.template.currentText()]
        if template is None:
            template = int(self.template_index.value())
        auto = self.min_success.value() == self.min_success.minimum()
        return self._options.replace(
            template=template,
            angle_range=(self.angle_min.value(), self.angle_max.value()) if self.limit_angle.isChecked() else None,
            scale_range=(self.scale_min.value(), self.scale_max.value()) if self.limit_scale.isChecked() else None,
            min_success=None if auto else self.min_success.value(),
            fallback=self.fallback.currentText(),
        )

    def set_options(self, options: SimilarityOptions) -> None:
        """Show ``options`` in the form (those it has no field for are kept for the next run)."""
        self._options = options
        if isinstance(options.template, str):
            self.template.setCurrentText(next(k for k, v in TEMPLATE_CHOICES.items() if v == options.template))
        else:
            self.template.setCurrentText(next(k for k, v in TEMPLATE_CHOICES.items() if v is None))
            self.template_index.setValue(options.template)
        self.limit_angle.setChecked(options.angle_range is not None)
        if options.angle_range is not None:
            self.angle_min.setValue(options.angle_range[0])
            self.angle_max.setValue(options.angle_range[1])
        self.limit_scale.setChecked(options.scale_range is not None)
        if options.scale_range is not None:
            self.scale_min.setValue(options.scale_range[0])
            self.scale_max.setValue(options.scale_range[1])
        auto = options.min_success is None
        self.min_success.setValue(self.min_success.minimum() if auto else options.min_success)
        self.fallback.setCurrentText(options.fallback)
        self._sync_ranges()
        self._on_template_changed()

    # -- running -----------------------------------------------------------
    def _on_run(self) -> Any:
        try:
            layer = self.layer_choice.value
            if layer is None:
                raise ValueError(f"add or choose a {STACK_AXES} image layer to register first.")
            data = _layer_stack(layer)
            channel = int(self.channel.value()) if data.ndim == 4 else None
            others = self._apply_layers()
            other_data = [_layer_stack(o) for o in others]
            if not (self.add_registered.isChecked() or self.add_average.isChecked()):
                raise ValueError("tick at least one output (registered stack or average).")
            opts = self.options()
        except ValueError as exc:
            notify_user_error(exc)
            return None
        mode = AVERAGE_MODES[self.mode.currentText()]
        layers = [layer, *others]

        def on_result(result: dict[str, Any]) -> None:
            self._show_result(layers, result, opts, channel, mode)

        return self.runner.start(
            similarity_task,
            data,
            other_data,
            channel=channel,
            options=opts,
            mode=mode,
            add_registered=self.add_registered.isChecked(),
            add_average=self.add_average.isChecked(),
            on_result=on_result,
        )

    def _show_result(
        self, layers: list[Any], result: dict[str, Any], opts: SimilarityOptions, channel: int | None, mode: str
    ) -> None:
        ft: FrameTransforms = result["transforms"]
        self.transforms = ft
        params = {**opts.to_dict(), "channel": channel, "mode": mode, "estimated_on": layers[0].name}
        block = provenance("similarity", params, ft)
        for layer, (registered, average) in zip(layers, result["outputs"], strict=True):
            if registered is not None:
                self.viewer.add_image(registered, **derived_image_kwargs(layer, "registered", block))
            if average is not None:
                self._add_average(layer, average, block)
        flagged = ft.params.get("flagged", {})
        text = (
            f"{len(ft) - int((~ft.ok).sum())} of {len(ft)} frames registered; "
            f"angle {ft.angle.min():.2f}..{ft.angle.max():.2f}°, scale {ft.scale.min():.4f}..{ft.scale.max():.4f}; "
            f"median success {np.nanmedian(ft.quality):.3f}."
        )
        if flagged:
            listed = "; ".join(f"frame {t}: {why}" for t, why in list(flagged.items())[:5])
            more = f" (+{len(flagged) - 5} more)" if len(flagged) > 5 else ""
            text += f" Flagged: {listed}{more}."
            show_warning(f"{len(flagged)} frame(s) could not be registered and got the fallback transform.")
        self.summary.setText(text)
        self.plot.draw(draw_similarity, ft, title=f"{layers[0].name}: correction per frame")
        self.save_table_button.setEnabled(True)

    def _add_average(self, layer: Any, average: FrameAverage, block: dict) -> None:
        kwargs = derived_image_kwargs(layer, "average", {**block, "role": "average"}, frame_axis=False)
        r0, _, c0, _ = average.crop if average.mode == "crop" else (0, 0, 0, 0)
        scale = list(kwargs["scale"])
        translate = list(kwargs["translate"])
        translate[-2] += r0 * scale[-2]
        translate[-1] += c0 * scale[-1]
        kwargs["translate"] = tuple(translate)
        self.viewer.add_image(average.image, **kwargs)
        cov = derived_image_kwargs(layer, "coverage", {**block, "role": "coverage"}, frame_axis=False)
        for key in ("scale", "translate", "units", "axis_labels"):
            if key in cov:
                cov[key] = tuple(cov[key])[-2:]
        cov["translate"] = tuple(translate[-2:])
        cov["colormap"] = "viridis"
        cov["visible"] = False
        self.viewer.add_image(average.coverage, **cov)

    # -- saving ------------------------------------------------------------
    def save_table(self, path: str | Path) -> Path:
        """Save the last run's per-frame table as CSV (or JSON by extension)."""
        if self.transforms is None:
            raise ValueError("there is no table yet: run first.")
        return self.transforms.save(path)

    def _on_save_table(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save transforms table", "similarity.csv", "CSV (*.csv);;JSON (*.json)")
        if not path:
            return
        try:
            self.save_table(path)
            show_info(f"Table saved to {path}")
        except (ValueError, OSError) as exc:
            notify_user_error(exc)
