"""The Pyramid widget's piecewise-rigid option: the field's layers, the panel, and the copied command and Python."""

from __future__ import annotations

import shlex

import numpy as np
import tifffile

from napari_stackalign import PiecewiseOptions, PiecewiseTransforms, PyramidOptions, register_piecewise
from napari_stackalign.cli import main as stackalign
from napari_stackalign.synthetic import make_stack


def test_piecewise_run_adds_the_field_and_gives_the_engines_result(
    make_napari_viewer, qtbot, wait_run, dock, tmp_path, monkeypatch
):
    stack, _ = make_stack("texture", n_frames=8, shape=(96, 96), drift=3, snr=8, seed=2)
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, stack)
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(path), plugin="napari-stackalign")
    widget = dock(viewer, "Pyramid registration")
    widget.layer.value = layer
    widget.form.set_values(downsample_rates="1/4, 1/2, 1")
    widget.piecewise_form.set_values(piecewise=True, patch_size=48, patch_overlap=16)
    assert widget.piecewise_form.patch_size.enabled
    wait_run(widget, widget.run())

    names = [lyr.name for lyr in viewer.layers]
    registered = next(n for n in names if n.startswith("movie registered (pyramid") and "piecewise 48/16" in n)
    assert any(n.endswith("residual field") for n in names) and any(n.endswith("residual motion") for n in names)
    field = widget.transforms
    assert isinstance(field, PiecewiseTransforms)
    direct = register_piecewise(
        stack,
        rigid_options=PyramidOptions(downsample_rates=(0.25, 0.5, 1.0)),
        options=PiecewiseOptions(patch_size=48, patch_overlap=16),
    )
    assert field.allclose(direct, atol=1e-9)
    np.testing.assert_array_equal(viewer.layers[registered].data.shape, stack.shape)

    saved = widget.save_transforms(tmp_path / "field.csv")  # the rigid table, and the field beside it
    assert saved.suffix == ".csv" and PiecewiseTransforms.load(tmp_path / "field.npz").allclose(field, atol=1e-12)

    argv = shlex.split(widget.results.copy("command"))
    assert "--piecewise" in argv and argv[argv.index("--patch-size") + 1] == "48"
    monkeypatch.chdir(tmp_path)
    assert stackalign([*argv[1:], "-q"]) == 0
    table = argv[argv.index("--transforms") + 1]
    assert PiecewiseTransforms.load(table.rsplit(".", 1)[0] + ".npz").allclose(field, atol=1e-9)
    scope: dict = {}
    exec(widget.results.copy("python"), scope)  # noqa: S102 - the snippet the widget offers to copy
    assert scope["transforms"].allclose(field, atol=1e-9)


def test_piecewise_on_a_big_lazy_stack_is_a_notification(make_napari_viewer, qtbot, dock, errors, monkeypatch):
    stack, _ = make_stack("texture", n_frames=6, shape=(64, 64), drift=2, snr=8, seed=1)
    viewer = make_napari_viewer()
    layer = viewer.add_image(stack, name="big")
    widget = dock(viewer, "Pyramid registration")
    widget.layer.value = layer
    widget.piecewise_form.set_values(piecewise=True)
    monkeypatch.setattr("napari_stackalign.napari._pyramid_widget._is_lazy", lambda data: True)
    assert widget.run() is None
    assert any("fit in memory" in text for text in errors)
