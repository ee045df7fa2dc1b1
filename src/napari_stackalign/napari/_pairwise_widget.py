"""Dock widget "Pairwise averaging": all-pairs Fourier-masked registration.

Design the Fourier mask with a live preview (frame i's spectrum with the mask,
the masked correlation of frames i and j), run the all-pairs registration in
a worker, inspect the X / Y shift matrices with their outliers, change the
outlier settings and see the result at once (nothing is correlated again),
and add ``"<input> average (pairwise, <mask>)"`` (cropped, crop and parameters
in its metadata) and optionally ``"<input> registered (pairwise, <mask>)"``,
replacing or keeping the previous run's (the results row, which also offers
Compare with input and the run as a ``stackalign average`` command and as
Python). The engine is
:func:`napari_stackalign.core.pairwise._register.register_pairwise`.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from magicgui.widgets import ComboBox, Container, FloatSpinBox, LineEdit
from napari.layers import Image
from napari.qt.threading import create_worker
from napari.utils.notifications import show_info, show_warning
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..core.pairwise import (
    MASK_KINDS,
    PAIRWISE_DEFAULTS,
    MaskPreview,
    PairwiseOptions,
    PairwiseResult,
    mask_preview,
    register_pairwise,
    save_pairwise_report,
    save_pairwise_tiff,
)
from ..parsing import parse_index_list
from ._forms import OptionsForm, layer_picker
from ._layers import derived_image_kwargs, frame_stack, provenance
from ._pairwise_panels import MatrixCanvas, PreviewCanvas
from ._results import ResultsRow, result_name
from ._runner import TaskRunner, notify_user_error
from ._scripting import pairwise_recipe
from ._scrolling import ScrollingDock

__all__ = ["OUTLIER_METHODS", "PairwiseWidget", "mask_setting", "outlier_method", "parse_frame_list"]

#: outlier checks offered: label -> (transitivity on, smoothness on)
OUTLIER_METHODS = {
    "transitivity": (True, False),
    "nearest neighbour": (False, True),
    "both": (True, True),
    "none": (False, False),
}

#: frames larger than this (padded pixels) are previewed in a worker
_SYNC_PREVIEW_PIXELS = 1024 * 1024

#: decimals of the number boxes (their lowest value above an exclusive minimum of 0)
_DECIMALS = 2
#: the largest mask size (n, n2) the form offers (px; the options set no upper limit)
_SIZE_MAX = 1000.0
#: the elliptical mask's angle ranges over +/- this (degrees; any angle is valid)
_ANGLE_LIMIT = 180.0
#: the smoothness threshold offered when its check is turned on (the option's default is off)
_MAX_SHIFT_START = 2.0


def outlier_method(threshold: float | None, max_shift: float | None) -> str:
    """The :data:`OUTLIER_METHODS` label of the checks that are on."""
    on = (threshold is not None, max_shift is not None)
    return next(label for label, checks in OUTLIER_METHODS.items() if checks == on)


def mask_setting(options: PairwiseOptions) -> str:
    """The mask in a result's name: ``"auto mask"``, ``"hann mask n=2"``, ``"elliptical mask n=6/2 at 60°"``."""
    kind = options.mask if isinstance(options.mask, str) else "user"
    if kind in ("auto", "user"):
        return f"{kind} mask"
    if kind == "none":
        return "no mask"
    if kind == "elliptical":
        n2 = options.n if options.n2 is None else options.n2
        return f"elliptical mask n={options.n:g}/{n2:g} at {options.theta:g}°"
    return f"{kind} mask n={options.n:g}"


def parse_frame_list(text: str, n_frames: int | None = None) -> list[int]:
    """Frame indices from text like ``"3, 7, 12"`` (empty: none)."""
    return parse_index_list(text, what="bad frames", example="3, 7", count=n_frames)


def same_average(old: PairwiseResult, new: PairwiseResult) -> bool:
    """Whether ``new`` (re-evaluated from ``old``) would average to the same image:
    the same frames, shifted by the same corrections."""
    return bool(
        np.array_equal(old.frame_ok, new.frame_ok)
        and np.array_equal(old.transforms.dy, new.transforms.dy)
        and np.array_equal(old.transforms.dx, new.transforms.dx)
    )


def keep_average(old: PairwiseResult, new: PairwiseResult) -> PairwiseResult:
    """``new`` with ``old``'s average (and registered stack) when :func:`same_average`, else ``new``."""
    if old.average is None or not same_average(old, new):
        return new
    params = {**new.params, "average": old.params.get("average", new.params.get("average"))}
    warnings = list(dict.fromkeys([*new.warnings, *old.warnings]))
    return replace(
        new,
        average=old.average,
        average_full=old.average_full,
        crop=old.crop,
        registered=old.registered,
        params=params,
        warnings=warnings,
    )


def _average_task(result: PairwiseResult, stack: Any, registered: bool, *, progress: Any = None) -> PairwiseResult:
    return result.with_average(stack, registered=registered, progress=progress)


def _is_stack(layer: Any) -> bool:
    return getattr(layer, "ndim", 0) == 3 and not getattr(layer, "rgb", False)


class PairwiseWidget(ScrollingDock):
    """All-pairs Fourier-masked registration and averaging of an image layer.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer.
    """

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        #: the current result (re-evaluated when the outlier settings change)
        self.result: PairwiseResult | None = None
        self.source_layer: Any = None
        #: the options of the last run (its mask names the results)
        self.run_options: PairwiseOptions | None = None
        self.average_layer: Any = None
        self.registered_layer: Any = None
        self.last_preview_ms: float = float("nan")
        self._preview_worker: Any = None
        self._preview_timer = QTimer(self)
        self._preview_timer.setSingleShot(True)
        self._preview_timer.setInterval(120)
        self._preview_timer.timeout.connect(self.update_preview)

        self.inputs = self.add_magic(Container(widgets=[layer_picker(
            Image, "layer", "Image layer", "A (T, Y, X) time series, e.g. a low-dose STEM stack (volumes over time: use the Pyramid widget).",
            accept=_is_stack,
        )]))
        self.layer = self.inputs.layer
        self.runner = TaskRunner("Register and average", self.run)
        layout = self.body_layout
        layout.addWidget(self._mask_box())
        layout.addWidget(self._peaks_box())
        layout.addWidget(self._outlier_box())
        layout.addWidget(self._average_box())
        layout.addWidget(self.runner)
        layout.addWidget(self._results_box())
        self.results = ResultsRow(napari_viewer, "pairwise")
        self.results.compare_button.setToolTip(
            "Open Compare on the input and the registered stack (tick 'Also add the registered stack')."
        )
        layout.addWidget(self.results)
        layout.addStretch(1)
        self._connect()
        self._on_mask_kind(self.mask_kind.value)
        self._on_outlier_method(self.outlier_method.value, reevaluate=False)
        self._on_layer_changed()

    # ------------------------------------------------------------ sections
    def _section(self, title: str, form: OptionsForm) -> QGroupBox:
        """A titled box holding a magicgui form (its layer choices kept current by the dock)."""
        box = QGroupBox(title)
        QVBoxLayout(box).setContentsMargins(4, 4, 4, 4)
        self.add_magic(form, box.layout())
        return box

    def _mask_box(self) -> QGroupBox:
        """Mask design (a form from :class:`PairwiseOptions`), with the live preview of a pair."""
        overrides = {
            "mask": {"widget": ComboBox, "choices": [k for k in MASK_KINDS if k != "user"], "label": "Mask"},
            "n": {"step": 0.5, "max": _SIZE_MAX, "label": "n (px)"},
            "n2": {"widget": FloatSpinBox, "value": PAIRWISE_DEFAULTS.n2 or PAIRWISE_DEFAULTS.n,
                   "min": PairwiseOptions.specs()["n2"].minimum, "max": _SIZE_MAX, "step": 0.5, "label": "n2 (px)"},
            "theta": {"step": 5.0, "min": -_ANGLE_LIMIT, "max": _ANGLE_LIMIT, "label": "theta (°)"},
        }
        self.mask_form = OptionsForm(PairwiseOptions, ("mask", "n", "n2", "theta"), key="pairwise-mask",
                                     overrides=overrides)
        form = self.mask_form
        self.mask_kind, self.n, self.n2, self.theta = form.mask, form.n, form.n2, form.theta
        # the pair previewed is part of the live preview, not a setting: plain Qt, not remembered
        self.frame_i = QSpinBox()
        self.frame_j = QSpinBox()
        self.frame_i.setToolTip("Frame whose spectrum is shown, and first frame of the previewed pair.")
        self.frame_j.setToolTip("Second frame of the previewed pair.")
        pair_row = QHBoxLayout()
        pair_row.addWidget(QLabel("Preview pair: i"))
        pair_row.addWidget(self.frame_i)
        pair_row.addWidget(QLabel("j"))
        pair_row.addWidget(self.frame_j)
        self.preview = PreviewCanvas()
        self.preview_status = QLabel("")
        self.preview_status.setWordWrap(True)
        box = self._section("Fourier mask (live preview)", form)
        box.layout().addLayout(pair_row)
        box.layout().addWidget(self.preview.canvas)
        box.layout().addWidget(self.preview_status)
        return box

    def _peaks_box(self) -> QGroupBox:
        overrides = {
            "correlation": {"label": "Correlation"},
            "maxima": {"label": "Peak finding"},
            "sigma_guess": {"step": 0.5, "label": "Sigma guess (px)"},
            "window_radius": {"label": "Fit window radius"},
            "upsample": {"label": "Upsampling"},
        }
        names = ("correlation", "maxima", "num_peaks", "sigma_guess", "window_radius", "upsample")
        self.peaks_form = OptionsForm(PairwiseOptions, names, key="pairwise-peaks", overrides=overrides)
        for name in names:
            setattr(self, name, self.peaks_form[name])
        return self._section("Correlation and peaks", self.peaks_form)

    def _outlier_box(self) -> QGroupBox:
        """The outlier settings (re-evaluated at once)."""
        method = ComboBox(
            name="outlier_method", label="Method", choices=list(OUTLIER_METHODS),
            value=outlier_method(PAIRWISE_DEFAULTS.threshold, PAIRWISE_DEFAULTS.max_shift),
            tooltip="How inconsistent pairs are found; changes apply at once.",
        )
        spec = PairwiseOptions.specs()["max_shift"]
        overrides = {
            "threshold": {"widget": FloatSpinBox, "value": PAIRWISE_DEFAULTS.threshold or _MAX_SHIFT_START,
                          "min": PairwiseOptions.specs()["threshold"].minimum + 0.05,
                          "max": PairwiseOptions.specs()["threshold"].maximum, "step": 0.25, "label": "Threshold (px)"},
            "maxpaths": {"label": "Max paths"},
            # the smoothness check is off by default (None): the box starts at a useful value for when it is on
            "max_shift": {"widget": FloatSpinBox, "value": PAIRWISE_DEFAULTS.max_shift or _MAX_SHIFT_START,
                          "min": spec.minimum + 0.05, "max": spec.maximum, "step": 0.25, "label": "Max shift (px)"},
            "bad_frames": {"widget": LineEdit, "value": ", ".join(str(i) for i in PAIRWISE_DEFAULTS.bad_frames),
                           "label": "Bad frames"},
        }
        names = ("threshold", "maxpaths", "max_shift", "bad_frames", "weights")
        self.outlier_form = OptionsForm(PairwiseOptions, names, key="pairwise-outliers", overrides=overrides,
                                        extra=[method])
        form = self.outlier_form
        form.remove(method)
        form.insert(0, method)
        form.bad_frames.native.setPlaceholderText("e.g. 3, 7")
        self.outlier_method = method
        for name in names:
            setattr(self, name, form[name])
        return self._section("Outliers (applied at once, no recomputation)", form)

    def _average_box(self) -> QGroupBox:
        overrides = {
            "average": {"label": "Shift frames by"},
            "registered": {"label": "", "text": "Also add the registered stack"},
        }
        self.average_form = OptionsForm(PairwiseOptions, ("average", "registered"), key="pairwise-average",
                                        overrides=overrides)
        self.average_method, self.add_registered = self.average_form.average, self.average_form.registered
        return self._section("Average", self.average_form)

    def _results_box(self) -> QGroupBox:
        """The shift matrices, the summary and the save buttons."""
        self.matrices = MatrixCanvas()
        self.summary = QLabel("No result yet: design the mask, then run.")
        self.summary.setWordWrap(True)
        self.update_button = QPushButton("Update average")
        self.update_button.setToolTip("Recompute the average with the current outliers and bad frames.")
        self.update_button.setEnabled(False)
        self.update_button.clicked.connect(self.update_average)
        self.report_button = QPushButton("Save report…")
        self.report_button.setEnabled(False)
        self.report_button.clicked.connect(self._on_save_report)
        self.tiff_button = QPushButton("Save TIFF…")
        self.tiff_button.setToolTip("The average as float32 TIFF with matrices, shifts and parameters as JSON.")
        self.tiff_button.setEnabled(False)
        self.tiff_button.clicked.connect(self._on_save_tiff)
        buttons = QHBoxLayout()
        buttons.addWidget(self.update_button)
        buttons.addWidget(self.report_button)
        buttons.addWidget(self.tiff_button)
        box = QGroupBox("Shift matrices")
        rlay = QVBoxLayout(box)
        rlay.addWidget(self.summary)
        rlay.addWidget(self.matrices.canvas)
        rlay.addLayout(buttons)
        return box

    def _connect(self) -> None:
        """Live preview and outlier re-evaluation triggers."""
        self.mask_kind.changed.connect(self._on_mask_kind)
        for w in (self.n, self.n2, self.theta, self.correlation):
            w.changed.connect(self.schedule_preview)
        for w in (self.frame_i, self.frame_j):
            w.valueChanged.connect(self.schedule_preview)
        self.layer.changed.connect(self._on_layer_changed)
        self.outlier_method.changed.connect(self._on_outlier_method)
        for w in (self.threshold, self.max_shift, self.maxpaths, self.weights):
            w.changed.connect(self.reevaluate)
        # a typed list is applied when typing ends (Enter, or leaving the field), not at every key
        self.bad_frames.native.editingFinished.connect(self.reevaluate)

    # ------------------------------------------------------------ state
    def _on_mask_kind(self, kind: str) -> None:
        elliptical = kind == "elliptical"
        self.n2.enabled = elliptical
        self.theta.enabled = elliptical
        self.n.enabled = kind not in ("none", "auto")  # the auto mask takes its band from the spectrum
        self.schedule_preview()

    def _on_outlier_method(self, method: str, reevaluate: bool = True) -> None:
        trans, nn = OUTLIER_METHODS[method]
        self.threshold.enabled = trans
        self.maxpaths.enabled = trans
        self.max_shift.enabled = nn
        if reevaluate:
            self.reevaluate()

    def _on_layer_changed(self, *args: Any) -> None:
        layer = self.layer.value
        n = int(layer.data.shape[0]) if layer is not None and _is_stack(layer) else 1
        for box, value in ((self.frame_i, 0), (self.frame_j, min(1, n - 1))):
            box.blockSignals(True)
            box.setRange(0, max(n - 1, 0))
            box.setValue(value)
            box.blockSignals(False)
        self.schedule_preview()

    # ----------------------------------------------------------- parameters
    def mask_parameters(self) -> dict:
        """The mask settings (as keyword arguments of the engine)."""
        kind = self.mask_kind.value
        elliptical = kind == "elliptical"
        return {
            "mask": kind,
            "n": float(self.n.value),
            "n2": float(self.n2.value) if elliptical else PAIRWISE_DEFAULTS.n2,
            "theta": float(self.theta.value) if elliptical else PAIRWISE_DEFAULTS.theta,
            "correlation": self.correlation.value,
        }

    def outlier_parameters(self, n_frames: int | None = None) -> dict:
        """The outlier settings (threshold / max_shift None when their check is off)."""
        trans, nn = OUTLIER_METHODS[self.outlier_method.value]
        return {
            "threshold": float(self.threshold.value) if trans else None,
            "maxpaths": int(self.maxpaths.value),
            "max_shift": float(self.max_shift.value) if nn else None,
            "bad_frames": parse_frame_list(self.bad_frames.value, n_frames),
            "weights": self.weights.value,
        }

    def parameters(self, n_frames: int | None = None) -> dict[str, Any]:
        """Every option set in the form, as :class:`PairwiseOptions` keywords (``ValueError`` for a bad value)."""
        return self.options(n_frames).to_dict()

    def options(self, n_frames: int | None = None) -> PairwiseOptions:
        """Every option set in the form (``ValueError`` for a bad value)."""
        return PairwiseOptions(
            **self.mask_parameters(),
            maxima=self.maxima.value,
            num_peaks=int(self.num_peaks.value),
            sigma_guess=float(self.sigma_guess.value),
            window_radius=int(self.window_radius.value),
            upsample=int(self.upsample.value),
            **self.outlier_parameters(n_frames),
            average=self.average_method.value,
            registered=bool(self.add_registered.value),
        )

    # --------------------------------------------------------------- preview
    def schedule_preview(self, *args: Any) -> None:
        """Update the preview shortly (coalesces quick successive changes)."""
        self._preview_timer.start()

    def _preview_inputs(self) -> tuple[np.ndarray, np.ndarray, int, int] | None:
        layer = self.layer.value
        if layer is None or not _is_stack(layer):
            return None
        data = frame_stack(layer)
        n = int(data.shape[0])
        i = min(int(self.frame_i.value()), n - 1)
        j = min(int(self.frame_j.value()), n - 1)
        return np.asarray(data[i]), np.asarray(data[j]), i, j

    def update_preview(self) -> MaskPreview | None:
        """Recompute the preview now (in the GUI thread for frames up to
        1024 x 1024 px, otherwise in a worker). Returns the preview when
        computed synchronously."""
        self._preview_timer.stop()
        try:
            inputs = self._preview_inputs()
            if inputs is None:
                self.preview_status.setText("Choose a (T, Y, X) image layer to preview the mask.")
                return None
            fi, fj, i, j = inputs
            opts = PairwiseOptions(**self.mask_parameters())
        except ValueError as exc:
            self.preview_status.setText(str(exc))
            return None
        if fi.shape[0] * fi.shape[1] > _SYNC_PREVIEW_PIXELS:
            if self._preview_worker is not None:
                self.schedule_preview()
                return None
            worker = create_worker(mask_preview, fi, fj, options=opts, _start_thread=False, _ignore_errors=True)
            self._preview_worker = worker
            worker.returned.connect(lambda p: self._show_preview(p, i, j, float("nan")))
            worker.errored.connect(lambda exc: self.preview_status.setText(f"Preview failed: {exc}"))
            worker.finished.connect(self._preview_done)
            self.preview_status.setText("Computing the preview…")
            worker.start()
            return None
        start = time.perf_counter()
        try:
            prev = mask_preview(fi, fj, options=opts)
        except ValueError as exc:
            self.preview_status.setText(f"Preview: {exc}")
            return None
        ms = (time.perf_counter() - start) * 1e3
        self._show_preview(prev, i, j, ms)
        return prev

    def _preview_done(self) -> None:
        self._preview_worker = None

    def _show_preview(self, prev: MaskPreview, i: int, j: int, ms: float) -> None:
        self.last_preview_ms = ms
        self.preview.show(prev, i, j)
        timing = f" ({ms:.0f} ms)" if np.isfinite(ms) else ""
        self.preview_status.setText(
            f"Brightest correlation pixel: shift of frame {j} relative to frame {i} = "
            f"({prev.peak[0]:+.0f}, {prev.peak[1]:+.0f}) px{timing}."
        )

    # -------------------------------------------------------------- running
    def run(self) -> Any:
        """Register the chosen layer in a worker; returns the worker (None on a user error)."""
        try:
            layer = self.layer.value
            if layer is None:
                raise ValueError("add or choose an image layer (a (T, Y, X) time series) to register.")
            stack = frame_stack(layer)
            options = self.options(int(stack.shape[0]))
        except ValueError as exc:
            notify_user_error(exc)
            return None
        return self.runner.start(
            register_pairwise, stack, options=options,
            on_result=lambda result: self._on_result(layer, options, result),
        )

    def _on_result(self, layer: Any, options: PairwiseOptions, result: PairwiseResult) -> None:
        self.result = result
        self.source_layer = layer
        self.run_options = options
        self.average_layer = None
        self.registered_layer = None
        self.results.set_recipe(pairwise_recipe(layer, options))
        self._add_layers(result)
        self._show_result()

    def _block(self, result: PairwiseResult) -> dict:
        extra = {
            "crop": list(result.crop) if result.crop is not None else None,
            "frames_averaged": [int(i) for i in np.flatnonzero(result.frame_ok)],
            "outlier_pairs": [[int(i), int(j)] for i, j in zip(*np.nonzero(np.triu(result.outliers, 1)))],
            "warnings": list(result.warnings),
        }
        return provenance("pairwise", result.params, result.transforms, **extra)

    def _add_layers(self, result: PairwiseResult) -> None:
        """Add the average (and the registered stack), replacing or keeping the previous run's as the row says."""
        layer = self.source_layer
        if layer is None or result.average is None:
            return
        block = self._block(result)
        settings = [mask_setting(self.run_options)] if self.run_options is not None else []
        kwargs = derived_image_kwargs(layer, "average", {**block, "role": "average"}, frame_axis=False)
        kwargs["name"] = result_name(layer.name, "average", "pairwise", settings)
        r0, _, c0, _ = result.crop
        scale = np.asarray(kwargs["scale"], dtype=float)
        translate = np.asarray(kwargs["translate"], dtype=float)
        kwargs["translate"] = tuple(translate + scale * np.array([r0, c0], dtype=float))
        layers = [(result.average, kwargs)]
        if result.registered is not None:
            rkw = derived_image_kwargs(layer, "registered", block)
            rkw["name"] = result_name(layer.name, "registered", "pairwise", settings)
            layers.append((result.registered, rkw))
        added = self.results.add_layers(layer.name, layers, compare_with=1 if len(layers) > 1 else None)
        self.average_layer = added[0]
        self.registered_layer = added[1] if len(added) > 1 else None

    def _show_result(self) -> None:
        result = self.result
        if result is None:
            return
        self.matrices.show(result)
        text = result.summary()
        stale = result.average is None
        if stale:
            text += (
                ". The frames averaged or their shifts changed: press Update average to recompute the average "
                "(saving waits for it)."
            )
        if result.warnings:
            text += "\n" + "\n".join(result.warnings)
        self.summary.setText(text)
        self.update_button.setEnabled(stale)
        waiting = "Press Update average first: the average does not match the current outliers." if stale else ""
        self.report_button.setEnabled(not stale)
        self.report_button.setToolTip(waiting or "The matrices, the shifts and the average as a PDF or PNG report.")
        self.tiff_button.setEnabled(not stale)
        self.tiff_button.setToolTip(
            waiting or "The average as float32 TIFF with matrices, shifts and parameters as JSON."
        )

    # --------------------------------------------------------- re-evaluation
    def reevaluate(self, *args: Any) -> PairwiseResult | None:
        """Apply the current outlier settings to the stored correlations (instant)."""
        if self.result is None:
            return None
        try:
            params = self.outlier_parameters(self.result.n_frames)
            self.result = keep_average(self.result, self.result.reevaluate(**params))
        except ValueError as exc:
            notify_user_error(exc)
            return None
        self._show_result()
        return self.result

    def update_average(self) -> Any:
        """Recompute the average for the re-evaluated result in a worker; returns the worker."""
        if self.result is None or self.source_layer is None:
            show_warning("Run the registration first.")
            return None
        if self.source_layer.name not in {lay.name for lay in self.viewer.layers}:
            notify_user_error(ValueError(f"the input layer {self.source_layer.name!r} was removed: run again."))
            return None
        stack = frame_stack(self.source_layer)

        def done(result: PairwiseResult) -> None:
            self.result = result
            self._add_layers(result)
            self._show_result()

        return self.runner.start(
            _average_task, self.result, stack, bool(self.add_registered.value), on_result=done
        )

    # --------------------------------------------------------------- saving
    def save_report(self, path: str | Path) -> Path:
        """Write the report (.pdf or .png) of the current result."""
        if self.result is None:
            raise ValueError("nothing to report yet: run the registration first.")
        if self.result.average is None:
            raise ValueError("the average does not match the current outliers: press Update average, then save.")
        return save_pairwise_report(path, self.result)

    def save_tiff(self, path: str | Path) -> Path:
        """Write the average as TIFF with the full JSON record."""
        if self.result is None:
            raise ValueError("nothing to save yet: run the registration first.")
        if self.result.average is None:
            raise ValueError("the average does not match the current outliers: press Update average, then save.")
        return save_pairwise_tiff(path, self.result)

    def _on_save_report(self) -> None:
        name, _ = QFileDialog.getSaveFileName(self, "Save report", "pairwise_report.pdf", "PDF (*.pdf);;PNG (*.png)")
        if not name:
            return
        try:
            path = self.save_report(name)
        except (ValueError, OSError) as exc:
            notify_user_error(exc)
            return
        show_info(f"Report written to {path}.")

    def _on_save_tiff(self) -> None:
        name, _ = QFileDialog.getSaveFileName(self, "Save average", "average.tif", "TIFF (*.tif *.tiff)")
        if not name:
            return
        try:
            path = self.save_tiff(name)
        except (ValueError, OSError) as exc:
            notify_user_error(exc)
            return
        show_info(f"Average written to {path}.")
