"""The Compare widget in a real viewer: views, restore, and quality figures."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_stackalign import apply_transforms
from napari_stackalign.core.quality import common_region, quality_report
from napari_stackalign.napari._layers import provenance
from napari_stackalign.synthetic import make_stack

SCALE = (1.0, 0.5, 0.5)


@pytest.fixture
def pair(make_napari_viewer):
    stack, truth = make_stack("beads", n_frames=16, shape=(96, 96), drift=8, snr=5, seed=4)
    registered = apply_transforms(stack, truth)
    viewer = make_napari_viewer()
    a = viewer.add_image(stack, name="beads", scale=SCALE, translate=(0, 10, 20))
    b = viewer.add_image(
        registered,
        name="beads registered",
        scale=SCALE,
        translate=(0, 10, 20),
        metadata={"stackalign": provenance("truth", {}, truth)},
    )
    return viewer, a, b, stack.copy(), registered.copy(), truth


def test_measures_quality_on_the_common_area(pair, qtbot, tmp_path, wait_run, dock):
    viewer, a, b, stack, registered, truth = pair
    widget = dock(viewer, "Compare")
    # picked X / "X registered" (through the docked widget's proxy: compare names, not identity)
    assert widget.layer_a.value.name == a.name and widget.layer_b.value.name == b.name
    wait_run(widget, widget.measure())
    rep_a, rep_b = widget.reports["beads"], widget.reports["beads registered"]
    region = common_region((96, 96), truth)
    expected_b = quality_report(registered, roi=region)
    assert rep_b["roi"] == region and rep_a["roi"] == region
    assert rep_b["sharpness"] == pytest.approx(expected_b["sharpness"], rel=1e-6)
    assert rep_b["sharpness"] > 2 * rep_a["sharpness"]
    assert rep_b["correlation_mean"] > 0.98 > rep_a["correlation_mean"]
    assert len(rep_b["correlations"]) == 16
    assert "beads registered" in widget.table.text() and "B/A sharpness" in widget.table.text()
    png = widget.plot.save_png(tmp_path / "compare.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    np.testing.assert_array_equal(a.data, stack)
    np.testing.assert_array_equal(b.data, registered)


def test_whole_frame_option_lowers_registered_score(pair, qtbot, wait_run, dock):
    viewer, _a, _b, *_ = pair
    widget = dock(viewer, "Compare")
    wait_run(widget, widget.measure())
    on_area = widget.reports["beads registered"]["correlation_mean"]
    widget.common_area.value = False
    wait_run(widget, widget.measure())
    whole = widget.reports["beads registered"]
    assert whole["roi"] == (0, 96, 0, 96)
    assert whole["correlation_mean"] < on_area  # the empty margin counts against it


def test_difference_and_checkerboard_of_mean_images(pair, qtbot, wait_run, dock):
    viewer, a, b, stack, registered, _ = pair
    widget = dock(viewer, "Compare")
    wait_run(widget, widget.add_difference())
    diff = viewer.layers["beads - beads registered (difference, mean images)"]
    assert diff.data.shape == (96, 96) and diff.data.dtype == np.float32
    expected = stack.astype(np.float64).mean(0) - registered.astype(np.float64).mean(0)
    np.testing.assert_allclose(diff.data, expected, atol=1e-3)
    np.testing.assert_allclose(diff.scale, SCALE[1:])
    np.testing.assert_allclose(diff.translate, (10, 20))
    assert diff.metadata["stackalign"]["method"] == "compare-difference"

    widget.tile.value = 16
    wait_run(widget, widget.add_checkerboard())
    board = viewer.layers["beads | beads registered (checkerboard, mean images, 16 px tiles)"].data
    mean_a, mean_b = stack.mean(0), registered.mean(0)
    np.testing.assert_allclose(board[:16, :16], mean_a[:16, :16], rtol=1e-5)
    np.testing.assert_allclose(board[:16, 16:32], mean_b[:16, 16:32], rtol=1e-5)
    np.testing.assert_allclose(board[16:32, 16:32], mean_a[16:32, 16:32], rtol=1e-5)
    np.testing.assert_array_equal(a.data, stack)
    np.testing.assert_array_equal(b.data, registered)


def test_frame_wise_views_are_lazy(pair, dock):
    viewer, _a, _b, stack, registered, _ = pair
    widget = dock(viewer, "Compare")
    widget.source.value = "every frame (lazy)"
    assert widget.add_difference() is None  # no worker: lazy
    diff = viewer.layers["beads - beads registered (difference, frames)"]
    assert type(diff.data).__module__.startswith("dask")
    assert diff.data.shape == stack.shape
    np.testing.assert_allclose(np.asarray(diff.data[5]), stack[5] - registered[5].astype(np.float32))
    np.testing.assert_allclose(diff.scale, SCALE)
    widget.tile.value = 8
    widget.add_checkerboard()
    board = viewer.layers["beads | beads registered (checkerboard, frames, 8 px tiles)"].data
    frame = np.asarray(board[3])
    np.testing.assert_allclose(frame[:8, :8], stack[3, :8, :8])
    np.testing.assert_allclose(frame[:8, 8:16], registered[3, :8, 8:16])


def test_side_by_side_and_flicker_restore_the_view(pair, qtbot, dock):
    viewer, a, b, *_ = pair
    other = viewer.add_image(np.zeros((16, 96, 96), np.float32), name="other")
    b.visible = False
    widget = dock(viewer, "Compare")
    widget.layer_a.value = a
    widget.layer_b.value = b
    grid = viewer.canvas.grid if hasattr(viewer, "canvas") else viewer.grid
    widget.side_by_side_button.setChecked(True)
    assert grid.enabled and a.visible and b.visible and not other.visible
    widget.side_by_side_button.setChecked(False)
    assert not grid.enabled and a.visible and not b.visible and other.visible

    widget.rate.value = 20.0
    widget.flicker_button.setChecked(True)
    assert widget.timer.isActive() and widget.timer.interval() == 50
    seen = set()
    for _ in range(8):
        qtbot.wait(30)
        seen.add((a.visible, b.visible))
    assert (True, False) in seen and (False, True) in seen
    widget.flicker_button.setChecked(False)
    assert not widget.timer.isActive()
    assert a.visible and not b.visible and other.visible


def test_bad_choices_notify_instead_of_raising(pair, errors, dock):
    viewer, a, _b, *_ = pair
    small = viewer.add_image(np.ones((16, 50, 50), np.float32), name="small")
    widget = dock(viewer, "Compare")
    widget.layer_a.value = a
    widget.layer_b.value = a
    assert widget.measure() is None
    assert "two different layers" in errors[-1]
    widget.layer_b.value = small
    assert widget.add_difference() is None
    assert "same frame size" in errors[-1]
    flat = viewer.add_image(np.ones((16, 96, 96), np.float32), name="flat")
    widget.layer_b.value = flat
    widget.source.value = "every frame (lazy)"
    widget.layer_b.value = viewer.add_image(np.ones((4, 96, 96), np.float32), name="short")
    widget.add_checkerboard()
    assert "same number of frames" in errors[-1]


def test_layer_list_follows_the_viewer(pair, dock):
    viewer, _a, _b, *_ = pair
    widget = dock(viewer, "Compare")
    viewer.add_image(np.ones((4, 8, 8)), name="late")
    assert "late" in [layer.name for layer in widget.layer_a.choices]
    viewer.layers["late"].name = "renamed"
    assert "renamed" in [widget.layer_b.native.itemText(i) for i in range(widget.layer_b.native.count())]
    viewer.layers.remove("renamed")
    assert "renamed" not in [layer.name for layer in widget.layer_b.choices]


def test_two_d_layers_compare_by_sharpness(make_napari_viewer, qtbot, wait_run, dock):
    stack, _ = make_stack("texture", n_frames=1, shape=(64, 64), snr=None, seed=2)
    viewer = make_napari_viewer()
    sharp = viewer.add_image(stack[0] + 1, name="sharp")
    blurred = viewer.add_image(ndi.gaussian_filter(stack[0] + 1, 2), name="blurred")
    widget = dock(viewer, "Compare")
    widget.layer_a.value = blurred
    widget.layer_b.value = sharp
    wait_run(widget, widget.measure())
    assert widget.reports["sharp"]["sharpness"] > widget.reports["blurred"]["sharpness"]
    wait_run(widget, widget.add_difference())
    diff = viewer.layers["blurred - sharp (difference, mean images)"]
    assert diff.data.shape == (64, 64)
    np.testing.assert_allclose(diff.scale, (1, 1))


def test_a_new_view_replaces_the_previous_one_unless_kept(pair, qtbot, wait_run, dock):
    viewer, *_ = pair
    widget = dock(viewer, "Compare")
    wait_run(widget, widget.add_difference())
    wait_run(widget, widget.add_difference())
    assert [layer.name for layer in viewer.layers] == [
        "beads", "beads registered", "beads - beads registered (difference, mean images)"
    ]
    widget.results.policy.value = "keep the previous results"
    wait_run(widget, widget.add_difference())
    assert len(viewer.layers) == 4


def test_compare_with_input_opens_compare_on_the_pair(make_napari_viewer, qtbot, wait_run, dock):
    stack, _ = make_stack("beads", n_frames=8, shape=(64, 64), drift=4, snr=8, seed=1)
    viewer = make_napari_viewer()
    viewer.add_image(stack, name="pc12")
    viewer.add_image(stack[::-1].copy(), name="decoy")
    pyramid = dock(viewer, "Pyramid registration")
    pyramid.layer.value = viewer.layers["pc12"]
    wait_run(pyramid, pyramid.run())
    compare = pyramid.results.compare_with_input()
    assert compare is dock(viewer, "Compare")
    assert compare.layer_a.value.name == "pc12"
    assert compare.layer_b.value.name == "pc12 registered (pyramid)"
    compare.side_by_side_button.setChecked(True)  # through the docked proxy: only the pair is shown
    assert [layer.visible for layer in viewer.layers] == [True, False, True]
    compare.side_by_side_button.setChecked(False)
    assert all(layer.visible for layer in viewer.layers)
