"""Tracking particles through drift larger than the box; the tracks table; picks files."""

from __future__ import annotations

import numpy as np
import pytest

from napari_stackalign import synthetic as particle_scenes
from napari_stackalign.core import Cancelled
from napari_stackalign.core.particles import (
    ParticleTracks,
    read_picks,
    track_particles,
    write_picks,
)
from napari_stackalign.core.particles._picks import as_picks
from napari_stackalign.transforms import FrameTransforms

bead_scene, linear_motion = particle_scenes.bead_scene, particle_scenes.linear_motion


def test_tracks_through_drift_much_larger_than_the_box():
    shape = (128, 144)
    motion = linear_motion(25, shape, 34.0, -28.0)  # 44 px in total, box 11
    stack, _, traj = bead_scene(motion, shape, seed=1)
    assert traj.shape[1] >= 3
    picks = traj[0] + np.random.default_rng(0).normal(0, 1.2, traj[0].shape)  # clicks are not exact
    tracks = track_particles(stack, picks, box=11)
    assert tracks.ok.all(), set(tracks.reason.ravel())
    err = np.hypot(tracks.y - traj[..., 0], tracks.x - traj[..., 1])
    assert err.max() < 0.15
    assert np.sqrt(np.mean(err**2)) < 0.06
    # the reference's fixed frame-1 box would have lost every particle
    assert np.hypot(*(traj[-1] - traj[0]).T).min() > 11


def test_sudden_jump_is_recovered_by_the_search():
    shape = (128, 128)
    n = 14
    dy = np.linspace(0, 6, n)
    dx = np.zeros(n)
    dy[8:] += 17.0  # one jump of 17 px: more than the box half-width
    dx[8:] -= 9.0
    motion = FrameTransforms(dy=dy, dx=dx, center=(63.5, 63.5))
    stack, _, traj = bead_scene(motion, shape, seed=2, n_beads=30, min_gap=22)
    assert traj.shape[1] >= 2
    tracks = track_particles(stack, traj[0], box=11)
    assert tracks.ok.all()
    assert np.abs(tracks.y - traj[..., 0]).max() < 0.15
    off = track_particles(stack, traj[0], box=11, search=0)
    assert not off.ok[8:].all()  # without the search, the jump loses particles


def test_picks_in_different_frames_track_both_ways():
    shape = (110, 120)
    motion = linear_motion(16, shape, 12.0, 9.0)
    stack, _, traj = bead_scene(motion, shape, seed=3)
    k = min(3, traj.shape[1])
    frames = np.array([0, 9, 15])[:k]
    picks = np.column_stack([frames, traj[frames, np.arange(k)]])
    tracks = track_particles(stack, picks, box=11)
    assert tracks.ok.all()
    assert np.abs(tracks.x - traj[:, :k, 1]).max() < 0.15
    np.testing.assert_array_equal(tracks.picks[:, 0], frames)


def test_failed_frames_are_flagged_never_filled_in():
    shape = (100, 100)
    motion = linear_motion(12, shape, 10.0, -6.0)
    stack, _, traj = bead_scene(motion, shape, seed=4)
    stack = stack.copy()
    stack[5] = stack[5].mean()  # an empty (constant) frame
    tracks = track_particles(stack, traj[0], box=11)
    assert not tracks.ok[5].any()
    assert set(tracks.reason[5]) == {"constant box"}
    assert np.isnan(tracks.positions()[5]).all()
    others = np.delete(np.arange(12), 5)
    assert tracks.ok[others].all()  # tracking resumes after the gap


def test_only_one_of_several_particles_lost():
    shape = (100, 110)
    motion = linear_motion(10, shape, 8.0, 8.0)
    stack, _, traj = bead_scene(motion, shape, seed=6)
    assert traj.shape[1] >= 3
    stack = stack.copy()
    y, x = np.round(traj[6, 0]).astype(int)
    stack[6, y - 6 : y + 7, x - 6 : x + 7] = np.median(stack[6])  # particle 0 vanishes in frame 6
    tracks = track_particles(stack, traj[0], box=11)
    assert not tracks.ok[6, 0]
    assert tracks.reason[6, 0] != ""
    assert tracks.ok[:, 1:].all() and tracks.ok[7:, 0].all()


def test_tracks_table_roundtrips(tmp_path):
    shape = (90, 90)
    motion = linear_motion(6, shape, 5.0, 3.0)
    stack, _, traj = bead_scene(motion, shape, seed=6)
    tracks = track_particles(stack, traj[0], box=11)
    tracks.ok[2, 0] = False
    tracks.reason[2, 0] = "R\u00b2 0.42 below 0.5"
    text = tracks.to_csv(tmp_path / "tracks.csv")
    assert text.splitlines()[4].startswith("frame,particle,y,x")
    back = ParticleTracks.from_csv(tmp_path / "tracks.csv")
    np.testing.assert_array_equal(back.ok, tracks.ok)
    np.testing.assert_allclose(back.y, tracks.y)
    assert back.reason[2, 0] == "R\u00b2 0.42 below 0.5"
    assert back.shape == tracks.shape and back.params["box"] == [11, 11]
    again = ParticleTracks.from_dict(tracks.to_dict())
    np.testing.assert_allclose(again.x, tracks.x)
    df = tracks.to_dataframe()
    assert len(df) == tracks.n_frames * tracks.n_particles and not df["ok"].iloc[2 * tracks.n_particles]
    data, features = tracks.to_napari_tracks()
    assert data.shape == (int(tracks.ok.sum()), 4)
    assert features["r2"].shape == (data.shape[0],)
    sub = tracks.select([1])
    assert sub.n_particles == 1 and sub.params["selected_from"] == [1]


def test_progress_and_cancel():
    shape = (80, 80)
    stack, _, traj = bead_scene(linear_motion(8, shape, 3.0, 3.0), shape, seed=7)
    calls = []
    track_particles(stack, traj[0], box=11, progress=lambda d, t, s: calls.append((d, t, s)))
    assert calls[-1] == (8, 8, "track")

    def cancel(done, total, stage):
        if done >= 2:
            raise Cancelled()

    with pytest.raises(Cancelled):
        track_particles(stack, traj[0], box=11, progress=cancel)


def test_dask_input_gives_the_same_tracks():
    da = pytest.importorskip("dask.array")
    shape = (80, 90)
    stack, _, traj = bead_scene(linear_motion(7, shape, 4.0, -3.0), shape, seed=8)
    a = track_particles(stack, traj[0], box=11, chunk_size=3)
    b = track_particles(da.from_array(stack, chunks=(2, 80, 90)), traj[0], box=11)
    np.testing.assert_allclose(a.y, b.y)


def test_bad_input():
    stack = np.zeros((4, 40, 40), dtype=np.float32)
    with pytest.raises(ValueError, match=r"\(T, Y, X\)"):
        track_particles(stack[0], [(10, 10)])
    with pytest.raises(ValueError, match="outside"):
        track_particles(stack, [(10, 10), (50, 10)])
    with pytest.raises(ValueError, match="frame0"):
        track_particles(stack, [(10, 10)], frame0=4)
    with pytest.raises(ValueError, match="picks lie in frames"):
        track_particles(stack, [(7, 10, 10)])
    with pytest.raises(ValueError, match="no picks"):
        track_particles(stack, np.zeros((0, 2)))
    with pytest.raises(ValueError, match="smaller than the box"):
        track_particles(stack, [(10, 10)], box=51)
    with pytest.raises(ValueError, match="min_r2"):
        track_particles(stack, [(10, 10)], min_r2=5)


def test_picks_files(tmp_path):
    picks = np.array([[0, 10.5, 20.25], [3, 11.0, 5.0]])
    path = write_picks(tmp_path / "p.csv", picks, ok=[True, False], r2=[0.9, 0.2], reason=["", "R\u00b2 0.20 below 0.5"])
    np.testing.assert_allclose(read_picks(path), picks)
    np.testing.assert_allclose(read_picks(path, only_ok=True), picks[:1])
    # napari's own Points CSV, 3-D and 2-D
    (tmp_path / "n3.csv").write_text("index,axis-0,axis-1,axis-2\n0,2.0,10.5,20.25\n1,2.0,11,5\n")
    np.testing.assert_allclose(read_picks(tmp_path / "n3.csv"), [[2, 10.5, 20.25], [2, 11, 5]])
    (tmp_path / "n2.csv").write_text("index,axis-0,axis-1\n0,10.5,20.25\n")
    np.testing.assert_allclose(read_picks(tmp_path / "n2.csv"), [[0, 10.5, 20.25]])
    (tmp_path / "yx.csv").write_text("y,x\n1,2\n")
    np.testing.assert_allclose(read_picks(tmp_path / "yx.csv"), [[0, 1, 2]])
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="expected 'y' and 'x'"):
        read_picks(tmp_path / "bad.csv")
    with pytest.raises(ValueError, match="cannot read"):
        read_picks(tmp_path / "missing.csv")
    np.testing.assert_allclose(as_picks([[5, 6]], frame0=2), [[2, 5, 6]])
    with pytest.raises(ValueError, match="NaN"):
        as_picks([[np.nan, 1]])
