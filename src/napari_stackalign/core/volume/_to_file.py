"""Volumes over time larger than memory, file to file: estimate, then stream the registered volumes out.

:func:`register_volumes_to_file` is the volume sibling of
:func:`~napari_stackalign.core.pyramid.register_stack_to_file`:

- the estimation reads one volume at a time (a lazily opened stack, h5py,
  dask or memmap, is never loaded whole): the template from the first
  ``num_frames`` volumes (each read a few times while it is built), then every
  volume once per ``iterate`` pass (:func:`~napari_stackalign.core.volume.register_volumes`);
- the registered volumes are then computed a few at a time
  (:class:`ShiftedVolumes`: each input volume read once more, shifted once on
  the apply threads) and streamed by :func:`~napari_stackalign.io.write_stack`
  into a temporary file renamed onto the output only when complete, the
  metadata and the transforms table written with it: an error or a
  cancellation leaves neither a partial output nor a temporary file;
- with ``average=True`` the mean of the registered volumes is summed in the
  same pass (a running float64 sum, as
  :func:`~napari_stackalign.average_frames` makes it).

Memory holds the template's pyramid and sums and one volume's estimation
(about 25 float32 volumes of numpy arrays, measured with tracemalloc), the
volumes in flight (``apply_workers``, about 4 each) and the writer's block of
volumes (16 MiB, at least one volume): it does not grow with the number of
volumes. The transforms and pixels are those of the in-memory path
(``register_pyramid`` then ``apply_transforms``) on the same stack.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..._version import __version__
from ..._volume_transforms import VolumeTransforms
from ...io import write_stack
from ...io._formats import suffix_of
from ...io._zarr import ZARR_WRITE_SUFFIXES
from ...progress import ProgressCallback, report
from ..apply import APPLY_DEFAULTS, check_warp_options, result_dtype
from ..average import FrameAverage
from ..pyramid._options import PyramidOptions
from ..pyramid._to_file import _check_output
from ..workers import check_workers, default_workers
from ._apply import applicable_shifts, mean_contribution, shift_frame, volume_footprint, volume_stack_shape
from ._checks import volume_layout
from ._mean import VolumeMean
from ._register import register_volumes

__all__ = ["RegisteredVolumes", "ShiftedVolumes", "register_volumes_to_file"]


@dataclass
class RegisteredVolumes:
    """What :func:`register_volumes_to_file` produced.

    Attributes
    ----------
    path : pathlib.Path
        The registered stack on disk.
    transforms : VolumeTransforms
        The transforms applied (smoothed when smoothing was asked for).
    average : FrameAverage or None
        With ``average=True``: the mean of the registered volumes
        (``image`` ([C,] Z, Y, X), ``coverage`` (Z, Y, X), ``crop`` the
        common box), as :func:`~napari_stackalign.average_frames` gives it.
    """

    path: Path
    transforms: VolumeTransforms
    average: FrameAverage | None = None


class ShiftedVolumes:
    """The registered stack as a frame-indexable array: ``shifted[a:b]`` reads volumes ``a:b`` of
    ``stack`` and shifts each once (every channel), computed on ``workers`` threads with at most
    ``workers`` volumes ahead of the one asked for.

    Meant to be read in order, once (as :func:`~napari_stackalign.io.write_stack` does). With
    ``reuse_buffer`` a slice is returned in one buffer that the next slice overwrites (for a
    writer that has written each block before it asks for the next: one block in memory, not
    two). With
    ``mean`` each volume is also added to that running mean the first time it is produced, with
    ``mean_shifts`` (failed volumes interpolated) and ``mean_order``, for the ``mean_frames``
    selected.
    """

    def __init__(
        self,
        stack: Any,
        shifts: np.ndarray,
        *,
        order: int,
        border: str,
        cval: float,
        out_dtype: np.dtype,
        workers: int,
        mean: VolumeMean | None = None,
        mean_shifts: np.ndarray | None = None,
        mean_order: int = 1,
        mean_frames: np.ndarray | None = None,
        reuse_buffer: bool = False,
    ) -> None:
        n_frames, extra, zyx = volume_stack_shape(stack)
        self.stack = stack
        self.shape = tuple(int(n) for n in stack.shape)
        self.ndim = len(self.shape)
        self.dtype = np.dtype(out_dtype)
        self._extra, self._zyx = extra, zyx
        self._shifts = np.asarray(shifts, dtype=np.float64)
        self._kwargs = {"order": order, "border": border, "cval": cval, "out_dtype": self.dtype}
        self._mean = mean
        self._mean_shifts = mean_shifts if mean_shifts is not None else self._shifts
        self._mean_order = mean_order
        wanted = np.zeros(n_frames, bool)
        if mean is not None:
            wanted[np.arange(n_frames) if mean_frames is None else mean_frames] = True
        self._mean_wanted = wanted
        self._summed = np.zeros(n_frames, bool)
        # the registered volume is the mean's contribution when it is float32 with NaN borders, same order
        self._reuse = border == "nan" and self.dtype == np.float32 and order == mean_order
        self._ahead = max(1, int(workers))
        self._pool = ThreadPoolExecutor(max_workers=self._ahead, thread_name_prefix="stackalign-shift")
        self._pending: dict[int, Future] = {}
        self._read_lock = threading.Lock()
        self._reuse_buffer = reuse_buffer
        self._buffer: np.ndarray | None = None

    def __len__(self) -> int:
        return self.shape[0]

    def __enter__(self) -> ShiftedVolumes:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Stop the threads (volumes being shifted are finished, queued ones dropped)."""
        for fut in self._pending.values():
            fut.cancel()
        self._pending.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _one(self, t: int) -> tuple[np.ndarray, np.ndarray | None]:
        with self._read_lock:
            frame = np.asarray(self.stack[t])
        moved = shift_frame(frame, self._shifts[t], self._extra, **self._kwargs)
        contribution = None
        if self._mean_wanted[t] and not self._summed[t]:
            same = self._reuse and np.array_equal(self._mean_shifts[t], self._shifts[t])
            contribution = moved if same else mean_contribution(frame, self._mean_shifts[t], self._extra, self._mean_order)
        return moved, contribution

    def _submit(self, t: int) -> None:
        if t not in self._pending and 0 <= t < self.shape[0]:
            self._pending[t] = self._pool.submit(self._one, t)

    def volume(self, t: int) -> np.ndarray:
        """Registered volume ``t`` ([C,] Z, Y, X); the next ``workers`` are started meanwhile."""
        t = int(t)
        self._submit(t)
        for k in range(t + 1, t + self._ahead):
            self._submit(k)
        moved, contribution = self._pending.pop(t).result()
        if contribution is not None and not self._summed[t]:
            self._mean.add(contribution, volume_footprint(self._zyx, self._mean_shifts[t]))
            self._summed[t] = True
        self._submit(t + self._ahead)
        return moved

    def __getitem__(self, key: Any) -> np.ndarray:
        rest: tuple = ()
        if isinstance(key, tuple):
            key, rest = key[0], key[1:]
        if isinstance(key, (int, np.integer)):
            t = int(key) + (self.shape[0] if key < 0 else 0)
            out = self.volume(t)
            return out[rest] if rest else out
        if not isinstance(key, slice):
            raise TypeError(f"ShiftedVolumes takes an integer or a slice of frames, got {type(key).__name__}.")
        frames = range(*key.indices(self.shape[0]))
        out = self._block(len(frames))
        for k, t in enumerate(frames):
            out[k] = self.volume(t)
        return out[(slice(None), *rest)] if rest else out

    def _block(self, n: int) -> np.ndarray:
        """An array for ``n`` registered volumes (the shared buffer with ``reuse_buffer``)."""
        if not self._reuse_buffer:
            return np.empty((n, *self.shape[1:]), dtype=self.dtype)
        if self._buffer is None or self._buffer.shape[0] < n:
            self._buffer = None
            self._buffer = np.empty((n, *self.shape[1:]), dtype=self.dtype)
        return self._buffer[:n]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype)


def _check_volume_output(output_path: Any, overwrite: bool, source_path: Any) -> Path:
    """The output checked before any work (HDF5 or TIFF; OME-Zarr does not hold volumes here)."""
    if suffix_of(Path(output_path)) in ZARR_WRITE_SUFFIXES:
        raise ValueError(
            f"{Path(output_path).name}: OME-Zarr output is written for (T, Y, X) and (T, C, Y, X) stacks only; "
            "write volumes over time as HDF5 (.h5) or TIFF (.tif)."
        )
    inputs = [Path(source_path).expanduser()] if source_path is not None else []
    return _check_output(output_path, overwrite, inputs)


def register_volumes_to_file(
    stack: Any,
    output_path: str | os.PathLike,
    *,
    axes: str,
    channel: int | None = None,
    options: PyramidOptions | None = None,
    transforms: VolumeTransforms | None = None,
    workers: int | None = None,
    apply_workers: int | None = None,
    order: int = APPLY_DEFAULTS.order,
    border: str = APPLY_DEFAULTS.border,
    cval: float = APPLY_DEFAULTS.cval,
    output_dtype: Any = None,
    failed: str = APPLY_DEFAULTS.failed,
    average: bool = False,
    metadata: Mapping | None = None,
    scale: Any = None,
    units: str | None = None,
    compression: str | None = "none",
    overwrite: bool = False,
    source_path: str | os.PathLike | None = None,
    progress: ProgressCallback | None = None,
) -> RegisteredVolumes:
    """Register a volume stack of any size and stream the registered volumes into a file.

    Parameters
    ----------
    stack : array-like, shape (T, Z, Y, X) or (T, C, Z, Y, X)
        Numpy, memmap, h5py or dask; read one volume at a time.
    output_path : str or path-like
        ``.h5``/``.hdf5``/``.hd5`` (``image_data`` with an ``axes``
        attribute, the metadata and the transforms table) or ``.tif``/``.tiff``
        (an ImageJ hyperstack; BigTIFF above 4 GB). Written through a
        temporary file beside it, renamed when complete.
    axes : {"TZYX", "TCZYX"}
        The layout of ``stack``.
    channel : int, optional
        For TCZYX: the channel the motion is estimated on (default 0); every
        channel is shifted.
    options : PyramidOptions, optional
        The estimation's options (as for
        :func:`~napari_stackalign.core.volume.register_volumes`).
    transforms : VolumeTransforms, optional
        Skip estimation and apply these (one per volume).
    workers : int, optional
        Threads that estimate volumes (default 1, see
        :func:`~napari_stackalign.core.volume.register_volumes`).
    apply_workers : int, optional
        Threads that resample volumes, each a volume ahead of the writer
        (default all cores); each holds about four float32 copies of one
        volume (all channels).
    order, border, cval, output_dtype, failed
        Resampling, as for :func:`~napari_stackalign.apply_transforms`.
    average : bool
        Also sum the registered volumes into their mean in the same pass
        (``order`` is the mean's interpolation too; failed volumes are left
        out when any is trustworthy, as in
        :func:`~napari_stackalign.average_frames`).
    metadata, scale, units, compression, source_path
        Written with the stack (see :func:`~napari_stackalign.io.write_stack`);
        ``metadata["stackalign"]`` gets the method, parameters and version
        unless it holds a block already, and a ``"streaming"`` entry.
    overwrite : bool
        Replace an existing output.
    progress : callable, optional
        ``progress(done, total, stage)``; stages ``"reference"``,
        ``"estimate"`` and ``"writing <name>"``. Raising
        :class:`~napari_stackalign.core.Cancelled` from it stops the run and
        leaves no output and no temporary file.

    Returns
    -------
    RegisteredVolumes

    Raises
    ------
    ValueError
        For a stack that does not match ``axes``, bad options, transforms of
        another length (or 2-D ones), an output name that is not HDF5/TIFF,
        or an existing output without ``overwrite``.
    """
    opts = options if options is not None else PyramidOptions()
    layout = volume_layout(stack, str(axes).upper(), channel=channel)
    check_warp_options(order, border)
    check_workers(workers)
    check_workers(apply_workers)
    out = _check_volume_output(output_path, overwrite, source_path)
    n_frames, extra, zyx = volume_stack_shape(stack)
    out_dtype = result_dtype(np.dtype(stack.dtype), border, output_dtype)
    if transforms is None:
        final = register_volumes(stack, axes=layout.axes, channel=channel, options=opts, workers=workers,
                                 progress=progress)
        method = "pyramid"
    else:
        if not isinstance(transforms, VolumeTransforms):
            raise ValueError("transforms must be VolumeTransforms (dz, dy, dx), estimated on a volume stack.")
        if len(transforms) != n_frames:
            raise ValueError(
                f"{len(transforms)} transforms for a stack of {n_frames} volumes: use transforms estimated on a "
                "stack with the same number of volumes."
            )
        final = transforms
        method = "apply"
    shifts = applicable_shifts(final, zyx, failed)
    apply_workers = default_workers(apply_workers)
    meta = dict(metadata or {})
    block = dict(meta.get("stackalign") or {}) or {
        "method": method,
        "params": dict(final.params) if method == "pyramid" else {"transforms_method": final.method},
        "version": __version__,
        "source": str(Path(source_path).expanduser().resolve()) if source_path is not None else None,
    }
    block["streaming"] = {"volumes_in_flight": apply_workers, "estimate_workers": 1 if workers is None else workers}
    meta["stackalign"] = block
    mean = mean_kwargs = None
    if average:
        mean = VolumeMean(extra, zyx)
        resolved, _ = final.resolve_failed("interpolate")
        selected = np.flatnonzero(final.ok) if final.ok.any() else np.arange(n_frames)
        mean_kwargs = {"mean_shifts": resolved.shifts_zyx, "mean_order": order, "mean_frames": selected}
    # HDF5 and uncompressed TIFF write each block before asking for the next; compressed TIFF pages
    # may still be encoded from the block while the next is made
    tiff = out.suffix.lower() in (".tif", ".tiff")
    reuse = not tiff or compression in (None, "none", "auto")
    with ShiftedVolumes(
        stack, shifts, order=order, border=border, cval=cval, out_dtype=out_dtype, workers=apply_workers,
        mean=mean, reuse_buffer=reuse, **(mean_kwargs or {}),
    ) as shifted:
        path = write_stack(
            out, shifted, metadata=meta, transforms=final, scale=scale, units=units, axes=layout.axes,
            overwrite=overwrite, source_path=source_path, compression=compression, progress=progress,
        )
    report(progress, n_frames, n_frames, "done")
    result_average = None
    if mean is not None:
        image, coverage, crop = mean.result("full")
        result_average = FrameAverage(image=image, coverage=coverage, crop=crop, mode="full", n_frames=mean.n_frames)
    return RegisteredVolumes(path, final, result_average)

