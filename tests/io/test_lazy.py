"""Big files open lazily (dask, chunked by frames); contrast limits come from a few frames."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_stackalign.io import (
    FrameReader,
    estimate_contrast_limits,
    is_dask,
    lazy_array,
    read_stack,
    total_memory,
    write_stack,
)
from napari_stackalign.io._lazy import decide_lazy

da = pytest.importorskip("dask.array")

TINY = 1e-12  # a memory budget every file exceeds


def _data(shape=(9, 20, 24), seed=0):
    return np.random.default_rng(seed).integers(0, 60000, size=shape).astype(np.uint16)


def _is_dask(x):
    return isinstance(x, da.Array)


@pytest.mark.parametrize("kind", ["tiff-memmap", "tiff-compressed", "imagej-tcyx-compressed", "hdf5", "ome-tcyx"])
def test_opens_lazily_above_memory_budget(tmp_path, kind):
    if kind == "tiff-memmap":
        data = _data()
        tifffile.imwrite(tmp_path / "x.tif", data)
        path = tmp_path / "x.tif"
    elif kind == "tiff-compressed":
        data = _data()
        tifffile.imwrite(tmp_path / "x.tif", data, compression="zlib")
        path = tmp_path / "x.tif"
    elif kind == "imagej-tcyx-compressed":
        data = _data(shape=(5, 2, 16, 16))
        tifffile.imwrite(tmp_path / "x.tif", data, imagej=True, compression="zlib", metadata={"axes": "TCYX"})
        path = tmp_path / "x.tif"
    elif kind == "ome-tcyx":
        data = _data(shape=(4, 3, 16, 16))
        tifffile.imwrite(tmp_path / "x.ome.tif", data, ome=True, metadata={"axes": "TCYX"}, compression="zlib")
        path = tmp_path / "x.ome.tif"
    else:
        data = _data()
        path = write_stack(tmp_path / "x.h5", data)
    s = read_stack(path, memory_fraction=TINY)
    assert s.lazy and _is_dask(s.data)
    assert s.data.chunks[0][0] >= 1 and s.data.shape == data.shape
    np.testing.assert_array_equal(np.asarray(s.data[2]), data[2])
    np.testing.assert_array_equal(s.data.compute(), data)
    s.close()


def test_small_files_are_read_into_memory():
    assert decide_lazy(10, None, 0.25) is False
    assert decide_lazy(int(0.3 * total_memory()), None, 0.25) is True
    assert decide_lazy(10, True, 0.25) is True and decide_lazy(10**15, False, 0.25) is False


def test_lazy_hdf5_keeps_file_open_until_close(tmp_path):
    path = write_stack(tmp_path / "open.h5", _data())
    s = read_stack(path, lazy=True)
    assert s._handles and s._handles[0].id.valid
    s.close()
    assert not s._handles


def test_lazy_dask_chunks_whole_frames(tmp_path):
    path = write_stack(tmp_path / "chunks.h5", _data(shape=(6, 300, 400)))
    s = read_stack(path, lazy=True)
    assert s.data.chunks[1:] == ((300,), (400,))
    s.close()


class CountingArray:
    def __init__(self, data):
        self._data = data
        self.shape, self.dtype, self.ndim = data.shape, data.dtype, data.ndim
        self.frames_read: list[int] = []

    def __getitem__(self, key):
        index = key[0] if isinstance(key, tuple) else key
        self.frames_read.extend(np.arange(self.shape[0])[index].reshape(-1).tolist())
        return self._data[key]


def test_contrast_limits_sample_a_few_frames():
    data = np.zeros((100, 8, 8), np.float32)
    data[0, 0, 0] = -5.0
    data[99, 0, 0] = 50.0
    data[50, 1, 1] = 7.0
    data[37, 2, 2] = 1000.0  # not sampled: proves there is no full scan
    counting = CountingArray(data)
    lo, hi = estimate_contrast_limits(counting, n_samples=5)
    assert sorted(set(counting.frames_read)) == [0, 25, 50, 74, 99]
    assert (lo, hi) == (-5.0, 50.0)


def test_contrast_limits_on_dask_without_full_compute():
    source = CountingArray(np.arange(40 * 4 * 4, dtype=np.uint16).reshape(40, 4, 4))
    lazy = da.from_array(source, chunks=(1, 4, 4), meta=np.empty((0, 0, 0), np.uint16))
    lo, hi = estimate_contrast_limits(lazy, n_samples=3)
    assert len(set(source.frames_read)) == 3
    assert lo == 0 and hi == 40 * 16 - 1


def test_contrast_limits_channels_nan_and_constant():
    data = np.zeros((4, 2, 5, 5), np.float32)
    data[:, 1] = np.nan
    data[:, 1, 0, 0] = 3.0
    data[:, 0, 0, 0] = np.inf
    per_channel = estimate_contrast_limits(data, channel_axis=1)
    assert per_channel == [(0.0, 1.0), (3.0, 4.0)]
    assert estimate_contrast_limits(np.full((3, 4, 4), np.nan)) == (0.0, 1.0)
    with pytest.raises(ValueError, match="n_samples"):
        estimate_contrast_limits(data, n_samples=0)


def test_frame_reader_indexing():
    data = np.arange(6 * 2 * 3).reshape(6, 2, 3)
    calls = []

    def read(start, stop):
        calls.append((start, stop))
        return data[start:stop]

    r = FrameReader(data.shape, data.dtype, read)
    np.testing.assert_array_equal(r[1:4, :, 1], data[1:4, :, 1])
    np.testing.assert_array_equal(r[-1], data[-1])
    np.testing.assert_array_equal(r[::2], data[::2])
    np.testing.assert_array_equal(r[[5, 0]], data[[5, 0]])
    assert r[3:3].shape == (0, 2, 3)
    np.testing.assert_array_equal(np.asarray(r), data)
    assert calls[0] == (1, 4)
    with pytest.raises(IndexError):
        r[6]


def test_frame_reader_reads_runs_of_frames_at_once():
    """Consecutive frames (a slice, a list, a mask) are one read; an empty selection reads nothing."""
    data = np.arange(8 * 3 * 2).reshape(8, 3, 2)
    calls = []

    def read(start, stop):
        calls.append((start, stop))
        return data[start:stop].copy()

    r = FrameReader(data.shape, data.dtype, read, lock=False)
    np.testing.assert_array_equal(r[[2, 3, 4]], data[2:5])
    np.testing.assert_array_equal(r[np.arange(8) % 4 == 1], data[[1, 5]])
    np.testing.assert_array_equal(r[..., 1], data[..., 1])
    np.testing.assert_array_equal(r[np.int64(-2), 1:], data[-2, 1:])
    assert calls == [(2, 5), (1, 2), (5, 6), (0, 8), (6, 7)]
    calls.clear()
    for empty in (r[5:2], r[[]], r[8:]):
        assert empty.shape == (0, 3, 2) and empty.dtype == data.dtype
    assert calls == []
    with pytest.raises(IndexError, match="1-D"):
        r[np.zeros((2, 2), int)]


def test_lazy_array_reads_only_the_chunks_computed():
    data = _data(shape=(6, 8, 8))
    calls = []

    def read(start, stop):
        calls.append((start, stop))
        return data[start:stop]

    arr = lazy_array(FrameReader(data.shape, data.dtype, read), (2, 8, 8), name_prefix="test")
    assert is_dask(arr) and not is_dask(data) and arr.name.startswith("test-")
    assert calls == []
    np.testing.assert_array_equal(arr[3].compute(), data[3])
    assert calls == [(2, 4)]
    # a numpy array is wrapped, not copied into the graph chunk by chunk (dask's way)
    view = lazy_array(data, (1, 8, 8))
    assert not any(isinstance(v, np.ndarray) for v in dict(view.dask).values())
    assert any(isinstance(v, np.ndarray) for v in dict(da.from_array(data, chunks=(1, 8, 8)).dask).values())
    np.testing.assert_array_equal(view.compute(), data)


def test_lazy_truncated_tiff_is_detected(tmp_path):
    tifffile.imwrite(tmp_path / "t.tif", _data())
    raw = (tmp_path / "t.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="truncated"):
        read_stack(tmp_path / "cut.tif", lazy=True)


def test_lazy_memmapped_tiff_reads_on_demand(tmp_path):
    """The lazy array reads the file when asked (no copy at open time)."""
    data = _data(shape=(4, 16, 16))
    path = write_stack(tmp_path / "mm.tif", data)
    s = read_stack(path, lazy=True)
    assert s.lazy and not s._handles  # memory-mapped: nothing left open to close
    with tifffile.TiffFile(path) as tif:
        offset = tif.series[0].dataoffset + 3 * data[3].nbytes
    with open(path, "r+b") as fh:  # change frame 3 in place, after opening
        fh.seek(offset)
        fh.write(np.full((16, 16), 7, np.uint16).tobytes())
    np.testing.assert_array_equal(np.asarray(s.data[3]), 7)
    np.testing.assert_array_equal(np.asarray(s.data[:3]), data[:3])


def test_lazy_yxt_memmap(tmp_path):
    data = _data(shape=(4, 16, 18))
    tifffile.imwrite(tmp_path / "yxt.tif", np.moveaxis(data, 0, -1), photometric="minisblack", metadata=None)
    s = read_stack(tmp_path / "yxt.tif", axes="YXT", lazy=True)
    np.testing.assert_array_equal(np.asarray(s.data), data)
