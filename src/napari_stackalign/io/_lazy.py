"""Lazy reading: the memory budget, frame-chunked dask arrays, chunked iteration
and contrast limits from a few sampled frames."""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import dask.array as da
import numpy as np

__all__ = [
    "LOADED_COPIES",
    "MEMORY_FRACTION",
    "FrameReader",
    "available_memory",
    "decide_lazy",
    "estimate_contrast_limits",
    "fraction_for_max_memory",
    "frame_chunked_dask",
    "frames_per_chunk",
    "is_dask",
    "iter_frame_chunks",
    "lazy_array",
    "process_memory",
    "total_memory",
]

#: Default share of this machine's RAM above which :func:`~napari_stackalign.io.read_stack` opens files lazily.
MEMORY_FRACTION = 0.25
#: Copies of a loaded stack that work on it holds at once (the input and the result, plus a share of
#: float32 working frames): with ``max_memory``, a stack is loaded whole only when this many copies of it
#: fit (measured: a 0.2-1 GB stack registered in memory peaks at about 2.1 times its size above the
#: process itself; see docs/big-data.md).
LOADED_COPIES = 2.5
#: Target size of one dask chunk of a lazily opened stack (whole frames).
CHUNK_BYTES = 2 * 2**20
#: Largest block of frames read at once while writing or iterating (at least one frame).
ITER_CHUNK_BYTES = 16 * 2**20


def total_memory() -> int:
    """Physical memory of this machine in bytes (8 GiB if it cannot be found)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):  # pragma: no cover - non-POSIX
        try:
            import psutil

            return int(psutil.virtual_memory().total)
        except ImportError:
            return 8 * 2**30


def available_memory() -> int:
    """Memory available to a new process now, in bytes (``MemAvailable``: free plus reclaimable cache).

    Falls back on psutil, then on a quarter of :func:`total_memory`.
    """
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:  # pragma: no cover - psutil is a dependency of the benchmarks only
        return total_memory() // 4


def process_memory() -> int:
    """Resident memory of this process now, in bytes (0 where it cannot be read)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        pass
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except ImportError:  # pragma: no cover
        return 0


def fraction_for_max_memory(max_memory: int, baseline: int = 0) -> float:
    """The ``memory_fraction`` (of :func:`total_memory`) under which a stack is loaded whole within
    ``max_memory`` bytes, when ``baseline`` bytes are in use already: ``LOADED_COPIES`` copies must fit.

    Returns 0.0 when nothing fits (open lazily).
    """
    room = (int(max_memory) - int(baseline)) / LOADED_COPIES
    if room <= 0:
        return 0.0
    return min(1.0, room / total_memory())


def check_memory_fraction(memory_fraction: float) -> float:
    value = float(memory_fraction)
    if not (0.0 < value <= 1.0):
        raise ValueError(
            f"memory_fraction must be in (0, 1] (the share of RAM above which files open lazily), got {memory_fraction!r}."
        )
    return value


def decide_lazy(nbytes: int, lazy: bool | None, memory_fraction: float) -> bool:
    """Whether to open lazily: ``lazy`` if given, else when ``nbytes`` exceeds the budget."""
    fraction = check_memory_fraction(memory_fraction)
    if lazy is not None:
        return bool(lazy)
    return nbytes > fraction * total_memory()


def frames_per_chunk(frame_nbytes: int, target: int = CHUNK_BYTES) -> int:
    """Whole frames per chunk so a chunk stays near ``target`` bytes (at least 1)."""
    return max(1, int(target // max(1, frame_nbytes)))


class FrameReader:
    """A read-only array-like whose first axis (frames) is read on demand.

    The one implementation of "index a stack by frame and return numpy" that
    every reader of the package shares (TIFF pages, folders of files, and the
    chunked readers of :mod:`napari_stackalign.core.frames`).
    ``read(start, stop)`` returns frames ``start:stop`` as a new numpy array
    of shape ``(stop - start,) + shape[1:]``. Indexing takes what dask's
    ``from_array`` and the engine ask for: an integer, a slice, a list or
    1-D array of frame indices (or a boolean mask), then any index of the
    remaining axes. A run of consecutive frames is one ``read``; other
    selections read frame by frame. With ``lock`` (the default) reads are
    serialised, for readers that share one file handle.
    """

    def __init__(
        self, shape: tuple[int, ...], dtype: Any, read: Callable[[int, int], np.ndarray], *, lock: bool = True
    ):
        self.shape = tuple(int(n) for n in shape)
        self.dtype = np.dtype(dtype)
        self.ndim = len(self.shape)
        self._read_frames = read
        self._lock: Any = threading.Lock() if lock else contextlib.nullcontext()

    def __len__(self) -> int:
        return self.shape[0]

    def _frames(self, start: int, stop: int) -> np.ndarray:
        """Frames ``start:stop`` (an empty array, without reading, when there are none)."""
        if stop <= start:
            return np.empty((0,) + self.shape[1:], self.dtype)
        with self._lock:
            return self._read_frames(start, stop)

    def __getitem__(self, key: Any) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        first, rest = key[0], key[1:]
        n = self.shape[0]
        if isinstance(first, (int, np.integer)):
            t = int(first) + n if first < 0 else int(first)
            if not 0 <= t < n:
                raise IndexError(f"frame {first} out of range for {n} frames")
            return self._frames(t, t + 1)[(0,) + rest]
        if first is Ellipsis:
            first, rest = slice(None), (Ellipsis,) + rest
        if isinstance(first, slice) and first.step in (None, 1):
            start, stop, _ = first.indices(n)
            return self._frames(start, stop)[(slice(None),) + rest]
        idx = np.arange(n)[first]
        if idx.ndim != 1:
            raise IndexError("only integers, slices and 1-D index arrays select frames")
        if idx.size == 0:
            return self._frames(0, 0)[(slice(None),) + rest]
        if idx.size == 1 or np.all(np.diff(idx) == 1):
            return self._frames(int(idx[0]), int(idx[-1]) + 1)[(slice(None),) + rest]
        return np.stack([self[(int(i),) + rest] for i in idx])

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype)


class _OnDemand:
    """Hides an array (a numpy array or memmap above all) from
    ``dask.array.from_array``, which copies numpy arrays whole; indexing
    reads only what is asked for."""

    def __init__(self, array: Any):
        self._array = array
        self.shape, self.dtype, self.ndim = tuple(array.shape), np.dtype(array.dtype), len(array.shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        return np.asarray(self._array[key])


def is_dask(array: Any) -> bool:
    """Whether ``array`` is a dask collection (a dask array, most often)."""
    return type(array).__module__.startswith("dask.")


def lazy_array(
    array: Any, chunks: tuple[int, ...], *, name: str | None = None, name_prefix: str = "stackalign-read"
) -> Any:
    """A dask array of ``chunks`` over an array-like, reading each chunk only when it is computed.

    Parameters
    ----------
    array : array-like
        Anything with ``shape``, ``dtype`` and numpy-style slicing (numpy
        array or memmap, h5py dataset, :class:`FrameReader`). Anything but a
        :class:`FrameReader` is indexed through a thin wrapper:
        ``dask.array.from_array`` would otherwise copy a numpy array, reading
        a memory-mapped file whole.
    chunks : tuple of int
        Chunk size per axis.
    name : str, optional
        The dask name (the key of the chunks in dask's caches).
    name_prefix : str
        Without ``name``: the start of a generated unique name (so two arrays
        never share a cache key).

    Returns
    -------
    dask.array.Array
    """
    if not isinstance(array, FrameReader):
        array = _OnDemand(array)
    return da.from_array(
        array,
        chunks=chunks,
        name=name or f"{name_prefix}-{uuid.uuid4().hex}",
        meta=np.empty((0,) * len(array.shape), dtype=array.dtype),
        asarray=True,
        fancy=False,
    )


def frame_chunked_dask(array: Any, *, frame_dim: int = 0, name: str | None = None) -> Any:
    """Wrap an array-like (numpy memmap, h5py dataset, :class:`FrameReader`) as a
    dask array chunked by whole frames along ``frame_dim``, reading on demand
    (see :func:`lazy_array`); ``name`` replaces the generated dask name.
    """
    shape = tuple(int(n) for n in array.shape)
    frame_nbytes = (
        int(np.prod([n for d, n in enumerate(shape) if d != frame_dim], dtype=np.int64))
        * np.dtype(array.dtype).itemsize
    )
    chunks = tuple(frames_per_chunk(frame_nbytes) if d == frame_dim else n for d, n in enumerate(shape))
    return lazy_array(array, chunks, name=name)


def iter_frame_chunks(data: Any, *, max_bytes: int | None = None) -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield ``(start, stop, np.asarray(data[start:stop]))`` over the first axis in
    chunks of at most ``max_bytes`` (default :data:`ITER_CHUNK_BYTES`; at least one frame). Works for numpy, memmap,
    h5py and dask arrays without materialising the whole stack."""
    n = int(data.shape[0])
    frame_nbytes = int(np.prod(data.shape[1:], dtype=np.int64)) * np.dtype(data.dtype).itemsize
    step = frames_per_chunk(frame_nbytes, ITER_CHUNK_BYTES if max_bytes is None else max_bytes)
    for start in range(0, n, step):
        stop = min(n, start + step)
        yield start, stop, np.asarray(data[start:stop])


def _sample_frames(n: int, n_samples: int) -> list[int]:
    return sorted({round(float(v)) for v in np.linspace(0, n - 1, min(n, max(1, n_samples)))})


def estimate_contrast_limits(
    data: Any, *, channel_axis: int | None = None, n_samples: int = 5
) -> tuple[float, float] | list[tuple[float, float]]:
    """Contrast limits from a few evenly spaced frames, without scanning the stack.

    Parameters
    ----------
    data : array_like
        (T, Y, X) or (T, C, Y, X) stack: numpy, memmap, h5py or dask. Only
        ``n_samples`` frames are read.
    channel_axis : int, optional
        With a channel axis, one pair is returned per channel (what napari
        expects when it splits channels into layers).
    n_samples : int
        Number of frames to read (first and last included).

    Returns
    -------
    (float, float) or list of (float, float)
        (min, max) over the sampled frames, ignoring NaN and infinities;
        ``(lo, lo + 1)`` for constant data and ``(0, 1)`` when nothing is finite.
    """
    if n_samples < 1:
        raise ValueError(f"n_samples must be at least 1, got {n_samples}.")
    n = int(data.shape[0])
    if n == 0:
        raise ValueError("cannot estimate contrast limits of an empty stack (no frames).")
    index = _sample_frames(n, n_samples)
    if is_dask(data):  # one compute for all sampled frames
        sample = np.asarray(data[index])
    else:
        sample = np.stack([np.asarray(data[t]) for t in index])
    if channel_axis is None:
        return _limits(sample)
    axis = channel_axis if channel_axis >= 0 else channel_axis + np.ndim(data)
    per_channel = np.moveaxis(sample, axis, 0)  # (C, n_samples, ...) with frames axis now 1
    return [_limits(per_channel[c]) for c in range(per_channel.shape[0])]


def _limits(values: np.ndarray) -> tuple[float, float]:
    if values.dtype.kind == "b":
        return (0.0, 1.0)
    if values.dtype.kind == "f":
        finite = values[np.isfinite(values)]
        if finite.size == 0:
            return (0.0, 1.0)
        lo, hi = float(finite.min()), float(finite.max())
    else:
        lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        hi = lo + 1.0
    return (lo, hi)
