"""Chunked readers of files on disk (FileFrames): the fast paths give read_stack's pixels, indexed like numpy."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from napari_stackalign.core.frames import ChannelFrames, FileFrames, as_frames
from napari_stackalign.io import FrameReader, read_stack, write_stack

KEYS = [3, -1, slice(2, 7), slice(None), slice(6, 2), [1, 5, 2], [4, 5, 6], slice(1, 9, 3), (slice(4, 8), slice(2, 9), 3)]


def _data(shape=(10, 12, 14), seed=0):
    return np.random.default_rng(seed).integers(0, 60000, size=shape).astype(np.uint16)


def _check_indexing(frames, data):
    for key in KEYS:
        got = frames[key]
        assert isinstance(got, np.ndarray) and got.dtype == data.dtype, key
        np.testing.assert_array_equal(got, data[key], err_msg=str(key))


@pytest.mark.parametrize(
    "name, kind",
    [("plain.tif", "tiff"), ("zlib.tif", "dask"), ("stack.h5", "hdf5")],
)
def test_file_frames_fast_paths_give_read_stacks_pixels(tmp_path, name, kind):
    data = _data()
    path = tmp_path / name
    write_stack(path, data, compression="zlib" if name.startswith("zlib") else "auto")
    with FileFrames(str(path)).open() as opened:
        assert opened.kind == kind
        assert opened.shape == data.shape and opened.dtype == np.dtype(np.uint16)
        _check_indexing(opened.frames, data)
        np.testing.assert_array_equal(opened.frames[:], np.asarray(read_stack(path).data))
        assert opened.channel(None) is opened.frames


def test_channel_frames_of_a_tcyx_file(tmp_path):
    data = _data(shape=(6, 3, 10, 12))
    path = write_stack(tmp_path / "c.h5", data)
    with FileFrames(str(path)).open() as opened:
        with pytest.raises(ValueError, match="choose the one"):
            opened.channel(None)
        with pytest.raises(ValueError, match="does not exist"):
            opened.channel(3)
        green = opened.channel(1)
        assert isinstance(green, ChannelFrames) and green.shape == (6, 10, 12)
        for key in [2, slice(1, 5), [0, 4], slice(None, None, 2)]:
            np.testing.assert_array_equal(green[key], data[:, 1][key])
        assert green[1:4].flags.c_contiguous


def test_as_frames_reads_dask_arrays_slice_by_slice():
    data = _data()
    lazy = da.from_array(data, chunks=(3, 12, 14))
    frames = as_frames(lazy)
    assert isinstance(frames, FrameReader)
    _check_indexing(frames, data)
    assert as_frames(data) is data
