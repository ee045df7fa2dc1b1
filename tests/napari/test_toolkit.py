"""The shared widget toolkit: overall progress, remembered forms, closing, replace or keep, and the recipe."""

from __future__ import annotations

import shlex

import numpy as np
import pytest
import tifffile

from napari_stackalign import FrameTransforms
from napari_stackalign.cli import main as stackalign
from napari_stackalign.core.pyramid import PyramidOptions
from napari_stackalign.napari._forms import OptionsForm
from napari_stackalign.napari._progress import OverallProgress, Stage, describe_time_left, stage_words
from napari_stackalign.napari._results import KEEP, REPLACE
from napari_stackalign.synthetic import make_stack


def test_overall_progress_goes_across_stages_and_never_back():
    now = [0.0]
    progress = OverallProgress(
        [Stage("reference", 1), Stage("template", 2), Stage("estimate", 7)], clock=lambda: now[0]
    )
    assert progress.update(5, 10, "reference") == pytest.approx(0.05)
    assert progress.seconds_left() is None  # no pace yet
    now[0] = 10.0
    assert progress.update(10, 10, "template 1/2") == pytest.approx(0.2)
    assert progress.seconds_left() == pytest.approx(40.0)
    assert progress.update(0, 10, "template 2/2") == pytest.approx(0.2)
    assert progress.update(50, 100, "estimate") == pytest.approx(0.65)
    assert progress.update(0, 100, "reference") == pytest.approx(0.65)  # a late report does not go back
    text = progress.text("template 2/2")
    assert text.startswith("Refining the template (pass 2 of 2)") and "65 % of the run" in text and "left" in text
    assert "/" not in stage_words("template 5/19") and stage_words("estimate") == "Estimating the motion of each frame"
    assert progress.update(1, 1, "done") == 1.0
    assert describe_time_left(30) == "about 30 s left" and describe_time_left(600) == "about 10 min left"


def test_a_form_remembers_the_last_values_and_starts_at_the_defaults(qtbot):
    names = ("num_frames", "max_movement", "smooth", "kernel")
    first = OptionsForm(PyramidOptions, names, key="test-form")
    assert first.values() == {name: PyramidOptions.default(name) for name in names}
    assert first.num_frames.min == 1 and first.kernel.choices == tuple(PyramidOptions.specs()["kernel"].choices)
    first.set_values(num_frames=12, max_movement=0.3, smooth=True)
    again = OptionsForm(PyramidOptions, names, key="test-form")
    assert again.values()["num_frames"] == 12 and again.max_movement.value == pytest.approx(0.3)
    assert again.smooth.value is True
    other = OptionsForm(PyramidOptions, names, key="another-form")
    assert other.num_frames.value == PyramidOptions.default("num_frames")
    with pytest.raises(ValueError, match="no field"):
        other.set_values(frames=3)
    again.reset()
    assert OptionsForm(PyramidOptions, names, key="test-form").num_frames.value == PyramidOptions.default("num_frames")


def test_closing_a_running_widget_cancels_and_adds_nothing(make_napari_viewer, qtbot, dock):
    stack, _ = make_stack("beads", n_frames=60, shape=(128, 128), drift=8, snr=5, seed=2)
    viewer = make_napari_viewer()
    viewer.add_image(stack, name="long")
    widget = dock(viewer, "Pyramid registration")
    runner = widget.runner
    worker = widget.run()
    assert worker is not None and runner.running
    viewer.window.remove_dock_widget(widget)
    qtbot.waitUntil(lambda: not runner.running, timeout=60000)
    qtbot.wait(200)
    assert [layer.name for layer in viewer.layers] == ["long"]
    assert widget.transforms is None and widget.closed


def test_replace_or_keep_the_previous_result(make_napari_viewer, qtbot, wait_run, dock):
    stack, _ = make_stack("beads", n_frames=8, shape=(64, 64), drift=4, snr=8, seed=1)
    viewer = make_napari_viewer()
    viewer.add_image(stack, name="pc12")
    widget = dock(viewer, "Pyramid registration")
    assert widget.results.policy.value == REPLACE
    wait_run(widget, widget.run())
    widget.form.set_values(smooth=True, window_length=5, polyorder=2)
    wait_run(widget, widget.run())
    assert [layer.name for layer in viewer.layers] == ["pc12", "pc12 registered (pyramid, smoothed 5/2)"]
    widget.results.policy.value = KEEP
    widget.form.smooth.value = False
    wait_run(widget, widget.run())
    assert [layer.name for layer in viewer.layers] == [
        "pc12",
        "pc12 registered (pyramid, smoothed 5/2)",
        "pc12 registered (pyramid)",
    ]


def test_the_copied_command_and_python_give_the_widgets_transforms(
    make_napari_viewer, qtbot, wait_run, dock, tmp_path, monkeypatch
):
    stack, _ = make_stack("texture", n_frames=10, shape=(80, 80), drift=5, snr=8, seed=4)
    path = tmp_path / "pc12.tif"
    tifffile.imwrite(path, stack)
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(path), plugin="napari-stackalign")
    widget = dock(viewer, "Pyramid registration")
    widget.layer.value = layer
    widget.form.set_values(num_frames=5, downsample_rates="1/4, 1/2, 1", iterate=2, smooth=True, window_length=5)
    wait_run(widget, widget.run())
    ours = widget.transforms
    command = widget.results.copy("command")
    python = widget.results.copy("python")
    from qtpy.QtWidgets import QApplication

    assert QApplication.clipboard().text() == python

    argv = shlex.split(command)
    assert argv[:2] == ["stackalign", "register"]
    monkeypatch.chdir(tmp_path)
    assert stackalign([*argv[1:], "-q"]) == 0
    table = FrameTransforms.load(argv[argv.index("--transforms") + 1])
    assert table.allclose(ours, atol=1e-9)

    scope: dict = {}
    exec(python, scope)  # noqa: S102 - the snippet the widget offers to copy
    assert scope["transforms"].allclose(ours, atol=1e-9)
    np.testing.assert_array_equal(scope["registered"], viewer.layers[-1].data)
