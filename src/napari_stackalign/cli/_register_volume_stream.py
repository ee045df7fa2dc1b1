"""``stackalign register`` on volumes over time that do not fit in memory: file to file, bounded memory.

``_register_volume.run_volumes`` hands over here when the reader opened the
input lazily (it does not fit under ``--max-memory``, see ``_memory_cap``).
:func:`~napari_stackalign.core.volume.register_volumes_to_file` then
estimates volume by volume (the template from the first ``--num_frames``,
then every volume) and streams the shifted volumes into a temporary file
renamed onto the output when complete, with the table and metadata. The
memory it holds does not grow with the number of volumes:
:data:`STREAM_VOLUMES` float32 volumes for the estimation, the writer's block
and :data:`VOLUMES_PER_THREAD` per resampling thread; the threads are as
many as the cap leaves room for (at most one per core).
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from .._volume_transforms import VolumeTransforms
from ..core.pyramid import PyramidOptions
from ..core.volume import register_volumes_to_file
from ..core.workers import default_workers
from ..io import StackData
from ..io._lazy import ITER_CHUNK_BYTES
from ._common import terminal_progress
from ._memory_cap import describe, max_memory_of, process_memory
from ._register_common import RegisterPaths, messages, without_done_stage
from ._register_memory import provenance

__all__ = ["STREAM_VOLUMES", "VOLUMES_PER_THREAD", "run_volumes_streaming", "stream_threads"]

#: float32 volumes (one channel) a streamed run holds beside the process: measured 25 with tracemalloc
#: (numpy arrays only) and 51-59 in resident memory above the imports (allocator slack, FFT plans, h5py;
#: 32x128x128, 30, 60 and 120 volumes alike, docs/volumes.md), with some margin
STREAM_VOLUMES = 64
#: float32 volumes (all channels) each resampling thread holds: the input, its float copy, the
#: shifted volume and its rounded output
VOLUMES_PER_THREAD = 4


def stream_threads(cap: int | None, volume_voxels: int, n_channels: int) -> int:
    """Resampling threads that fit under ``cap`` (all cores without a cap).

    Raises
    ------
    ValueError
        When the cap cannot hold the estimation and one resampling thread
        (the message gives the least cap that works).
    """
    cores = default_workers(None)
    if cap is None:
        return cores
    used = process_memory()
    base = STREAM_VOLUMES * volume_voxels * 4 + ITER_CHUNK_BYTES
    per_thread = VOLUMES_PER_THREAD * volume_voxels * max(1, n_channels) * 4
    room = cap - used - base
    if room < per_thread:
        least = used + base + per_thread
        raise ValueError(
            f"--max-memory {describe(cap)} is too small to stream these volumes: the process uses {describe(used)} "
            f"and a streamed volume run needs about {describe(base + per_thread)} more (about {STREAM_VOLUMES} "
            f"float32 volumes and a {describe(ITER_CHUNK_BYTES)} write block): give at least --max-memory "
            f"{describe(least)}, or register a cropped sub-volume and apply its table with --apply-transforms."
        )
    return int(max(1, min(cores, room // per_thread)))


def run_volumes_streaming(
    args: argparse.Namespace,
    paths: RegisterPaths,
    options: PyramidOptions,
    data: StackData,
    *,
    channel: int | None,
    table: VolumeTransforms | None,
    action: str,
) -> tuple[VolumeTransforms, str]:
    """Register the lazily opened volume stack ``data`` into ``paths.output`` (``table``: apply it
    instead of estimating); returns the transforms and what was done."""
    stack = data.data
    shape = tuple(int(n) for n in stack.shape)
    voxels = int(np.prod(shape[-3:], dtype=np.int64))
    n_channels = shape[1] if data.axes == "TCZYX" else 1
    cap = max_memory_of(args)
    threads = stream_threads(cap, voxels, n_channels)
    messages(args)(
        f"stackalign register: {paths.input.name} ({shape[0]} volumes of {shape[-3]}x{shape[-2]}x{shape[-1]}) does "
        "not fit in memory" + (f" under --max-memory {describe(cap)}" if cap is not None else "")
        + ": streaming it volume by volume"
    )
    metadata: dict[str, Any] = dict(data.metadata)
    metadata["stackalign"] = provenance(args, options, paths.input, action)
    with terminal_progress(enabled=not args.quiet) as bar:
        done = register_volumes_to_file(
            stack,
            paths.output,
            axes=data.axes,
            channel=channel,
            options=options,
            transforms=table,
            apply_workers=threads,
            failed=args.failed,
            metadata=metadata,
            scale=data.scale,
            units=data.units,
            compression=args.compression,
            overwrite=args.overwrite,
            source_path=paths.input,
            progress=without_done_stage(bar),
        )
    if paths.table is not None:
        done.transforms.save(paths.table)
    return done.transforms, action
