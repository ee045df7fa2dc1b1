"""Volumes over time through the napari reader: (T, Z, Y, X) and (T, C, Z, Y, X) files as layers with their Z step."""

from __future__ import annotations

import h5py
import npe2
import numpy as np
import pytest
import tifffile
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QApplication

from napari_stackalign.io import write_stack
from napari_stackalign.napari._read_dialog import ReadChoiceDialog

PLUGIN = "napari-stackalign"


@pytest.fixture(autouse=True)
def _installed_plugin():
    npe2.PluginManager.instance().discover(include_npe1=False)


def _volumes(shape=(4, 6, 24, 20), seed=0):
    return np.random.default_rng(seed).integers(0, 1000, size=shape).astype(np.uint16)


def _read(path):
    return npe2.read([str(path)], stack=False, plugin_name=PLUGIN)


def test_imagej_hyperstack_opens_as_one_tzyx_layer_with_the_z_step(tmp_path):
    data = _volumes()
    path = write_stack(tmp_path / "vol.tif", data, axes="TZYX", scale=(1.0, 2.5, 0.5, 0.5), units="µm")
    [(layer_data, kwargs, layer_type)] = _read(path)
    assert layer_type == "image"
    np.testing.assert_array_equal(np.asarray(layer_data), data)
    assert kwargs["axis_labels"] == ("t", "z", "y", "x")
    assert kwargs["scale"] == (1.0, 2.5, 0.5, 0.5)
    assert kwargs["units"] == ("pixel", "µm", "µm", "µm")
    assert "channel_axis" not in kwargs


def test_tczyx_hyperstack_is_split_into_one_tzyx_layer_per_channel(make_napari_viewer, tmp_path):
    data = _volumes((3, 2, 5, 20, 18))
    path = write_stack(tmp_path / "two.tif", data, axes="TCZYX", scale=(1.0, 1.0, 3.0, 0.25, 0.25), units="µm")
    viewer = make_napari_viewer()
    layers = viewer.open(str(path), plugin=PLUGIN)
    assert [layer.name for layer in layers] == ["two ch0", "two ch1"]
    for c, layer in enumerate(layers):
        assert layer.data.shape == (3, 5, 20, 18)
        np.testing.assert_array_equal(np.asarray(layer.data), data[:, c])
        np.testing.assert_allclose(layer.scale, (1.0, 3.0, 0.25, 0.25))
        assert tuple(layer.axis_labels) == ("t", "z", "y", "x")


def test_ome_tiff_volume_keeps_physical_size_z(make_napari_viewer, tmp_path):
    data = _volumes()
    path = tmp_path / "vol.ome.tif"
    tifffile.imwrite(
        path, data, metadata={"axes": "TZYX", "PhysicalSizeZ": 2.0, "PhysicalSizeX": 0.3, "PhysicalSizeY": 0.3}
    )
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(path), plugin=PLUGIN)
    assert layer.data.shape == data.shape
    np.testing.assert_allclose(layer.scale, (1.0, 2.0, 0.3, 0.3))


def test_hdf5_with_declared_axes_opens_as_volumes(tmp_path):
    data = _volumes()
    with h5py.File(tmp_path / "zt.h5", "w") as f:
        f["movie"] = np.moveaxis(data, 1, 0)  # stored (Z, T, Y, X)
        f["movie"].attrs["axes"] = "ZTYX"
    [(layer_data, kwargs, _)] = _read(tmp_path / "zt.h5")
    np.testing.assert_array_equal(np.asarray(layer_data), data)
    assert kwargs["axis_labels"] == ("t", "z", "y", "x")
    # this package's own HDF5 layout too
    path = write_stack(tmp_path / "own.h5", data, axes="TZYX")
    [(own, kwargs, _)] = _read(path)
    assert own.shape == data.shape and kwargs["axis_labels"] == ("t", "z", "y", "x")


def test_unlabelled_4d_hdf5_asks_and_reads_the_typed_tzyx(make_napari_viewer, qtbot, tmp_path):
    data = _volumes((4, 8, 20, 20))
    with h5py.File(tmp_path / "raw.h5", "w") as f:
        f["data"] = data
    seen = {}

    def drive():
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, ReadChoiceDialog):
            QTimer.singleShot(20, drive)
            return
        seen["axes"] = dialog.axes.text()
        seen["preview"] = dialog.preview.text()
        dialog.accept()

    QTimer.singleShot(0, drive)
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(tmp_path / "raw.h5"), plugin=PLUGIN)
    assert seen == {"axes": "TZYX", "preview": "4 volumes of 8 x 20 x 20 (Z x Y x X)"}
    assert layer.data.shape == data.shape and tuple(layer.axis_labels) == ("t", "z", "y", "x")


def test_2d_time_series_still_open_as_before(tmp_path):
    data = _volumes((5, 20, 24))
    path = write_stack(tmp_path / "movie.tif", data, scale=0.5, units="µm")
    [(layer_data, kwargs, _)] = _read(path)
    np.testing.assert_array_equal(np.asarray(layer_data), data)
    assert kwargs["axis_labels"] == ("t", "y", "x") and kwargs["scale"] == (1.0, 0.5, 0.5)
    tcyx = _volumes((5, 2, 20, 24))
    path = write_stack(tmp_path / "tcyx.tif", tcyx)
    layers = _read(path)
    assert len(layers) == 1 and layers[0][1]["channel_axis"] == 1  # napari splits the channels
