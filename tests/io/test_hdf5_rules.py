"""Which HDF5 dataset is the stack, its axes and calibration, and HyperSpy files."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from napari_stackalign import FrameTransforms
from napari_stackalign.io import read_stack


def _data(shape=(4, 12, 16), dtype=np.uint16, seed=0):
    return np.random.default_rng(seed).integers(0, 1000, size=shape).astype(dtype)


def test_image_data_and_metadata_group(tmp_path):
    """The seed-000 layout: image_data (T, Y, X) plus a metadata group of JSON attributes."""
    data = _data()
    with h5py.File(tmp_path / "seed.h5", "w") as f:
        f["image_data"] = data
        f["other_stack"] = _data(seed=1)  # ignored: image_data wins
        g = f.create_group("metadata")
        g.attrs["exposure"] = json.dumps(0.05)
        g.attrs["settings"] = json.dumps({"binning": 2})
        g.attrs["comment"] = "plain text, not JSON"
    s = read_stack(tmp_path / "seed.h5")
    np.testing.assert_array_equal(s.data, data)
    assert s.metadata["exposure"] == 0.05
    assert s.metadata["settings"] == {"binning": 2}
    assert s.metadata["comment"] == "plain text, not JSON"
    assert s.metadata["hdf5"]["dataset"] == "image_data"


def test_only_dataset_with_three_dims(tmp_path):
    data = _data()
    with h5py.File(tmp_path / "one.h5", "w") as f:
        f["group/movie"] = data
        f["timestamps"] = np.arange(4.0)
        f["background"] = np.zeros((12, 16))
    s = read_stack(tmp_path / "one.h5")
    np.testing.assert_array_equal(s.data, data)
    assert s.metadata["hdf5"]["dataset"] == "group/movie"


def test_ambiguous_lists_candidates_and_named_dataset_works(tmp_path):
    a, b = _data(seed=1), _data(shape=(6, 8, 8), seed=2)
    with h5py.File(tmp_path / "two.h5", "w") as f:
        f["raw"] = a
        f["processed/denoised"] = b
    with pytest.raises(ValueError) as err:
        read_stack(tmp_path / "two.h5")
    message = str(err.value)
    assert "'raw' (4, 12, 16)" in message and "'processed/denoised' (6, 8, 8)" in message
    assert "dataset=NAME" in message and "--dataset" in message
    np.testing.assert_array_equal(read_stack(tmp_path / "two.h5", dataset="processed/denoised").data, b)
    np.testing.assert_array_equal(read_stack(tmp_path / "two.h5", dataset="/raw").data, a)


def test_named_dataset_missing(tmp_path):
    with h5py.File(tmp_path / "m.h5", "w") as f:
        f["raw"] = _data()
    with pytest.raises(ValueError, match=r"no dataset named 'nope'.*'raw' \(4, 12, 16\)"):
        read_stack(tmp_path / "m.h5", dataset="nope")


def test_no_usable_dataset(tmp_path):
    with h5py.File(tmp_path / "none.h5", "w") as f:
        f["timestamps"] = np.arange(10.0)
        f.create_group("empty")
    with pytest.raises(ValueError, match=r"no usable image stack.*'timestamps' \(10,\).*image_data"):
        read_stack(tmp_path / "none.h5")


def test_single_2d_image_in_hdf5(tmp_path):
    with h5py.File(tmp_path / "img.h5", "w") as f:
        f["image"] = _data(shape=(32, 32))
    with pytest.raises(ValueError, match="single 2-D image.*time series"):
        read_stack(tmp_path / "img.h5")


def test_yxt_order_needs_axes_and_warns_without(tmp_path):
    """Like sima's example.h5: (rows, cols, frames) without labels."""
    data = _data(shape=(5, 40, 48))
    with h5py.File(tmp_path / "yxt.h5", "w") as f:
        f["imaging"] = np.moveaxis(data, 0, -1)
    with pytest.warns(UserWarning, match="axes='YXT'"):
        guessed = read_stack(tmp_path / "yxt.h5")
    assert guessed.shape == (40, 48, 5)
    s = read_stack(tmp_path / "yxt.h5", axes="yxt")
    np.testing.assert_array_equal(s.data, data)
    lazy = read_stack(tmp_path / "yxt.h5", axes="YXT", lazy=True)
    np.testing.assert_array_equal(np.asarray(lazy.data), data)
    lazy.close()


def test_dimension_labels_and_element_size(tmp_path):
    data = _data(shape=(3, 2, 10, 12))
    with h5py.File(tmp_path / "lab.h5", "w") as f:
        ds = f.create_dataset("stack", data=np.moveaxis(data, 1, -1))  # t, y, x, c
        for dim, label in zip(ds.dims, "tyxc"):
            dim.label = label
        ds.attrs["element_size_um"] = [0.3, 0.2]
    s = read_stack(tmp_path / "lab.h5")
    assert s.axes == "TCYX"
    np.testing.assert_array_equal(s.data, data)
    assert s.units == "µm" and s.pixel_size == pytest.approx((0.3, 0.2))


def test_four_dims_without_labels_asks_for_axes(tmp_path):
    with h5py.File(tmp_path / "4d.h5", "w") as f:
        f["x"] = _data(shape=(3, 2, 8, 8))
    with pytest.raises(ValueError, match="axis order is unknown.*axes="):
        read_stack(tmp_path / "4d.h5")
    assert read_stack(tmp_path / "4d.h5", axes="TCYX").axes == "TCYX"


def _write_hspy(path, data, scale, units, names=("z", "y", "x"), navigate=(True, False, False)):
    with h5py.File(path, "w") as f:
        f.attrs["file_format"] = "HyperSpy"
        f.attrs["file_format_version"] = "3.0"
        exp = f.create_group("Experiments/movie")
        exp.create_dataset("data", data=data, compression="gzip")
        for i, (name, nav) in enumerate(zip(names, navigate)):
            ax = exp.create_group(f"axis-{i}")
            ax.attrs["name"] = name
            ax.attrs["navigate"] = np.bool_(nav)
            ax.attrs["size"] = data.shape[i]
            ax.attrs["scale"] = 1.0 if nav else scale
            ax.attrs["offset"] = 0.0
            ax.attrs["units"] = "" if nav else units
        meta = exp.create_group("metadata/General")
        meta.attrs["title"] = "movie"
        meta.attrs["original_filename"] = "movie.dm3"


def test_hyperspy_file(tmp_path):
    data = _data(shape=(5, 16, 16))
    _write_hspy(tmp_path / "m.hspy", data, 0.0092, "nm")
    s = read_stack(tmp_path / "m.hspy")
    np.testing.assert_array_equal(s.data, data)
    assert s.axes == "TYX" and s.units == "nm"
    assert s.pixel_size == pytest.approx((0.0092, 0.0092))
    assert s.metadata["hyperspy"]["General"]["original_filename"] == "movie.dm3"


def test_hyperspy_two_navigation_axes_refused(tmp_path):
    _write_hspy(
        tmp_path / "nav2.hspy",
        _data(shape=(3, 4, 8, 8)),
        0.1,
        "nm",
        names=("t", "z", "y", "x"),
        navigate=(True, True, False, False),
    )
    with pytest.raises(ValueError, match="2 frame-like axes"):
        read_stack(tmp_path / "nav2.hspy")


def test_transforms_table_is_read_from_foreign_layout(tmp_path):
    """A transforms group next to image_data (as write_stack makes it) is read back."""
    data = _data()
    with h5py.File(tmp_path / "t.h5", "w") as f:
        f["image_data"] = data
        g = f.create_group("transforms")
        g["dy"] = np.array([0.0, 1.0, 2.0, 3.0])
        g["dx"] = np.array([0.0, -1.0, -2.0, -3.0])
        g.attrs["method"] = json.dumps("manual")
    s = read_stack(tmp_path / "t.h5")
    assert s.transforms.allclose(FrameTransforms(dy=[0, 1, 2, 3], dx=[0, -1, -2, -3]))
    assert s.transforms.method == "manual"


def test_transforms_length_mismatch(tmp_path):
    with h5py.File(tmp_path / "bad_t.h5", "w") as f:
        f["image_data"] = _data()
        g = f.create_group("transforms")
        g["dy"] = np.zeros(3)
        g["dx"] = np.zeros(3)
    with pytest.raises(ValueError, match="3 rows but the stack has 4 frames"):
        read_stack(tmp_path / "bad_t.h5")
