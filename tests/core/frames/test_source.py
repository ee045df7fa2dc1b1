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


@pytest.mark.parametrize(
    "layout, cache",
    [({"chunks": (2, 12, 14)}, 0), ({"chunks": (2, 12, 14), "compression": "gzip"}, 2**20), ({}, None)],
)
def test_hdf5_reader_chunk_cache_fits_one_sequential_pass(tmp_path, layout, cache):
    """Uncompressed chunks bypass HDF5's cache (read straight into the block), compressed ones keep two
    chunks cached (one straddling two blocks is decompressed once), contiguous data keep h5py's default;
    blocks that cut through chunks still give the file's pixels."""
    import h5py

    from napari_stackalign.core.frames._source import _sequential_chunk_cache

    data = _data(shape=(11, 12, 14))
    path = tmp_path / "s.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("image_data", data=data, **layout)
        assert _sequential_chunk_cache(f["image_data"]) == cache
    with FileFrames(str(path)).open() as opened:
        assert opened.kind == "hdf5"
        blocks = [opened.frames[a : min(a + 3, 11)] for a in range(0, 11, 3)]
        np.testing.assert_array_equal(np.concatenate(blocks), data)


def test_reading_through_dask_does_not_import_distributed(tmp_path):
    """dask looks for a distributed client, importing ``distributed`` (0.1-0.3 s), whenever a scheduler is
    named: the reader passes its scheduler as a function instead."""
    import subprocess
    import sys

    path = write_stack(tmp_path / "z.tif", _data(), compression="zlib")  # no fast path: read through dask
    code = (
        "import sys\n"
        "from napari_stackalign.core.frames import FileFrames\n"
        f"with FileFrames({str(path)!r}).open() as opened:\n"
        "    assert opened.kind == 'dask', opened.kind\n"
        "    opened.frames[2:5]\n"
        "print('distributed' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "False"
