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

A (T, Z, Y, X) layer (volumes over time, see :mod:`._volume_run` for how a
4-D layer is told from channels) is registered in 3-D: one (dz, dy, dx) per
volume, the new layer keeps the Z scale, the drift plot and the table show
dz. The options that do not apply to volumes (piecewise, mask, the chained
and frame-range references) are disabled or refused with a message.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, LineEdit
from napari.layers import Image, Labels, Shapes
from napari.utils.notifications import show_info
from qtpy.QtWidgets import QGroupBox, QLabel, QVBoxLayout, QWidget

from ..core.apply import apply_transforms
from ..core.checks import check_stack
from ..core.piecewise import PiecewiseOptions, register_piecewise
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
from ._forms import OptionsForm, layer_picker, tooltip
from ._layers import derived_image_kwargs, frame_stack, provenance
from ._piecewise_layers import field_vectors_layer, motion_map_layer
from ._progress import Stage
from ._results import ResultsRow, result_name
from ._runner import TaskRunner, notify_user_error
from ._scripting import layer_source, pyramid_recipe
from ._scrolling import ScrollingDock
from ._transforms_panel import TransformsPanel, describe_drift
from ._volume_run import (
    is_volume_transforms,
    layer_volume_axes,
    register_volume_task,
    volume_option_problems,
    volume_stack,
)

__all__ = ["PyramidWidget"]

MASK_MODES = ("ignored", "the only ones compared")
#: upper ends of the spin boxes (the options set no maximum)
SPIN_MAXIMA = {"num_frames": 10_000_000, "iterate": 20, "window_length": 100_001, "polyorder": 20}
#: the smallest smoothing window offered (a window of one frame does not smooth)
MIN_WINDOW = 3
#: the options the form shows, in order
FORM_OPTIONS = ("num_frames", "downsample_rates", "max_movement", "iterate", "normalize", "smooth", "window_length",
                "polyorder")
#: what each frame is registered to: the options of the "Reference" box, in order
REFERENCE_OPTIONS = ("reference_mode", "reference_frames", "running_frames", "keyframe_every")
#: the estimation options a registered layer records (the smoothing ones only when smoothing is on)
RECORDED_OPTIONS = ("num_frames", "downsample_rates", "max_movement", "iterate", "normalize", *REFERENCE_OPTIONS)
#: the piecewise-rigid options the form shows
PIECEWISE_OPTIONS = ("patch_size", "patch_overlap", "max_deviation")
#: per reference mode, the fields that apply to it (the others are disabled)
MODE_FIELDS = {
    "template": ("num_frames", "iterate"),
    "frames": ("reference_frames", "iterate"),
    "previous": ("keyframe_every",),
    "running": ("running_frames",),
    "image": ("iterate",),
}


def parse_frame_range(text: str) -> tuple[int, int] | None:
    """``"10:30"`` (frames 10 to 29) as ``(10, 30)``; blank: None.

    Raises
    ------
    ValueError
        When the text is not two whole numbers START:STOP.
    """
    text = str(text).strip()
    if not text:
        return None
    parts = text.split(":")
    try:
        start, stop = (int(v) for v in parts)
    except ValueError:
        raise ValueError(
            f"reference frames {text!r}: write START:STOP, e.g. 10:30 for frames 10 to 29."
        ) from None
    return start, stop


def format_frame_range(frames: tuple[int, int] | None) -> str:
    """``(10, 30)`` as ``"10:30"``; None as ``""``."""
    return "" if frames is None else f"{int(frames[0])}:{int(frames[1])}"


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


def _big_output_suffix(source: str | None) -> str:
    """The big-file path's output format: OME-Zarr for an OME-Zarr input (a chunked folder in, a chunked
    folder out), else HDF5."""
    return ".ome.zarr" if source is not None and str(source).rstrip("/\\").lower().endswith(".zarr") else ".h5"


def _is_lazy(data: Any) -> bool:
    """A dask array: the layer reads its file on demand (napari-stackalign's
    reader does so for files larger than a quarter of the memory)."""
    return type(data).__module__.startswith("dask.")


def _source_path(layer: Any) -> str | None:
    """The file a layer was read from, if any."""
    return layer_source(layer)


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


def _piecewise_task(
    stack: Any, options: PyramidOptions, piecewise: PiecewiseOptions, *, progress: Any = None
) -> tuple[Any, Any]:
    """The rigid step, each patch's residual shift, and one resampling per frame; runs in the worker thread."""
    result = register_piecewise(stack, rigid_options=options, options=piecewise, progress=progress)
    return result, apply_transforms(np.asarray(stack), result, progress=progress)


# ---------------------------------------------------------------- widget
def _form_overrides() -> dict[str, dict[str, Any]]:
    """What the form's boxes need beyond the options' own range: caps, steps, the rates as text."""
    rates_tip = tooltip(PyramidOptions, "downsample_rates") + " Separate them with commas, e.g. 1/4, 1/2, 1."
    overrides: dict[str, dict[str, Any]] = {
        "num_frames": {"label": "Template frames"},
        "downsample_rates": {
            "widget": LineEdit, "value": format_downsample_rates(PyramidOptions.default("downsample_rates")),
            "tooltip": rates_tip, "label": "Downsample rates",
        },
        "max_movement": {"step": 0.05},
        "iterate": {"label": "Iterations"},
        "normalize": {"text": "Normalise intensity", "label": ""},
        "smooth": {"text": "Smooth the drift", "label": ""},
        "window_length": {"label": "Smoothing window", "min": MIN_WINDOW, "step": 2},
        "polyorder": {"label": "Smoothing order"},
    }
    for name, top in SPIN_MAXIMA.items():
        overrides[name]["max"] = top
    return overrides


def _reference_overrides() -> dict[str, dict[str, Any]]:
    """The "Reference" box: the frame range typed as START:STOP."""
    return {
        "reference_mode": {"label": "Register each frame to"},
        "reference_frames": {
            "widget": LineEdit, "value": "", "label": "Reference frames",
            "tooltip": tooltip(PyramidOptions, "reference_frames") + " Written START:STOP, e.g. 10:30.",
        },
        "running_frames": {"label": "Running template frames", "max": 10_000},
        "keyframe_every": {"label": "Keyframe every", "max": 10_000},
    }


def _settings(options: PyramidOptions, shapes: Any, labels: Any) -> list[str]:
    """The key settings a result's name shows."""
    words = []
    if options.reference_mode == "frames" and options.reference_frames is not None:
        words.append(f"reference frames {options.reference_frames[0]}-{options.reference_frames[1] - 1}")
    elif options.reference_mode != "template":
        words.append(f"reference {options.reference_mode}")
    if options.smooth:
        words.append(f"smoothed {options.window_length}/{options.polyorder}")
    if options.iterate > 1:
        words.append(f"{options.iterate} passes")
    if shapes is not None:
        words.append(f"ROI {shapes.name}")
    if labels is not None:
        words.append(f"mask {labels.name}")
    return words


def _stages(n_frames: int, options: PyramidOptions) -> tuple[Stage, ...]:
    """The run's stages with their share of the work (template frames, passes, frames, resampling)."""
    apply = Stage("apply", 0.3 * n_frames if options.smooth else 0.05 * n_frames)
    mode = options.reference_mode
    if mode in ("previous", "running"):  # chained: one pass over the frames
        return (Stage("estimate", n_frames), apply)
    if mode == "frames" and options.reference_frames is not None:
        n_template = options.reference_frames[1] - options.reference_frames[0]
    else:
        n_template = 0 if mode == "image" else options.num_frames
    n_template = min(n_template, n_frames)
    stages = [Stage("reference", n_template)] if n_template else []
    if options.iterate > 1:
        stages.append(Stage("template", max(n_template, n_frames) * (options.iterate - 1)))
    stages += [Stage("estimate", n_frames), apply]
    return tuple(stages)


def _volume_stages(n_frames: int, options: PyramidOptions) -> tuple[Stage, ...]:
    """A volume run's stages: the template (seed pass and full pass), each pass over the volumes, resampling."""
    n_template = 0 if options.reference_mode == "image" else min(options.num_frames, n_frames)
    stages = [Stage("reference", min(24, n_template) + n_template)] if n_template else []
    return (*stages, Stage("estimate", n_frames * options.iterate), Stage("apply", 0.5 * n_frames))


def _show_drift(plot: DriftPlot, raw: FrameTransforms, smoothed: FrameTransforms | None, source: str | None) -> None:
    title = "Sample drift (= −correction applied)"
    if source:
        title = f"{title}\n{source}"
    plot.show_transforms(raw, smoothed, title=title)


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
        self._last_params: dict = {}

        self.inputs = self.add_magic(self._build_inputs())
        self.layer = self.inputs.layer
        self.roi_layer = self.inputs.roi_layer
        self.mask_layer = self.inputs.mask_layer
        self.mask_mode = self.inputs.mask_mode
        #: what a volume layer means for the form (shown only for (T, Z, Y, X) layers)
        self.volume_note = QLabel()
        self.volume_note.setWordWrap(True)
        self.volume_note.setVisible(False)
        self.body_layout.addWidget(self.volume_note)
        box = QGroupBox("Parameters")
        QVBoxLayout(box).setContentsMargins(4, 4, 4, 4)
        self.form = self.add_magic(OptionsForm(PyramidOptions, FORM_OPTIONS, key="pyramid", overrides=_form_overrides()),
                                   box.layout())
        self.body_layout.addWidget(box)
        ref_box = QGroupBox("Reference")
        QVBoxLayout(ref_box).setContentsMargins(4, 4, 4, 4)
        self.reference_form = self.add_magic(
            OptionsForm(PyramidOptions, REFERENCE_OPTIONS, key="pyramid-reference", overrides=_reference_overrides()),
            ref_box.layout(),
        )
        self.reference_layer = self.add_magic(
            Container(widgets=[layer_picker(
                Image, "reference_layer", "Reference image",
                "Reference 'image': a 2-D image layer the size of a frame (e.g. an average) every frame is "
                "registered to.",
                nullable=True,
            )]),
            ref_box.layout(),
        ).reference_layer
        self.body_layout.addWidget(ref_box)
        pw_box = QGroupBox("Piecewise-rigid")
        pw_box.setToolTip("For motion that one shift per frame cannot describe (brain tissue, warping samples).")
        QVBoxLayout(pw_box).setContentsMargins(4, 4, 4, 4)
        switch = CheckBox(
            name="piecewise", value=False, text="Correct patch by patch", label="",
            tooltip="After the rigid step, register overlapping patches and warp each frame by the smooth field "
            "(register_piecewise). Adds the residual field as arrows and a map of where it moved.",
        )
        self.piecewise_form = self.add_magic(
            OptionsForm(PiecewiseOptions, PIECEWISE_OPTIONS, key="pyramid-piecewise", extra=[switch]),
            pw_box.layout(),
        )
        self.body_layout.addWidget(pw_box)
        self.piecewise_form.piecewise.changed.connect(self._on_piecewise_toggled)
        self._on_piecewise_toggled(self.piecewise_form.piecewise.value)
        self.form.smooth.changed.connect(self._on_smooth_toggled)
        self._on_smooth_toggled(self.form.smooth.value)
        self.reference_form.reference_mode.changed.connect(self._on_reference_mode)
        self._on_reference_mode(self.reference_form.reference_mode.value)
        self.layer.changed.connect(self._on_layer_changed)
        self._on_layer_changed(self.layer.value)
        self.runner = TaskRunner("Register", self.run)
        self.body_layout.addWidget(self.runner)
        self.results = ResultsRow(napari_viewer, "pyramid")
        self.body_layout.addWidget(self.results)
        self.panel = TransformsPanel(
            napari_viewer, DriftPlot(), show=_show_drift, describe=describe_drift, apply=self._apply_to,
        )
        self._magic.append(self.panel)
        self.body_layout.addWidget(self.panel, 1)

    def _build_inputs(self) -> Container:
        """The image layer, and the ROI (a Shapes layer) and mask (a Labels layer) that limit the comparison."""
        mode = ComboBox(
            value=MASK_MODES[0], choices=MASK_MODES, name="mask_mode", label="Labelled pixels are",
            tooltip="Ignored: paint over a burned-in label. The only ones compared: paint the region to follow.",
        )
        return Container(
            widgets=[
                layer_picker(
                    Image, "layer", "Image layer",
                    "A (T, Y, X) time series, or (T, Z, Y, X) volumes over time (registered in 3-D: dz, dy, dx).",
                ),
                layer_picker(
                    Shapes, "roi_layer", "ROI (Shapes)",
                    "Compare only inside a rectangle drawn in this Shapes layer (selected shape, else the first); "
                    "empty: the whole frame.",
                    nullable=True,
                ),
                layer_picker(
                    Labels, "mask_layer", "Mask (Labels)",
                    "Paint a static label or a bright static object in a Labels layer to keep it out; empty: none.",
                    nullable=True,
                ),
                mode,
            ]
        )

    # ------------------------------------------------- the transforms panel
    @property
    def transforms(self) -> FrameTransforms | None:
        """The transforms of the last run (smoothed when smoothing was on) or the loaded table."""
        return self.panel.transforms

    @property
    def raw_transforms(self) -> FrameTransforms | None:
        """The unsmoothed estimate of the last run."""
        return self.panel.raw_transforms

    @property
    def source_name(self) -> str | None:
        return self.panel.source_name

    @property
    def drift_plot(self) -> DriftPlot:
        return self.panel.plot

    @property
    def summary(self) -> Any:
        return self.panel.summary

    def save_transforms(self, path: str | Path) -> Path:
        """Save the current transforms as ``.csv`` or ``.json`` (ValueError when there are none)."""
        return self.panel.save_transforms(path)

    def load_transforms(self, path: str | Path) -> FrameTransforms:
        """Load a ``.csv`` or ``.json`` table; it becomes the current transforms."""
        transforms = self.panel.load_transforms(path)
        self._last_params = {"table": str(Path(path).resolve())}
        return transforms

    def set_checked(self, names: list[str]) -> None:
        """Select exactly these layers in the "apply to" list."""
        self.panel.set_checked(names)

    def checked_layer_names(self) -> list[str]:
        return self.panel.checked_layer_names()

    def apply_to_checked(self) -> Any:
        """Apply the current transforms to every selected layer (in a worker); returns the worker."""
        return self.panel.apply_to_checked()

    # -------------------------------------------------------- parameters
    def _on_piecewise_toggled(self, checked: bool) -> None:
        for name in PIECEWISE_OPTIONS:
            getattr(self.piecewise_form, name).enabled = bool(checked) and self.piecewise_form.piecewise.enabled

    def _volume_axes(self) -> str | None:
        """"TZYX" when the chosen layer holds volumes over time, None for a time series (or a layer that
        cannot be told: the run says why)."""
        layer = self.layer.value
        if layer is None:
            return None
        try:
            return layer_volume_axes(layer)
        except ValueError:
            return None

    def _on_layer_changed(self, *_: Any) -> None:
        """For a (T, Z, Y, X) layer: disable what volumes do not take, and say so."""
        volume = self._volume_axes() == "TZYX"
        self.piecewise_form.piecewise.enabled = not volume
        if volume:
            self.piecewise_form.piecewise.value = False
        self._on_piecewise_toggled(self.piecewise_form.piecewise.value)
        self.mask_layer.enabled = not volume
        self.mask_mode.enabled = not volume
        if volume:
            self.mask_layer.value = None
            shape = tuple(int(n) for n in self.layer.value.data.shape)
            self.volume_note.setText(
                f"Volumes over time {shape[0]} x {shape[1]} x {shape[2]} x {shape[3]} (T, Z, Y, X): registered in "
                "3-D, one (dz, dy, dx) per volume. Reference: 'template' or 'image' (a (Z, Y, X) layer); no mask "
                "(use an ROI) and no piecewise."
            )
        self.volume_note.setVisible(volume)

    def _on_reference_mode(self, mode: str) -> None:
        """Enable the fields that apply to the chosen reference (the others are not used)."""
        used = MODE_FIELDS.get(mode, ())
        for name in ("num_frames", "iterate"):
            getattr(self.form, name).enabled = name in used
        for name in REFERENCE_OPTIONS[1:]:
            getattr(self.reference_form, name).enabled = name in used
        self.reference_layer.enabled = mode == "image"

    def _reference_values(self, volume_shape: tuple[int, ...] | None = None) -> dict[str, Any]:
        """The reference options set in the "Reference" box (the image from its layer).

        Raises
        ------
        ValueError
            For a frame range that cannot be read, or mode 'image' without a 2-D image layer.
        """
        values = self.reference_form.option_values({"reference_frames": parse_frame_range})
        mode = values["reference_mode"]
        if mode != "frames":
            values["reference_frames"] = None
        if mode == "frames" and values["reference_frames"] is None:
            raise ValueError("reference 'frames': type the frames whose registered mean is the template, e.g. 10:30.")
        if mode == "image":
            layer = self.reference_layer.value
            if layer is None:
                raise ValueError(
                    "reference 'image': choose the reference image layer (a 2-D image the size of a frame, "
                    "e.g. an average of the stack)."
                )
            image = np.asarray(layer.data)
            if volume_shape is not None:
                if tuple(image.shape) != tuple(volume_shape):
                    raise ValueError(
                        f"reference 'image': layer {layer.name!r} has shape {tuple(image.shape)}; volumes need one "
                        f"(Z, Y, X) volume of shape {tuple(volume_shape)} (e.g. an average of registered volumes)."
                    )
            elif image.ndim != 2:
                raise ValueError(
                    f"reference 'image': layer {layer.name!r} has {image.ndim} dimensions; choose a 2-D image "
                    "(e.g. an average of the stack)."
                )
            values["reference"] = image
        return values

    def _on_smooth_toggled(self, checked: bool) -> None:
        self.form.window_length.enabled = bool(checked)
        self.form.polyorder.enabled = bool(checked)

    def options(self, volume_shape: tuple[int, ...] | None = None) -> PyramidOptions:
        """The pyramid options set in the form (the region compared is added by :meth:`run`).

        Raises
        ------
        ValueError
            If the rates cannot be read or the values do not fit together
            (the options' message).
        """
        values = self.form.option_values({"downsample_rates": parse_downsample_rates})
        if not values["smooth"]:  # the smoothing fields are disabled (and not used) otherwise
            del values["window_length"], values["polyorder"]
        values.update(self._reference_values(volume_shape))
        if values["reference_mode"] in ("previous", "running"):  # a chain has no template to refine
            values["iterate"] = 1
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
            layer = self.layer.value
            if layer is not None and layer_volume_axes(layer) == "TZYX":
                return self._run_volume(*self._prepare_volume())
            layer, stack, options, record = self._prepare()
        except ValueError as exc:
            notify_user_error(exc)
            return None
        shapes, labels = self.roi_layer.value, self.mask_layer.value
        on_result = functools.partial(
            self._on_registered, layer, record, options, _settings(options, shapes, labels),
            labels.name if labels is not None else None,
        )
        stages = _stages(int(stack.shape[0]), options)
        if self.piecewise_form.piecewise.value:
            return self._run_piecewise(layer, stack, options, record, settings=_settings(options, shapes, labels))
        if _is_lazy(stack):
            # a big, lazily opened stack: register file to file and open the result lazily
            source = _source_path(layer)
            output = suggest_output_path(source, layer.name, suffix=_big_output_suffix(source))
            record["output"] = str(output)
            show_info(f"Registering {layer.name!r} to disk: {output}")
            return self.runner.start(
                _register_to_disk_task, stack, output, options, on_result=on_result, stages=stages
            )
        return self.runner.start(_register_task, stack, options, on_result=on_result, stages=stages)

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
        mode = self.mask_mode.value
        mask = mask_from_labels(labels, frame_shape, mode) if labels is not None else None
        options = options.replace(roi=roi, mask=mask)
        return layer, stack, options, _record(options, shapes, labels, mode)

    def _prepare_volume(self) -> tuple[Any, Any, PyramidOptions, dict]:
        """As :meth:`_prepare`, for a (T, Z, Y, X) layer (ValueError naming what to change)."""
        layer = self.layer.value
        stack = volume_stack(layer)
        n_frames, volume_shape = int(stack.shape[0]), tuple(int(n) for n in stack.shape[1:])
        if n_frames < 2:
            raise ValueError(f"layer {layer.name!r} has {n_frames} volume: registration needs at least 2.")
        problem = volume_option_problems(
            piecewise=bool(self.piecewise_form.piecewise.value), mask_layer=self.mask_layer.value
        )
        if problem is not None:
            raise ValueError(problem)
        options = self.options(volume_shape)
        if options.smooth:
            check_savgol(n_frames, options.window_length, options.polyorder)
        shapes = self.roi_layer.value
        options = options.replace(roi=roi_from_shape(shapes, layer) if shapes is not None else None)
        record = _record(options, shapes, None, self.mask_mode.value)
        record.update(axes="TZYX", volume_shape=list(volume_shape))
        return layer, stack, options, record

    def _run_volume(self, layer: Any, stack: Any, options: PyramidOptions, record: dict) -> Any:
        """Start a 3-D run of a (T, Z, Y, X) layer: estimate, smooth, apply in the worker."""
        settings = ["3-D", *_settings(options, self.roi_layer.value, None)]
        on_result = functools.partial(self._on_registered, layer, record, options, settings, None, axes="TZYX")
        stages = _volume_stages(int(stack.shape[0]), options)
        return self.runner.start(register_volume_task, stack, options, on_result=on_result, stages=stages)

    def _run_piecewise(self, layer: Any, stack: Any, options: PyramidOptions, record: dict, *, settings: list) -> Any:
        """Start a piecewise-rigid run (stacks in memory; the rigid step is not smoothed)."""
        try:
            if _is_lazy(stack):
                raise ValueError(
                    "piecewise-rigid registration works on stacks that fit in memory: uncheck 'Correct patch by "
                    "patch', or crop or shorten the stack."
                )
            piecewise = PiecewiseOptions(**self.piecewise_form.option_values())
        except ValueError as exc:
            notify_user_error(exc)
            return None
        options = options.replace(smooth=False)
        record = dict(record, smooth=False, piecewise=piecewise.to_dict())
        record.pop("window_length", None)
        record.pop("polyorder", None)
        words = [w for w in settings if not w.startswith("smoothed")]
        words.append(f"piecewise {piecewise.patch_size}/{piecewise.patch_overlap}")
        recipe = pyramid_recipe(layer, options, mask_layer=getattr(self.mask_layer.value, "name", None), piecewise=piecewise)
        on_result = functools.partial(self._on_piecewise, layer, record, words, recipe)
        n = int(stack.shape[0])
        stages = (*_stages(n, options)[:-1], Stage("patches", 2 * n), Stage("apply", 0.3 * n))
        return self.runner.start(_piecewise_task, stack, options, piecewise, on_result=on_result, stages=stages)

    def _on_piecewise(self, layer: Any, params: dict, settings: list[str], recipe: Any, result: tuple) -> None:
        if self.closed:
            return
        field, registered = result
        rms = field.residual_rms()
        params = dict(params, residual_rms_px=[round(float(v), 4) for v in rms])
        block = provenance("pyramid", params, field.rigid)
        kwargs = derived_image_kwargs(layer, "registered", block)
        kwargs["name"] = result_name(layer.name, "registered", "pyramid", settings)
        kwargs["contrast_limits"] = tuple(layer.contrast_limits)
        vectors, vkw, _ = field_vectors_layer(field, kwargs["name"])
        motion, mkw, _ = motion_map_layer(field, kwargs["name"])
        for extra in (vkw, mkw):
            extra["scale"] = tuple(kwargs["scale"])[-2:] if extra is mkw else tuple(kwargs["scale"])
            extra["translate"] = tuple(kwargs["translate"])[-2:] if extra is mkw else tuple(kwargs["translate"])
        self.results.add_layers(
            layer.name, [(registered, kwargs), (vectors, vkw, "vectors"), (motion, mkw)]
        )
        self.panel.set_transforms(field, None, source=layer.name)
        self.results.set_recipe(recipe)
        self._last_params = params

    def _on_registered(
        self, layer: Any, params: dict, options: PyramidOptions, settings: list[str], mask_name: str | None,
        result: tuple, *, axes: str | None = None,
    ) -> None:
        if self.closed:
            return
        raw, final, registered = result
        smoothed = params.get("smooth", False)
        extra = {"raw_transforms": raw.to_dict()} if smoothed else {}
        block = provenance("pyramid", params, final, **extra)
        kwargs = derived_image_kwargs(layer, "registered", block)
        kwargs["name"] = result_name(layer.name, "registered", "pyramid", settings)
        kwargs["contrast_limits"] = tuple(layer.contrast_limits)
        self.results.add_layers(layer.name, [(registered, kwargs)])
        self.panel.set_transforms(raw, final if smoothed else None, source=layer.name)
        self.results.set_recipe(pyramid_recipe(layer, options, mask_layer=mask_name, axes=axes))
        self._last_params = params

    # ------------------------------------------------ apply to others
    def _apply_to(self, names: list[str]) -> Any:
        try:
            layers = [self.viewer.layers[name] for name in names]
            to_stack = volume_stack if is_volume_transforms(self.transforms) else frame_stack
            stacks = [to_stack(layer) for layer in layers]
        except (ValueError, KeyError) as exc:
            notify_user_error(exc if isinstance(exc, ValueError) else ValueError(f"layer {exc} is gone."))
            return None
        transforms = self.transforms
        source = self.source_name
        params = dict(self._last_params, applied_from=source)
        settings = [f"from {source}"] if source else ["from a table"]

        def added(results: list) -> None:
            if self.closed:
                return
            for layer, data in zip(layers, results, strict=True):
                kwargs = derived_image_kwargs(layer, "registered", provenance("pyramid", params, transforms))
                kwargs["name"] = result_name(layer.name, "registered", "pyramid", settings)
                kwargs["contrast_limits"] = tuple(layer.contrast_limits)
                self.results.add_layers(layer.name, [(data, kwargs)])

        n = len(transforms) * len(stacks)
        return self.runner.start(_apply_task, stacks, transforms, on_result=added, stages=(Stage("apply", n),))
