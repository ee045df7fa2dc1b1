"""The "Similarity stacking" widget in a real viewer, checked against ground truth."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import h5py
import imageio.v3 as iio
import npe2
import numpy as np
import pytest
import tifffile

from napari_stackalign import FrameTransforms, apply_transforms, average_frames
from napari_stackalign.core.similarity import SimilarityOptions
from napari_stackalign.napari._layers import transforms_from_layer
from napari_stackalign.napari._similarity_widget import (
    TEMPLATE_CHOICES,
)
from napari_stackalign.synthetic import make_stack

SHAPE = (96, 128)
SCALE = (1.0, 0.5, 0.5)
# screenshots go into docs/images only when asked (STACKALIGN_DOCS_SCREENSHOTS=1),
# so a test run never changes tracked files
DOCS_IMAGES = (
    Path(__file__).resolve().parents[2] / "docs" / "images"
    if os.environ.get("STACKALIGN_DOCS_SCREENSHOTS")
    else Path(tempfile.gettempdir()) / "stackalign-screenshots"
)


def _known(n_channels: int = 2):
    center = ((SHAPE[0] - 1) / 2, (SHAPE[1] - 1) / 2)
    motion = FrameTransforms(
        dy=[2.0, -1.5, 0.0, 3.0, -2.5],
        dx=[-3.0, 1.0, 0.0, 2.5, 1.5],
        angle=[8.0, -5.0, 0.0, 12.0, -10.0],
        scale=[1.05, 0.96, 1.0, 1.08, 0.93],
        center=center,
    )
    return make_stack("texture", n_frames=5, shape=SHAPE, motion=motion, snr=10, n_channels=n_channels, seed=21)


def _check_truth(ft: FrameTransforms, truth: FrameTransforms) -> None:
    est = ft.with_center(truth.center)
    assert np.abs(est.angle - truth.angle).max() < 0.05
    assert np.abs(est.scale - truth.scale).max() < 1e-3
    assert np.hypot(est.dy - truth.dy, est.dx - truth.dx).max() < 0.1


def test_multichannel_layer_crop_average(make_napari_viewer, qtbot, tmp_path, wait_run, dock):
    stack, truth = _known(n_channels=2)
    viewer = make_napari_viewer()
    layer = viewer.add_image(stack, name="cells", scale=(1.0, 1.0, 0.5, 0.5), translate=(0, 0, 10, 20))
    widget = dock(viewer, "Similarity stacking")
    assert widget.layer.value.name == layer.name
    assert widget.channel.enabled and widget.channel.max == 1
    widget.channel.value = 1
    widget.form.mode.value = "crop to region all frames cover"
    widget.form.limit_angle.value = True
    widget.form.limit_scale.value = True
    widget.runner.run_button.click()
    wait_run(widget, widget.runner.worker)

    names = [lyr.name for lyr in viewer.layers]
    settings = "similarity, channel 1, angle -30..30°, scale 0.8..1.25"
    assert names == [
        "cells", f"cells registered ({settings})", f"cells average ({settings}, cropped)",
        f"cells coverage ({settings}, cropped)",
    ]
    reg, avg, cov = (viewer.layers[name] for name in names[1:])
    ft = transforms_from_layer(reg)
    _check_truth(ft, truth)
    assert reg.metadata["stackalign"]["params"]["channel"] == 1
    assert reg.metadata["stackalign"]["params"]["angle_range"] == (-30.0, 30.0)
    # all channels registered with the same transform
    np.testing.assert_array_equal(reg.data, apply_transforms(stack, ft))
    assert tuple(reg.scale) == (1.0, 1.0, 0.5, 0.5)
    # the cropped average: every pixel covered by all 5 frames, placed where it belongs
    expected = average_frames(stack, ft, mode="crop")
    r0, r1, c0, c1 = expected.crop
    assert avg.data.shape == (2, r1 - r0, c1 - c0)
    np.testing.assert_allclose(avg.data, expected.image, rtol=1e-6)
    assert np.all(cov.data == 5)
    assert tuple(avg.translate)[-2:] == pytest.approx((10 + 0.5 * r0, 20 + 0.5 * c0))
    assert tuple(cov.scale) == (0.5, 0.5)
    # the input is untouched
    np.testing.assert_array_equal(layer.data, stack)
    # the plot and table are available and saved
    assert widget.plot.has_plot
    png = widget.plot.save_png(tmp_path / "similarity.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    table = FrameTransforms.from_csv(widget.save_table(tmp_path / "table.csv"))
    assert table.allclose(ft, atol=1e-9)
    assert "5 of 5 frames registered" in widget.summary.text()
    # the (C, Y, X) average and its coverage are saved together, with their metadata
    layers = [avg.as_layer_data_tuple(), cov.as_layer_data_tuple()]
    [saved] = npe2.write(str(tmp_path / "average.h5"), layers, plugin_name="napari-stackalign")
    with h5py.File(saved) as f:
        np.testing.assert_allclose(f["image"][()], expected.image, rtol=1e-6)
        np.testing.assert_array_equal(f["coverage"][()], cov.data)
        meta = json.loads(f.attrs["metadata"])
    assert meta["stackalign"]["method"] == "similarity" and meta["stackalign"]["params"]["channel"] == 1
    assert FrameTransforms.from_dict(meta["stackalign"]["transforms"]).allclose(ft)
    [alone] = npe2.write(str(tmp_path / "average.tif"), [avg.as_layer_data_tuple()], plugin_name="napari-stackalign")
    assert tifffile.imread(alone).shape == expected.image.shape


def test_split_channels_apply_to_other_layer_full_average(make_napari_viewer, qtbot, wait_run, dock):
    stack, truth = _known(n_channels=2)
    viewer = make_napari_viewer()
    a = viewer.add_image(stack[:, 0], name="ch0", scale=SCALE)
    b = viewer.add_image(stack[:, 1], name="ch1", scale=SCALE)
    viewer.add_image(stack[:3, 0], name="too short")
    widget = dock(viewer, "Similarity stacking")
    widget.layer.value = a
    widget.form.template.value = "frame number…"
    widget.form.template_index.value = 2
    assert widget.options().template == 2
    wait_run(widget, widget._on_run())
    offered = widget.panel.apply_to.choices
    assert offered == ("ch1",)  # same frame count and size only, never the input itself
    widget.panel.set_checked(["ch1"])
    wait_run(widget, widget.panel.apply_to_checked())
    suffix = {"ch0": "(similarity, template frame 2)", "ch1": "(similarity, from ch0)"}
    for name, data in (("ch0", stack[:, 0]), ("ch1", stack[:, 1])):
        reg = viewer.layers[f"{name} registered {suffix[name]}"]
        ft = transforms_from_layer(reg)
        _check_truth(ft, truth)
        np.testing.assert_array_equal(reg.data, apply_transforms(data, ft))
        avg = viewer.layers[f"{name} average {suffix[name]}"]
        cov = viewer.layers[f"{name} coverage {suffix[name]}"]
        assert avg.data.shape == SHAPE and cov.data.shape == SHAPE
        assert cov.data.max() == 5 and cov.data.min() < 5
        assert tuple(avg.scale) == (0.5, 0.5)
    # both layers got the same transforms (estimated on ch0 only)
    ch1_block = viewer.layers[f"ch1 registered {suffix['ch1']}"].metadata["stackalign"]
    assert FrameTransforms.from_dict(ch1_block["transforms"]).allclose(
        transforms_from_layer(viewer.layers[f"ch0 registered {suffix['ch0']}"])
    )
    assert ch1_block["params"]["estimated_on"] == "ch0" and ch1_block["params"]["applied_from"] == "ch0"
    np.testing.assert_array_equal(b.data, stack[:, 1])

    # the screenshot for the docs: the widget docked, the average on screen
    DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
    for layer in viewer.layers:
        layer.visible = layer.name == f"ch0 average {suffix['ch0']}"
    viewer.window.resize(1400, 1000)
    qtbot.wait(200)
    shot = viewer.screenshot(canvas_only=False, flash=False)
    assert shot.shape[0] >= 900 and shot.shape[1] >= 1300
    iio.imwrite(DOCS_IMAGES / "similarity_widget.png", shot)
    assert (DOCS_IMAGES / "similarity_widget.png").stat().st_size > 10000


def test_flagged_frame_is_reported(make_napari_viewer, qtbot, monkeypatch, wait_run, dock):
    warnings: list[str] = []
    monkeypatch.setattr("napari_stackalign.napari._similarity_widget.show_warning", lambda m: warnings.append(m))
    stack, _truth = _known(n_channels=1)
    stack[4] = np.random.default_rng(1).normal(stack.mean(), stack.std(), size=SHAPE).astype(np.float32)
    viewer = make_napari_viewer()
    viewer.add_image(stack, name="noisy")
    widget = dock(viewer, "Similarity stacking")
    assert not widget.channel.enabled
    widget.form.add_registered.value = False
    wait_run(widget, widget._on_run())
    assert [layer.name for layer in viewer.layers] == [
        "noisy", "noisy average (similarity)", "noisy coverage (similarity)"
    ]
    ft = transforms_from_layer(viewer.layers["noisy average (similarity)"])
    assert list(ft.ok) == [True, True, True, True, False]
    assert "Flagged: frame 4" in widget.summary.text()
    assert warnings


def test_user_errors_are_notified(make_napari_viewer, qtbot, errors, wait_run, dock):
    viewer = make_napari_viewer()
    widget = dock(viewer, "Similarity stacking")
    assert widget._on_run() is None
    assert errors and "choose a (T, Y, X) image layer" in errors[-1]
    viewer.add_image(np.zeros((64, 64), np.float32), name="flat 2d")
    assert widget.layer.value is None and not widget.layer.choices  # 2-D layers are not offered
    viewer.add_image(np.ones((3, 64, 64), np.float32), name="constant")
    wait_run(widget, widget._on_run())
    assert "constant" in errors[-1]
    assert [lyr.name for lyr in viewer.layers] == ["flat 2d", "constant"]
    assert set(TEMPLATE_CHOICES.values()) == {"middle", "first", None, "mean"}


def test_form_starts_at_the_options_defaults(make_napari_viewer, qtbot, dock):
    widget = dock(make_napari_viewer(), "Similarity stacking")
    assert widget.options() == SimilarityOptions()
    form = widget.form
    assert not form.limit_angle.value and not form.limit_scale.value
    assert form.min_success.native.specialValueText() == "auto"
    spec = SimilarityOptions.specs()["min_success"]
    assert (form.min_success.min, form.min_success.max) == (spec.minimum, spec.maximum)
    assert list(form.fallback.choices) == list(SimilarityOptions.specs()["fallback"].choices)
    for field, option in (("fallback", "fallback"), ("angle_min", "angle_range"), ("template", "template")):
        assert form[field].tooltip.lower() == SimilarityOptions.help(option).lower(), field


def test_set_options_round_trip(make_napari_viewer, qtbot, dock):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((5, 64, 64), np.float32), name="stack")
    widget = dock(viewer, "Similarity stacking")
    chosen = SimilarityOptions(
        template=3, angle_range=(-20, 25), scale_range=(0.9, 1.1), min_success=0.35, fallback="identity", sigma=2.0
    )
    widget.set_options(chosen)
    assert widget.form.template_index.enabled
    assert widget.options() == chosen  # sigma, which the form does not show, is kept too
    widget.set_options(SimilarityOptions(template="mean"))
    assert widget.options() == SimilarityOptions(template="mean")


def test_bad_form_values_are_notified(make_napari_viewer, qtbot, errors, dock):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((5, 64, 64), np.float32), name="stack")
    widget = dock(viewer, "Similarity stacking")
    widget.form.set_values(limit_angle=True, angle_min=20.0, angle_max=-20.0)
    assert widget._on_run() is None
    assert errors and "angle_range must be (min, max) with min <= max" in errors[-1]
    assert widget.runner.worker is None
