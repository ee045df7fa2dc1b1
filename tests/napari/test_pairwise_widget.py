"""The "Pairwise averaging" widget in a real viewer: preview, run, layers and
metadata against ground truth, instant outlier re-evaluation, update, save."""

import os
import shlex
import tempfile
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_stackalign import FrameTransforms
from napari_stackalign import synthetic as pairwise_scenes
from napari_stackalign.cli import main as stackalign
from napari_stackalign.core.pairwise import (
    PAIRWISE_DEFAULTS,
    PairwiseOptions,
    read_pairwise_tiff,
)
from napari_stackalign.napari._forms import tooltip
from napari_stackalign.napari._pairwise_widget import (
    mask_setting,
    outlier_method,
    parse_frame_list,
)
from napari_stackalign.synthetic import alignment_error

# screenshots go into docs/images only when asked (STACKALIGN_DOCS_SCREENSHOTS=1),
# so a test run never changes tracked files
DOCS = (
    Path(__file__).resolve().parents[2] / "docs" / "images"
    if os.environ.get("STACKALIGN_DOCS_SCREENSHOTS")
    else Path(tempfile.gettempdir()) / "stackalign-screenshots"
)


#: the results' names with the mask these tests set (hann, n = 2)
AVERAGE = "stem average (pairwise, hann mask n=2)"
REGISTERED = "stem registered (pairwise, hann mask n=2)"


@pytest.fixture
def scene():
    stack, truth = pairwise_scenes.stem_stack(10, (128, 128), snr=1.0, seed=4)
    rng = np.random.default_rng(0)
    stack[6] = rng.poisson(stack[6].mean(), stack[6].shape)  # a frame of pure noise
    return stack, truth


def _widget(make_napari_viewer, scene, **layer_kw):
    viewer = make_napari_viewer()
    layer = viewer.add_image(scene[0], name="stem", scale=(1.0, 0.5, 0.5), translate=(0, 10, 20), **layer_kw)
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-stackalign", "Pairwise averaging")
    widget.layer.value = layer
    widget.mask_kind.value = "hann"  # the fixed mask these tests were written for (default: auto)
    widget.n.value = 2.0
    return viewer, layer, widget


def _run(qtbot, widget):
    worker = widget.run()
    assert worker is not None
    # the runner keeps its worker until the finished signal reached the GUI
    # thread (waiting on the signal itself can miss a fast worker)
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=60_000)
    assert widget.runner.status.text() == "Done.", widget.runner.status.text()


def test_run_adds_average_with_metadata(make_napari_viewer, qtbot, scene):
    stack, truth = scene
    viewer, layer, widget = _widget(make_napari_viewer, scene)
    widget.add_registered.value = True
    _run(qtbot, widget)
    res = widget.result
    avg = viewer.layers[AVERAGE]
    reg = viewer.layers[REGISTERED]
    r0, r1, c0, c1 = res.crop
    assert avg.data.shape == (r1 - r0, c1 - c0) and avg.data.dtype == np.float32
    np.testing.assert_allclose(avg.scale, (0.5, 0.5))
    np.testing.assert_allclose(avg.translate, (10 + 0.5 * r0, 20 + 0.5 * c0))
    block = avg.metadata["stackalign"]
    assert block["method"] == "pairwise" and block["crop"] == [r0, r1, c0, c1]
    assert block["params"]["n"] == 2.0 and block["params"]["mask"] == "hann"
    assert 6 not in block["frames_averaged"]
    assert reg.data.shape == stack.shape
    # the noise frame is rejected; the others match the ground truth
    assert not res.frame_ok[6] and res.frame_ok.sum() == 9
    good = res.frame_ok
    assert alignment_error(res.transforms[good], truth[good])["rms"] < 0.08
    assert np.array_equal(layer.data, stack)  # input untouched
    assert widget.matrices.has_plot and "outlier" in widget.summary.text()


def test_reevaluate_is_instant_and_update_average(make_napari_viewer, qtbot, scene):
    viewer, _layer, widget = _widget(make_napari_viewer, scene)
    _run(qtbot, widget)
    first = widget.result
    n_out = int(first.outliers.sum())
    widget.threshold.value = 0.05  # strict: many more outliers, no recomputation
    strict = widget.result
    assert strict is not first and int(strict.outliers.sum()) > n_out
    np.testing.assert_array_equal(strict.dy, first.dy)
    assert widget.update_button.isEnabled() and "Update average" in widget.summary.text()
    widget.outlier_method.value = "none"
    assert widget.result.params["threshold"] is None
    widget.outlier_method.value = "nearest neighbour"
    assert widget.result.params["max_shift"] == pytest.approx(widget.max_shift.value)
    widget.outlier_method.value = "transitivity"
    widget.threshold.value = 2.0
    widget.bad_frames.value = "2, 6"
    widget.bad_frames.native.editingFinished.emit()
    assert widget.result.bad_frames == (2, 6) and not widget.result.frame_ok[[2, 6]].any()
    before = len(viewer.layers)
    widget.update_average()
    # the runner keeps its worker until the finished signal reached the GUI
    # thread (waiting on the signal itself can miss a fast worker)
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=60_000)
    assert len(viewer.layers) == before  # the average layer is updated, not duplicated
    avg = viewer.layers[AVERAGE]
    assert 2 not in avg.metadata["stackalign"]["frames_averaged"]
    assert not widget.update_button.isEnabled()


def test_threshold_that_changes_no_outlier_keeps_the_average(make_napari_viewer, qtbot, scene, tmp_path):
    _viewer, _layer, widget = _widget(make_napari_viewer, scene)
    _run(qtbot, widget)
    first = widget.result
    # the smallest step that changes nothing: the same outliers, the same shifts
    widget.threshold.value = widget.threshold.value + 0.01
    moved = widget.result
    assert np.array_equal(moved.outliers, first.outliers) and moved.average is first.average
    assert moved.params["threshold"] == pytest.approx(widget.threshold.value)
    assert "Update average" not in widget.summary.text()
    assert widget.tiff_button.isEnabled() and widget.report_button.isEnabled()
    assert not widget.update_button.isEnabled()
    # a change that moves the outliers makes the average stale: saving waits for Update average
    widget.threshold.value = 0.05
    assert widget.result.average is None and "press Update average" in widget.summary.text()
    assert not widget.tiff_button.isEnabled() and not widget.report_button.isEnabled()
    assert "Update average first" in widget.report_button.toolTip()
    with pytest.raises(ValueError, match="press Update average, then save"):
        widget.save_report(tmp_path / "r.pdf")
    with pytest.raises(ValueError, match="press Update average, then save"):
        widget.save_tiff(tmp_path / "a.tif")


def test_matrix_titles_and_colour_bars_fit(make_napari_viewer, qtbot, scene):
    _viewer, _layer, widget = _widget(make_napari_viewer, scene)
    _run(qtbot, widget)
    fig = widget.matrices.figure
    fig.canvas.draw()
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["Vertical shift (rows, px)", "Horizontal shift (columns, px)"]
    renderer = fig.canvas.get_renderer()
    width, height = fig.bbox.width, fig.bbox.height
    for ax in fig.axes:  # the matrices and their colour bars, with every tick label
        box = ax.get_tightbbox(renderer)
        assert box.x0 >= -1 and box.x1 <= width + 1 and box.y0 >= -1 and box.y1 <= height + 1, ax


def test_preview_updates_with_mask(make_napari_viewer, qtbot, scene):
    _stack, truth = scene
    _viewer, _layer, widget = _widget(make_napari_viewer, scene)
    widget.frame_i.setValue(0)
    widget.frame_j.setValue(4)
    prev = widget.update_preview()
    c = truth.shifts
    assert prev.peak == (pytest.approx(round(c[0, 0] - c[4, 0]), abs=1), pytest.approx(round(c[0, 1] - c[4, 1]), abs=1))
    hann = prev.mask.copy()
    widget.mask_kind.value = "bandpass"
    prev2 = widget.update_preview()
    assert prev2.mask[prev2.mask.shape[0] // 2, prev2.mask.shape[1] // 2] == 0  # bandpass: no DC
    widget.mask_kind.value = "hann"
    widget.n.value = 6.0
    prev3 = widget.update_preview()
    assert (prev3.mask > 0).sum() < (hann > 0).sum()
    assert widget.last_preview_ms < 2000  # computed in the GUI thread for small frames
    assert "shift of frame 4 relative to frame 0" in widget.preview_status.text()
    # a change schedules a preview through the timer
    widget.n.value = 3.0
    qtbot.waitUntil(lambda: widget.preview.last is not prev3, timeout=3000)


def test_save_report_and_tiff(make_napari_viewer, qtbot, scene, tmp_path):
    viewer, _layer, widget = _widget(make_napari_viewer, scene)
    with pytest.raises(ValueError, match="run the registration first"):
        widget.save_report(tmp_path / "r.pdf")
    _run(qtbot, widget)
    pdf = widget.save_report(tmp_path / "r.pdf")
    assert pdf.read_bytes()[:4] == b"%PDF"
    tif = widget.save_tiff(tmp_path / "avg.tif")
    image, record = read_pairwise_tiff(tif)
    np.testing.assert_allclose(image, viewer.layers[AVERAGE].data)
    np.testing.assert_allclose(record["dy"], widget.result.dy)


def test_bad_input_is_a_notification(make_napari_viewer, qtbot, monkeypatch, dock):
    shown = []
    monkeypatch.setattr("napari_stackalign.napari._pairwise_widget.notify_user_error", shown.append)
    viewer = make_napari_viewer()
    widget = dock(viewer, "Pairwise averaging")
    assert widget.run() is None and "choose an image layer" in str(shown[-1])
    viewer.add_image(np.zeros((32, 32)), name="single")  # 2-D: not offered
    assert len(widget.layer.choices) == 0
    viewer.add_image(np.random.default_rng(0).random((4, 48, 48)), name="tiny")
    widget.bad_frames.value = "1, x"
    assert widget.run() is None and "frame numbers" in str(shown[-1])
    widget.bad_frames.value = "9"
    assert widget.run() is None and "outside the stack" in str(shown[-1])
    assert parse_frame_list("3; 7 ,1") == [1, 3, 7]


def test_screenshot(make_napari_viewer, qtbot, scene):
    stack, truth = pairwise_scenes.stem_stack(16, (256, 256), snr=0.6, seed=13)
    stack[11] = np.random.default_rng(1).poisson(stack[11].mean(), stack[11].shape)  # shows rejected pairs
    viewer, layer, widget = _widget(make_napari_viewer, (stack, truth))
    widget.frame_j.setValue(9)
    widget.update_preview()
    _run(qtbot, widget)
    viewer.layers[AVERAGE].visible = True
    layer.visible = False
    qtbot.wait(200)
    DOCS.mkdir(parents=True, exist_ok=True)
    path = DOCS / "pairwise_widget.png"
    widget.body.grab().save(str(path))  # the whole panel, not just the scrolled view
    assert path.stat().st_size > 10_000
    assert not widget.result.frame_ok[11] and widget.result.outliers[11].sum() >= 14


def test_cancel_adds_nothing(make_napari_viewer, qtbot):
    stack, _ = pairwise_scenes.stem_stack(40, (128, 128), snr=1.0, seed=14)
    viewer, _layer, widget = _widget(make_napari_viewer, (stack, None))
    before = len(viewer.layers)
    widget.run()
    widget.runner.cancel()
    # the runner keeps its worker until the finished signal reached the GUI
    # thread (waiting on the signal itself can miss a fast worker)
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=60_000)
    assert widget.runner.status.text() == "Cancelled."
    assert len(viewer.layers) == before and widget.result is None


def test_forms_are_remembered(make_napari_viewer, dock):
    """Each section keeps the user's last values (magicgui persist); layers are not stored."""
    first = dock(make_napari_viewer(), "Pairwise averaging")
    first.mask_kind.value = "elliptical"
    first.n2.value = 3.5
    first.maxima.value = "dft"
    first.outlier_method.value = "both"
    first.weights.value = "equal"
    first.average_method.value = "warp"
    second = dock(make_napari_viewer(), "Pairwise averaging")
    opts = second.options()
    assert (opts.mask, opts.n2, opts.maxima, opts.weights, opts.average) == ("elliptical", 3.5, "dft", "equal", "warp")
    assert second.outlier_method.value == "both" and opts.max_shift is not None
    assert second.n2.enabled and second.max_shift.enabled


def test_form_starts_at_the_options_defaults(make_napari_viewer, dock):
    viewer = make_napari_viewer()
    widget = dock(viewer, "Pairwise averaging")
    assert widget.options() == PairwiseOptions()
    assert widget.parameters() == PairwiseOptions().to_dict()
    assert widget.outlier_method.value == outlier_method(PAIRWISE_DEFAULTS.threshold, PAIRWISE_DEFAULTS.max_shift)
    specs = PairwiseOptions.specs()
    for name in ("num_peaks", "window_radius", "upsample", "maxpaths"):
        box = getattr(widget, name)
        assert (box.min, box.max) == (specs[name].minimum, specs[name].maximum), name
        assert box.value == PairwiseOptions.default(name)
    for name in ("sigma_guess", "threshold", "max_shift"):
        box = getattr(widget, name)
        assert specs[name].minimum < box.min <= specs[name].minimum + 0.1 and box.max == specs[name].maximum
    assert widget.n.min == specs["n"].minimum and widget.n2.min == specs["n2"].minimum
    for box, name in ((widget.maxima, "maxima"), (widget.correlation, "correlation"), (widget.weights, "weights")):
        assert list(box.choices) == list(specs[name].choices)
        assert box.tooltip == tooltip(PairwiseOptions, name)
    assert widget.n.tooltip == tooltip(PairwiseOptions, "n")
    # the default auto mask takes its band from the stack's spectrum: the size boxes do not apply
    assert widget.mask_kind.value == "auto"
    assert not widget.n.enabled and not widget.n2.enabled and not widget.theta.enabled
    widget.mask_kind.value = "hann"
    assert widget.n.enabled and not widget.n2.enabled
    # a bad value in the form is refused when the options are built
    widget.mask_kind.value = "elliptical"
    widget.n2.value = 3.0
    widget.theta.value = 30.0
    opts = widget.options()
    assert (opts.mask, opts.n2, opts.theta) == ("elliptical", 3.0, 30.0)
    widget.bad_frames.value = "-1"
    with pytest.raises(ValueError):
        widget.options(5)


def test_each_form_sits_in_its_titled_box(make_napari_viewer, dock):
    widget = dock(make_napari_viewer(), "Pairwise averaging")
    for form, title in (
        (widget.mask_form, "Fourier mask (live preview)"),
        (widget.peaks_form, "Correlation and peaks"),
        (widget.outlier_form, "Outliers (applied at once, no recomputation)"),
        (widget.average_form, "Average"),
    ):
        assert form.native.parent().title() == title


def test_results_are_named_by_mask_and_a_rerun_replaces_or_keeps(make_napari_viewer, qtbot, scene):
    from napari_stackalign.napari._results import KEEP

    viewer, _layer, widget = _widget(make_napari_viewer, scene)
    widget.add_registered.value = True
    _run(qtbot, widget)
    names = [lay.name for lay in viewer.layers]
    assert names == ["stem", AVERAGE, REGISTERED]
    _run(qtbot, widget)  # replace (the default): the same layers again, not duplicated
    assert [lay.name for lay in viewer.layers] == names
    widget.results.policy.value = KEEP
    widget.mask_kind.value = "auto"
    _run(qtbot, widget)
    assert [lay.name for lay in viewer.layers] == [
        *names, "stem average (pairwise, auto mask)", "stem registered (pairwise, auto mask)"
    ]
    compare = widget.results.compare_with_input()
    assert compare is not None and widget.results.pair == ("stem", "stem registered (pairwise, auto mask)")
    assert mask_setting(PairwiseOptions(mask="elliptical", n=6, n2=2, theta=60)) == "elliptical mask n=6/2 at 60°"
    assert mask_setting(PairwiseOptions(mask="none")) == "no mask"


def test_the_copied_command_and_python_give_the_widgets_shifts(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    stack, _truth = pairwise_scenes.stem_stack(8, (96, 96), snr=1.5, seed=7)
    path = tmp_path / "stem.tif"
    tifffile.imwrite(path, stack.astype(np.float32))
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(path), plugin="napari-stackalign")
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-stackalign", "Pairwise averaging")
    widget.layer.value = layer
    widget.mask_kind.value = "hann"
    widget.n.value = 2.5
    widget.maxima.value = "gf"
    widget.bad_frames.value = "3"
    widget.add_registered.value = True
    _run(qtbot, widget)
    ours = widget.result.transforms
    command = widget.results.copy("command")
    python = widget.results.copy("python")
    argv = shlex.split(command)
    assert argv[:2] == ["stackalign", "average"] and argv[argv.index("-i") + 1] == str(path)
    assert "--n" in argv and "--maxima" in argv and argv[argv.index("--bad-frames") + 1] == "3"
    monkeypatch.chdir(tmp_path)
    assert stackalign([*argv[1:], "-q"]) == 0
    table = FrameTransforms.load(argv[argv.index("--transforms") + 1])
    assert table.allclose(ours, atol=1e-9)
    registered = tifffile.imread(argv[argv.index("--registered") + 1])
    np.testing.assert_allclose(registered, viewer.layers[-1].data, atol=1e-4)

    scope: dict = {}
    exec(python, scope)  # noqa: S102 - the snippet the widget offers to copy
    assert scope["transforms"].allclose(ours, atol=1e-9)
    np.testing.assert_allclose(scope["average"], viewer.layers["stem average (pairwise, hann mask n=2.5)"].data)
