"""``stackalign track``: tracking, rotation correction and validation from saved picks."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import tifffile

from napari_stackalign import synthetic as particle_scenes
from napari_stackalign.cli import build_parser, main
from napari_stackalign.cli.track import parse_indices
from napari_stackalign.core.particles import (
    DRIFT_DEFAULTS,
    INTERPOLATIONS,
    RIGID_DEFAULTS,
    SPOT_TYPES,
    STATISTICS,
    TRACK_DEFAULTS,
    ParticleTracks,
    write_picks,
)
from napari_stackalign.io import read_stack
from napari_stackalign.synthetic import alignment_error
from napari_stackalign.transforms import FrameTransforms

T, SHAPE = 11, (150, 160)


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    motion = FrameTransforms(
        dy=np.linspace(0, 10, T), dx=np.linspace(0, 6, T), angle=np.linspace(0, 1.5, T),
        center=((SHAPE[0] - 1) / 2, (SHAPE[1] - 1) / 2),
    )
    stack, truth, traj = particle_scenes.bead_scene(motion, SHAPE, snr=10, n_beads=36, seed=31, dtype=np.uint16)
    assert traj.shape[1] >= 5
    folder = tmp_path_factory.mktemp("track")
    tifffile.imwrite(folder / "movie.tif", stack)
    picks = np.column_stack([np.zeros(5), traj[0, :5] + 0.6])
    # a rejected click in the file: skipped unless --all-picks
    write_picks(folder / "picks.csv", np.vstack([picks, [[0, 2.0, 2.0]]]), ok=[1] * 5 + [0])
    return folder, stack, truth, traj


def test_track_corrects_rotation_and_writes_everything(scene, capsys):
    folder, stack, truth, traj = scene
    out = folder / "aligned.tif"
    code = main([
        "track", "-i", str(folder / "movie.tif"), "--picks", str(folder / "picks.csv"), "-o", str(out),
        "--box", "11", "--holdout", "4", "--tracks", str(folder / "tracks.csv"),
        "--transforms", str(folder / "t.csv"), "--validation", str(folder / "val.csv"),
        "--plots", str(folder / "plots"), "--overwrite",
    ])
    assert code == 0
    err = capsys.readouterr().err
    assert "correction from particles [0, 1, 2, 3], held out [4]" in err
    assert "rotation + translation" in err
    est = FrameTransforms.load(folder / "t.csv")
    assert est.params["particles"] == [0, 1, 2, 3]
    e = alignment_error(est, truth)
    assert e["rms"] < 0.08 and e["angle_max"] < 0.035  # the max of 11 frames of one seed (0.030 with the Poisson fits)
    tracks = ParticleTracks.from_csv(folder / "tracks.csv")
    assert tracks.n_particles == 5 and tracks.ok.all()
    val = (folder / "val.csv").read_text()
    assert "held out" in val
    held_row = [ln for ln in val.splitlines() if ln.startswith("4,held out")][0]
    assert float(held_row.split(",")[6]) < 0.1  # rms_after of the held-out particle
    assert (folder / "plots" / "trajectories.png").stat().st_size > 5000
    assert (folder / "plots" / "validation.png").stat().st_size > 5000
    data = read_stack(out)
    try:
        assert data.data.shape == stack.shape and data.data.dtype == np.uint16
        assert data.transforms is not None and data.transforms.allclose(est, atol=1e-9)
    finally:
        data.close()


def test_no_rotation_and_particle_choice(scene, capsys):
    folder, stack, truth, traj = scene
    code = main([
        "track", "-i", str(folder / "movie.tif"), "--picks", str(folder / "picks.csv"), "-o",
        str(folder / "flat.h5"), "--box", "11", "--no-rotation", "--particles", "0,2",
        "--transforms", str(folder / "flat.csv"), "-q", "--overwrite",
    ])
    assert code == 0
    est = FrameTransforms.load(folder / "flat.csv")
    assert np.all(est.angle == 0) and est.params["particles"] == [0, 2]


def test_folder_of_frames_in_natural_order(scene, tmp_path):
    folder, stack, truth, traj = scene
    frames = tmp_path / "frames"
    frames.mkdir()
    for t in range(T):
        tifffile.imwrite(frames / f"{t + 1}.tif", stack[t])  # 1.tif ... 11.tif (10 sorts after 9)
    code = main([
        "track", "-i", str(frames), "--picks", str(folder / "picks.csv"), "-o", str(tmp_path / "a.tif"),
        "--box", "11", "--transforms", str(tmp_path / "t.csv"), "-q",
    ])
    assert code == 0
    est = FrameTransforms.load(tmp_path / "t.csv")
    assert alignment_error(est, truth)["rms"] < 0.08


def test_errors_are_clean(scene, capsys, tmp_path):
    folder, *_ = scene
    base = ["track", "-i", str(folder / "movie.tif"), "--picks", str(folder / "picks.csv"), "-o", str(tmp_path / "x.tif")]
    assert main(base + ["--particles", "0,1", "--holdout", "1"]) == 2
    assert "both --particles and --holdout" in capsys.readouterr().err
    assert main(base + ["--holdout", "9"]) == 2
    assert "only 5 particles" in capsys.readouterr().err
    assert main(base + ["--particles", "a,b"]) == 2
    assert main(["track", "-i", str(tmp_path / "missing.tif"), "--picks", str(folder / "picks.csv"), "-o", str(tmp_path / "y.tif")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(base + ["--tracks", str(tmp_path / "t.txt")]) == 2
    assert parse_indices("0, 2,3", "particles") == [0, 2, 3]
    with pytest.raises(ValueError, match="start at 0"):
        parse_indices("-1", "holdout")


def test_flags_take_their_defaults_and_choices_from_the_options():
    parser = build_parser()
    args = parser.parse_args(["track", "-i", "in.tif", "--picks", "p.csv", "-o", "out.tif"])
    assert args.box == TRACK_DEFAULTS.box and args.min_r2 == TRACK_DEFAULTS.min_r2
    assert SPOT_TYPES[args.spots] is TRACK_DEFAULTS.dark
    assert args.no_rotation is (not RIGID_DEFAULTS.allow_rotation)
    for name in ("min_particles", "interpolation", "reference_frame"):
        assert getattr(args, name) == RIGID_DEFAULTS.to_dict()[name]
    assert args.statistic == DRIFT_DEFAULTS.statistic
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["track"]
    actions = {a.dest: a for a in sub._actions}
    assert tuple(actions["interpolation"].choices) == INTERPOLATIONS
    assert tuple(actions["statistic"].choices) == STATISTICS
    assert tuple(actions["spots"].choices) == ("auto", "bright", "dark")
    # today's spellings: dashes first, underscores accepted
    assert actions["min_r2"].option_strings == ["--min-r2", "--min_r2"]
    assert actions["min_particles"].option_strings == ["--min-particles", "--min_particles"]
    assert actions["reference_frame"].option_strings == ["--reference-frame", "--reference_frame"]
    assert "(default 15)" in actions["box"].help
    args = parser.parse_args(["track", "-i", "a", "--picks", "p", "-o", "o", "--min_r2", "0.7", "--reference_frame", "3"])
    assert args.min_r2 == 0.7 and args.reference_frame == 3


def test_bad_option_values_fail_before_reading(tmp_path, capsys):
    picks = tmp_path / "p.csv"
    picks.write_text("y,x\n1,2\n")
    movie = tmp_path / "m.tif"
    movie.write_bytes(b"not a tiff")  # never read: the options fail first
    assert main(["track", "-i", str(movie), "--picks", str(picks), "-o", str(tmp_path / "o.tif"), "--min-r2", "1.5"]) == 2
    assert "min_r2 must be a number in [-1, 1)" in capsys.readouterr().err
    # a missing output folder is found before the tracking, not after it
    assert main(["track", "-i", str(movie), "--picks", str(picks), "-o", str(tmp_path / "none" / "o.tif")]) == 2
    assert "output folder" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["-o", "--tracks", "--validation", "--plots"])
def test_a_missing_output_folder_is_refused_before_tracking(scene, tmp_path, monkeypatch, capsys, flag):
    folder, _, _, _ = scene

    def never(*a, **k):
        raise AssertionError("tracked before the outputs were checked")

    monkeypatch.setattr("napari_stackalign.cli.track.track_particles", never)
    names = {"-o": "out.tif", "--tracks": "tracks.csv", "--validation": "val.csv", "--plots": "plots"}
    argv = ["track", "-i", str(folder / "movie.tif"), "--picks", str(folder / "picks.csv"), "-o", str(tmp_path / "a.tif")]
    if flag == "-o":
        argv[-1] = str(tmp_path / "missing" / names[flag])
    else:
        argv += [flag, str(tmp_path / "missing" / "deeper" / names[flag])]
    assert main(argv) == 2
    assert "does not exist" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
