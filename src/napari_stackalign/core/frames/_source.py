"""Frames of a file on disk, read in chunks at full speed and with flat memory.

:func:`~napari_stackalign.io.read_stack` opens big files lazily as dask
arrays. That is right for napari, but two things make it a poor source for a
pass over tens of gigabytes:

- slicing a dask array chunked by 2 MB costs a task graph and a scheduler
  run per slice (about 7 times slower than reading the HDF5 dataset itself);
- uncompressed TIFF is memory-mapped, so every page read stays in the
  process's resident memory until the kernel reclaims it (a 20 GB file
  shows as gigabytes of RSS).

:class:`FileFrames` names a stack on disk (path, HDF5 dataset, channel) and is
picklable, so dask workers can open the file themselves.
:meth:`FileFrames.open` reads the file's description with ``read_stack``
and then reads pixels directly: the HDF5 dataset through h5py, an
uncompressed contiguous TIFF with ``os.preadv`` (no memory map), and anything
else through ``read_stack``'s lazy array. The fast paths are only used when
their first and last frames equal ``read_stack``'s, so the pixels are always
the ones ``read_stack`` gives.

:class:`ReadAhead` reads the next chunks in a background thread while the
current one is processed (h5py and ``os.preadv`` release the GIL).
"""

from __future__ import annotations

import contextlib
import os
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np
import tifffile

from ...io import (
    HDF5_SUFFIXES,
    TIFF_SUFFIXES,
    FrameReader,
    choose_dataset,
    is_dask,
    open_hdf5,
    read_stack,
)
from ._background import READ_AHEAD_BLOCKS, BlockProducer

__all__ = ["CHUNK_FRAMES", "ChannelFrames", "FileFrames", "OpenedFrames", "ReadAhead", "as_frames", "frame_ranges"]

#: frames read and processed at a time by default (memory stays flat; large enough to keep the threads busy)
CHUNK_FRAMES = 64


def frame_ranges(start: int, stop: int, step: int) -> list[tuple[int, int]]:
    """Consecutive ``(a, b)`` ranges of at most ``step`` frames covering ``start:stop``."""
    step = max(1, int(step))
    return [(a, min(a + step, stop)) for a in range(start, stop, step)]


class _H5Frames(FrameReader):
    """An HDF5 dataset stored frames first, read through h5py."""

    def __init__(self, dataset: Any) -> None:
        self._ds = dataset
        super().__init__(dataset.shape, dataset.dtype, self._read, lock=False)

    def _read(self, a: int, b: int) -> np.ndarray:
        out = np.empty((b - a,) + self.shape[1:], self.dtype)
        self._ds.read_direct(out, np.s_[a:b])
        return out


class _RawFrames(FrameReader):
    """Frames stored contiguously in a file at ``offset`` (uncompressed TIFF),
    read with ``os.preadv`` into fresh buffers (no memory map)."""

    def __init__(self, path: Path, offset: int, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self._file_dtype = np.dtype(dtype)
        super().__init__(shape, self._file_dtype.newbyteorder("="), self._read, lock=False)
        self._offset = int(offset)
        self._frame_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self._file_dtype.itemsize
        self._fd = os.open(path, os.O_RDONLY)
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(self._fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)

    def _read(self, a: int, b: int) -> np.ndarray:
        out = np.empty((b - a,) + self.shape[1:], self._file_dtype)
        view = memoryview(out.reshape(-1).view(np.uint8))
        pos, done, total = self._offset + a * self._frame_bytes, 0, (b - a) * self._frame_bytes
        while done < total:
            n = os.preadv(self._fd, [view[done:]], pos + done)
            if n <= 0:
                raise OSError(f"unexpected end of file reading frames {a}:{b} (the file is truncated).")
            done += n
        if out.dtype != self.dtype:
            out = out.astype(self.dtype)
        return out

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _dask_frames(array: Any) -> FrameReader:
    """A dask array computed slice by slice with a local thread pool.

    Never through a dask.distributed client that may be the default: inside
    a dask worker that would submit tasks from a task and wait on them (a
    deadlock on single-thread workers), and in a client it would ship the
    pixels through the cluster. The scheduler is passed as the function
    itself, not by name: a name makes dask import ``distributed`` to look for
    a client (0.12 s at the first read of every run here, 4 % of streaming a
    0.5 GB file).
    """
    from dask.threaded import get as threaded_scheduler

    def read(a: int, b: int) -> np.ndarray:
        return np.asarray(array[a:b].compute(scheduler=threaded_scheduler))

    return FrameReader(array.shape, array.dtype, read, lock=False)


def as_frames(stack: Any) -> Any:
    """``stack`` ready for chunked reading: dask arrays are computed locally
    (see :func:`_dask_frames`); anything else is returned as is."""
    if is_dask(stack) and hasattr(stack, "compute"):
        return _dask_frames(stack)
    return stack


class ChannelFrames(FrameReader):
    """One channel of a (T, C, Y, X) reader."""

    def __init__(self, frames: Any, channel: int) -> None:
        self._source = frames
        self._channel = channel
        shape = (int(frames.shape[0]),) + tuple(int(n) for n in frames.shape[2:])
        super().__init__(shape, frames.dtype, self._read, lock=False)

    def _read(self, a: int, b: int) -> np.ndarray:
        return np.ascontiguousarray(np.asarray(self._source[a:b])[:, self._channel])


@dataclass(frozen=True)
class FileFrames:
    """A stack on disk, by name: picklable, so a dask worker can open it itself.

    Attributes
    ----------
    path : str
        TIFF or HDF5 file (or anything :func:`~napari_stackalign.io.read_stack` reads).
    dataset : str, optional
        HDF5 dataset (as for ``read_stack``).
    """

    path: str
    dataset: str | None = None

    def open(self) -> OpenedFrames:
        """Open the file for chunked reading (see the module notes)."""
        info = read_stack(self.path, dataset=self.dataset, lazy=True)
        try:
            frames, kind, handles = _fast_reader(Path(self.path), self.dataset, info)
        except BaseException:
            info.close()
            raise
        return OpenedFrames(info, frames, kind, handles)


class OpenedFrames:
    """An open stack: ``frames`` (all channels) for reading, ``info`` (a
    :class:`~napari_stackalign.io.StackData`) for the metadata. Close it."""

    def __init__(self, info: Any, frames: Any, kind: str, handles: list) -> None:
        self.info = info
        self.frames = frames
        self.kind = kind
        self._handles = handles

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(n) for n in self.frames.shape)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.frames.dtype)

    def channel(self, channel: int | None) -> Any:
        """The (T, Y, X) frames to estimate on: one channel of (T, C, Y, X) data."""
        if channel is None:
            if self.info.channel_axis is not None:
                raise ValueError(
                    f"{self.info.path} has {self.shape[1]} channels: choose the one to estimate the motion on "
                    f"(channel=0..{self.shape[1] - 1})."
                )
            return self.frames
        if self.info.channel_axis is None:
            if int(channel) == 0:
                return self.frames
            raise ValueError(f"channel={channel} applies to (T, C, Y, X) data; {self.info.path} has one channel.")
        n = self.shape[1]
        if not 0 <= int(channel) < n:
            raise ValueError(f"channel {channel} does not exist: the input has {n} channels (0-{n - 1}).")
        return ChannelFrames(self.frames, int(channel))

    def close(self) -> None:
        while self._handles:
            handle = self._handles.pop()
            with contextlib.suppress(Exception):  # closing is best effort
                handle.close()
        self.info.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _same_frames(reader: Any, lazy: Any) -> bool:
    """Whether ``reader`` gives the frames of ``read_stack``'s array (first and last)."""
    if tuple(reader.shape) != tuple(lazy.shape) or np.dtype(reader.dtype) != np.dtype(lazy.dtype):
        return False
    n = int(lazy.shape[0])
    for t in sorted({0, n - 1}):
        if not np.array_equal(np.asarray(reader[t]), np.asarray(lazy[t]), equal_nan=True):
            return False
    return True


def _fast_reader(path: Path, dataset: str | None, info: Any) -> tuple[Any, str, list]:
    suffix = path.suffix.lower()
    lazy = as_frames(info.data)
    if suffix in HDF5_SUFFIXES:
        with open_hdf5(path) as probe:
            cache = _sequential_chunk_cache(choose_dataset(probe, dataset, path))
        f = open_hdf5(path, cache)
        try:
            ds = choose_dataset(f, dataset, path)
            if ds.dtype.kind in "biuf" and tuple(ds.shape) == tuple(lazy.shape):
                reader = _H5Frames(ds)
                if _same_frames(reader, lazy):
                    return reader, "hdf5", [f]
        except BaseException:
            f.close()
            raise
        f.close()
    elif suffix in TIFF_SUFFIXES:
        reader = _raw_tiff(path, tuple(int(n) for n in lazy.shape))
        if reader is not None:
            if _same_frames(reader, lazy):
                return reader, "tiff", [reader]
            reader.close()
    return lazy, "dask", []


def _sequential_chunk_cache(ds: Any) -> int | None:
    """HDF5 chunk cache (bytes) for reading ``ds`` once, in order, by blocks of frames.

    Uncompressed chunks are read straight into the destination without the
    cache (0 bytes: the default cache copies every chunk that fits it twice;
    reading a 0.5 GB stack of 512 KB chunks in blocks of 37 frames took
    0.069-0.073 s instead of 0.099-0.187 s here). Filtered chunks keep two
    chunks cached, so a chunk that straddles two blocks is decompressed once.
    None (the default) for a contiguous dataset.
    """
    if ds.chunks is None:
        return None
    if ds.id.get_create_plist().get_nfilters() == 0:
        return 0
    chunk_bytes = int(np.prod(ds.chunks, dtype=np.int64)) * ds.dtype.itemsize
    return max(2 * chunk_bytes, 2**20)


def _raw_tiff(path: Path, shape: tuple[int, ...]) -> _RawFrames | None:
    with tifffile.TiffFile(path) as tif:
        if not tif.series:
            return None
        series = tif.series[0]
        page = series.pages[0]
        if series.dataoffset is None or page is None or int(getattr(page, "compression", 1)) != 1:
            return None
        file_shape = tuple(int(n) for n in series.shape)
        squeezed = [n for n in file_shape if n != 1]
        if squeezed != [n for n in shape if n != 1] or not shape:
            return None
        offset, dtype = int(series.dataoffset), np.dtype(series.dtype).newbyteorder(tif.byteorder)
        if int(series.nbytes) != int(np.prod(shape, dtype=np.int64)) * dtype.itemsize:
            return None
    return _RawFrames(path, offset, shape, dtype)


class ReadAhead(BlockProducer):
    """Reads ``ranges`` of ``frames`` in a background thread, ``depth`` ahead.

    Use as a context manager. ``ra[a:b]`` returns the next prepared range when
    it is ``(a, b)``; any other request is read directly, so the object can
    stand in for ``frames`` anywhere (frames first, slices and integers).
    """

    thread_name = "stackalign-read-ahead"

    def __init__(self, frames: Any, ranges: Iterable[tuple[int, int]], *, depth: int = READ_AHEAD_BLOCKS) -> None:
        super().__init__(ranges, self._read, depth=depth)
        self._frames = frames
        self.shape = tuple(int(n) for n in frames.shape)
        self.dtype = np.dtype(frames.dtype)
        self.ndim = len(self.shape)
        self._pending: deque = deque(self._ranges)

    def __len__(self) -> int:
        return self.shape[0]

    def _read(self, start: int, stop: int) -> np.ndarray:
        return np.asarray(self._frames[start:stop])

    def _next_block(self, a: int, b: int) -> np.ndarray | None:
        """The prepared block when ``(a, b)`` is the next range, else None."""
        if not self.started or not self._pending or self._pending[0] != (a, b):
            return None
        self._pending.popleft()
        return self._next_item()[2]

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, slice) and key.step in (None, 1):
            a, b, _ = key.indices(self.shape[0])
            block = self._next_block(a, b)
            if block is not None:
                return block
        return np.asarray(self._frames[key])

