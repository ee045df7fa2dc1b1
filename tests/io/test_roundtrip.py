"""write_stack -> read_stack keeps values, dtype, axes, scale, units, metadata and transforms."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import tifffile

from napari_stackalign import FrameTransforms
from napari_stackalign.io import StackData, _lazy, _tiff, read_stack, write_stack

FORMATS = [".tif", ".h5"]


def _stack(dtype, shape=(6, 24, 32), seed=0):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return (rng.standard_normal(shape) * 100).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)


def _transforms(n):
    return FrameTransforms(
        dy=np.linspace(0, 3.25, n),
        dx=-np.linspace(0, 1.5, n),
        angle=np.linspace(0, 0.5, n),
        scale=np.linspace(1, 1.01, n),
        center=(11.5, 15.5),
        quality=np.r_[np.nan, np.linspace(0.5, 1, n - 1)],
        ok=np.arange(n) % 4 != 3,
        method="pyramid",
        params={"levels": 3, "reference": "mean", "window": [1.5, None]},
    )


@pytest.mark.parametrize("suffix", FORMATS)
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.int16, np.float64, np.int32])
def test_roundtrip_values_and_dtype(tmp_path, suffix, dtype):
    data = _stack(dtype)
    path = write_stack(tmp_path / f"s{suffix}", data)
    back = read_stack(path)
    assert back.data.dtype == np.dtype(dtype)
    assert back.axes == "TYX" and back.channel_axis is None
    np.testing.assert_array_equal(back.data, data)
    assert back.scale is None and back.units is None and back.transforms is None
    assert back.metadata == {}


@pytest.mark.parametrize("suffix", FORMATS)
def test_roundtrip_tcyx_with_everything(tmp_path, suffix):
    data = _stack(np.uint16, shape=(5, 3, 20, 28))
    ft = _transforms(5)
    meta = {"sample": "HeLa", "exposure_ms": 12.5, "nested": {"a": [1, 2, 3], "b": None}, "unicode": "µm Å"}
    path = write_stack(tmp_path / f"c{suffix}", data, metadata=meta, transforms=ft, scale=(0.5, 0.25), units="um")
    back = read_stack(path)
    assert back.axes == "TCYX" and back.channel_axis == 1
    np.testing.assert_array_equal(back.data, data)
    assert back.metadata == meta
    assert back.scale == (1.0, 1.0, 0.5, 0.25)
    assert back.units == "µm"
    assert back.pixel_size == (0.5, 0.25)
    t = back.transforms
    assert t is not None and t.allclose(ft)
    np.testing.assert_array_equal(t.ok, ft.ok)
    np.testing.assert_allclose(t.quality, ft.quality, equal_nan=True)
    assert t.method == "pyramid" and t.params == ft.params and t.center == ft.center


@pytest.mark.parametrize("suffix", FORMATS)
def test_full_per_axis_scale_and_nm(tmp_path, suffix):
    data = _stack(np.float32)
    path = write_stack(tmp_path / f"n{suffix}", data, scale=(2.0, 0.0092, 0.0092), units="nanometer")
    back = read_stack(path)
    assert back.scale == pytest.approx((2.0, 0.0092, 0.0092))
    assert back.units == "nm"


def test_imagej_fields_are_readable_by_imagej_tools(tmp_path):
    """The TIFF is an ImageJ hyperstack with the calibration in ImageJ's own fields."""
    data = _stack(np.uint16, shape=(4, 2, 16, 20))
    path = write_stack(tmp_path / "ij.tif", data, scale=0.2, units="µm", metadata={"k": 1})
    with tifffile.TiffFile(path) as tif:
        assert tif.is_imagej
        assert tif.series[0].axes == "TCYX"
        ij = tif.imagej_metadata
        assert ij["unit"] == "micron" and ij["frames"] == 4 and ij["channels"] == 2
        xres = tif.pages[0].tags["XResolution"].value
        assert xres[0] / xres[1] == pytest.approx(5.0)


def test_float64_is_written_as_plain_tiff_with_json(tmp_path):
    """ImageJ cannot hold float64: a plain TIFF with the JSON description is written and read back."""
    data = _stack(np.float64)
    path = write_stack(tmp_path / "f64.tif", data, metadata={"why": "precision"}, scale=0.5, units="nm")
    with tifffile.TiffFile(path) as tif:
        assert not tif.is_imagej
        assert tif.shaped_metadata[0]["axes"] == "TYX"
    back = read_stack(path)
    np.testing.assert_array_equal(back.data, data)
    assert back.metadata == {"why": "precision"} and back.units == "nm" and back.pixel_size == (0.5, 0.5)


@pytest.mark.parametrize(
    ("suffix", "compression"), [(".tif", "zlib"), (".h5", "lzf"), (".h5", "none"), (".h5", "gzip")]
)
def test_compression_options_roundtrip(tmp_path, suffix, compression):
    data = _stack(np.uint16)
    path = write_stack(tmp_path / f"z{suffix}", data, compression=compression)
    np.testing.assert_array_equal(read_stack(path).data, data)


def test_hdf5_layout(tmp_path):
    data = _stack(np.uint16, shape=(7, 16, 16))
    ft = _transforms(7)
    path = write_stack(tmp_path / "layout.h5", data, metadata={"a": {"b": 1}}, transforms=ft)
    with h5py.File(path, "r") as f:
        ds = f["image_data"]
        assert ds.chunks[1:] == (16, 16) and ds.compression == "gzip"
        assert [d.label for d in ds.dims] == ["t", "y", "x"]
        assert f["metadata"].attrs["a"] == '{"b": 1}'
        np.testing.assert_allclose(f["transforms/dy"][()], ft.dy)
        np.testing.assert_array_equal(f["transforms/frame"][()], np.arange(7))


def test_large_metadata_value_goes_to_a_dataset(tmp_path):
    """HDF5 attributes are limited to 64 KiB; big values are stored as string datasets."""
    big = {"positions": np.arange(20000).tolist()}
    path = write_stack(tmp_path / "big.h5", _stack(np.uint8), metadata={"big": big})
    assert read_stack(path).metadata == {"big": big}


@pytest.mark.parametrize("suffix", FORMATS)
def test_stackdata_roundtrip(tmp_path, suffix):
    data = _stack(np.uint16)
    first = write_stack(
        tmp_path / f"a{suffix}", data, metadata={"x": 1}, transforms=_transforms(6), scale=0.3, units="nm"
    )
    src = read_stack(first)
    second = write_stack(tmp_path / f"b{suffix}", src)
    back = read_stack(second)
    np.testing.assert_array_equal(back.data, data)
    assert back.metadata == {"x": 1} and back.units == "nm" and back.pixel_size == pytest.approx((0.3, 0.3))
    assert back.transforms.allclose(src.transforms)


class RecordingArray:
    """A frame-indexable array recording every read (to prove streaming)."""

    def __init__(self, data):
        self._data = data
        self.shape = data.shape
        self.dtype = data.dtype
        self.ndim = data.ndim
        self.reads: list[tuple[int, int]] = []

    def __getitem__(self, key):
        if isinstance(key, tuple):
            key = key[0]
        if isinstance(key, slice):
            start, stop, _ = key.indices(self.shape[0])
            self.reads.append((start, stop))
        else:
            self.reads.append((int(key), int(key) + 1))
        return self._data[key]


@pytest.mark.parametrize("suffix", FORMATS)
def test_write_streams_chunk_by_chunk(tmp_path, suffix, monkeypatch):
    data = _stack(np.uint16, shape=(10, 16, 16))
    frame_bytes = 16 * 16 * 2
    monkeypatch.setattr(_lazy, "ITER_CHUNK_BYTES", 3 * frame_bytes)
    rec = RecordingArray(data)
    path = write_stack(tmp_path / f"stream{suffix}", rec)
    assert max(stop - start for start, stop in rec.reads) <= 3
    assert sorted(rec.reads) == [(0, 3), (3, 6), (6, 9), (9, 10)]
    np.testing.assert_array_equal(read_stack(path).data, data)


@pytest.mark.parametrize("suffix", FORMATS)
def test_write_dask_never_computes_whole(tmp_path, suffix, monkeypatch):
    da = pytest.importorskip("dask.array")
    data = _stack(np.float32, shape=(8, 16, 16))
    monkeypatch.setattr(_lazy, "ITER_CHUNK_BYTES", 2 * 16 * 16 * 4)
    rec = RecordingArray(data)
    lazy = da.from_array(rec, chunks=(1, 16, 16), meta=np.empty((0, 0, 0), np.float32)) * 2
    path = write_stack(tmp_path / f"dask{suffix}", lazy)
    assert all(stop - start == 1 for start, stop in rec.reads)
    assert len(rec.reads) == 8  # each frame read once, through 2-frame slices of the graph
    np.testing.assert_array_equal(read_stack(path).data, data * 2)


def test_write_h5py_dataset_input(tmp_path):
    data = _stack(np.uint16)
    with h5py.File(tmp_path / "src.h5", "w") as f:
        f["x"] = data
    with h5py.File(tmp_path / "src.h5", "r") as f:
        path = write_stack(tmp_path / "from_h5.tif", f["x"])
    np.testing.assert_array_equal(read_stack(path).data, data)


def test_progress_reports_reach_total(tmp_path, monkeypatch):
    monkeypatch.setattr(_lazy, "ITER_CHUNK_BYTES", 16 * 16)
    calls = []
    write_stack(
        tmp_path / "p.h5", _stack(np.uint8, shape=(5, 16, 16)), progress=lambda d, t, s: calls.append((d, t, s))
    )
    assert calls[-1][:2] == (5, 5) and [c[0] for c in calls] == sorted(c[0] for c in calls)
    assert "p.h5" in calls[0][2]


def test_stackdata_properties_and_close(tmp_path):
    path = write_stack(tmp_path / "c.h5", _stack(np.uint8), scale=0.5, units="µm")
    with read_stack(path, lazy=True) as s:
        assert isinstance(s, StackData)
        assert s.shape == (6, 24, 32) and s.n_frames == 6 and s.dtype == np.uint8 and s.lazy
        assert s.pixel_size == (0.5, 0.5)
    assert s._handles == []


def test_bigtiff_path_is_plain_tiff(tmp_path, monkeypatch):
    """Files over 4 GiB are written as plain BigTIFF (ImageJ hyperstacks cannot be BigTIFF)."""
    monkeypatch.setattr(_tiff, "BIGTIFF_BYTES", 0)
    data = _stack(np.uint16)
    path = write_stack(tmp_path / "big.tif", data, scale=0.5, units="µm", metadata={"a": 1})
    with tifffile.TiffFile(path) as tif:
        assert tif.is_bigtiff and not tif.is_imagej
    back = read_stack(path)
    np.testing.assert_array_equal(back.data, data)
    assert back.metadata == {"a": 1} and back.units == "µm" and back.pixel_size == (0.5, 0.5)
