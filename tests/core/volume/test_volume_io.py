"""Reading and writing volumes over time: TIFF (ImageJ hyperstack) and HDF5, opt-in with volumes=True."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import tifffile

from napari_stackalign import VolumeTransforms, read_stack, write_stack


def _tczyx() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 1000, size=(3, 2, 5, 20, 24)).astype(np.uint16)


def test_imagej_hyperstack_reads_as_tczyx_with_the_z_step(tmp_path):
    data = _tczyx()
    path = tmp_path / "hyper.tif"
    tifffile.imwrite(
        path,
        np.transpose(data, (0, 2, 1, 3, 4)),
        imagej=True,
        resolution=(1 / 0.2, 1 / 0.2),
        metadata={"axes": "TZCYX", "spacing": 0.8, "unit": "um", "finterval": 2.0},
    )
    vol = read_stack(path, volumes=True)
    assert vol.axes == "TCZYX" and vol.channel_axis == 1
    np.testing.assert_array_equal(vol.data, data)
    assert vol.scale == pytest.approx((2.0, 1.0, 0.8, 0.2, 0.2))
    with pytest.raises(ValueError, match="volume over time.*volumes=True"):
        read_stack(path)  # 2-D reading refuses it


@pytest.mark.parametrize("suffix", [".tif", ".h5"])
@pytest.mark.parametrize("channels", [False, True])
def test_volumes_round_trip_with_their_transforms(tmp_path, suffix, channels):
    data = _tczyx() if channels else _tczyx()[:, 0]
    axes = "TCZYX" if channels else "TZYX"
    tf = VolumeTransforms(dz=[0.5, -1, 0], dy=[0, 1, 2], dx=[0, 0, 1.5], method="pyramid")
    scale = (1.0, 1.0, 0.5, 0.1, 0.1) if channels else (1.0, 0.5, 0.1, 0.1)
    path = write_stack(tmp_path / f"out{suffix}", data, axes=axes, scale=scale, units="µm", transforms=tf)
    back = read_stack(path, volumes=True)
    assert back.axes == axes
    np.testing.assert_array_equal(back.data, data)
    assert back.scale == pytest.approx(scale)
    assert isinstance(back.transforms, VolumeTransforms)
    np.testing.assert_allclose(back.transforms.dz, tf.dz)


def test_hdf5_with_explicit_axes(tmp_path):
    data = _tczyx()[:, 0]
    path = tmp_path / "raw.h5"
    with h5py.File(path, "w") as f:
        f["stack"] = np.transpose(data, (1, 0, 2, 3))  # stored (Z, T, Y, X)
    vol = read_stack(path, axes="ZTYX", volumes=True)
    assert vol.axes == "TZYX"
    np.testing.assert_array_equal(vol.data, data)


def test_writing_volumes_needs_the_axes_named(tmp_path):
    with pytest.raises(ValueError, match="axes must be"):
        write_stack(tmp_path / "x.tif", _tczyx(), axes="TZCYX")
    with pytest.raises(ValueError, match="needs 4-D"):
        write_stack(tmp_path / "x.tif", _tczyx(), axes="TZYX")
