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
    assert widget.layer_choice.value.name == layer.name
    assert widget.channel.isEnabled() and widget.channel.maximum() == 1
    widget.channel.setValue(1)
    widget.mode.setCurrentIndex(1)  # crop
    widget.limit_angle.setChecked(True)
    widget.limit_scale.setChecked(True)
    widget.runner.run_button.click()
    wait_run(widget, widget.runner.worker)

    names = [lyr.name for lyr in viewer.layers]
    assert names == ["cells", "cells registered", "cells average", "cells coverage"]
    reg = viewer.layers["cells registered"]
    avg = viewer.layers["cells average"]
    cov = viewer.layers["cells coverage"]
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
    widget.layer_choice.value = a
    offered = [widget.apply_list.item(i).text() for i in range(widget.apply_list.count())]
    assert offered == ["ch1"]  # same frame count and size only
    widget.set_apply_to(["ch1"])
    widget.template.setCurrentText("frame number…")
    widget.template_index.setValue(2)
    assert widget.options().template == 2
    wait_run(widget, widget._on_run())
    for name, data in (("ch0", stack[:, 0]), ("ch1", stack[:, 1])):
        reg = viewer.layers[f"{name} registered"]
        ft = transforms_from_layer(reg)
        _check_truth(ft, truth)
        np.testing.assert_array_equal(reg.data, apply_transforms(data, ft))
        avg = viewer.layers[f"{name} average"]
        cov = viewer.layers[f"{name} coverage"]
        assert avg.data.shape == SHAPE and cov.data.shape == SHAPE
        assert cov.data.max() == 5 and cov.data.min() < 5
        assert tuple(avg.scale) == (0.5, 0.5)
    # both layers got the same transforms (estimated on ch0 only)
    assert transforms_from_layer(viewer.layers["ch1 registered"]).allclose(
        transforms_from_layer(viewer.layers["ch0 registered"])
    )
    assert viewer.layers["ch1 registered"].metadata["stackalign"]["params"]["estimated_on"] == "ch0"
    np.testing.assert_array_equal(b.data, stack[:, 1])

    # the screenshot for the docs: the widget docked, the average on screen
    DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
    for layer in viewer.layers:
        layer.visible = layer.name == "ch0 average"
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
    assert not widget.channel.isEnabled()
    widget.add_registered.setChecked(False)
    wait_run(widget, widget._on_run())
    assert "noisy registered" not in viewer.layers and "noisy average" in viewer.layers
    ft = transforms_from_layer(viewer.layers["noisy average"])
    assert list(ft.ok) == [True, True, True, True, False]
    assert "Flagged: frame 4" in widget.summary.text()
    assert warnings


def test_user_errors_are_notified(make_napari_viewer, qtbot, errors, wait_run, dock):
    viewer = make_napari_viewer()
    widget = dock(viewer, "Similarity stacking")
    assert widget._on_run() is None
    assert errors and "choose a (T, Y, X) image layer" in errors[-1]
    viewer.add_image(np.zeros((64, 64), np.float32), name="flat 2d")
    assert widget.layer_choice.value is None  # 2-D layers are not offered
    viewer.add_image(np.ones((3, 64, 64), np.float32), name="constant")
    wait_run(widget, widget._on_run())
    assert "constant" in errors[-1]
    assert [lyr.name for lyr in viewer.layers] == ["flat 2d", "constant"]
    assert set(TEMPLATE_CHOICES.values()) == {"middle", "first", None, "mean"}


def test_form_starts_at_the_options_defaults(make_napari_viewer, qtbot, dock):
    widget = dock(make_napari_viewer(), "Similarity stacking")
    assert widget.options() == SimilarityOptions()
    assert not widget.limit_angle.isChecked() and not widget.limit_scale.isChecked()
    assert widget.min_success.specialValueText() == "auto"
    spec = SimilarityOptions.specs()["min_success"]
    assert (widget.min_success.minimum(), widget.min_success.maximum()) == (spec.minimum, spec.maximum)
    assert [widget.fallback.itemText(i) for i in range(widget.fallback.count())] == list(
        SimilarityOptions.specs()["fallback"].choices
    )
    assert widget.fallback.toolTip() == SimilarityOptions.help("fallback")
    assert widget.angle_min.toolTip() == SimilarityOptions.help("angle_range")
    assert widget.template.toolTip() == SimilarityOptions.help("template")


def test_set_options_round_trip(make_napari_viewer, qtbot, dock):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((5, 64, 64), np.float32), name="stack")
    widget = dock(viewer, "Similarity stacking")
    chosen = SimilarityOptions(
        template=3, angle_range=(-20, 25), scale_range=(0.9, 1.1), min_success=0.35, fallback="identity", sigma=2.0
    )
    widget.set_options(chosen)
    assert widget.template_index.isEnabled()
    assert widget.options() == chosen  # sigma, which the form does not show, is kept too
    widget.set_options(SimilarityOptions(template="mean"))
    assert widget.options() == SimilarityOptions(template="mean")


def test_bad_form_values_are_notified(make_napari_viewer, qtbot, errors, dock):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((5, 64, 64), np.float32), name="stack")
    widget = dock(viewer, "Similarity stacking")
    widget.limit_angle.setChecked(True)
    widget.angle_min.setValue(20.0)
    widget.angle_max.setValue(-20.0)
    assert widget._on_run() is None
    assert errors and "angle_range must be (min, max) with min <= max" in errors[-1]
    assert widget.runner.worker is None
