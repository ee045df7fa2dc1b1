"""The "Pyramid registration" widget in a real viewer, against known drift."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from napari_stackalign import FrameTransforms, apply_transforms
from napari_stackalign.core.pyramid import PyramidOptions
from napari_stackalign.core.smoothing import smooth_transforms
from napari_stackalign.napari._layers import transforms_from_layer
from napari_stackalign.napari._pyramid_widget import roi_from_shape
from napari_stackalign.synthetic import alignment_error, make_stack

SCALE = (2.0, 0.25, 0.25)
TRANSLATE = (0.0, 5.0, -3.0)


@pytest.fixture
def beads():
    return make_stack("beads", n_frames=20, shape=(96, 96), drift=8, snr=6, dtype="uint16", seed=11)


@pytest.fixture
def viewer_with_stack(make_napari_viewer, beads):
    stack, _truth = beads
    viewer = make_napari_viewer()
    layer = viewer.add_image(stack, name="beads", scale=SCALE, translate=TRANSLATE, units=("s", "µm", "µm"))
    return viewer, layer


def test_run_adds_registered_layer_close_to_truth(viewer_with_stack, beads, qtbot, tmp_path, wait_run, dock):
    viewer, layer = viewer_with_stack
    stack, truth = beads
    widget = dock(viewer, "Pyramid registration")
    # docked from the Plugins menu the widget sees a proxy of the layer: compare by name
    assert widget.layer.value.name == layer.name
    wait_run(widget, widget.run())
    out = viewer.layers["beads registered (pyramid)"]
    assert out.data.shape == stack.shape and out.data.dtype == np.uint16
    np.testing.assert_allclose(out.scale, SCALE)
    np.testing.assert_allclose(out.translate, TRANSLATE)
    assert [str(u) for u in out.units] == ["second", "micrometer", "micrometer"]
    block = out.metadata["stackalign"]
    assert block["method"] == "pyramid"
    assert block["params"]["downsample_rates"] == [0.125, 0.25, 0.5, 1.0]
    assert block["params"]["num_frames"] == 100 and block["params"]["smooth"] is False
    ft = transforms_from_layer(out)
    assert alignment_error(ft, truth)["rms"] < 0.1
    np.testing.assert_array_equal(out.data, apply_transforms(stack, ft))
    np.testing.assert_array_equal(layer.data, stack)  # input untouched
    assert widget.drift_plot.has_plot
    assert widget.drift_plot.save_png(tmp_path / "drift.png").stat().st_size > 1000
    assert "20 frames" in widget.summary.text()


def test_smoothing_stores_raw_and_smoothed(viewer_with_stack, qtbot, wait_run, dock):
    viewer, _layer = viewer_with_stack
    widget = dock(viewer, "Pyramid registration")
    widget.form.smooth.value = True
    widget.form.window_length.value = 7
    widget.form.polyorder.value = 2
    widget.form.iterate.value = 2
    wait_run(widget, widget.run())
    block = viewer.layers["beads registered (pyramid, smoothed 7/2, 2 passes)"].metadata["stackalign"]
    assert block["params"]["smooth"] is True and block["params"]["window_length"] == 7
    raw = FrameTransforms.from_dict(block["raw_transforms"])
    final = FrameTransforms.from_dict(block["transforms"])
    assert final.allclose(smooth_transforms(raw, window_length=7, polyorder=2), atol=1e-9)
    assert widget.raw_transforms.allclose(raw) and widget.transforms.allclose(final)


def test_roi_from_a_shapes_rectangle_keeps_a_static_label_out(make_napari_viewer, qtbot, wait_run, dock):
    stack, truth = make_stack("texture", n_frames=12, shape=(112, 112), drift=8, snr=6, static_label=True, seed=7)
    viewer = make_napari_viewer()
    image = viewer.add_image(stack, name="labelled", scale=(1, 0.5, 0.5), translate=(0, 10, 10))
    # a rectangle in world coordinates covering image rows 30..111, all columns
    world = np.array(
        [
            [10 + 29.6 * 0.5, 10 - 1],
            [10 + 29.6 * 0.5, 10 + 120 * 0.5],
            [10 + 120 * 0.5, 10 + 120 * 0.5],
            [10 + 120 * 0.5, 10 - 1],
        ]
    )
    shapes = viewer.add_shapes([world], shape_type="rectangle", name="roi")
    assert roi_from_shape(shapes, image) == (30, 112, 0, 112)
    widget = dock(viewer, "Pyramid registration")
    widget.layer.value = image
    widget.roi_layer.value = shapes
    wait_run(widget, widget.run())
    out = viewer.layers["labelled registered (pyramid, ROI roi)"]
    assert out.metadata["stackalign"]["params"]["roi"] == [30, 112, 0, 112]
    assert out.metadata["stackalign"]["params"]["roi_layer"] == "roi"
    assert alignment_error(transforms_from_layer(out), truth)["rms"] < 0.2


def test_mask_from_labels_ignores_painted_pixels(make_napari_viewer, qtbot, wait_run, dock):
    stack, truth = make_stack("texture", n_frames=12, shape=(112, 112), drift=8, snr=6, static_label=True, seed=7)
    viewer = make_napari_viewer()
    image = viewer.add_image(stack, name="labelled")
    paint = np.zeros((112, 112), np.uint8)
    paint[:30] = 1
    labels = viewer.add_labels(paint, name="label mask")
    widget = dock(viewer, "Pyramid registration")
    widget.layer.value = image
    widget.mask_layer.value = labels
    wait_run(widget, widget.run())
    out = viewer.layers["labelled registered (pyramid, mask label mask)"]
    assert out.metadata["stackalign"]["params"]["mask_mode"] == "ignored"
    assert alignment_error(transforms_from_layer(out), truth)["rms"] < 0.2


def test_apply_to_another_channel_and_table_round_trip(make_napari_viewer, qtbot, tmp_path, wait_run, dock):
    stack, _truth = make_stack("beads", n_frames=10, shape=(96, 96), drift=7, snr=8, n_channels=2, seed=3)
    viewer = make_napari_viewer()
    ch0 = viewer.add_image(stack[:, 0], name="ch0", scale=(1, 0.3, 0.3))
    ch1 = viewer.add_image(stack[:, 1], name="ch1", scale=(1, 0.3, 0.3))
    viewer.add_image(np.zeros((4, 96, 96), np.float32), name="other length")
    widget = dock(viewer, "Pyramid registration")
    widget.layer.value = ch0
    wait_run(widget, widget.run())
    offered = widget.panel.apply_to.choices
    assert "ch1" in offered and "other length" not in offered and "ch0" not in offered  # never the input itself
    with pytest.raises(ValueError, match="not offered"):
        widget.set_checked(["ch0"])
    widget.set_checked(["ch1"])
    wait_run(widget, widget.apply_to_checked())
    out1 = viewer.layers["ch1 registered (pyramid, from ch0)"]
    np.testing.assert_allclose(out1.scale, (1, 0.3, 0.3))
    np.testing.assert_array_equal(out1.data, apply_transforms(stack[:, 1], widget.transforms))
    assert out1.metadata["stackalign"]["params"]["applied_from"] == "ch0"
    np.testing.assert_array_equal(ch1.data, stack[:, 1])

    paths = [widget.save_transforms(tmp_path / f"table{suffix}") for suffix in (".csv", ".json")]
    estimated = widget.transforms
    viewer.window.remove_dock_widget(widget)
    for path in paths:
        fresh = dock(viewer, "Pyramid registration")  # closed and opened again: a widget with no run of its own
        assert fresh is not widget and fresh.transforms is None
        loaded = fresh.load_transforms(path)
        assert loaded.allclose(estimated, atol=1e-12)
        assert fresh.drift_plot.has_plot
        fresh.set_checked(["ch0"])  # a loaded table has no input: every layer with its frame count is offered
        n_before = len(viewer.layers)
        wait_run(fresh, fresh.apply_to_checked())
        assert len(viewer.layers) == n_before + 1
        newest = viewer.layers[-1]
        assert newest.name.startswith("ch0 registered (pyramid, from a table)")
        np.testing.assert_array_equal(newest.data, viewer.layers["ch0 registered (pyramid)"].data)
        viewer.window.remove_dock_widget(fresh)


def test_cancel_leaves_no_layer(make_napari_viewer, qtbot, wait_run, dock):
    stack, _ = make_stack("beads", n_frames=40, shape=(128, 128), drift=8, snr=5, seed=2)
    viewer = make_napari_viewer()
    viewer.add_image(stack, name="long")
    widget = dock(viewer, "Pyramid registration")
    worker = widget.run()
    widget.runner.cancel()
    wait_run(widget, worker)
    assert [layer.name for layer in viewer.layers] == ["long"]
    assert widget.transforms is None
    assert widget.runner.status.text() == "Cancelled."


def test_user_errors_become_notifications(make_napari_viewer, errors, tmp_path, dock):
    viewer = make_napari_viewer()
    widget = dock(viewer, "Pyramid registration")
    assert widget.run() is None
    assert "choose an image layer" in errors[-1]
    viewer.add_image(np.random.default_rng(0).random((64, 64)), name="flat")
    assert widget.run() is None
    assert "single 2-D image" in errors[-1]
    viewer.add_image(np.random.default_rng(0).random((6, 64, 64)), name="short")
    widget.layer.value = viewer.layers["short"]
    widget.form.smooth.value = True
    assert widget.run() is None
    assert "fewer than the smoothing window_length" in errors[-1]
    widget.form.smooth.value = False
    widget.form.downsample_rates.value = "1/8, one half"
    assert widget.run() is None
    assert "not a number or fraction" in errors[-1]
    widget.form.downsample_rates.value = "1/2, 1"
    viewer.add_shapes(name="empty roi")
    widget.roi_layer.value = viewer.layers["empty roi"]
    assert widget.run() is None
    assert "is empty" in errors[-1]
    with pytest.raises(ValueError, match="no transforms to save"):
        widget.save_transforms(tmp_path / "x.csv")
    assert widget.apply_to_checked() is None
    assert "no transforms yet" in errors[-1]
    assert [layer.name for layer in viewer.layers] == ["flat", "short", "empty roi"]


def test_lazy_dask_input_gives_lazy_output(make_napari_viewer, qtbot, beads, tmp_path, monkeypatch, wait_run, dock):
    da = pytest.importorskip("dask.array")
    # a lazy layer without a source file is registered into the temporary folder
    monkeypatch.setattr("tempfile.gettempdir", lambda: str(tmp_path))
    stack, truth = beads
    viewer = make_napari_viewer()
    viewer.add_image(da.from_array(stack, chunks=(5, 96, 96)), name="lazy", contrast_limits=(0, 1000))
    widget = dock(viewer, "Pyramid registration")
    wait_run(widget, widget.run())
    out = viewer.layers["lazy registered (pyramid)"]
    assert type(out.data).__module__.startswith("dask")
    ft = transforms_from_layer(out)
    assert alignment_error(ft, truth)["rms"] < 0.1
    np.testing.assert_array_equal(np.asarray(out.data[7]), apply_transforms(stack, ft)[7])
    assert (tmp_path / "lazy registered.h5").is_file()


def test_form_starts_at_the_options_defaults(make_napari_viewer, dock):
    widget = dock(make_napari_viewer(), "Pyramid registration")
    assert widget.options() == PyramidOptions()
    defaults = PyramidOptions.defaults()
    form = widget.form
    for name in ("num_frames", "max_movement", "iterate", "window_length", "polyorder", "normalize", "smooth"):
        assert form[name].value == defaults[name], name
    assert form.downsample_rates.value == "1/8, 1/4, 1/2, 1"
    assert not form.window_length.enabled and not form.polyorder.enabled
    # ranges and tooltips from the options
    specs = PyramidOptions.specs()
    assert form.num_frames.min == specs["num_frames"].minimum
    assert form.iterate.min == specs["iterate"].minimum
    assert form.polyorder.min == specs["polyorder"].minimum
    assert 0 < form.max_movement.min <= 0.01 and form.max_movement.max == specs["max_movement"].maximum
    for name in ("num_frames", "max_movement", "iterate", "normalize", "smooth", "window_length", "polyorder"):
        assert form[name].tooltip.lower().startswith(specs[name].help.lower()), name
    assert form.downsample_rates.tooltip.lower().startswith(specs["downsample_rates"].help.lower())


def test_form_values_become_one_options_object(make_napari_viewer, dock):
    widget = dock(make_napari_viewer(), "Pyramid registration")
    form = widget.form
    form.set_values(num_frames=30, downsample_rates="1/4, 1/2, 1", max_movement=0.3, iterate=3, normalize=False)
    form.window_length.value = 7  # not used while smoothing is off
    assert widget.options() == PyramidOptions(
        num_frames=30, downsample_rates=(0.25, 0.5, 1), max_movement=0.3, iterate=3, normalize=False
    )
    form.smooth.value = True
    form.polyorder.value = 2
    assert widget.options() == PyramidOptions(
        num_frames=30,
        downsample_rates=(0.25, 0.5, 1),
        max_movement=0.3,
        iterate=3,
        normalize=False,
        smooth=True,
        window_length=7,
        polyorder=2,
    )


@pytest.mark.parametrize(
    "window, order, rates",
    [(10, 3, "1/2, 1"), (5, 5, "1/2, 1"), (11, 3, "1, 1/2")],
)
def test_bad_values_give_the_options_message(make_napari_viewer, errors, window, order, rates, dock):
    viewer = make_napari_viewer()
    viewer.add_image(np.random.default_rng(0).random((20, 64, 64)), name="series")
    widget = dock(viewer, "Pyramid registration")
    widget.form.set_values(smooth=True, window_length=window, polyorder=order, downsample_rates=rates)
    with pytest.raises(ValueError) as expected:
        PyramidOptions(
            smooth=True, window_length=window, polyorder=order, downsample_rates=tuple(
                float(Fraction(r)) for r in rates.split(", ")
            )
        )
    assert widget.run() is None
    assert errors[-1] == str(expected.value)
    assert [layer.name for layer in viewer.layers] == ["series"]


def test_a_lazy_ome_zarr_input_is_registered_into_ome_zarr(make_napari_viewer, qtbot, beads, tmp_path, wait_run, dock):
    """The big-file path streams an OME-Zarr input into an OME-Zarr output beside it, opened lazily."""
    from napari_stackalign.io import read_stack, write_stack

    stack, truth = beads
    source = write_stack(tmp_path / "movie.ome.zarr", stack, scale=0.2, units="um")
    viewer = make_napari_viewer()
    # as the reader opens a file larger than its memory share: lazily, with its path
    lazy = read_stack(source, lazy=True).data
    assert type(lazy).__module__.startswith("dask")
    layer = viewer.add_image(lazy, name="movie", metadata={"source_path": str(source)})
    widget = dock(viewer, "Pyramid registration")
    widget.layer.value = layer
    wait_run(widget, widget.run())
    output = tmp_path / "movie registered.ome.zarr"
    assert output.is_dir()
    out = viewer.layers[-1]
    assert type(out.data).__module__.startswith("dask")
    ft = transforms_from_layer(out)
    assert alignment_error(ft, truth)["rms"] < 0.1
