"""File to file registration of stacks far larger than memory.

:func:`register_file` runs the whole pyramid registration (reference,
estimation, optional smoothing, apply, write) on a TIFF or HDF5 file of any
size with memory bounded by ``memory_limit``:

- the input is opened lazily and read in chunks of frames (HDF5 through h5py,
  uncompressed TIFF with ``os.preadv``, anything else through
  :func:`~napari_stackalign.io.read_stack`'s dask array), the next chunk read
  in the background while the current one is processed;
- the template is built from the first ``num_frames`` frames only, then every
  frame is estimated chunk by chunk (here, or on a dask cluster: see
  :mod:`~napari_stackalign.core.pyramid._distributed`); the stack-wide steps (quality
  threshold, anchoring, smoothing) run once on the per-frame table;
- the registered stack is computed a few blocks ahead in a background thread
  and streamed by :func:`~napari_stackalign.io.write_stack` into a temporary
  file that is renamed onto the output only when complete: an error or a
  cancellation leaves neither a partial output nor a temporary file.

The transforms are exactly those of
:func:`~napari_stackalign.core.pyramid.register_pyramid` on the whole stack in
memory (the per-frame estimate does not depend on the chunking), and the
pixels exactly those of :func:`~napari_stackalign.core.apply.apply_transforms`.

:func:`register_stack_to_file` does the same for an array that is already
open (a napari layer's data, a dask array), for the napari widget.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..._version import __version__
from ...files import check_writable_dir
from ...io import write_stack
from ...io._deferred import FinalWrite, can_write_deferred, write_stack_deferred
from ...io._formats import suffix_of
from ...io._zarr import ZARR_WRITE_SUFFIXES
from ...parsing import parse_byte_size
from ...progress import ProgressCallback, report
from ...transforms import FrameTransforms
from ..apply import APPLY_DEFAULTS, WarpedFrames, check_warp_options, result_dtype
from ..checks import STACK_AXES
from ..frames import ChannelFrames, FileFrames, ReadAhead, as_frames, frame_ranges
from ..workers import default_workers, estimation_workers, thread_pool
from ._chain import run_chain
from ._distributed import check_cluster_mode, cluster_estimator
from ._options import PYRAMID_DEFAULTS, PyramidOptions
from ._periodic import detect_lattice
from ._single_read import SingleReadFrames
from ._stages import PyramidJob, build_template, estimate_range, finish, plan_pyramid, stack_wide_checks

__all__ = [
    "DEFAULT_MEMORY_LIMIT",
    "OUTPUT_SUFFIXES",
    "RegisteredFile",
    "parse_memory_limit",
    "plan_chunks",
    "register_file",
    "register_stack_to_file",
    "suggest_output_path",
]

#: default working-memory budget of :func:`register_file`
DEFAULT_MEMORY_LIMIT = "1GiB"
#: output formats :func:`register_file` writes (streamed chunk by chunk)
OUTPUT_SUFFIXES = (".h5", ".hdf5", ".hd5", ".tif", ".tiff") + ZARR_WRITE_SUFFIXES
#: float32 images of a frame a worker thread holds at once while estimating
#: (prepared frame, its pyramid, interpolation and correlation buffers)
WORK_IMAGES_PER_THREAD = 12
#: blocks of frames in flight at once: the one being processed, the queued
#: ones (read-ahead depth 2) and the one being read
BLOCKS_IN_FLIGHT = 4
#: largest block of registered frames computed at a time (bytes of output)
APPLY_BLOCK_BYTES = 16 * 2**20
def parse_memory_limit(value: float | str) -> int:
    """Bytes from ``value``: a number of bytes or a text such as ``"2GB"``, ``"512 MiB"``.

    Raises
    ------
    ValueError
        For anything else, or a value that is not positive.
    """
    return parse_byte_size(value, what="memory_limit")


@dataclass(frozen=True)
class ChunkPlan:
    """Frames per chunk for estimation and for apply+write, within a memory budget.

    ``read_once`` is the chunk of the single-read path: read, estimated,
    warped and written together, so each chunk in flight holds its input and
    its output (as an apply block does, without the apply blocks' 16 MB cap:
    the stack-wide steps run once per chunk on a window of frames around it),
    and one more input is in flight: the chunk being warped while the next is
    estimated.
    """

    estimate: int
    apply: int
    memory_limit: int
    read_once: int = 1


def plan_chunks(
    frame_shape: Sequence[int],
    in_dtype: Any,
    out_dtype: Any,
    *,
    memory_limit: int,
    chunk_size: int = PYRAMID_DEFAULTS.chunk_size,
    workers: int = 1,
) -> ChunkPlan:
    """Chunk sizes that keep the frame buffers within ``memory_limit`` bytes.

    Parameters
    ----------
    frame_shape : sequence of int
        One frame, ``(Y, X)`` or ``(C, Y, X)``.
    in_dtype, out_dtype
        Input and output pixel types.
    memory_limit : int
        Budget in bytes for the frame buffers (the Python process itself,
        about 200-300 MB with numpy, OpenCV and h5py loaded, comes on top).
    chunk_size : int
        Largest estimation chunk wanted.
    workers : int
        Threads (each holds a few float32 working images).

    Raises
    ------
    ValueError
        When the budget cannot hold one frame in each buffer.
    """
    pixels = int(np.prod(frame_shape[-2:], dtype=np.int64))
    in_frame = int(np.prod(frame_shape, dtype=np.int64)) * np.dtype(in_dtype).itemsize
    out_frame = int(np.prod(frame_shape, dtype=np.int64)) * np.dtype(out_dtype).itemsize
    work = workers * WORK_IMAGES_PER_THREAD * pixels * 4
    spare = memory_limit - work
    est = spare // (BLOCKS_IN_FLIGHT * in_frame) if spare > 0 else 0
    per_apply = BLOCKS_IN_FLIGHT * (in_frame + out_frame) + out_frame
    app = spare // per_apply if spare > 0 else 0
    if est < 1 or app < 1:
        need = work + max(BLOCKS_IN_FLIGHT * in_frame, per_apply)
        raise ValueError(
            f"memory_limit of {memory_limit} bytes is too small for frames of {tuple(frame_shape)} "
            f"{np.dtype(in_dtype)} with {workers} thread(s): give at least {need} bytes (e.g. '{_mb(need)}MB')."
        )
    # the single read also holds the input of the chunk being warped while the next is estimated
    once = min(chunk_size, max(1, spare // (per_apply + in_frame)))
    app = min(app, max(1, APPLY_BLOCK_BYTES // max(1, out_frame)))
    return ChunkPlan(
        estimate=int(min(chunk_size, est)), apply=int(app), memory_limit=int(memory_limit), read_once=int(once)
    )


def _mb(n: int) -> int:
    return int(np.ceil(n / 1e6))


@dataclass
class RegisteredFile:
    """What :func:`register_stack_to_file` produced.

    Attributes
    ----------
    path : pathlib.Path
        The registered stack on disk.
    transforms : FrameTransforms
        The transforms applied (smoothed when smoothing was asked for).
    raw_transforms : FrameTransforms
        Before smoothing (the same object without smoothing).
    frames_read_twice : int or None
        Single-read path: the frames read a second time (their stack-wide
        verdict changed after they were written, see :mod:`._single_read`);
        None when the input was read twice (see ``single_read``).
    """

    path: Path
    transforms: FrameTransforms
    raw_transforms: FrameTransforms
    frames_read_twice: int | None = None


def suggest_output_path(source_path: str | os.PathLike | None, name: str, *, suffix: str = ".h5") -> Path:
    """A new file name for the registered stack: ``<stem> registered.h5``.

    Beside ``source_path`` when its folder is writable, else in the system's
    temporary folder; `` (2)``, `` (3)``, ... is appended rather than
    replacing an existing file.

    Parameters
    ----------
    source_path : str or path-like, optional
        The file the stack came from (a napari layer's ``source.path``).
    name : str
        Name to use when there is no source file (e.g. the layer name).
    suffix : str
        ``".h5"`` (default), ``".tif"`` or ``".ome.zarr"``.
    """
    if suffix.lower() not in OUTPUT_SUFFIXES:
        raise ValueError(f"suffix must be one of {OUTPUT_SUFFIXES}, got {suffix!r}.")
    folder, stem = Path(tempfile.gettempdir()), name
    if source_path is not None:
        src = Path(source_path).expanduser()
        stem = src.stem if src.suffix else src.name
        if stem.lower().endswith(".ome"):  # x.ome.tif, x.ome.zarr
            stem = stem[:-4]
        if os.access(src.parent, os.W_OK):
            folder = src.parent
    stem = "".join(c if c.isalnum() or c in " ._-()" else "_" for c in f"{stem} registered").strip() or "registered"
    candidate = folder / f"{stem}{suffix}"
    k = 2
    while candidate.exists():
        candidate = folder / f"{stem} ({k}){suffix}"
        k += 1
    return candidate


def _check_output(output_path: Any, overwrite: bool, inputs: Sequence[Path] = ()) -> Path:

    out = Path(output_path).expanduser()
    folder_output = suffix_of(out) in ZARR_WRITE_SUFFIXES
    if out.suffix.lower() not in OUTPUT_SUFFIXES and not folder_output:
        raise ValueError(
            f"cannot write the registered stack to {out.name}: use an HDF5 (.h5, .hdf5, .hd5) or TIFF "
            "(.tif, .tiff) file name or an OME-Zarr folder (.ome.zarr) (HDF5 is recommended for big stacks: "
            "chunked by frames, with the transforms)."
        )
    for src in inputs:
        if _same_file(out, src):
            raise ValueError(f"the output {out} is the input file: choose another name (the input is never overwritten).")
    check_writable_dir(out)
    if folder_output and out.exists() and not out.is_dir():
        raise ValueError(f"{out} is a file, not an OME-Zarr folder: remove it or choose another name.")
    if out.is_dir() and not folder_output:
        raise ValueError(f"{out} is a folder: give a file name ending in {out.suffix}.")
    if out.exists() and not overwrite:
        raise ValueError(f"{out} already exists: pass overwrite=True to replace it, or choose another name.")
    return out


def _check_table_path(path: Any, overwrite: bool, others: Sequence[Path]) -> Path | None:
    if path is None:
        return None
    table = Path(path).expanduser()
    if table.suffix.lower() not in (".csv", ".json"):
        raise ValueError(f"transforms_path {table.name}: the table is written as .csv or .json; name it *.csv.")
    if any(_same_file(table, p) or table.resolve() == p.resolve() for p in others):
        raise ValueError("transforms_path must name a file other than the input and the output.")
    if table.exists() and not overwrite:
        raise ValueError(f"{table} already exists: pass overwrite=True to replace it, or choose another name.")
    return table


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.expanduser().resolve() == b.expanduser().resolve()


def _estimation_view(frames: Any, channel: int | None) -> Any:
    """The (T, Y, X) frames of ``channel`` of an open array (numpy, dask, h5py, ...)."""
    ndim = len(frames.shape)
    if ndim == 3:
        if channel not in (None, 0):
            raise ValueError(f"channel={channel} applies to (T, C, Y, X) stacks; this one is (T, Y, X).")
        return frames
    if ndim == 4:
        n = int(frames.shape[1])
        if channel is None:
            raise ValueError(f"the stack has {n} channels: choose the one to estimate the motion on (channel=0..{n - 1}).")
        if not 0 <= int(channel) < n:
            raise ValueError(f"channel {channel} does not exist: the stack has {n} channels (0-{n - 1}).")
        return ChannelFrames(frames, int(channel))
    raise ValueError(f"expected a (T, Y, X) or (T, C, Y, X) stack, got shape {tuple(frames.shape)}.")


def _estimate_here(
    frames: Any,
    job: PyramidJob,
    *,
    workers: int,
    progress: ProgressCallback | None,
) -> tuple[FrameTransforms, FrameTransforms]:
    """Template, then every frame chunk by chunk (reading ahead), in this process
    (the chained reference modes: every frame in order, see :mod:`._chain`)."""
    if job.chained:
        with ReadAhead(frames, frame_ranges(0, job.n_frames, job.chunk_size)) as ahead:
            return run_chain(ahead, job, progress=progress)
    pool_ctx = thread_pool(workers) if workers > 1 else None
    pool = pool_ctx.__enter__() if pool_ctx is not None else None
    try:
        state = build_template(frames, job, pool=pool, progress=progress)
        estimator = job.estimator(state.template)
        with ReadAhead(frames, frame_ranges(0, job.n_frames, job.chunk_size)) as ahead:
            results = estimate_range(
                ahead, job, state, 0, job.n_frames, estimator=estimator, pool=pool, progress=progress
            )
        results, notes, extra = stack_wide_checks(frames, job, state, results, estimator=estimator, pool=pool)
    finally:
        if pool_ctx is not None:
            pool_ctx.__exit__(None, None, None)
    return finish(job, state, results, levels_used=estimator.active_rates, notes=notes, extra_params=extra)


def _write(
    frames: Any,
    transforms: FrameTransforms,
    output: Path,
    *,
    block: int,
    workers: int,
    warp: Mapping[str, Any],
    write: Mapping[str, Any],
    progress: ProgressCallback | None,
) -> Path:
    ranges = frame_ranges(0, int(frames.shape[0]), block)
    with ReadAhead(frames, ranges) as ahead, WarpedFrames(ahead, transforms, block=block, workers=workers, **warp) as warped:
        return write_stack(output, warped, transforms=transforms, progress=progress, **write)


def register_stack_to_file(
    stack: Any,
    output_path: str | os.PathLike,
    *,
    channel: int | None = None,
    num_frames: int = PYRAMID_DEFAULTS.num_frames,
    reference_mode: str = PYRAMID_DEFAULTS.reference_mode,
    reference_frames: tuple[int, int] | None = PYRAMID_DEFAULTS.reference_frames,
    running_frames: int = PYRAMID_DEFAULTS.running_frames,
    keyframe_every: int = PYRAMID_DEFAULTS.keyframe_every,
    downsample_rates: Sequence[float] = PYRAMID_DEFAULTS.downsample_rates,
    max_movement: float = PYRAMID_DEFAULTS.max_movement,
    iterate: int = PYRAMID_DEFAULTS.iterate,
    smooth: bool = PYRAMID_DEFAULTS.smooth,
    window_length: int = PYRAMID_DEFAULTS.window_length,
    polyorder: int = PYRAMID_DEFAULTS.polyorder,
    roi: tuple[int, int, int, int] | None = PYRAMID_DEFAULTS.roi,
    mask: np.ndarray | None = PYRAMID_DEFAULTS.mask,
    normalize: bool = PYRAMID_DEFAULTS.normalize,
    reference: np.ndarray | None = None,
    kernel: str = PYRAMID_DEFAULTS.kernel,
    transforms: FrameTransforms | None = None,
    memory_limit: int | str = DEFAULT_MEMORY_LIMIT,
    chunk_size: int = PYRAMID_DEFAULTS.chunk_size,
    workers: int | None = None,
    order: int = APPLY_DEFAULTS.order,
    border: str = APPLY_DEFAULTS.border,
    cval: float = APPLY_DEFAULTS.cval,
    output_dtype: Any = None,
    compression: str | None = "none",
    metadata: Mapping | None = None,
    scale: Any = None,
    units: str | None = None,
    axes: str | None = None,
    source_path: str | os.PathLike | None = None,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
    options: PyramidOptions | None = None,
    single_read: bool = True,
) -> RegisteredFile:
    """Register an open stack and stream the result into a file.

    The array is read chunk by chunk (``np.asarray(stack[i:j])``), never as a
    whole, so it can be a lazily opened file of any size: a dask array (a
    napari layer opened lazily), an h5py dataset or a memmap.

    Parameters
    ----------
    stack : array-like, shape (T, Y, X) or (T, C, Y, X)
        The frames (all channels are registered; the motion is estimated on
        ``channel``).
    output_path : str or path-like
        ``.h5``/``.hdf5``/``.hd5`` (recommended: ``image_data`` chunked by
        frames, a ``metadata`` group and the ``transforms`` table) or
        ``.tif``/``.tiff``, or an OME-Zarr folder ``.ome.zarr``. Written
        through a temporary file (folder) beside it and renamed when complete.
    channel : int, optional
        For (T, C, Y, X) stacks: the channel to estimate on.
    num_frames, reference_mode, reference_frames, running_frames, keyframe_every, downsample_rates, max_movement, iterate, smooth, window_length, polyorder, roi, mask, normalize, reference, kernel
        As for :func:`~napari_stackalign.core.pyramid.register_pyramid`.
    transforms : FrameTransforms, optional
        Skip estimation and apply these (one per frame).
    memory_limit : int or str
        Budget for the frame buffers (bytes, or text such as ``"2GB"``);
        bounds the chunk sizes. The process itself (about 200-300 MB)
        comes on top.
    chunk_size : int
        Largest estimation chunk (frames); smaller if ``memory_limit`` asks.
    workers : int, optional
        Threads (all cores by default).
    order, border, cval, output_dtype
        Resampling, as for :func:`~napari_stackalign.core.apply.apply_transforms`.
    compression : {"none", "lzf", "zlib", "auto"} or None
        Output compression (as for :func:`~napari_stackalign.io.write_stack`).
        The default ``"none"`` keeps the write at disk speed; ``"lzf"``
        (HDF5) compresses fast, ``"zlib"`` small but slowly (about
        10-50 MB/s per core).
    metadata, scale, units, axes, source_path
        Written with the stack (see :func:`~napari_stackalign.io.write_stack`);
        ``metadata["stackalign"]`` gets the method, parameters and version.
    overwrite : bool
        Replace an existing output.
    progress : callable, optional
        ``progress(done, total, stage)``; stages ``"reference"``,
        ``"template k/n"`` (``iterate > 1``), ``"estimate"`` and
        ``"writing <name>"``. Raising
        :class:`~napari_stackalign.core.Cancelled` from it stops the run within
        one chunk and leaves no output and no temporary file.
    options : PyramidOptions, optional
        The registration's options in one object; an explicit keyword that
        differs from its default overrides it.
    single_read : bool
        Read each chunk of the input once: estimate, warp and write it, then
        move on (default; the few frames whose stack-wide verdict changes at
        the end are read again and rewritten, so the output is the same bit
        for bit). ``False``, a dask cluster, the chained reference modes and
        an OME-Zarr or compressed TIFF output estimate every frame first and
        read the input a second time to warp and write.

    Returns
    -------
    RegisteredFile
        The output path and the transforms (raw and final).

    Raises
    ------
    ValueError
        For bad parameters, an output name that is not HDF5/TIFF, an existing
        output without ``overwrite``, or a ``memory_limit`` too small for
        one frame.
    """
    opts = PyramidOptions.from_call(options, locals())
    inputs = [Path(source_path).expanduser()] if source_path is not None else []
    out = _check_output(output_path, overwrite, inputs)
    write = {"metadata": metadata, "scale": scale, "units": units, "axes": axes, "compression": compression, "overwrite": overwrite}
    warp = {"order": order, "border": border, "cval": cval, "output_dtype": output_dtype}
    run = _FileRun(opts, channel, transforms, memory_limit, workers, warp, write, source_path, progress, single_read)
    return _register_open(stack, out, _estimate_here, run)


@dataclass
class _FileRun:
    """The settings of one registration into a file, as the public functions received them.

    ``warp`` holds the resampling options (``order``, ``border``, ``cval``,
    ``output_dtype``), ``write`` the keywords of
    :func:`~napari_stackalign.io.write_stack`; ``transforms`` (when given)
    are applied instead of estimated.
    """

    options: PyramidOptions
    channel: int | None
    transforms: FrameTransforms | None
    memory_limit: int | str
    workers: int | None
    warp: dict[str, Any]
    write: dict[str, Any]
    source_path: Any
    progress: ProgressCallback | None
    single_read: bool = True


def _check_stack_shape(shape: tuple[int, ...]) -> None:
    """Raise unless ``shape`` is (T, Y, X) or (T, C, Y, X)."""
    if len(shape) not in (3, 4):
        if len(shape) == 2:
            raise ValueError(f"expected a {STACK_AXES} time series, got a single 2-D image of shape {shape}.")
        raise ValueError(f"expected a {STACK_AXES} or (T, C, Y, X) stack, got shape {shape}.")


def _register_open(stack: Any, out: Path, estimate: Any, run: _FileRun) -> RegisteredFile:
    """:func:`register_stack_to_file` with checked output and packed options;
    ``estimate(frames, job, workers=, progress=)`` returns (raw, final)."""
    stack = as_frames(stack)
    shape = tuple(int(n) for n in stack.shape)
    _check_stack_shape(shape)
    n_workers = default_workers(run.workers)
    warp = run.warp
    check_warp_options(warp["order"], warp["border"])
    out_dtype = result_dtype(np.dtype(stack.dtype), warp["border"], warp["output_dtype"])
    budget = parse_memory_limit(run.memory_limit)
    chunks = plan_chunks(
        shape[1:], stack.dtype, out_dtype, memory_limit=budget, chunk_size=run.options.chunk_size, workers=n_workers
    )
    if run.transforms is not None:
        if len(run.transforms) != shape[0]:
            raise ValueError(
                f"{len(run.transforms)} transforms for a stack of {shape[0]} frames: use transforms estimated on a "
                "stack with the same number of frames."
            )
        raw = final = run.transforms
        method, params = "apply", {"transforms_method": run.transforms.method}
    elif _second_read_reason(run, out, len(shape), cluster=estimate is not _estimate_here) is None and (
        single := _register_single_read(stack, out, run, chunks, n_workers, out_dtype, budget)
    ) is not None:
        return single
    else:
        raw, final = _estimate_file(stack, estimate, run, chunks.estimate)
        method, params = "pyramid", dict(final.params)
        if run.channel is not None:
            params["channel"] = int(run.channel)
    meta = dict(run.write.get("metadata") or {})
    meta["stackalign"] = {
        "method": method,
        "params": params,
        "version": __version__,
        "source": str(Path(run.source_path).expanduser().resolve()) if run.source_path is not None else None,
        "streaming": {"memory_limit": budget, "estimate_chunk": chunks.estimate, "apply_block": chunks.apply},
    }
    if raw is not final:
        meta["stackalign"]["raw_transforms"] = raw.to_dict()
    write = dict(run.write, metadata=meta, source_path=run.source_path)
    path = _write(stack, final, out, block=chunks.apply, workers=n_workers, warp=warp, write=write, progress=run.progress)
    report(run.progress, shape[0], shape[0], "done")
    return RegisteredFile(path, final, raw)


def _second_read_reason(run: _FileRun, out: Path, ndim: int, *, cluster: bool) -> str | None:
    """Why this run reads its input twice (estimate, then warp and write), or None when it reads it once."""
    if cluster:
        return "estimated on a dask cluster (its workers read the frames, this process writes)"
    if run.options.chained:
        return f"reference_mode {run.options.reference_mode!r} (each frame waits for the one before it)"
    if not can_write_deferred(out, run.write.get("compression"), ndim) or run.write.get("axes") not in (None, "TYX", "TCYX"):
        return "the output cannot be rewritten in place (OME-Zarr, compressed TIFF)"
    if not run.single_read:
        return "asked for (single_read=False)"
    return None


def _register_single_read(
    stack: Any, out: Path, run: _FileRun, chunks: ChunkPlan, n_workers: int, out_dtype: np.dtype, budget: int
) -> RegisteredFile | None:
    """Template first, then each chunk read once: estimated, warped and written (see :mod:`._single_read`).

    Returns None, having written nothing, when the template holds a lattice: resolving the lattice-vector
    ambiguity (:func:`._periodic.resolve_periodic`) needs every frame's estimate first, so such a stack is
    read twice.
    """
    shape = tuple(int(n) for n in stack.shape)
    frames = _estimation_view(stack, run.channel)
    chunk = chunks.read_once
    opts = run.options if chunk == run.options.chunk_size else run.options.replace(chunk_size=chunk)
    job = plan_pyramid(frames.shape, frames.dtype, opts)
    if job.chained:  # checked by the caller; kept here so the path never runs a chain
        raise ValueError("the chained reference modes are estimated in order: use the two-read path.")
    workers = estimation_workers(run.workers)
    meta = dict(run.write.get("metadata") or {})
    meta["stackalign"] = {
        "method": "pyramid",
        "params": {},
        "version": __version__,
        "source": str(Path(run.source_path).expanduser().resolve()) if run.source_path is not None else None,
        "streaming": {"memory_limit": budget, "estimate_chunk": chunk, "apply_block": chunk},
    }
    pool_ctx = thread_pool(workers) if workers > 1 else None
    pool = pool_ctx.__enter__() if pool_ctx is not None else None
    result: dict[str, Any] = {}
    try:
        state = build_template(frames, job, pool=pool, progress=run.progress)
        if detect_lattice(state.template) is not None:
            return None
        warped = SingleReadFrames(
            stack, run.channel, job, state, chunk=chunk, pool=pool, workers=n_workers, warp=run.warp,
            out_dtype=out_dtype,
        )

        def finish_write() -> FinalWrite:
            final_write, result["raw"], result["final"] = warped.finish(meta)
            if run.channel is not None:
                final_write.metadata["stackalign"]["params"]["channel"] = int(run.channel)
            return final_write

        write = {k: v for k, v in run.write.items() if k != "metadata"}
        with warped:
            path, _ = write_stack_deferred(
                out, _Reporting(warped, run.progress), finish_write, metadata=meta, source_path=run.source_path,
                progress=run.progress, **write,
            )
    finally:
        if pool_ctx is not None:
            pool_ctx.__exit__(None, None, None)
    report(run.progress, shape[0], shape[0], "done")
    return RegisteredFile(path, result["final"], result["raw"], frames_read_twice=warped.rewritten)


class _Reporting:
    """``frames`` as an array-like that reports ``"estimate"`` progress as its blocks are read."""

    def __init__(self, frames: Any, progress: ProgressCallback | None) -> None:
        self._frames = frames
        self._progress = progress
        self.shape, self.dtype, self.ndim = frames.shape, frames.dtype, frames.ndim

    def __len__(self) -> int:
        return int(self.shape[0])

    def __getitem__(self, key: Any) -> np.ndarray:
        block = self._frames[key]
        if isinstance(key, slice):
            report(self._progress, key.indices(self.shape[0])[1], int(self.shape[0]), "estimate")
        return block


def _estimate_file(
    stack: Any, estimate: Any, run: _FileRun, chunk_size: int
) -> tuple[FrameTransforms, FrameTransforms]:
    """The (raw, final) transforms of ``run.channel``, estimated in chunks of ``chunk_size`` frames."""
    frames = _estimation_view(stack, run.channel)
    opts = run.options if chunk_size == run.options.chunk_size else run.options.replace(chunk_size=chunk_size)
    job = plan_pyramid(frames.shape, frames.dtype, opts)
    return estimate(frames, job, workers=estimation_workers(run.workers), progress=run.progress)


def register_file(
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    *,
    dataset: str | None = None,
    channel: int | None = None,
    num_frames: int = PYRAMID_DEFAULTS.num_frames,
    reference_mode: str = PYRAMID_DEFAULTS.reference_mode,
    reference_frames: tuple[int, int] | None = PYRAMID_DEFAULTS.reference_frames,
    running_frames: int = PYRAMID_DEFAULTS.running_frames,
    keyframe_every: int = PYRAMID_DEFAULTS.keyframe_every,
    downsample_rates: Sequence[float] = PYRAMID_DEFAULTS.downsample_rates,
    max_movement: float = PYRAMID_DEFAULTS.max_movement,
    iterate: int = PYRAMID_DEFAULTS.iterate,
    smooth: bool = PYRAMID_DEFAULTS.smooth,
    window_length: int = PYRAMID_DEFAULTS.window_length,
    polyorder: int = PYRAMID_DEFAULTS.polyorder,
    roi: tuple[int, int, int, int] | None = PYRAMID_DEFAULTS.roi,
    mask: np.ndarray | None = PYRAMID_DEFAULTS.mask,
    normalize: bool = PYRAMID_DEFAULTS.normalize,
    reference: np.ndarray | None = None,
    kernel: str = PYRAMID_DEFAULTS.kernel,
    transforms: FrameTransforms | None = None,
    transforms_path: str | os.PathLike | None = None,
    memory_limit: int | str = DEFAULT_MEMORY_LIMIT,
    scheduler: Any = None,
    n_workers: int | None = None,
    chunk_size: int = PYRAMID_DEFAULTS.chunk_size,
    workers: int | None = None,
    order: int = APPLY_DEFAULTS.order,
    border: str = APPLY_DEFAULTS.border,
    cval: float = APPLY_DEFAULTS.cval,
    output_dtype: Any = None,
    compression: str | None = "none",
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
    options: PyramidOptions | None = None,
    single_read: bool = True,
) -> FrameTransforms:
    """Register a TIFF or HDF5 file of any size into a new file, with flat memory.

    Reference, estimation, optional smoothing, apply and write, end to end.
    The input is never read whole: it is opened lazily and read in chunks of
    frames, and the output is streamed chunk by chunk into a temporary file
    renamed onto ``output_path`` when complete. Memory stays within
    ``memory_limit`` (plus the process itself) however many frames there are.

    Parameters
    ----------
    input_path : str or path-like
        TIFF or HDF5 stack, (T, Y, X) or (T, C, Y, X) (anything
        :func:`~napari_stackalign.io.read_stack` reads).
    output_path : str or path-like
        ``.h5``/``.hdf5``/``.hd5`` (recommended for big stacks:
        ``image_data`` chunked by frames, the input's metadata with a
        ``stackalign`` block, and the ``transforms`` table) or
        ``.tif``/``.tiff`` (BigTIFF above 4 GB), or an OME-Zarr folder
        ``.ome.zarr`` (NGFF 0.4, chunks of one frame; see
        :func:`~napari_stackalign.io.write_stack`).
    dataset : str, optional
        HDF5 input: the dataset holding the stack.
    channel : int, optional
        (T, C, Y, X) input: the channel to estimate the motion on (all
        channels are corrected).
    num_frames, reference_mode, reference_frames, running_frames, keyframe_every, downsample_rates, max_movement, iterate, smooth, window_length, polyorder, roi, mask, normalize, reference, kernel
        As for :func:`~napari_stackalign.core.pyramid.register_pyramid`; the
        transforms are exactly the ones it returns for the whole stack.
    transforms : FrameTransforms, optional
        Skip estimation and apply these (e.g. estimated on another channel).
    transforms_path : str or path-like, optional
        Also save the transforms table here (``.csv`` or ``.json``).
    memory_limit : int or str
        Budget for the frame buffers (bytes, or text like ``"2GB"``); the
        chunk sizes follow from it. The process itself (about 200-300 MB)
        comes on top. Default ``"1GiB"``.
    scheduler : str or distributed.Client, optional
        Estimate on a dask.distributed cluster: a scheduler address such as
        ``"tcp://10.0.0.5:8786"`` or a connected ``Client``. The workers open
        ``input_path`` themselves (it must be readable from them under the
        same path). The template, the stack-wide steps and the writing stay
        in this process.
    n_workers : int, optional
        Estimate on a local dask.distributed cluster of this many worker
        processes (loopback only). Not together with ``scheduler``.
    chunk_size : int
        Largest estimation chunk in frames (smaller if ``memory_limit`` asks).
    workers : int, optional
        Threads in this process (all cores by default).
    order, border, cval, output_dtype
        Resampling, as for :func:`~napari_stackalign.core.apply.apply_transforms`.
    compression : {"none", "lzf", "zlib", "auto"} or None
        Output compression; ``"none"`` (default) writes at disk speed.
    overwrite : bool
        Replace an existing output (and ``transforms_path``).
    progress : callable, optional
        ``progress(done, total, stage)``; raising
        :class:`~napari_stackalign.core.Cancelled` from it stops the run
        within one chunk, leaving no output and no temporary file.
    options : PyramidOptions, optional
        The registration's options in one object; an explicit keyword that
        differs from its default overrides it.
    single_read : bool
        Read each chunk of the input once: estimate, warp and write it, then
        move on (default; the few frames whose stack-wide verdict changes at
        the end are read again and rewritten, so the output is the same bit
        for bit). ``False``, a dask cluster, the chained reference modes and
        an OME-Zarr or compressed TIFF output estimate every frame first and
        read the input a second time to warp and write.

    Returns
    -------
    FrameTransforms
        The transforms applied.

    Raises
    ------
    ValueError
        For bad parameters or files (each message says what to do), an
        existing output without ``overwrite``, ``scheduler`` together with
        ``n_workers``, or dask.distributed missing when a cluster is asked for.
    FileNotFoundError
        When ``input_path`` does not exist.
    """
    opts = PyramidOptions.from_call(options, locals())
    src = Path(input_path).expanduser()
    if not src.exists():
        raise FileNotFoundError(f"input {src} does not exist: check the path.")
    out = _check_output(output_path, overwrite, [src])
    table = _check_table_path(transforms_path, overwrite, [src, out])
    if scheduler is not None and n_workers is not None:
        raise ValueError("give either scheduler= (an existing cluster) or n_workers= (a local cluster), not both.")
    source = FileFrames(str(src), dataset)
    warp = {"order": order, "border": border, "cval": cval, "output_dtype": output_dtype}
    write = {"compression": compression, "overwrite": overwrite}
    run = _FileRun(opts, channel, transforms, memory_limit, workers, warp, write, src, progress, single_read)
    distributed = (scheduler is not None or n_workers is not None) and transforms is None
    if distributed:
        check_cluster_mode(opts)
    with source.open() as opened:
        info = opened.info
        write.update(metadata=info.metadata, scale=info.scale, units=info.units, axes=info.axes)
        if distributed:
            estimate = cluster_estimator(source, channel, scheduler=scheduler, n_workers=n_workers)
        else:
            estimate = _estimate_here
        result = _register_open(opened.frames, out, estimate, run)
    if table is not None:
        result.transforms.save(table)
    return result.transforms
