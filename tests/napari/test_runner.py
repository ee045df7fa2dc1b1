"""TaskRunner: work runs off the GUI thread, reports progress, cancels, and
turns user errors into notifications instead of tracebacks."""

import threading
import time

import numpy as np
import pytest

from napari_stackalign import FrameTransforms
from napari_stackalign.napari._layers import (
    derived_image_kwargs,
    frame_stack,
    provenance,
    transforms_from_layer,
)
from napari_stackalign.napari._runner import TaskRunner
from napari_stackalign.progress import report


def _slow(n, *, progress=None, fail=None):
    for i in range(n):
        time.sleep(0.01)
        report(progress, i + 1, n, "work")
    if fail is not None:
        raise fail
    return threading.current_thread().name


def test_runs_in_worker_and_reports_progress(qtbot):
    results = []
    runner = TaskRunner("Run", lambda: None)
    qtbot.addWidget(runner)
    runner.start(_slow, 10, on_result=results.append)
    assert not runner.run_button.isEnabled() and runner.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: not runner.running, timeout=5000)
    assert results and results[0] != threading.current_thread().name
    assert runner.status.text() == "Done."
    assert runner.run_button.isEnabled() and not runner.cancel_button.isEnabled()


def test_cancel_stops_and_adds_nothing(qtbot, monkeypatch):
    shown = []
    monkeypatch.setattr("napari_stackalign.napari._runner.show_info", shown.append)
    results = []
    runner = TaskRunner("Run", lambda: None)
    qtbot.addWidget(runner)
    runner.start(_slow, 500, on_result=results.append)
    qtbot.wait(50)
    runner.cancel()
    qtbot.waitUntil(lambda: not runner.running, timeout=5000)
    assert results == []
    assert runner.status.text() == "Cancelled."
    assert shown and "Cancelled" in shown[0]


def test_user_error_becomes_notification(qtbot, monkeypatch):
    shown = []
    monkeypatch.setattr("napari_stackalign.napari._runner.show_error", shown.append)
    runner = TaskRunner("Run", lambda: None)
    qtbot.addWidget(runner)
    runner.start(_slow, 2, on_result=lambda r: None, fail=ValueError("pick a (T, Y, X) layer"))
    qtbot.waitUntil(lambda: not runner.running, timeout=5000)
    assert shown == ["pick a (T, Y, X) layer"]


def test_derived_layer_keeps_geometry(make_napari_viewer):
    viewer = make_napari_viewer()
    layer = viewer.add_image(
        np.zeros((4, 8, 9), np.float32), name="cells", scale=(1, 0.5, 0.5), translate=(0, 3, 4),
        units=("s", "um", "um"), axis_labels=("t", "y", "x"), metadata={"source_path": "/x.tif"},
    )
    ft = FrameTransforms.identity(4)
    kwargs = derived_image_kwargs(layer, "registered", provenance("pyramid", {"a": 1}, ft))
    out = viewer.add_image(np.zeros((4, 8, 9)), **kwargs)
    assert out.name == "cells registered"
    assert tuple(out.scale) == (1, 0.5, 0.5) and tuple(out.translate) == (0, 3, 4)
    assert out.axis_labels == ("t", "y", "x")
    assert transforms_from_layer(out).allclose(ft)
    avg = derived_image_kwargs(layer, "average", None, frame_axis=False)
    assert avg["scale"] == (0.5, 0.5) and avg["axis_labels"] == ("y", "x")
    with pytest.raises(ValueError, match="time series"):
        frame_stack(viewer.add_image(np.zeros((8, 8))))


def _no_signal(*, progress=None):
    import warnings

    from napari_stackalign import NoSignalWarning

    warnings.warn("no frame has a trustworthy transform", NoSignalWarning, stacklevel=1)
    return 1


def test_a_no_signal_warning_in_the_worker_becomes_a_notification(qtbot, monkeypatch):
    shown = []
    monkeypatch.setattr("napari_stackalign.napari._runner.show_warning", shown.append)
    runner = TaskRunner("Run", lambda: None)
    qtbot.addWidget(runner)
    runner.start(_no_signal, on_result=lambda r: None)
    qtbot.waitUntil(lambda: not runner.running, timeout=5000)
    qtbot.wait(50)
    assert shown == ["no frame has a trustworthy transform"]
