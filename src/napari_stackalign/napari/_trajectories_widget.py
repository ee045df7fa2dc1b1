"""Dock widget "Trajectories": choose particles, correct drift and rotation, validate.

Works from a particle Tracks layer (made by the Particles widget, or loaded
from a tracks CSV). It plots each particle's displacement over time (dy,
dx) and its path, flags particles that moved on their own
(:func:`~napari_stackalign.core.particles.flag_outliers`, unticked by
default), and shows the drift over the ticked particles (median or mean)
with its spread. A particle can also be *held out*: not used for the
correction, kept to check it independently.

"Correct" computes the per-frame rotation + translation from the ticked
particles (:func:`~napari_stackalign.rigid_from_tracks`), warps the image in
a worker and adds ``"<input> aligned (particles, ...)"`` with the transforms
in ``metadata["stackalign"]`` (replacing the previous result, or kept next to
it); the transforms panel saves them and applies them to other layers (other
channels). The settings form comes from the options objects
(:class:`~napari_stackalign.core.particles.RigidOptions`,
:class:`~napari_stackalign.core.particles.DriftOptions`) and remembers the
last values. "Validate" fits the particles again on that
aligned layer and plots the residual motion before and after, for used,
held-out and excluded particles, with the leave-one-out check. Plots save as
PNG, tables as CSV.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
from magicgui.widgets import Container
from napari.layers import Image, Tracks
from napari.utils.notifications import show_info, show_warning
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ..core.apply import apply_transforms
from ..core.particles import (
    DriftOptions,
    OutlierReport,
    ParticleTracks,
    ParticleValidation,
    RigidOptions,
    drift_summary,
    flag_outliers,
    plot_trajectories,
    plot_validation,
    rigid_from_tracks,
    validate_alignment,
)
from ..transforms import FrameTransforms
from ._drift_plot import DriftPlot, PlotPanel
from ._file_dialogs import open_file, save_file
from ._forms import OptionsForm, layer_picker, option_widget
from ._layers import (
    derived_image_kwargs,
    frame_stack,
    provenance,
    transforms_from_layer,
)
from ._particle_layers import (
    ALIGNED_SUFFIX,
    is_particle_tracks_layer,
    tracks_from_layer,
    tracks_layer_kwargs,
)
from ._progress import Stage
from ._results import ResultsRow, result_name
from ._runner import TaskRunner, notify_user_error
from ._scripting import trajectories_recipe
from ._scrolling import ScrollingDock
from ._transforms_panel import TransformsPanel

__all__ = ["TrajectoriesWidget"]

#: the correction options the form shows
FORM_OPTIONS = ("reference_frame", "allow_rotation", "interpolation", "min_particles")
COLUMNS = ("Particle", "Use", "Hold out", "Found", "Score (px)", "Flag")
_USE, _HOLD = 1, 2


def _correct_task(
    stack: Any, tracks: ParticleTracks, particles: list[int], options: RigidOptions, *, progress: Any = None
) -> tuple:
    """Rigid fit from the tracks, then warp; runs in the worker thread."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        transforms = rigid_from_tracks(tracks, particles=particles, options=options)
    aligned = apply_transforms(stack, transforms, progress=progress)
    return transforms, aligned, [str(w.message) for w in caught]


def _show_correction(plot: DriftPlot, raw: FrameTransforms, _smoothed: Any, source: str | None) -> None:
    title = "Sample drift (= −correction applied)" + (f"\n{source}" if source else "")
    plot.show_transforms(raw, title=title)


def _describe_correction(tf: FrameTransforms) -> str:
    return f"{len(tf)} frames; rotation up to {np.max(np.abs(tf.angle)):.3f}°, shift up to " + (
        f"{np.max(np.hypot(tf.dy, tf.dx)):.2f} px."
    )


class TrajectoriesWidget(ScrollingDock):
    """Choose trajectories, correct rotation + translation, validate."""

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.tracks: ParticleTracks | None = None
        self.outliers: OutlierReport | None = None
        self.validation: ParticleValidation | None = None
        self._filling = False
        #: the name of the last aligned layer this widget added (Validate checks it)
        self.aligned_name: str | None = None

        self._build_source()
        self._build_table()
        self._build_options()
        self._build_plots()
        self.correct_runner = TaskRunner("Correct", self._on_correct_clicked)
        self.runner = self.correct_runner
        self.validate_runner = TaskRunner("Validate", self._on_validate_clicked)
        self.result_label = QLabel("")
        self.result_label.setWordWrap(True)
        self.results = ResultsRow(napari_viewer, "trajectories")
        self.panel = TransformsPanel(
            napari_viewer, DriftPlot(), show=_show_correction, describe=_describe_correction, apply=self._apply_to,
            default_name="particle_transforms.csv",
        )
        self._magic.append(self.panel)
        self._build_layout()
        self.tracks_layer.changed.connect(self._on_tracks_changed)
        self._on_tracks_changed()

    def _build_source(self) -> None:
        """The Tracks layer, the image to correct, and loading a tracks CSV."""
        self.inputs = Container(
            widgets=[
                layer_picker(Tracks, "tracks_layer", "Tracks", "Particle tracks (Particles widget > Track).",
                             accept=is_particle_tracks_layer),
                layer_picker(Image, "layer", "Image to correct", "The (T, Y, X) stack the particles were tracked on."),
            ]
        )
        self.tracks_layer = self.inputs.tracks_layer
        self.layer = self.inputs.layer
        self.load_button = QPushButton("Load tracks CSV…")
        self.load_button.clicked.connect(self._on_load_clicked)

    def _build_table(self) -> None:
        """One row per particle: Use, Hold out, found, score, flag."""
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.table.setMinimumHeight(150)
        self.table.itemChanged.connect(self._on_item_changed)

    def _build_options(self) -> None:
        """Drift statistic and the correction's options (defaults, ranges and tooltips from the options objects)."""
        overrides = {
            "allow_rotation": {"text": "Correct rotation (needs 2+ particles)", "label": ""},
            "interpolation": {"label": "Fill failed frames"},
            "min_particles": {"label": "Min particles / frame", "max": 999},
        }
        statistic = option_widget(DriftOptions, "statistic", label="Drift statistic")
        self.form = OptionsForm(RigidOptions, FORM_OPTIONS, key="trajectories", overrides=overrides,
                                extra=[statistic])
        self.form.statistic.changed.connect(self.redraw)
        self.form.reference_frame.changed.connect(self.redraw)
        self.form.allow_rotation.changed.connect(self._on_rotation_toggled)

    def _build_plots(self) -> None:
        """The drift summary line, the Trajectories and Validation tabs, saving the table."""
        self.drift_label = QLabel("")
        self.drift_label.setWordWrap(True)
        self.trajectory_plot = PlotPanel(
            "Each particle's displacement (the sample drift it sees) appears here once tracks are chosen.",
            default_name="trajectories.png",
            height=420,
        )
        self.validation_plot = PlotPanel(
            "Press Validate after Correct: residual motion before and after, per particle.",
            default_name="validation.png",
            height=460,
        )
        self.tabs = QTabWidget()
        self.tabs.addTab(self.trajectory_plot, "Trajectories")
        self.tabs.addTab(self.validation_plot, "Validation")
        self.save_table_button = QPushButton("Save table CSV…")
        self.save_table_button.setToolTip("Trajectories tab: the drift per frame; Validation tab: the residuals per particle.")
        self.save_table_button.clicked.connect(self._on_save_table_clicked)

    def _build_layout(self) -> None:
        """Inputs, the particle table, the settings, Correct / Validate, the plots and the transforms."""
        layout = self.body_layout
        self.add_magic(self.inputs)
        layout.addWidget(self.load_button)
        layout.addWidget(self.table)
        box = QGroupBox("Settings")
        QVBoxLayout(box).setContentsMargins(4, 4, 4, 4)
        self.add_magic(self.form, box.layout())
        layout.addWidget(box)
        layout.addWidget(self.drift_label)
        layout.addWidget(self.correct_runner)
        layout.addWidget(self.results)
        layout.addWidget(self.validate_runner)
        layout.addWidget(self.result_label)
        layout.addWidget(self.tabs, 1)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.save_table_button)
        layout.addLayout(row)
        layout.addWidget(self.panel)

    @property
    def transforms(self) -> FrameTransforms | None:
        """The last correction's transforms (or a loaded table)."""
        return self.panel.transforms

    # ------------------------------------------------------------ loading
    def _on_tracks_changed(self, *_: Any) -> None:
        layer = self.tracks_layer.value
        if layer is None:
            self.set_tracks(None)
            return
        try:
            tracks = tracks_from_layer(layer)
        except ValueError as exc:
            notify_user_error(exc)
            return
        source = dict(layer.metadata).get("stackalign", {}).get("source_layer")
        for candidate in self.layer.choices:
            if source and candidate.name == source:
                self.layer.value = candidate
        self.set_tracks(tracks)

    def set_tracks(self, tracks: ParticleTracks | None) -> None:
        """Show ``tracks``: fill the table (outliers unticked) and plot."""
        self.tracks = tracks
        self.validation = None
        self.validation_plot.clear()
        if tracks is None:
            self.table.setRowCount(0)
            self.trajectory_plot.clear()
            self.drift_label.setText("Choose a particle Tracks layer (Particles widget > Track).")
            return
        self.form.reference_frame.max = tracks.n_frames - 1
        self._update_outliers()
        self._fill_table(initial=True)
        self.redraw()

    def load_tracks_csv(self, path: str | Path) -> Tracks:
        """Load a tracks CSV (e.g. from ``stackalign track --tracks``) as a Tracks layer on the chosen image."""
        image = self.layer.value
        if image is None:
            raise ValueError("choose the image the tracks were measured on first.")
        tracks = ParticleTracks.from_csv(path)
        if tuple(image.data.shape[-2:]) != tracks.shape or image.data.shape[0] != tracks.n_frames:
            raise ValueError(
                f"the tracks were measured on {tracks.n_frames} frames of {tracks.shape}, but {image.name!r} "
                f"has shape {tuple(image.data.shape)}: choose the matching image."
            )
        data, kwargs = tracks_layer_kwargs(image, tracks, {"loaded_from": str(path)})
        self.viewer.add_tracks(data, **kwargs)
        layer = self.viewer.layers[-1]
        self.reset_choices()
        for candidate in self.tracks_layer.choices:
            if candidate.name == layer.name:
                self.tracks_layer.value = candidate
        return layer

    def _on_load_clicked(self) -> None:
        path = open_file(self, "Load particle tracks", {"CSV": (".csv",)})
        if path is None:
            return
        try:
            self.load_tracks_csv(path)
        except (ValueError, OSError) as exc:
            notify_user_error(exc)

    # -------------------------------------------------------------- table
    def _update_outliers(self) -> None:
        assert self.tracks is not None
        self.outliers = flag_outliers(self.tracks, allow_rotation=bool(self.form.allow_rotation.value))

    def _fill_table(self, *, initial: bool) -> None:
        tracks = self.tracks
        assert tracks is not None and self.outliers is not None
        previous_use = self.used_particles() if not initial else None
        previous_hold = self.held_out_particles() if not initial else []
        self._filling = True
        try:
            self.table.setRowCount(tracks.n_particles)
            rate = tracks.success_rate()
            for i in range(tracks.n_particles):
                flagged = bool(self.outliers.outlier[i])
                items = [QTableWidgetItem(str(i))]
                use = QTableWidgetItem()
                use.setFlags(Qt.ItemIsUserCheckable | Qt.ItemIsEnabled)
                checked = (not flagged) if previous_use is None else (i in previous_use)
                use.setCheckState(Qt.Checked if checked else Qt.Unchecked)
                hold = QTableWidgetItem()
                hold.setFlags(Qt.ItemIsUserCheckable | Qt.ItemIsEnabled)
                hold.setCheckState(Qt.Checked if i in previous_hold else Qt.Unchecked)
                score = self.outliers.score[i]
                items += [
                    use,
                    hold,
                    QTableWidgetItem(f"{100 * rate[i]:.0f}%"),
                    QTableWidgetItem("-" if not np.isfinite(score) else f"{score:.3f}"),
                    QTableWidgetItem("moved on its own" if flagged else ""),
                ]
                for col, item in enumerate(items):
                    if col not in (_USE, _HOLD):
                        item.setFlags(Qt.ItemIsEnabled)
                    if flagged and col == 5:
                        item.setForeground(Qt.red)
                    self.table.setItem(i, col, item)
        finally:
            self._filling = False

    def _on_item_changed(self, item: QTableWidgetItem) -> None:
        if self._filling:
            return
        row, col = item.row(), item.column()
        if item.checkState() == Qt.Checked and col in (_USE, _HOLD):
            other = self.table.item(row, _HOLD if col == _USE else _USE)
            if other is not None and other.checkState() == Qt.Checked:
                self._filling = True
                other.setCheckState(Qt.Unchecked)
                self._filling = False
        self.redraw()

    def _checked(self, col: int) -> list[int]:
        out = []
        for row in range(self.table.rowCount()):
            item = self.table.item(row, col)
            if item is not None and item.checkState() == Qt.Checked:
                out.append(row)
        return out

    def used_particles(self) -> list[int]:
        """Ticked particles (used for the correction)."""
        return self._checked(_USE)

    def held_out_particles(self) -> list[int]:
        """Particles held out for validation."""
        return self._checked(_HOLD)

    def set_particle_state(self, particle: int, *, use: bool | None = None, hold_out: bool | None = None) -> None:
        """Tick or untick a particle's Use / Hold out boxes (as a click would)."""
        for col, value in ((_USE, use), (_HOLD, hold_out)):
            if value is not None:
                self.table.item(particle, col).setCheckState(Qt.Checked if value else Qt.Unchecked)

    def _on_rotation_toggled(self, *_: Any) -> None:
        if self.tracks is None:
            return
        self._update_outliers()
        self._fill_table(initial=False)
        self.redraw()

    # --------------------------------------------------------------- plots
    def redraw(self, *_: Any) -> None:
        """Redraw the trajectories and the drift summary."""
        if self.tracks is None:
            return
        used = self.used_particles()
        outliers = self.outliers.outlier if self.outliers is not None else None
        drift = self.drift_options()
        self.trajectory_plot.draw(
            lambda fig: plot_trajectories(
                self.tracks, particles=used, outliers=outliers, holdout=self.held_out_particles(), fig=fig,
                options=drift,
            )
        )
        if not used:
            self.drift_label.setText("No particle ticked: tick at least one to correct.")
            return
        summ = drift_summary(self.tracks, particles=used, options=drift)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            peak = float(np.nanmax(np.hypot(summ.drift[:, 0], summ.drift[:, 1])))
            spread = float(np.nanmax(np.hypot(summ.spread[:, 0], summ.spread[:, 1]))) if len(used) > 1 else float("nan")
        flagged = [] if self.outliers is None else np.flatnonzero(self.outliers.outlier).tolist()
        text = (
            f"Drift ({summ.statistic} of {len(used)} particle(s)): up to {peak:.2f} px"
            + (f", spread up to {spread:.2f} px" if np.isfinite(spread) else "")
            + ". "
        )
        if flagged:
            text += f"Flagged as moving on their own: {flagged} (threshold {self.outliers.threshold:.2f} px). "
        if len(used) == 1:
            text += "One particle: the correction will be translation only."
        self.drift_label.setText(text)

    def _on_save_table_clicked(self) -> None:
        validation_tab = self.tabs.currentWidget() is self.validation_plot
        name = "validation.csv" if validation_tab else "drift.csv"
        path = save_file(self, "Save table", name, {"CSV": (".csv",)})
        if path is None:
            return
        try:
            self.save_table(path, validation=validation_tab)
            show_info(f"Table saved to {path}")
        except (ValueError, OSError) as exc:
            notify_user_error(exc)

    def save_table(self, path: str | Path, *, validation: bool = False) -> Path:
        """Save the drift table (or, with ``validation``, the validation table) as CSV."""
        if validation:
            if self.validation is None:
                raise ValueError("no validation yet: press Correct, then Validate.")
            self.validation.to_csv(path)
            return Path(path)
        if self.tracks is None or not self.used_particles():
            raise ValueError("choose tracks and tick at least one particle first.")
        summ = drift_summary(self.tracks, particles=self.used_particles(), options=self.drift_options())
        summ.to_csv(path)
        return Path(path)

    # ------------------------------------------------------------ correct
    def _stack_and_image(self) -> tuple[Any, Any]:
        image = self.layer.value
        if image is None:
            raise ValueError("choose the image to correct.")
        stack = frame_stack(image)
        assert self.tracks is not None
        if stack.shape[0] != self.tracks.n_frames or tuple(stack.shape[1:]) != self.tracks.shape:
            raise ValueError(
                f"{image.name!r} has shape {tuple(stack.shape)} but the tracks cover {self.tracks.n_frames} frames "
                f"of {self.tracks.shape}: choose the image the particles were tracked on (or one of the same size)."
            )
        return stack, image

    def drift_options(self) -> DriftOptions:
        """The drift statistic and reference frame from the form."""
        return DriftOptions(statistic=self.form.statistic.value, reference_frame=int(self.form.reference_frame.value))

    def correction_options(self) -> RigidOptions:
        """The options of :func:`rigid_from_tracks` from the form (the particles are the ticked ones)."""
        return RigidOptions(**self.form.option_values())

    def parameters(self) -> dict[str, Any]:
        """The correction's options, the drift statistic, and the particles used and held out."""
        return {
            **self.correction_options().to_dict(), "statistic": self.form.statistic.value,
            "particles": self.used_particles(), "holdout": self.held_out_particles(),
        }

    def _ticked(self) -> list[int]:
        used = self.used_particles()
        if not used:
            raise ValueError("no particle ticked: tick the particles that ride on the sample.")
        return used

    def _on_correct_clicked(self) -> None:
        try:
            if self.tracks is None:
                raise ValueError("choose a particle Tracks layer first.")
            stack, image = self._stack_and_image()
            used = self._ticked()
            options = self.correction_options()
        except ValueError as exc:
            notify_user_error(exc)
            return
        holdout = self.held_out_particles()
        tracks_layer = self.tracks_layer.value
        statistic = self.form.statistic.value
        settings = ("allow_rotation", "min_particles", "reference_frame", "interpolation")
        params = {"particles": used, **{name: getattr(options, name) for name in settings}}
        words = [f"{len(used)} particles", "rotation" if options.allow_rotation and len(used) > 1 else "translation"]

        def on_result(result: tuple) -> None:
            if self.closed:
                return
            transforms, aligned, messages = result
            for message in messages:
                show_warning(message)
            block = provenance(
                "particles", dict(params, holdout=holdout, tracks_layer=tracks_layer.name), transforms
            )
            kwargs = derived_image_kwargs(image, ALIGNED_SUFFIX, block)
            kwargs["name"] = result_name(image.name, ALIGNED_SUFFIX, "particles", words)
            (added,) = self.results.add_layers(image.name, [(aligned, kwargs)])
            self.aligned_name = added.name
            self.panel.set_transforms(transforms, None, source=image.name)
            self.results.set_recipe(
                trajectories_recipe(image, tracks_layer, options, particles=used, holdout=holdout, statistic=statistic)
            )
            self.validation = None
            self.validation_plot.clear()
            self.result_label.setText(self._describe(transforms))

        self.correct_runner.start(
            _correct_task, stack, self.tracks, used, options, on_result=on_result,
            stages=(Stage("apply", int(stack.shape[0])),),
        )

    def _apply_to(self, names: list[str]) -> Any:
        """The current transforms applied to other layers (e.g. other channels), each as a new layer."""
        try:
            layers = [self.viewer.layers[name] for name in names]
            stacks = [frame_stack(layer) for layer in layers]
        except (ValueError, KeyError) as exc:
            notify_user_error(exc if isinstance(exc, ValueError) else ValueError(f"layer {exc} is gone."))
            return None
        transforms = self.transforms
        source = self.panel.source_name
        words = [f"from {source}" if source else "from a table"]

        def task(progress: Any = None) -> list:
            return [apply_transforms(stack, transforms, progress=progress) for stack in stacks]

        def added(results: list) -> None:
            if self.closed:
                return
            for layer, data in zip(layers, results, strict=True):
                block = provenance("particles", {"applied_from": source}, transforms)
                kwargs = derived_image_kwargs(layer, ALIGNED_SUFFIX, block)
                kwargs["name"] = result_name(layer.name, ALIGNED_SUFFIX, "particles", words)
                self.results.add_layers(layer.name, [(data, kwargs)])

        n = len(transforms) * len(stacks)
        return self.correct_runner.start(task, on_result=added, stages=(Stage("apply", n),))

    @staticmethod
    def _describe(tf: FrameTransforms) -> str:
        p = tf.params
        text = (
            f"Aligned with {len(p.get('particles', []))} particle(s), "
            f"{'rotation + translation' if p.get('rotation_estimated') else 'translation only'}; "
            f"rotation up to {np.max(np.abs(tf.angle)):.3f}\u00b0, shift up to {np.max(np.hypot(tf.dy, tf.dx)):.2f} px; "
            f"fit residual (RMS) up to {np.nanmax(tf.quality) if np.any(np.isfinite(tf.quality)) else float('nan'):.3f} px."
        )
        if p.get("interpolated_frames"):
            text += f" Interpolated (flagged) frames: {p['interpolated_frames']}."
        if p.get("note"):
            text += f" Note: {p['note']}."
        return text

    # ----------------------------------------------------------- validate
    def _on_validate_clicked(self) -> None:
        try:
            if self.tracks is None:
                raise ValueError("choose a particle Tracks layer first.")
            stack, image = self._stack_and_image()
            name = self.aligned_name
            layers = {layer.name: layer for layer in self.viewer.layers}
            aligned_layer = layers.get(name) if name is not None else None
            transforms = transforms_from_layer(aligned_layer) if aligned_layer is not None else None
            if transforms is None:
                raise ValueError(f"no aligned layer of {image.name!r} from this widget: press Correct first.")
        except ValueError as exc:
            notify_user_error(exc)
            return
        # the particles the correction really used (recorded on the layer);
        # the stack is re-warped with those transforms chunk by chunk with NaN
        # outside the frame, so boxes near the border are not polluted by fill
        # values of the displayed layer
        params = dict(aligned_layer.metadata["stackalign"].get("params", {}))
        used = params.get("particles", transforms.params.get("particles"))
        holdout = params.get("holdout", [])

        def on_result(validation: ParticleValidation) -> None:
            if self.closed:
                return
            self.validation = validation
            self.validation_plot.draw(lambda fig: plot_validation(validation, fig=fig))
            self.tabs.setCurrentWidget(self.validation_plot)
            self.result_label.setText(validation.summary_text())

        self.validate_runner.start(
            validate_alignment,
            stack,
            transforms,
            self.tracks,
            on_result=on_result,
            particles=used,
            holdout=holdout,
        )
