"""Dock widget "Similarity stacking": rotation + scale + shift registration, then averaging.

The motion is measured on one layer (one channel of a (T, C, Y, X) layer) by
:func:`~napari_stackalign.register_similarity`, then applied to every channel
of that layer; the transforms panel applies it afterwards to other layers
(same frame count and frame size, e.g. the other channels of a split image).
For each of them the widget adds, named by the method and its key settings,

- ``"<input> registered (similarity, ...)"``: the registered stack (all channels),
- ``"<input> average (similarity, ...)"``: the mean of the registered frames,
  full field or cropped to the region every frame covers,
- ``"<input> coverage (similarity, ...)"``: how many frames contributed to
  each average pixel,

each carrying the transforms in ``metadata["stackalign"]``. The angle, scale
and shift per frame are plotted (saveable as PNG) and the table can be saved
and loaded. The form comes from :class:`~napari_stackalign.core.similarity.SimilarityOptions`
and remembers the last values. Input layers are never modified.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, SpinBox
from napari.layers import Image
from napari.utils.notifications import show_warning
from qtpy.QtWidgets import QGroupBox, QVBoxLayout, QWidget

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
from ._forms import OptionsForm, layer_picker, tooltip
from ._layers import derived_image_kwargs, provenance
from ._progress import Stage
from ._results import ResultsRow, result_name
from ._runner import TaskRunner, notify_user_error
from ._scripting import similarity_recipe
from ._scrolling import ScrollingDock
from ._similarity_plot import draw_similarity
from ._transforms_panel import TransformsPanel
from ._volume_run import is_labelled_volume, volumes_elsewhere

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
    if is_labelled_volume(layer):
        volumes_elsewhere(layer, "similarity stacking")
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


def _is_series(layer: Any) -> bool:
    """A layer the widget can register: (T, Y, X) or (T, C, Y, X), not RGB."""
    return layer.ndim in (3, 4) and not getattr(layer, "rgb", False)


def describe_similarity(ft: FrameTransforms) -> str:
    """How many frames registered, the angle and scale ranges, the success, and the flagged frames."""
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
    return text


def _show_similarity(plot: PlotPanel, raw: FrameTransforms, _smoothed: Any, source: str | None) -> None:
    plot.draw(draw_similarity, raw, title=f"{source}: correction per frame" if source else "correction per frame")


def _settings(opts: SimilarityOptions, channel: int | None) -> list[str]:
    """The key settings a result's name shows."""
    words = [f"channel {channel}"] if channel is not None else []
    if opts.template != SIMILARITY_DEFAULTS.template:
        words.append(f"template {opts.template}" if isinstance(opts.template, str) else f"template frame {opts.template}")
    if opts.angle_range is not None:
        words.append("angle {:g}..{:g}°".format(*opts.angle_range))
    if opts.scale_range is not None:
        words.append("scale {:g}..{:g}".format(*opts.scale_range))
    return words


def _range_box(name: str, limits: tuple[float, float], value: float, step: float, tip: str) -> Any:
    """One end of the angle or scale range ("angle_min" is labelled "Angle from")."""
    what, end = name.split("_")
    label = f"{what.capitalize()} {'from' if end == 'min' else 'to'}"
    return FloatSpinBox(name=name, label=label, value=value, min=limits[0], max=limits[1], step=step, tooltip=tip)


class SimilarityWidget(ScrollingDock):
    """Similarity stacking: measure rotation, scale and shift per frame; register; average.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer.
    """

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        # the options the form does not show (refine, sigma, chunk_size) come from here
        self._options = SIMILARITY_DEFAULTS
        #: the parameters of the last run (recorded by layers the panel adds later)
        self._last_params: dict[str, Any] = {}

        self.inputs = self.add_magic(self._build_inputs())
        self.layer = self.inputs.layer
        self.channel = self.inputs.channel
        box = QGroupBox("Estimation and output")
        QVBoxLayout(box).setContentsMargins(4, 4, 4, 4)
        self.form = self.add_magic(self._build_form(), box.layout())
        self.body_layout.addWidget(box)
        self.runner = TaskRunner("Run similarity stacking", self._on_run)
        self.body_layout.addWidget(self.runner)
        self.results = ResultsRow(napari_viewer, "similarity")
        self.body_layout.addWidget(self.results)
        self.plot = PlotPanel(
            "Angle, scale and shift per frame appear here after a run.", default_name="similarity.png", height=300
        )
        self.panel = TransformsPanel(
            napari_viewer, self.plot, show=_show_similarity, describe=describe_similarity, apply=self._apply_to,
            default_name="similarity.csv",
        )
        self._magic.append(self.panel)
        self.body_layout.addWidget(self.panel, 1)

        self.layer.changed.connect(self._on_layer_changed)
        self.form.template.changed.connect(self._on_template_changed)
        self.form.limit_angle.changed.connect(self._sync_ranges)
        self.form.limit_scale.changed.connect(self._sync_ranges)
        self._sync_ranges()
        self._on_template_changed()
        self._on_layer_changed()

    # -- sections ----------------------------------------------------------
    def _build_inputs(self) -> Container:
        layer = layer_picker(
            Image, "layer", "Register on", f"A {STACK_AXES} or (T, C, Y, X) time series.", accept=_is_series
        )
        channel = SpinBox(
            name="channel", label="Channel", value=0, min=0, max=0,
            tooltip="For a (T, C, Y, X) layer: the channel the motion is measured on (all channels are corrected).",
        )
        return Container(widgets=[layer, channel])

    def _build_form(self) -> OptionsForm:
        """The options of ``register_similarity`` (defaults, ranges, tooltips from
        :class:`SimilarityOptions`) and the outputs."""
        tip = functools.partial(tooltip, SimilarityOptions)
        spec = SimilarityOptions.specs()["min_success"]
        template = ComboBox(name="template", label="Template", choices=tuple(TEMPLATE_CHOICES), tooltip=tip("template"))
        template.value = next(k for k, v in TEMPLATE_CHOICES.items() if v == SIMILARITY_DEFAULTS.template)
        extra = [
            template,
            SpinBox(name="template_index", label="Template frame", value=0, min=0, max=100_000, tooltip=tip("template")),
            CheckBox(name="limit_angle", label="Angle range", text="limit the angle", value=False,
                     tooltip=tip("angle_range")),
            _range_box("angle_min", ANGLE_BOX_LIMITS, EXAMPLE_ANGLE_RANGE[0], 1.0, tip("angle_range")),
            _range_box("angle_max", ANGLE_BOX_LIMITS, EXAMPLE_ANGLE_RANGE[1], 1.0, tip("angle_range")),
            CheckBox(name="limit_scale", label="Scale range", text="limit the scale", value=False,
                     tooltip=tip("scale_range")),
            _range_box("scale_min", SCALE_LIMITS, EXAMPLE_SCALE_RANGE[0], 0.01, tip("scale_range")),
            _range_box("scale_max", SCALE_LIMITS, EXAMPLE_SCALE_RANGE[1], 0.01, tip("scale_range")),
            ComboBox(name="mode", label="Averaging", choices=tuple(AVERAGE_MODES), value=next(iter(AVERAGE_MODES)),
                     tooltip="Full field: the mean where frames cover; crop: the region every frame covers."),
            CheckBox(name="add_registered", label="Add", text="registered stack", value=True),
            CheckBox(name="add_average", label="", text="average + coverage", value=True),
        ]
        overrides = {
            "min_success": {"widget": FloatSpinBox, "value": spec.minimum, "min": spec.minimum, "max": spec.maximum,
                            "step": 0.05},
            "fallback": {"label": "Failed frames"},
        }
        form = OptionsForm(SimilarityOptions, ("min_success", "fallback"), key="similarity", overrides=overrides,
                           extra=extra)
        # the lowest value of the box stands for "unset" (automatic)
        form.min_success.native.setSpecialValueText("auto")
        for name in ("angle_min", "angle_max"):
            form[name].native.setSuffix(" °")
        for name in ("scale_min", "scale_max"):
            form[name].native.setDecimals(3)
        return form

    # -- state -------------------------------------------------------------
    def _sync_ranges(self, *_: Any) -> None:
        for name in ("angle_min", "angle_max"):
            self.form[name].enabled = bool(self.form.limit_angle.value)
        for name in ("scale_min", "scale_max"):
            self.form[name].enabled = bool(self.form.limit_scale.value)

    def _on_template_changed(self, *_: Any) -> None:
        self.form.template_index.enabled = TEMPLATE_CHOICES[self.form.template.value] is None

    def _on_layer_changed(self, *_: Any) -> None:
        layer = self.layer.value
        if layer is not None and layer.ndim == 4:
            self.channel.max = max(int(layer.data.shape[1]) - 1, 0)
            self.channel.enabled = True
            self.channel.native.setSpecialValueText("")
        else:
            self.channel.value = 0
            self.channel.max = 0
            self.channel.enabled = False
            self.channel.native.setSpecialValueText(f"{STACK_AXES} layer: no channel axis")
        n = int(layer.data.shape[0]) if layer is not None else 1
        index = self.form.template_index
        index.max = max(n - 1, 0)
        if index.value > index.max or not index.enabled:
            index.value = n // 2

    # -- the transforms panel ------------------------------------------------
    @property
    def transforms(self) -> FrameTransforms | None:
        """The last run's transforms (or the loaded table)."""
        return self.panel.transforms

    @property
    def summary(self) -> Any:
        return self.panel.summary

    def save_table(self, path: str | Path) -> Path:
        """Save the last run's per-frame table as CSV (or JSON by extension)."""
        if self.transforms is None:
            raise ValueError("there is no table yet: run first.")
        return self.panel.save_transforms(path)

    # -- parameters --------------------------------------------------------
    def options(self) -> SimilarityOptions:
        """The :class:`SimilarityOptions` chosen in the widget (ValueError for values that do not fit)."""
        f = self.form
        template = TEMPLATE_CHOICES[f.template.value]
        if template is None:
            template = int(f.template_index.value)
        auto = f.min_success.value <= f.min_success.min
        return self._options.replace(
            template=template,
            angle_range=(f.angle_min.value, f.angle_max.value) if f.limit_angle.value else None,
            scale_range=(f.scale_min.value, f.scale_max.value) if f.limit_scale.value else None,
            min_success=None if auto else f.min_success.value,
            fallback=f.fallback.value,
        )

    def parameters(self) -> dict[str, Any]:
        """The options, the channel and the averaging mode of the next run."""
        channel = int(self.channel.value) if self.channel.enabled else None
        return {**self.options().to_dict(), "channel": channel, "mode": AVERAGE_MODES[self.form.mode.value]}

    def set_options(self, options: SimilarityOptions) -> None:
        """Show ``options`` in the form (those it has no field for are kept for the next run)."""
        self._options = options
        f = self.form
        if isinstance(options.template, str):
            f.template.value = next(k for k, v in TEMPLATE_CHOICES.items() if v == options.template)
        else:
            f.template.value = next(k for k, v in TEMPLATE_CHOICES.items() if v is None)
            f.template_index.value = options.template
        f.limit_angle.value = options.angle_range is not None
        if options.angle_range is not None:
            f.angle_min.value, f.angle_max.value = options.angle_range
        f.limit_scale.value = options.scale_range is not None
        if options.scale_range is not None:
            f.scale_min.value, f.scale_max.value = options.scale_range
        f.min_success.value = f.min_success.min if options.min_success is None else options.min_success
        f.fallback.value = options.fallback
        self._sync_ranges()
        self._on_template_changed()

    # -- running -----------------------------------------------------------
    def _on_run(self) -> Any:
        try:
            layer = self.layer.value
            if layer is None:
                raise ValueError(f"add or choose a {STACK_AXES} image layer to register first.")
            data = _layer_stack(layer)
            channel = int(self.channel.value) if data.ndim == 4 else None
            if not (self.form.add_registered.value or self.form.add_average.value):
                raise ValueError("tick at least one output (registered stack or average).")
            opts = self.options()
        except ValueError as exc:
            notify_user_error(exc)
            return None
        mode = AVERAGE_MODES[self.form.mode.value]
        add_registered, add_average = bool(self.form.add_registered.value), bool(self.form.add_average.value)

        def on_result(result: dict[str, Any]) -> None:
            self._show_result([layer], result, opts, channel, mode)

        n = int(data.shape[0])
        stages = (
            Stage("similarity", 2 * n if opts.template == "mean" else n, whole_run_count=True),
            Stage("mean template", 0.1 * n),
            Stage("apply", 0.3 * n if add_registered else 0),
            Stage("average", 0.3 * n if add_average else 0),
        )
        return self.runner.start(
            similarity_task, data, [], channel=channel, options=opts, mode=mode, add_registered=add_registered,
            add_average=add_average, on_result=on_result, stages=stages,
        )

    def _apply_to(self, names: list[str]) -> Any:
        """Apply the current transforms to other layers: registered stack and average, as the outputs say."""
        try:
            layers = [self.viewer.layers[name] for name in names]
            stacks = [_layer_stack(layer) for layer in layers]
            if not (self.form.add_registered.value or self.form.add_average.value):
                raise ValueError("tick at least one output (registered stack or average).")
        except (ValueError, KeyError) as exc:
            notify_user_error(exc if isinstance(exc, ValueError) else ValueError(f"layer {exc} is gone."))
            return None
        transforms = self.transforms
        mode = AVERAGE_MODES[self.form.mode.value]
        add_registered, add_average = bool(self.form.add_registered.value), bool(self.form.add_average.value)
        params = {**self._last_params, "applied_from": self.panel.source_name, "mode": mode}

        def task(progress: Any = None) -> list:
            outputs = []
            for stack in stacks:
                registered = apply_transforms(stack, transforms, progress=progress) if add_registered else None
                average = average_frames(stack, transforms, mode=mode, progress=progress) if add_average else None
                outputs.append((registered, average))
            return outputs

        def added(outputs: list) -> None:
            if self.closed:
                return
            block = provenance("similarity", params, transforms)
            source = self.panel.source_name
            settings = [f"from {source}" if source else "from a table"]
            for layer, output in zip(layers, outputs, strict=True):
                self._add_outputs(layer, output, block, settings, mode)

        n = len(transforms) * len(stacks)
        return self.runner.start(task, on_result=added, stages=(Stage("apply", n), Stage("average", n)))

    def _show_result(
        self, layers: list[Any], result: dict[str, Any], opts: SimilarityOptions, channel: int | None, mode: str
    ) -> None:
        if self.closed:
            return
        ft: FrameTransforms = result["transforms"]
        params = {**opts.to_dict(), "channel": channel, "mode": mode, "estimated_on": layers[0].name}
        self._last_params = params
        block = provenance("similarity", params, ft)
        for layer, output in zip(layers, result["outputs"], strict=True):
            self._add_outputs(layer, output, block, _settings(opts, channel), mode)
        flagged = ft.params.get("flagged", {})
        if flagged:
            show_warning(f"{len(flagged)} frame(s) could not be registered and got the fallback transform.")
        frame_shape = tuple(int(n) for n in layers[0].data.shape[-2:])
        self.panel.set_transforms(ft, None, source=layers[0].name, frame_shape=frame_shape)
        self.results.set_recipe(similarity_recipe(layers[0], opts, channel=channel, mode=mode))

    def _add_outputs(self, layer: Any, output: tuple, block: dict, settings: list[str], mode: str) -> None:
        """Add one layer's registered stack and average + coverage (as present) in one run of results."""
        registered, average = output
        name = functools.partial(result_name, layer.name, method="similarity")
        added: list[tuple[Any, dict]] = []
        if registered is not None:
            kwargs = derived_image_kwargs(layer, "registered", block)
            kwargs["name"] = name("registered", settings=settings)
            added.append((registered, kwargs))
        if average is not None:
            averaged = [*settings, "cropped"] if mode == "crop" else settings
            added += self._average_layers(layer, average, block, name("average", settings=averaged),
                                          name("coverage", settings=averaged))
        self.results.add_layers(layer.name, added, compare_with=0 if registered is not None else None)

    @staticmethod
    def _average_layers(layer: Any, average: FrameAverage, block: dict, name: str, coverage_name: str) -> list:
        kwargs = derived_image_kwargs(layer, "average", {**block, "role": "average"}, frame_axis=False)
        kwargs["name"] = name
        r0, _, c0, _ = average.crop if average.mode == "crop" else (0, 0, 0, 0)
        scale = list(kwargs["scale"])
        translate = list(kwargs["translate"])
        translate[-2] += r0 * scale[-2]
        translate[-1] += c0 * scale[-1]
        kwargs["translate"] = tuple(translate)
        cov = derived_image_kwargs(layer, "coverage", {**block, "role": "coverage"}, frame_axis=False)
        for key in ("scale", "translate", "units", "axis_labels"):
            if key in cov:
                cov[key] = tuple(cov[key])[-2:]
        cov.update(name=coverage_name, translate=tuple(translate[-2:]), colormap="viridis", visible=False)
        return [(average.image, kwargs), (average.coverage, cov)]
