"""Opening an ambiguous HDF5 file in a napari window: the dataset/axes dialog, driven like a user."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QApplication

from napari_stackalign.napari import _reader
from napari_stackalign.napari._read_dialog import ReadChoiceDialog

SIMA = Path("/work/shared/data/real/sima-2p")
PLUGIN = "napari-stackalign"


def _answer_dialog(qtbot, act):
    """When the modal dialog opens, run ``act(dialog)`` on it; returns the list of dialogs seen."""
    seen = []

    def drive():
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, ReadChoiceDialog):
            QTimer.singleShot(20, drive)
            return
        seen.append(dialog)
        act(dialog)

    QTimer.singleShot(0, drive)
    return seen


def _yxt_file(path, shape=(40, 56, 6)):
    data = np.random.default_rng(1).integers(0, 1000, shape).astype(np.uint16)
    with h5py.File(path, "w") as f:
        f["imaging"] = data
    return data


def test_dialog_proposes_yxt_and_opens_frames_along_the_last_axis(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    data = _yxt_file(tmp_path / "yxt.h5")
    texts = {}

    def accept(dialog):
        texts["preview"] = dialog.preview.text()
        texts["axes"] = dialog.axes.text()
        dialog.accept()

    seen = _answer_dialog(qtbot, accept)
    viewer.open(str(tmp_path / "yxt.h5"), plugin=PLUGIN)
    assert len(seen) == 1
    assert texts == {"axes": "YXT", "preview": "6 frames of 40 x 56"}
    assert viewer.layers[0].data.shape == (6, 40, 56)
    np.testing.assert_array_equal(np.asarray(viewer.layers[0].data), np.moveaxis(data, -1, 0))


def test_dialog_chooses_the_dataset_and_refuses_unreadable_axes(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    with h5py.File(tmp_path / "two.h5", "w") as f:
        f["small"] = np.zeros((3, 16, 16), np.uint8)
        f["big"] = np.ones((8, 32, 32), np.uint16)
    states = []

    def choose_small(dialog):
        assert dialog.choice() == ("big", "TYX")  # the largest is proposed
        assert [dialog.datasets.item(i).text() for i in range(2)] == [
            "big  8 x 32 x 32  uint16",
            "small  3 x 16 x 16  uint8",
        ]
        dialog.set_axes("YX")  # wrong number of letters: OK disabled, the reason shown
        states.append((dialog.can_accept(), dialog.preview.text()))
        dialog.select_dataset("small")
        states.append((dialog.can_accept(), dialog.preview.text()))
        dialog.accept()

    _answer_dialog(qtbot, choose_small)
    viewer.open(str(tmp_path / "two.h5"), plugin=PLUGIN)
    assert states[0][0] is False and "2 letters" in states[0][1]
    assert states[1] == (True, "3 frames of 16 x 16")
    assert viewer.layers[0].data.shape == (3, 16, 16) and viewer.layers[0].data.dtype == np.uint8


def test_cancel_opens_nothing_and_shows_no_error(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    viewer = make_napari_viewer()
    _yxt_file(tmp_path / "yxt.h5")
    shown = []
    monkeypatch.setattr(_reader, "show_error", shown.append)
    _answer_dialog(qtbot, lambda dialog: dialog.reject())
    viewer.open(str(tmp_path / "yxt.h5"), plugin=PLUGIN)
    assert len(viewer.layers) == 0 and shown == []


def test_unreadable_file_is_a_notification_that_says_what_to_do(make_napari_viewer, tmp_path, monkeypatch):
    viewer = make_napari_viewer()
    with h5py.File(tmp_path / "one.h5", "w") as f:
        f["movie"] = np.zeros((1, 16, 16), np.uint8)
        for dim, label in zip(f["movie"].dims, "tyx"):
            dim.label = label
    shown = []
    monkeypatch.setattr(_reader, "show_error", shown.append)
    viewer.open(str(tmp_path / "one.h5"), plugin=PLUGIN)
    assert len(viewer.layers) == 0
    assert len(shown) == 1 and shown[0].startswith("Could not open one.h5:") and "not a time series" in shown[0]


@pytest.mark.skipif(not (SIMA / "example.h5").exists(), reason="real data absent")
def test_sima_two_photon_file_opens_as_20_frames(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    _answer_dialog(qtbot, lambda dialog: dialog.accept())
    viewer.open(str(SIMA / "example.h5"), plugin=PLUGIN)
    layer = viewer.layers[0]
    assert layer.data.shape == (20, 128, 256)
    np.testing.assert_array_equal(np.asarray(layer.data), tifffile.imread(SIMA / "example.tif"))
