"""The Particles widget in a real viewer: clicks become fits, picks become tracks."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from napari_stackalign.core.particles import (
    BOX_LIMITS,
    FIT_DEFAULTS,
    FitOptions,
    ParticleTracks,
    read_picks,
)
from napari_stackalign.napari._forms import tooltip
from napari_stackalign.napari._particle_layers import tracks_from_layer
from napari_stackalign.napari._particles_widget import (
    FAIL_COLOR,
    OK_COLOR,
)
from napari_stackalign.synthetic import make_stack
from napari_stackalign.transforms import FrameTransforms

T, SHAPE = 12, (96, 112)


def _bead_stack():
    """Beads drifting 14 px down-left, with their true tracks."""
    motion = FrameTransforms(dy=np.linspace(0, 14, T), dx=np.linspace(0, -9, T), center=((SHAPE[0] - 1) / 2, (SHAPE[1] - 1) / 2))
    stack, truth = make_stack("beads", n_frames=T, shape=SHAPE, motion=motion, snr=8, n_beads=14, seed=5)
    pos = np.asarray(truth.params["bead_positions"])
    mats = motion.to_matrices()
    traj = np.einsum("tij,nj->tni", mats[:, :2, :2], pos) + mats[:, None, :2, 2]
    inside = np.all((traj[..., 0] > 9) & (traj[..., 0] < SHAPE[0] - 9) & (traj[..., 1] > 9) & (traj[..., 1] < SHAPE[1] - 9), axis=0)
    dist = np.hypot(*(traj[0][:, None] - traj[0][None]).transpose(2, 0, 1))
    np.fill_diagonal(dist, 99)
    idx = np.flatnonzero(inside & (dist.min(axis=1) > 12))
    return stack, traj[:, idx]


def _emptiest_spot(frame: np.ndarray) -> np.ndarray:
    """(y, x) of the interior point whose 15x15 neighbourhood is darkest (background only)."""
    peak = ndimage.maximum_filter(ndimage.uniform_filter(frame.astype(float), 3), size=15)
    inner = peak[10:-10, 10:-10]
    y, x = np.unravel_index(np.argmin(inner), inner.shape)
    return np.array([y + 10, x + 10], dtype=float)


def _tracks_layer(viewer, image: str = "beads"):
    """The one tracks layer of ``image`` (its name also says the settings)."""
    (layer,) = [lay for lay in viewer.layers if lay.name.startswith(f"{image} tracks (particles, ")]
    return layer


@pytest.fixture
def setup(make_napari_viewer, dock):
    viewer = make_napari_viewer()
    stack, traj = _bead_stack()
    assert traj.shape[1] >= 3
    image = viewer.add_image(stack, name="beads")
    widget = dock(viewer, "Particles")
    return viewer, widget, image, traj


def test_settings_start_at_the_options_defaults(setup):
    widget = setup[1]
    assert widget.box.value == FIT_DEFAULTS.box
    assert (widget.box.min, widget.box.max) == BOX_LIMITS
    assert widget.min_r2.value == FIT_DEFAULTS.min_r2
    assert widget.min_r2.min == FitOptions.specs()["min_r2"].minimum
    assert widget.min_r2.max < FitOptions.specs()["min_r2"].maximum  # R^2 stays below 1
    assert widget.dark is FIT_DEFAULTS.dark
    assert widget.box.tooltip == tooltip(FitOptions, "box")
    assert widget.min_r2.tooltip == tooltip(FitOptions, "min_r2")
    assert widget.polarity.tooltip == tooltip(FitOptions, "dark")
    assert widget.fit_options() == FIT_DEFAULTS
    widget.polarity.value = True
    assert widget.polarity.current_choice == "dark spots"
    widget.box.value = 11
    assert widget.fit_options() == FitOptions(box=11, dark=True)
    assert widget.parameters() == {"box": 11, "min_r2": FIT_DEFAULTS.min_r2, "dark": True}


def test_settings_are_remembered(make_napari_viewer, dock):
    """The form keeps the last values (magicgui persist): a widget opened later starts from them."""
    first = dock(make_napari_viewer(), "Particles")
    first.box.value = 21
    first.polarity.value = False
    second = dock(make_napari_viewer(), "Particles")
    assert second.parameters() == {"box": 21, "min_r2": FIT_DEFAULTS.min_r2, "dark": False}


def test_image_picker_follows_the_layers(setup):
    viewer, widget, image, _traj = setup
    assert widget.layer.value.name == "beads"
    other = viewer.add_image(np.zeros((3, 32, 32), np.float32), name="other")
    assert "other" in [layer.name for layer in widget.layer.choices]
    widget.layer.value = other
    viewer.layers.remove("other")
    assert widget.layer.value.name == "beads"


def test_click_fits_and_marks(setup):
    viewer, widget, image, traj = setup
    widget.pick_button.click()
    layer = viewer.layers["beads picks"]
    assert layer.mode == "add"
    # a click 1.3 px off a bead in frame 0: replaced by the fitted centre, green
    truth = traj[0, 0]
    layer.add([0, truth[0] + 1.0, truth[1] - 0.8])
    assert len(layer.data) == 1
    assert np.hypot(*(layer.data[0, 1:] - truth)) < 0.15
    assert bool(layer.features["ok"].iloc[0])
    np.testing.assert_allclose(layer.face_color[0], OK_COLOR, atol=1e-6)
    assert str(layer.symbol[0]) in ("ring", "Symbol.RING")
    assert widget.last_fit is not None and widget.last_fit.ok
    assert "fit OK" in widget.fit_status.text()
    assert widget.fit_labels["r2"].text() != "-"

    # a click on empty background: red cross with the reason, left where clicked
    empty = _emptiest_spot(image.data[0])
    layer.add([0, *empty])
    assert len(layer.data) == 2
    assert not bool(layer.features["ok"].iloc[1])
    reason = layer.features["reason"].iloc[1]
    assert reason
    np.testing.assert_allclose(layer.data[1, 1:], empty)
    np.testing.assert_allclose(layer.face_color[1], FAIL_COLOR, atol=1e-6)
    assert str(layer.symbol[1]) in ("x", "Symbol.X")
    assert layer.features["label"].iloc[1] == "" and layer.features["particle"].iloc[1] == -1
    assert "rejected" in widget.fit_status.text() and reason in widget.fit_status.text()
    # no meaningless numbers for a rejected fit: the reason instead
    assert widget.fit_labels["center"].text() == f"rejected: {reason}"
    assert {widget.fit_labels[k].text() for k in widget.fit_labels if k != "center"} == {"-"}
    assert "1 good" in widget.count_label.text()

    # undo removes the last pick; delete removes the selected
    widget.undo_button.click()
    assert len(layer.data) == 1
    layer.add([0, *traj[0, 1]])
    layer.selected_data = {0}
    widget.delete_button.click()
    assert len(layer.data) == 1
    assert np.hypot(*(layer.data[0, 1:] - traj[0, 1])) < 0.15


def test_click_in_later_frame_and_save_load(setup, tmp_path):
    viewer, widget, image, traj = setup
    widget.pick_button.click()
    layer = viewer.layers["beads picks"]
    layer.add([7, *(traj[7, 2] + 0.7)])
    assert np.hypot(*(layer.data[0, 1:] - traj[7, 2])) < 0.15
    assert layer.data[0, 0] == 7
    layer.add([7, 3.0, 3.0])  # near the corner: fails
    path = widget.save_picks(tmp_path / "picks.csv")
    picks = read_picks(path)
    assert picks.shape == (2, 3)
    assert read_picks(path, only_ok=True).shape == (1, 3)
    widget.undo_button.click()
    widget.undo_button.click()
    assert len(layer.data) == 0
    widget.load_picks(path)
    assert len(layer.data) == 2
    assert list(layer.features["ok"]) == [True, False]


def test_track_adds_tracks_layer(setup, qtbot):
    viewer, widget, image, traj = setup
    widget.pick_button.click()
    layer = viewer.layers["beads picks"]
    n = min(4, traj.shape[1])
    for i in range(n):
        layer.add([0, *(traj[0, i] + 0.5)])
    assert layer.features["ok"].all()
    widget.box.value = 11
    widget.runner.run_button.click()
    assert widget.runner.worker is not None
    qtbot.waitUntil(lambda: widget.runner.worker is None, timeout=30000)  # finished (no race)
    tracks_layer = _tracks_layer(viewer)
    tracks = tracks_from_layer(tracks_layer)
    assert isinstance(tracks, ParticleTracks)
    assert tracks.n_particles == n and tracks.n_frames == T
    assert tracks.ok.all()
    err = np.hypot(tracks.y - traj[:, :n, 0], tracks.x - traj[:, :n, 1])
    assert err.max() < 0.2
    assert tracks_layer.data.shape == (n * T, 4)
    assert tracks_layer.metadata["stackalign"]["source_layer"] == "beads"
    np.testing.assert_allclose(tracks_layer.scale, image.scale)
    assert "failed" in widget.result_label.text()


def test_picks_are_numbered_like_the_tracks_and_stay_active_after_track(setup, qtbot):
    viewer, widget, image, traj = setup
    widget.pick_button.click()
    layer = viewer.layers["beads picks"]
    layer.add([0, *(traj[0, 0] + 0.5)])
    layer.add([0, *(traj[0, 1] + 0.5)])
    layer.add([0, *_emptiest_spot(image.data[0])])  # rejected: no number of its own
    layer.add([0, *(traj[0, 2] + 0.5)])
    assert list(layer.features["ok"]) == [True, True, False, True]
    assert list(layer.features["label"]) == ["0", "1", "", "2"]
    assert list(layer.features["particle"]) == [0, 1, -1, 2]
    assert "numbered 0..2" in widget.count_label.text()
    viewer.dims.set_current_step(0, 4)
    widget.runner.run_button.click()
    qtbot.waitUntil(lambda: widget.runner.worker is None, timeout=30000)
    tracks_layer = _tracks_layer(viewer)
    tracks = tracks_from_layer(tracks_layer)
    assert sorted(set(tracks_layer.data[:, 0].astype(int))) == [0, 1, 2]
    # track k is pick k: its first-frame position is where pick k sits
    for k in range(3):
        row = int(np.flatnonzero(layer.features["particle"] == k)[0])
        assert np.hypot(tracks.y[0, k] - layer.data[row, 1], tracks.x[0, k] - layer.data[row, 2]) < 0.2
    # the picks layer stays active in add mode: the next click is a pick
    assert viewer.layers.selection.active.name == "beads picks" and layer.mode == "add"
    assert viewer.dims.current_step[0] == 4  # still on the frame being picked


def test_label_colour_reads_on_the_image(setup):
    viewer, widget, image, traj = setup
    widget.pick_button.click()
    layer = viewer.layers["beads picks"]
    layer.add([0, *(traj[0, 0] + 0.5)])
    layer.add([0, *_emptiest_spot(image.data[0])])
    layer.add([0, 4.0, 50.0])  # near the top: its label is drawn off the image, on the dark canvas
    assert list(layer.features["text_color"]) == ["yellow", "yellow", "yellow"]  # dark background
    image.data = image.data.max() - image.data  # bright background, dark beads
    image.reset_contrast_limits()
    widget.polarity.value = True  # dark spots
    widget.refit_all()
    assert list(layer.features["text_color"]) == ["black", "black", "yellow"]
    # and napari draws them in those colours
    np.testing.assert_allclose(layer.text._view_color(np.arange(3))[:, :3], [[0, 0, 0], [0, 0, 0], [1, 1, 0]])


def test_track_without_good_picks_says_so(setup, qtbot):
    viewer, widget, image, traj = setup
    widget.pick_button.click()
    layer = viewer.layers["beads picks"]
    layer.add([0, 3.0, 3.0])
    assert not layer.features["ok"].iloc[0]
    with pytest.raises(ValueError, match="no pick passed"):
        widget.good_picks()
    widget.runner.run_button.click()
    assert widget.runner.worker is None
    assert not [lay for lay in viewer.layers if lay.name.startswith("beads tracks")]


def test_track_results_are_named_replaced_or_kept_and_the_copied_python_gives_them(
    make_napari_viewer, dock, qtbot, tmp_path, monkeypatch
):
    import shlex

    import tifffile

    from napari_stackalign.cli import main as stackalign
    from napari_stackalign.napari._results import KEEP

    stack, traj = _bead_stack()
    path = tmp_path / "beads.tif"
    tifffile.imwrite(path, stack)
    viewer = make_napari_viewer()
    (image,) = viewer.open(str(path), plugin="napari-stackalign")
    widget = dock(viewer, "Particles")
    widget.layer.value = image
    widget.box.value = 11
    widget.pick_button.click()
    picks = viewer.layers["beads picks"]
    for i in range(min(4, traj.shape[1])):
        picks.add([0, *(traj[0, i] + 0.5)])

    def track():
        widget.runner.run_button.click()
        assert widget.runner.worker is not None
        qtbot.waitUntil(lambda: widget.runner.worker is None, timeout=30000)

    track()
    name = "beads tracks (particles, box 11, R\u00b2 \u2265 " + f"{FIT_DEFAULTS.min_r2:g}, auto)"
    assert _tracks_layer(viewer).name == name
    ours = tracks_from_layer(_tracks_layer(viewer))
    track()  # replace (the default): still one tracks layer
    assert _tracks_layer(viewer).name == name
    widget.results.policy.value = KEEP
    track()
    assert [lay.name for lay in viewer.layers].count(name) + [lay.name for lay in viewer.layers].count(
        name + " [1]"
    ) == 2

    python = widget.results.copy("python")
    command = widget.results.copy("command")
    assert "PICKS.csv" in python and "Save picks" in python  # the note says where the picks go
    monkeypatch.chdir(tmp_path)
    widget.save_picks(tmp_path / "PICKS.csv")
    scope: dict = {}
    exec(python, scope)  # noqa: S102 - the snippet the widget offers to copy
    np.testing.assert_allclose(scope["tracks"].y, ours.y)
    np.testing.assert_allclose(scope["tracks"].x, ours.x)
    np.testing.assert_array_equal(scope["tracks"].ok, ours.ok)

    argv = shlex.split(command, comments=True)  # the copied text starts with the notes, as comments
    assert argv[:2] == ["stackalign", "track"] and argv[argv.index("-i") + 1] == str(path)
    assert stackalign([*argv[1:], "-q"]) == 0
    written = ParticleTracks.from_csv(argv[argv.index("--tracks") + 1])
    np.testing.assert_allclose(written.y, ours.y, atol=1e-6)
    np.testing.assert_allclose(written.x, ours.x, atol=1e-6)
