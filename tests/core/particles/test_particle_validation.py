"""Trajectory selection (drift, spread, outliers) and validation numbers."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from napari_stackalign import synthetic as particle_scenes
from napari_stackalign.core.apply import apply_transforms
from napari_stackalign.core.particles import (
    drift_summary,
    flag_outliers,
    plot_trajectories,
    plot_validation,
    rigid_from_tracks,
    track_particles,
    validate_alignment,
)
from napari_stackalign.core.particles._trajectories import displacements
from napari_stackalign.core.particles._validation import residual_motion
from napari_stackalign.transforms import FrameTransforms

SHAPE = (160, 170)
T = 12


@pytest.fixture(scope="module")
def scene():
    motion = FrameTransforms(
        dy=np.linspace(0, 9, T), dx=np.linspace(0, -7, T), angle=np.linspace(0, 1.0, T),
        center=((SHAPE[0] - 1) / 2, (SHAPE[1] - 1) / 2),
    )
    stack, truth, traj = particle_scenes.bead_scene(motion, SHAPE, snr=8, n_beads=40, seed=21, margin=12)
    assert traj.shape[1] >= 6
    traj = traj[:, :6]
    tracks = track_particles(stack, traj[0], box=11)
    assert tracks.ok.all()
    return stack, truth, traj, tracks


def test_displacements_and_drift(scene):
    _, _, traj, tracks = scene
    disp = displacements(tracks)
    true_disp = traj - traj[0]
    assert np.abs(disp - true_disp).max() < 0.2
    med = drift_summary(tracks)
    mean = drift_summary(tracks, statistic="mean", particles=[0, 1, 2])
    np.testing.assert_allclose(med.drift, np.median(true_disp, axis=1), atol=0.15)
    np.testing.assert_allclose(mean.drift, true_disp[:, :3].mean(axis=1), atol=0.15)
    # the spread across particles is the rotation's spread plus fit noise
    np.testing.assert_allclose(mean.spread, true_disp[:, :3].std(axis=1), atol=0.15)
    assert med.n_used.tolist() == [6] * T
    text = med.to_csv()
    assert text.splitlines()[1] == "frame,drift_dy,drift_dx,spread_dy,spread_dx,n_used"
    with pytest.raises(ValueError, match="statistic"):
        drift_summary(tracks, statistic="mode")


def test_particle_missing_in_reference_frame_shares_the_origin(scene):
    _, _, traj, tracks = scene
    t2 = tracks.select(range(tracks.n_particles))
    t2.ok[0, 1] = False
    disp = displacements(t2)
    assert np.abs(disp[1:, 1] - (traj[1:, 1] - traj[0, 1])).max() < 0.3


def test_outliers_flag_the_particle_that_moved_on_its_own(scene):
    _, _, _, tracks = scene
    clean = flag_outliers(tracks)
    assert not clean.outlier.any()
    assert np.nanmax(clean.score) < 0.2
    moved = tracks.select(range(tracks.n_particles))
    moved.y[:, 4] += np.linspace(0, 2.0, T)  # 2 px of its own
    report = flag_outliers(moved)
    assert report.outlier.tolist() == [False, False, False, False, True, False]
    assert report.score[4] > 0.5 and report.threshold >= 0.5
    # rotation alone is not "moving on its own" ... unless rotation is ignored
    flat = flag_outliers(tracks, allow_rotation=False, min_px=0.3)
    assert np.nanmax(flat.score) > np.nanmax(clean.score)
    few = flag_outliers(tracks, particles=[0, 1])
    assert np.isnan(few.score).all() and not few.outlier.any()


def test_validation_numbers_before_after_holdout_and_loo(scene):
    stack, truth, traj, tracks = scene
    used, held = [0, 1, 2, 3], [4]
    est = rigid_from_tracks(tracks, particles=used)
    v = validate_alignment(stack, est, tracks, holdout=held)
    assert v.role == ["used"] * 4 + ["held out", "excluded"]
    true_before = residual_motion(traj)
    expected = np.sqrt(np.mean(np.sum(true_before**2, axis=2), axis=0))
    np.testing.assert_allclose(v.rms_before, expected, atol=0.1)
    assert np.all(v.rms_after < 0.12)
    assert np.all(v.reduction_pct > 95)
    assert v.summary["held out"]["rms_after"] < 0.12
    assert 0 < v.summary["used"]["rms_loo"] < 0.15
    assert np.isfinite(v.rms_loo[:4]).all() and np.isnan(v.rms_loo[4:]).all()
    assert v.frames_after.tolist() == [T] * 6
    text = v.to_csv()
    assert "# used: n_particles=4" in text and "# held out: n_particles=1" in text
    assert "held out (1): RMS" in v.summary_text()
    # the Cramér-Rao bound of the used particles, in the text and the CSV header
    assert v.bound is not None and v.bound.particles == used
    assert 0 < v.bound.rotation_rms < 0.1 and 0 < v.bound.translation_rms < 0.1
    assert "precision bound" in v.summary_text() and "rotation" in v.summary_text()
    assert "# bound: rotation_bound_deg=" in text
    # validating against the wrong transforms shows it (not circular)
    wrong = FrameTransforms.from_shifts(est.shifts, center=est.center)
    bad = validate_alignment(stack, wrong, tracks, holdout=held, particles=used)
    assert bad.summary["held out"]["rms_after"] > 3 * v.summary["held out"]["rms_after"]


def test_validation_with_a_given_aligned_stack_and_progress(scene):
    stack, _, _, tracks = scene
    est = rigid_from_tracks(tracks)
    aligned = apply_transforms(stack, est, border="nan", output_dtype=np.float32)
    stages = set()
    v = validate_alignment(stack, est, tracks, aligned=aligned, progress=lambda d, t, s: stages.add(s))
    assert stages == {"validate"}
    assert np.all(v.rms_after < 0.12)


def test_validation_refuses_circular_or_mismatched_input(scene):
    stack, _, _, tracks = scene
    est = rigid_from_tracks(tracks, particles=[0, 1, 2])
    with pytest.raises(ValueError, match="both used for the correction and held out"):
        validate_alignment(stack, est, tracks, holdout=[2])
    with pytest.raises(ValueError, match="same stack"):
        validate_alignment(stack[:5], est, tracks)
    with pytest.raises(ValueError, match="aligned has shape"):
        validate_alignment(stack, est, tracks, aligned=stack[:3])
    with pytest.raises(ValueError, match="particle indices"):
        validate_alignment(stack, est, tracks, holdout=[99])


def test_plots_draw_and_save(scene, tmp_path):
    stack, _, _, tracks = scene
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = rigid_from_tracks(tracks, particles=[0, 1, 2, 3])
    v = validate_alignment(stack, est, tracks, holdout=[4])
    fig = plot_trajectories(tracks, particles=[0, 1, 2, 3], outliers=[False] * 5 + [True], holdout=[4])
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "4 (held out)" in labels and "5 (outlier) (excluded)" in labels and "drift (median)" in labels
    fig.savefig(tmp_path / "t.png")
    fig2 = plot_validation(v)
    assert len(fig2.axes) == 2
    # the Cramér-Rao bound of each used particle is marked on the bars, and the correction's bound is in the title
    assert v.bound is not None
    marks = [c for c in fig2.axes[1].collections if c.get_label() == "Cramér-Rao bound of the fit"]
    assert len(marks) == 1
    marked = marks[0].get_offsets()
    assert sorted(int(round(x)) for x in marked[:, 0]) == sorted(v.particles.index(p) for p in v.bound.particles)
    assert np.all(np.asarray(marked[:, 1]) > 0)
    assert "Cramér-Rao bound of the correction" in fig2._suptitle.get_text().replace("\n", " ")
    # used particles sit near their bound: the fits here are at the noise, not far above it
    used = [v.particles.index(p) for p in v.bound.particles]
    ratio = v.rms_after[used] / np.asarray(marked[:, 1])[np.argsort(marked[:, 0])]
    assert np.all(ratio < 5)
    fig2.savefig(tmp_path / "v.png")
    assert (tmp_path / "t.png").stat().st_size > 5000 and (tmp_path / "v.png").stat().st_size > 5000
