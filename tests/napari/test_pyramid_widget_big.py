"""Pyramid widget on a lazily opened (big) file: registered to disk, opened lazily, Cancel leaves no file."""

import time

import numpy as np
import pytest
from qtpy.QtCore import QTimer

import napari_stackalign.io._lazy as lazy_io  # the reader's memory probe, patched to make files "big"
from napari_stackalign.core.apply import apply_transforms
from napari_stackalign.core.pyramid import register_pyramid
from napari_stackalign.io import write_stack
from napari_stackalign.synthetic import make_stack


@pytest.fixture
def lazy_file(tmp_path, monkeypatch):
    stack, _truth = make_stack("beads", n_frames=300, shape=(256, 256), drift=12, snr=3, dtype=np.uint16, seed=3)
    path = tmp_path / "big movie.h5"
    write_stack(path, stack)
    monkeypatch.setattr(lazy_io, "total_memory", lambda: 1_000_000)  # everything counts as big
    return path, stack



def test_lazy_layer_registers_to_disk(make_napari_viewer, qtbot, lazy_file, dock):
    path, stack = lazy_file
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-stackalign")
    layer = viewer.layers[0]
    assert type(layer.data).__module__.startswith("dask")
    w = dock(viewer, "Pyramid registration")
    w.layer.value = layer
    worker = w.run()
    # the viewer stays responsive: the Qt event loop runs while the worker works
    ticks = []
    timer = QTimer(); timer.timeout.connect(lambda: ticks.append(time.perf_counter())); timer.start(20)
    with qtbot.waitSignal(worker.finished, timeout=60000):
        pass
    timer.stop()
    gaps = np.diff(ticks)
    assert len(ticks) > 5 and gaps.size  # the event loop kept running during the run
    out = layer.name + " registered (pyramid)"
    reg = viewer.layers[out]
    assert type(reg.data).__module__.startswith("dask")
    expected = register_pyramid(stack)
    np.testing.assert_array_equal(np.asarray(reg.data[100:110]), apply_transforms(stack[100:110], expected[100:110]))
    assert (path.parent / "big movie registered.h5").exists()
    assert reg.metadata["stackalign"]["params"]["output"].endswith("big movie registered.h5")


def test_cancel_leaves_no_file(make_napari_viewer, qtbot, lazy_file, dock):
    path, _stack = lazy_file
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-stackalign")
    layer = viewer.layers[0]
    w = dock(viewer, "Pyramid registration")
    w.layer.value = layer
    worker = w.run()
    qtbot.wait(300)
    w.runner.cancel()
    with qtbot.waitSignal(worker.finished, timeout=20000):
        pass
    assert sorted(p.name for p in path.parent.iterdir()) == ["big movie.h5"]
    assert len(viewer.layers) == 1
