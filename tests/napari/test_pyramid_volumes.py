"""The Pyramid widget on (T, Z, Y, X) layers: 3-D registration, docked as a user docks it."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from napari_stackalign import VolumeTransforms, apply_transforms, register_pyramid
from napari_stackalign.core.smoothing import smooth_transforms
from napari_stackalign.io import write_stack
from napari_stackalign.napari._layers import transforms_from_layer
from napari_stackalign.synthetic_volume import make_volume_stack, volume_error

SHAPE = (16, 48, 48)
SCALE = (1.0, 2.0, 0.5, 0.5)
TRANSLATE = (0.0, 4.0, 10.0, -6.0)
NAME = "vol registered (pyramid, 3-D)"


@pytest.fixture(scope="module")
def volumes():
    return make_volume_stack(8, SHAPE, scene="beads", snr=6.0, seed=3)


@pytest.fixture
def viewer_with_volumes(make_napari_viewer, volumes):
    viewer = make_napari_viewer()
    layer = viewer.add_image(
        volumes.data, name="vol", scale=SCALE, translate=TRANSLATE, axis_labels=("t", "z", "y", "x")
    )
    return viewer, layer


def test_a_tzyx_layer_is_registered_in_3d_into_a_new_layer(viewer_with_volumes, volumes, wait_run, dock, errors):
    viewer, layer = viewer_with_volumes
    widget = dock(viewer, "Pyramid registration")
    assert widget.volume_note.isVisibleTo(widget) and "(T, Z, Y, X)" in widget.volume_note.text()
    assert not widget.piecewise_form.piecewise.enabled and not widget.mask_layer.enabled
    wait_run(widget, widget.run())
    assert errors == []
    out = viewer.layers[NAME]
    assert out.data.shape == volumes.data.shape
    np.testing.assert_allclose(out.scale, SCALE)
    np.testing.assert_allclose(out.translate, TRANSLATE)
    assert tuple(out.axis_labels) == ("t", "z", "y", "x")
    ft = transforms_from_layer(out)
    assert isinstance(ft, VolumeTransforms)
    direct = register_pyramid(volumes.data, axes="TZYX")
    np.testing.assert_allclose(ft.shifts_zyx, direct.shifts_zyx, atol=1e-9)
    np.testing.assert_array_equal(np.asarray(out.data), apply_transforms(volumes.data, direct))
    assert volume_error(ft, volumes.truth)["rms_z"] < 0.1
    block = out.metadata["stackalign"]
    assert block["params"]["axes"] == "TZYX" and block["params"]["volume_shape"] == list(SHAPE)
    np.testing.assert_array_equal(layer.data, volumes.data)  # input untouched
    # the panel: the drift with planes, the table with dz
    assert widget.drift_plot.has_plot
    labels = [t.get_text() for t in widget.drift_plot.figure.axes[0].get_legend().get_texts()]
    assert labels[0] == "planes (z)"
    assert "planes" in widget.summary.text()
    # the recipe: volumes
    recipe = widget.results.recipe
    assert "volumes=True" in recipe.python and "axes=data.axes" in recipe.python


def test_smoothing_volumes_keeps_the_raw_estimate(viewer_with_volumes, volumes, wait_run, dock, tmp_path):
    viewer, _layer = viewer_with_volumes
    widget = dock(viewer, "Pyramid registration")
    widget.form.smooth.value = True
    widget.form.window_length.value = 5
    widget.form.polyorder.value = 2
    wait_run(widget, widget.run())
    raw, final = widget.raw_transforms, widget.transforms
    np.testing.assert_allclose(
        final.shifts_zyx, smooth_transforms(raw, window_length=5, polyorder=2).shifts_zyx, atol=1e-12
    )
    np.testing.assert_allclose(
        final.shifts_zyx,
        register_pyramid(volumes.data, axes="TZYX", smooth=True, window_length=5, polyorder=2).shifts_zyx,
        atol=1e-9,
    )
    path = widget.save_transforms(tmp_path / "drift.csv")
    header = next(line for line in path.read_text().splitlines() if not line.startswith("#"))
    assert header.startswith("frame,dz,dy,dx")


def test_options_volumes_do_not_take_are_a_notification(viewer_with_volumes, wait_run, dock, errors):
    viewer, _layer = viewer_with_volumes
    widget = dock(viewer, "Pyramid registration")
    widget.reference_form.reference_mode.value = "image"
    viewer.add_image(np.zeros((48, 48), np.float32), name="flat")
    widget.reference_layer.value = viewer.layers["flat"]
    assert widget.run() is None
    assert "(Z, Y, X)" in errors[-1]
    assert not any(layer.name.startswith("vol registered") for layer in viewer.layers)


def test_a_3d_reference_volume_is_registered_to(viewer_with_volumes, volumes, wait_run, dock, errors):
    viewer, _layer = viewer_with_volumes
    reference = volumes.data[3]
    viewer.add_image(reference, name="ref", scale=SCALE[1:])
    widget = dock(viewer, "Pyramid registration")
    widget.reference_form.reference_mode.value = "image"
    widget.reference_layer.value = viewer.layers["ref"]
    wait_run(widget, widget.run())
    assert errors == []
    direct = register_pyramid(volumes.data, axes="TZYX", reference_mode="image", reference=reference)
    np.testing.assert_allclose(widget.transforms.shifts_zyx, direct.shifts_zyx, atol=1e-9)
    assert np.abs(widget.transforms.shifts_zyx[3]).max() < 0.05


def test_other_channel_gets_the_same_volume_transforms(make_napari_viewer, tmp_path, wait_run, dock, errors):
    vols = make_volume_stack(6, SHAPE, scene="beads", snr=6.0, seed=5, channels=2)
    path = write_stack(tmp_path / "two.tif", vols.data, axes="TCZYX", scale=(1.0, 1.0, 2.0, 0.5, 0.5), units="µm")
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-stackalign")
    widget = dock(viewer, "Pyramid registration")
    widget.layer.value = viewer.layers["two ch1"]
    wait_run(widget, widget.run())
    assert errors == []
    out = viewer.layers["two ch1 registered (pyramid, 3-D)"]
    np.testing.assert_allclose(out.scale, (1.0, 2.0, 0.5, 0.5))
    direct = register_pyramid(vols.data, axes="TCZYX", channel=1)
    np.testing.assert_allclose(widget.transforms.shifts_zyx, direct.shifts_zyx, atol=1e-9)
    assert "--channel 1" in widget.results.recipe.command
    assert "channel=1" in widget.results.recipe.python
    widget.panel.refresh()
    assert widget.panel.apply_to.choices == ("two ch0",)
    widget.set_checked(["two ch0"])
    wait_run(widget, widget.apply_to_checked())
    applied = viewer.layers["two ch0 registered (pyramid, from two ch1)"]
    np.testing.assert_array_equal(np.asarray(applied.data), apply_transforms(vols.data, direct)[:, 0])


def test_unnamed_short_second_axis_and_5d_layers_say_what_to_do(make_napari_viewer, dock, errors):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((4, 3, 32, 32), np.float32), name="ambiguous")
    widget = dock(viewer, "Pyramid registration")
    widget.layer.value = viewer.layers["ambiguous"]
    assert widget.run() is None
    assert "channels or Z planes" in errors[-1] and "axis_labels" in errors[-1]
    viewer.add_image(np.zeros((4, 2, 3, 32, 32), np.float32), name="five")
    widget.layer.value = viewer.layers["five"]
    assert widget.run() is None
    assert "one (T, Z, Y, X) layer per channel" in errors[-1]


@pytest.mark.parametrize(
    ("name", "run"),
    [
        ("Similarity stacking", lambda w: w._on_run()),
        ("Compare", lambda w: w.measure()),
        ("Particles", lambda w: w._on_track_clicked()),
    ],
)
def test_2d_widgets_send_volumes_to_the_pyramid_widget(make_napari_viewer, dock, errors, volumes, name, run):
    viewer = make_napari_viewer()
    viewer.add_image(volumes.data, name="vol", axis_labels=("t", "z", "y", "x"))
    viewer.add_image(volumes.data[::-1], name="vol b", axis_labels=("t", "z", "y", "x"))
    widget = dock(viewer, name)
    for picker, layer in (("layer", "vol"), ("layer_a", "vol"), ("layer_b", "vol b")):
        if hasattr(widget, picker):
            getattr(widget, picker).value = viewer.layers[layer]
    assert run(widget) is None
    assert errors and "Pyramid widget" in errors[-1], errors


def test_pairwise_does_not_offer_volumes(make_napari_viewer, dock, volumes):
    viewer = make_napari_viewer()
    viewer.add_image(volumes.data, name="vol", axis_labels=("t", "z", "y", "x"))
    widget = dock(viewer, "Pairwise averaging")
    assert len(widget.layer.choices) == 0 and "Pyramid widget" in widget.layer.tooltip


def test_a_lazy_volume_layer_gives_a_lazy_registered_layer(make_napari_viewer, volumes, wait_run, dock, errors):
    viewer = make_napari_viewer()
    lazy = da.from_array(volumes.data, chunks=(1, *SHAPE))
    viewer.add_image(lazy, name="vol", axis_labels=("t", "z", "y", "x"), contrast_limits=(0.0, 1.0))
    widget = dock(viewer, "Pyramid registration")
    wait_run(widget, widget.run())
    assert errors == []
    out = viewer.layers[NAME]
    assert type(out.data).__module__.startswith("dask")
    direct = register_pyramid(volumes.data, axes="TZYX")
    np.testing.assert_allclose(widget.transforms.shifts_zyx, direct.shifts_zyx, atol=1e-9)
    np.testing.assert_array_equal(np.asarray(out.data[5]), apply_transforms(volumes.data, direct)[5])


def test_cancel_leaves_no_volume_layer(viewer_with_volumes, wait_run, dock):
    viewer, _layer = viewer_with_volumes
    widget = dock(viewer, "Pyramid registration")
    worker = widget.run()
    widget.runner.cancel()
    wait_run(widget, worker)
    assert [layer.name for layer in viewer.layers] == ["vol"]
    assert widget.transforms is None and widget.runner.status.text() == "Cancelled."


@pytest.mark.parametrize("mode", ["previous", "running", "frames"])
def test_chained_and_frame_range_references_register_volumes(viewer_with_volumes, volumes, wait_run, dock, mode):
    viewer, _layer = viewer_with_volumes
    widget = dock(viewer, "Pyramid registration")
    widget.reference_form.reference_mode.value = mode
    if mode == "frames":
        widget.reference_form.reference_frames.value = "2:6"
    wait_run(widget, widget.run())
    options = widget.options(tuple(volumes.data.shape[1:]))
    direct = register_pyramid(volumes.data, **options.replace(smooth=False).to_dict(), axes="TZYX")
    np.testing.assert_allclose(widget.raw_transforms.shifts_zyx, direct.shifts_zyx, atol=1e-9)
    assert widget.raw_transforms.params.get("reference_mode", mode) == mode
