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
a worker and adds ``"<input> aligned"`` with the transforms in
``metadata["stackalign"]``. "Validate" fits the particles again on that
aligned layer and plots the residual motion before and after, for used,
held-out and excluded particles, with the leave-one-out check. Plots save as
PNG, tables as CSV.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
from napari.layers import Image, Tracks
from napari.utils.notifications import show_info, show_warning
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ..core.apply import apply_transforms
from ..core.particles import (
    RIGID_DEFAULTS,
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
from ._drift_plot import PlotPanel
from ._layer_choice import LayerChoice
from ._layers import (
    derived_image_kwargs,
    frame_stack,
    provenance,
    transforms_from_layer,
)
from ._particle_forms import set_choice, set_flag, set_number
from ._particle_layers import (
    ALIGNED_SUFFIX,
    is_particle_tracks_layer,
    tracks_from_layer,
    tracks_layer_kwargs,
)
from ._runner import TaskRunner, notify_user_error

__all__ = ["TrajectoriesWidget"]

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


class TrajectoriesWidget(QWidget):
    """Choose trajectories, correct rotation + translation, validate."""

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.tracks: ParticleTracks | None = None
        self.outliers: OutlierReport | None = None
        self.transforms: FrameTransforms | None = None
        self.validation: ParticleValidation | None = None
        self._filling = False

        source = self._build_source()
        self._build_table()
        options = self._build_options()
        self._build_plots()
        self.correct_runner = TaskRunner("Correct", self._on_correct_clicked)
        self.validate_runner = TaskRunner("Validate", self._on_validate_clicked)
        self.result_label = QLabel("")
        self.result_label.setWordWrap(True)
        self._build_layout(source, options)
        self.tracks_choice.currentIndexChanged.connect(self._on_tracks_changed)
        self._on_tracks_changed()

    def _build_source(self) -> QFormLayout:
        """The Tracks layer, the image to correct, and loading a tracks CSV."""
        self.tracks_choice = LayerChoice(self.viewer, Tracks, accept=is_particle_tracks_layer)
        self.image_choice = LayerChoice(self.viewer, Image)
        self.load_button = QPushButton("Load tracks CSV…")
        self.load_button.clicked.connect(self._on_load_clicked)
        source = QFormLayout()
        source.addRow("Tracks", self.tracks_choice)
        source.addRow("Image to correct", self.image_choice)
        source.addRow(self.load_button)
        return source

    def _build_table(self) -> None:
        """One row per particle: Use, Hold out, found, score, flag."""
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.table.setMinimumHeight(150)
        self.table.itemChanged.connect(self._on_item_changed)

    def _build_options(self) -> QFormLayout:
        """Drift statistic and the correction's options (defaults, ranges and tooltips from the options objects)."""
        self.statistic = QComboBox()
        set_choice(self.statistic, DriftOptions, "statistic")
        self.reference_frame = QSpinBox()
        # the last frame is known once tracks are chosen (set_tracks)
        set_number(self.reference_frame, RigidOptions, "reference_frame", maximum=RIGID_DEFAULTS.reference_frame)
        self.rotation = QCheckBox("Correct rotation (needs 2+ particles)")
        set_flag(self.rotation, RigidOptions, "allow_rotation")
        self.interpolation = QComboBox()
        set_choice(self.interpolation, RigidOptions, "interpolation")
        self.min_particles = QSpinBox()
        set_number(self.min_particles, RigidOptions, "min_particles", maximum=999)
        options = QFormLayout()
        options.addRow("Drift statistic", self.statistic)
        options.addRow("Reference frame", self.reference_frame)
        options.addRow(self.rotation)
        options.addRow("Fill failed frames", self.interpolation)
        options.addRow("Min particles / frame", self.min_particles)
        self.statistic.currentIndexChanged.connect(self.redraw)
        self.reference_frame.valueChanged.connect(self.redraw)
        self.rotation.toggled.connect(self._on_rotation_toggled)
        return options

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

    def _build_layout(self, source: QFormLayout, options: QFormLayout) -> None:
        """Everything in a scroll area: the plots need room, screens differ."""
        content = QWidget()
        self.setMinimumWidth(500)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        scroll.setFrameShape(QFrame.NoFrame)
        scroll.setWidget(content)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)
        layout = QVBoxLayout(content)
        layout.addLayout(source)
        layout.addWidget(self.table)
        layout.addLayout(options)
        layout.addWidget(self.drift_label)
        layout.addWidget(self.tabs, 1)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.save_table_button)
        layout.addLayout(row)
        layout.addWidget(self.correct_runner)
        layout.addWidget(self.validate_runner)
        layout.addWidget(self.result_label)

    # ------------------------------------------------------------ loading
    def _on_tracks_changed(self, *_: Any) -> None:
        layer = self.tracks_choice.value
        if layer is None:
            self.set_tracks(None)
            return
        try:
            tracks = tracks_from_layer(layer)
        except ValueError as exc:
            notify_user_error(exc)
            return
        source = dict(layer.metadata).get("stackalign", {}).get("source_layer")
        if source and source in self.viewer.layers:
            try:
                self.image_choice.value = source
            except ValueError:
                pass
        self.set_tracks(tracks)

    def set_tracks(self, tracks: ParticleTracks | None) -> None:
        """Show ``tracks``: fill the table (outliers unticked) and plot."""
        self.tracks = tracks
        self.transforms = None
        self.validation = None
        self.validation_plot.clear()
        if tracks is None:
            self.table.setRowCount(0)
            self.trajectory_plot.clear()
            self.drift_label.setText("Choose a particle Tracks layer (Particles widget > Track).")
            return
        self.reference_frame.setRange(0, tracks.n_frames - 1)
        self._update_outliers()
        self._fill_table(initial=True)
        self.redraw()

    def load_tracks_csv(self, path: str | Path) -> Tracks:
        """Load a tracks CSV (e.g. from ``stackalign track --tracks``) as a Tracks layer on the chosen image."""
        image = self.image_choice.value
        if image is None:
            raise ValueError("choose the image the tracks were measured on first.")
        tracks = ParticleTracks.from_csv(path)
        if tuple(image.data.shape[-2:]) != tracks.shape or image.data.shape[0] != tracks.n_frames:
            raise ValueError(
                f"the tracks were measured on {tracks.n_frames} frames of {tracks.shape}, but {image.name!r} "
                f"has shape {tuple(image.data.shape)}: choose the matching image."
            )
        data, kwargs = tracks_layer_kwargs(image, tracks, {"loaded_from": str(path)})
        layer = self.viewer.add_tracks(data, **kwargs)
        self.tracks_choice.value = layer
        return layer

    def _on_load_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load particle tracks", "", "CSV (*.csv)")
        if not path:
            return
        try:
            self.load_tracks_csv(path)
        except (ValueError, OSError) as exc:
            notify_user_error(exc)

    # -------------------------------------------------------------- table
    def _update_outliers(self) -> None:
        assert self.tracks is not None
        self.outliers = flag_outliers(self.tracks, allow_rotation=self.rotation.isChecked())

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
        path, _ = QFileDialog.getSaveFileName(self, "Save table", name, "CSV (*.csv)")
        if not path:
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
        image = self.image_choice.value
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
        return DriftOptions(statistic=self.statistic.currentText(), reference_frame=int(self.reference_frame.value()))

    def correction_options(self) -> RigidOptions:
        """The options of :func:`rigid_from_tracks` from the form (the particles are the ticked ones)."""
        return RigidOptions(
            allow_rotation=self.rotation.isChecked(),
            min_particles=int(self.min_particles.value()),
            reference_frame=int(self.reference_frame.value()),
            interpolation=self.interpolation.currentText(),
        )

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
        tracks_name = self.tracks_choice.currentText()
        settings = ("allow_rotation", "min_particles", "reference_frame", "interpolation")
        params = {"particles": used, **{name: getattr(options, name) for name in settings}}

        def on_result(result: tuple) -> None:
            transforms, aligned, messages = result
            for message in messages:
                show_warning(message)
            block = provenance("particles", dict(params, holdout=holdout, tracks_layer=tracks_name), transforms)
            kwargs = derived_image_kwargs(image, ALIGNED_SUFFIX, block)
            name = kwargs["name"]
            if name in self.viewer.layers and transforms_from_layer(self.viewer.layers[name]) is not None:
                self.viewer.layers.remove(name)  # our own earlier result
            self.viewer.add_image(aligned, **kwargs)
            self.transforms = transforms
            self.validation = None
            self.validation_plot.clear()
            self.result_label.setText(self._describe(transforms))

        self.correct_runner.start(_correct_task, stack, self.tracks, used, options, on_result=on_result)

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
            name = f"{image.name} {ALIGNED_SUFFIX}"
            aligned_layer = self.viewer.layers[name] if name in self.viewer.layers else None  # noqa: SIM401 - LayerList has no get
            transforms = transforms_from_layer(aligned_layer) if aligned_layer is not None else None
            if transforms is None:
                raise ValueError(f"no {name!r} layer from this widget: press Correct first.")
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
