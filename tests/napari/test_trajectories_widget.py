"""The Trajectories widget in a real viewer: choose, correct (rotation), validate."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_stackalign.core.particles import (
    DRIFT_DEFAULTS,
    RIGID_DEFAULTS,
    DriftOptions,
    RigidOptions,
    track_particles,
)
from napari_stackalign.napari._layers import transforms_from_layer
from napari_stackalign.napari._particle_layers import tracks_layer_kwargs
from napari_stackalign.synthetic import alignment_error, make_stack
from napari_stackalign.transforms import FrameTransforms

T, SHAPE = 10, (120, 128)
CENTER = ((SHAPE[0] - 1) / 2, (SHAPE[1] - 1) / 2)


def _scene():
    """Beads with 1.5 degrees of rotation and 8 px of drift; one particle moves on its own."""
    motion = FrameTransforms(
        dy=np.linspace(0, 8, T), dx=np.linspace(0, -5, T), angle=np.linspace(0, 1.5, T), center=CENTER
    )
    stack, truth = make_stack("beads", n_frames=T, shape=SHAPE, motion=motion, snr=10, n_beads=24, seed=11)
    pos = np.asarray(truth.params["bead_positions"])
    mats = motion.to_matrices()
    traj = np.einsum("tij,nj->tni", mats[:, :2, :2], pos) + mats[:, None, :2, 2]
    inside = np.all((traj[..., 0] > 10) & (traj[..., 0] < SHAPE[0] - 10) & (traj[..., 1] > 10) & (traj[..., 1] < SHAPE[1] - 10), axis=0)
    dist = np.hypot(*(traj[0][:, None] - traj[0][None]).transpose(2, 0, 1))
    np.fill_diagonal(dist, 99)
    idx = np.flatnonzero(inside & (dist.min(axis=1) > 13))[:6]
    return stack, truth, traj[:, idx]


@pytest.fixture
def setup(make_napari_viewer, dock):
    viewer = make_napari_viewer()
    stack, truth, traj = _scene()
    assert traj.shape[1] >= 5
    image = viewer.add_image(stack, name="beads")
    tracks = track_particles(stack, traj[0], box=11)
    assert tracks.ok.all()
    # particle 0 "moves on its own": shift its tracked positions by up to 3 px
    tracks.x[:, 0] += np.linspace(0, 3, T)
    data, kwargs = tracks_layer_kwargs(image, tracks, {"box": 11})
    viewer.add_tracks(data, **kwargs)
    widget = dock(viewer, "Trajectories")
    return viewer, widget, truth, traj


def test_settings_start_at_the_options_defaults(make_napari_viewer, dock):
    widget = dock(make_napari_viewer(), "Trajectories")
    form = widget.form
    assert form.statistic.value == DRIFT_DEFAULTS.statistic
    assert form.reference_frame.value == RIGID_DEFAULTS.reference_frame == DRIFT_DEFAULTS.reference_frame
    assert form.allow_rotation.value is RIGID_DEFAULTS.allow_rotation
    assert form.interpolation.value == RIGID_DEFAULTS.interpolation
    assert list(form.interpolation.choices) == list(RigidOptions.specs()["interpolation"].choices)
    assert form.min_particles.value == RIGID_DEFAULTS.min_particles
    assert form.min_particles.min == RigidOptions.specs()["min_particles"].minimum
    assert form.min_particles.tooltip.lower() == RigidOptions.help("min_particles").lower()
    assert form.statistic.tooltip.lower() == DriftOptions.help("statistic").lower()
    assert widget.correction_options() == RIGID_DEFAULTS
    assert widget.drift_options() == DRIFT_DEFAULTS


def test_table_flags_the_outlier_and_plots(setup, tmp_path):
    viewer, widget, truth, traj = setup
    assert widget.tracks is not None
    n = widget.tracks.n_particles
    assert widget.table.rowCount() == n
    assert widget.outliers.outlier[0]
    assert not widget.outliers.outlier[1:].any()
    assert widget.used_particles() == list(range(1, n))
    assert widget.table.item(0, 5).text() == "moved on its own"
    assert widget.trajectory_plot.has_plot
    assert "Drift (median" in widget.drift_label.text()
    # held out and used are exclusive
    widget.set_particle_state(1, hold_out=True)
    assert 1 not in widget.used_particles() and widget.held_out_particles() == [1]
    widget.set_particle_state(1, use=True)
    assert widget.held_out_particles() == []
    path = widget.save_table(tmp_path / "drift.csv")
    text = path.read_text()
    assert "drift_dy" in text and len(text.strip().splitlines()) == T + 2
    widget.trajectory_plot.save_png(tmp_path / "traj.png")
    assert (tmp_path / "traj.png").stat().st_size > 1000


def test_correct_with_rotation_and_validate_holdout(setup, qtbot, tmp_path):
    viewer, widget, truth, traj = setup
    widget.set_particle_state(2, hold_out=True)
    assert widget.used_particles() == [i for i in range(1, widget.tracks.n_particles) if i != 2]
    assert widget.form.allow_rotation.value
    widget.correct_runner.run_button.click()
    qtbot.waitUntil(lambda: widget.correct_runner.worker is None, timeout=60000)  # finished (no race)
    n_used = widget.tracks.n_particles - 2
    layer = viewer.layers[f"beads aligned (particles, {n_used} particles, rotation)"]
    assert layer.data.shape == (T, *SHAPE)
    tf = transforms_from_layer(layer)
    assert tf is not None and tf.params["rotation_estimated"]
    err = alignment_error(tf, truth)
    assert err["rms"] < 0.1
    assert err["angle_max"] < 0.03
    assert layer.metadata["stackalign"]["params"]["holdout"] == [2]
    assert "rotation + translation" in widget.result_label.text()

    widget.validate_runner.run_button.click()
    qtbot.waitUntil(lambda: widget.validate_runner.worker is None, timeout=60000)  # finished (no race)
    v = widget.validation
    assert v is not None
    assert v.role[0] == "excluded" and v.role[2] == "held out" and v.role[1] == "used"
    assert v.summary["held out"]["rms_after"] < 0.1 < v.summary["held out"]["rms_before"]
    assert v.summary["used"]["rms_after"] < 0.1
    assert widget.validation_plot.has_plot
    assert widget.tabs.currentWidget() is widget.validation_plot
    assert "held out (1)" in widget.result_label.text()
    path = widget.save_table(tmp_path / "validation.csv", validation=True)
    assert "rms_after" in path.read_text()

    # the copied Python gives the widget's transforms
    tracks_csv = tmp_path / "TRACKS.csv"
    widget.tracks.to_csv(tracks_csv)
    image_path = tmp_path / "beads.tif"
    tifffile.imwrite(image_path, viewer.layers["beads"].data)
    python = widget.results.copy("python")
    assert "TRACKS.csv" in python and "INPUT.tif" in python
    scope: dict = {}
    exec(python.replace("INPUT.tif", str(image_path)).replace("TRACKS.csv", str(tracks_csv)), scope)  # noqa: S102
    assert scope["transforms"].allclose(tf, atol=1e-9)
    command = widget.results.recipe.command
    assert f"--particles {','.join(map(str, widget.used_particles()))}" in command and "--holdout 2" in command


def test_one_particle_is_translation_only(setup, qtbot):
    viewer, widget, truth, traj = setup
    for i in range(widget.tracks.n_particles):
        widget.set_particle_state(i, use=(i == 3))
    assert widget.used_particles() == [3]
    assert "translation only" in widget.drift_label.text()
    widget.correct_runner.run_button.click()
    qtbot.waitUntil(lambda: widget.correct_runner.worker is None, timeout=60000)  # finished (no race)
    tf = transforms_from_layer(viewer.layers["beads aligned (particles, 1 particles, translation)"])
    assert not tf.params["rotation_estimated"]
    assert np.all(tf.angle == 0)
    assert "one particle" in tf.params["note"]
    assert "Note: one particle" in widget.result_label.text()


def test_validate_before_correct_says_what_to_do(setup):
    viewer, widget, truth, traj = setup
    widget.validate_runner.run_button.click()
    assert widget.validate_runner.worker is None
    assert widget.validation is None
