"""The Pyramid widget's "Reference" box: each mode reaches the engine, the name, the record and the recipe."""

from __future__ import annotations

import shlex

import numpy as np
import pytest
import tifffile

from napari_stackalign import FrameTransforms, register_pyramid
from napari_stackalign.cli import main as stackalign
from napari_stackalign.napari._pyramid_widget import format_frame_range, parse_frame_range
from napari_stackalign.synthetic import make_stack


def test_frame_ranges_are_read_as_start_stop():
    assert parse_frame_range(" 10:30 ") == (10, 30)
    assert parse_frame_range("") is None
    assert format_frame_range((10, 30)) == "10:30"
    with pytest.raises(ValueError, match="START:STOP"):
        parse_frame_range("10-30")


def _open(viewer, tmp_path, seed=4):
    stack, _ = make_stack("texture", n_frames=12, shape=(80, 80), drift=4, snr=8, seed=seed)
    path = tmp_path / "pc12.tif"
    tifffile.imwrite(path, stack)
    (layer,) = viewer.open(str(path), plugin="napari-stackalign")
    return stack, layer


@pytest.mark.parametrize(
    ("mode", "fields", "expected"),
    [
        ("previous", {"keyframe_every": 3}, {"reference_mode": "previous", "keyframe_every": 3}),
        ("running", {"running_frames": 4}, {"reference_mode": "running", "running_frames": 4}),
        ("frames", {"reference_frames": "2:8"}, {"reference_mode": "frames", "reference_frames": (2, 8)}),
    ],
)
def test_each_reference_mode_gives_the_engines_transforms_and_its_recipe(
    make_napari_viewer, qtbot, wait_run, dock, tmp_path, monkeypatch, mode, fields, expected
):
    viewer = make_napari_viewer()
    stack, layer = _open(viewer, tmp_path)
    widget = dock(viewer, "Pyramid registration")
    widget.layer.value = layer
    widget.form.set_values(downsample_rates="1/4, 1/2, 1")
    widget.reference_form.set_values(reference_mode=mode, **fields)
    wait_run(widget, widget.run())
    ours = widget.transforms
    direct = register_pyramid(stack, downsample_rates=(0.25, 0.5, 1.0), **expected)
    assert ours.allclose(direct, atol=1e-9)
    assert mode in viewer.layers[-1].name or "reference frames 2-7" in viewer.layers[-1].name
    assert viewer.layers[-1].metadata["stackalign"]["params"]["reference_mode"] == mode

    command = widget.results.copy("command")
    argv = shlex.split(command)
    assert argv[argv.index("--reference") + 1] == mode
    monkeypatch.chdir(tmp_path)
    assert stackalign([*argv[1:], "-q"]) == 0
    assert FrameTransforms.load(argv[argv.index("--transforms") + 1]).allclose(ours, atol=1e-9)
    scope: dict = {}
    exec(widget.results.copy("python"), scope)  # noqa: S102 - the snippet the widget offers to copy
    assert scope["transforms"].allclose(ours, atol=1e-9)


def test_only_the_fields_of_the_chosen_mode_are_enabled(make_napari_viewer, qtbot, dock):
    viewer = make_napari_viewer()
    widget = dock(viewer, "Pyramid registration")
    form, ref = widget.form, widget.reference_form
    ref.reference_mode.value = "previous"
    assert ref.keyframe_every.enabled and not ref.running_frames.enabled and not ref.reference_frames.enabled
    assert not form.num_frames.enabled and not form.iterate.enabled and not widget.reference_layer.enabled
    ref.reference_mode.value = "image"
    assert widget.reference_layer.enabled and form.iterate.enabled and not ref.keyframe_every.enabled
    ref.reference_mode.value = "template"
    assert form.num_frames.enabled and not ref.reference_frames.enabled


def test_an_image_reference_comes_from_a_2d_layer(make_napari_viewer, qtbot, wait_run, dock, tmp_path, errors):
    viewer = make_napari_viewer()
    stack, layer = _open(viewer, tmp_path)
    widget = dock(viewer, "Pyramid registration")
    widget.layer.value = layer
    widget.form.set_values(downsample_rates="1/4, 1/2, 1")
    widget.reference_form.set_values(reference_mode="image")
    assert widget.run() is None  # no reference layer chosen: a notification, no run
    assert any("choose the reference image layer" in text for text in errors)
    widget.reference_layer.value = layer  # (T, Y, X): not an image
    assert widget.run() is None
    assert any("has 3 dimensions" in text for text in errors)
    reference = viewer.add_image(stack[5].astype(np.float32), name="frame 5")
    widget.reference_layer.value = reference
    wait_run(widget, widget.run())
    direct = register_pyramid(stack, downsample_rates=(0.25, 0.5, 1.0), reference=stack[5].astype(np.float32))
    assert widget.transforms.allclose(direct, atol=1e-9)
    assert "REFERENCE.tif" in widget.results.copy("command")
