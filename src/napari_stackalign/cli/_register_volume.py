"""``stackalign register`` on volumes over time, (T, Z, Y, X) or (T, C, Z, Y, X): 3-D, in memory or streamed."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from .._volume_transforms import VolumeTransforms
from ..core.apply import apply_transforms
from ..core.pyramid import PyramidOptions, register_pyramid
from ..io import StackData
from ._common import terminal_progress
from ._register_common import RegisterPaths, load_table, without_done_stage
from ._register_memory import provenance, write_registered
from ._register_volume_stream import run_volumes_streaming

__all__ = ["run_volumes"]


def run_volumes(
    args: argparse.Namespace, paths: RegisterPaths, options: PyramidOptions, data: StackData, *, cluster: bool
) -> tuple[VolumeTransforms, str]:
    """Register a volume stack (motion estimated on ``--channel`` of TCZYX input, applied to every channel),
    write the output and the table; returns the transforms and what was done.

    Input the reader opened lazily (it does not fit under ``--max-memory``) is streamed volume by
    volume into the output (:mod:`._register_volume_stream`); the rest is registered in memory.

    Raises
    ------
    ValueError
        For ``--scheduler``/``--workers`` (a dask cluster: volumes are registered on this machine),
        ``--channel`` on single-channel volumes, ``--mask``, or a 2-D table to apply.
    """
    if cluster:
        raise ValueError(
            f"{paths.input.name} holds volumes over time: --scheduler/--workers (a dask cluster) are for (T, Y, X) "
            "stacks. Drop them: volumes are registered on this machine, streamed volume by volume when they do not "
            "fit in memory."
        )
    if args.mask:
        raise ValueError("--mask is not supported for volume stacks yet: use --roi (rows and columns of every plane).")
    channel = None
    if data.axes == "TCZYX":
        channel = args.channel
    elif args.channel != 0:
        raise ValueError("--channel applies to multichannel (T, C, Z, Y, X) input only; this input has one channel.")
    table = None
    action = "estimated"
    if args.apply_transforms is not None:
        loaded = load_table(args.apply_transforms, int(data.shape[0]), paths.input)
        if not isinstance(loaded, VolumeTransforms):
            raise ValueError(
                f"{Path(args.apply_transforms).name} is a 2-D table (no dz column): volumes take a table of "
                "(dz, dy, dx) estimated on a volume stack."
            )
        table, action = loaded, f"applied {Path(args.apply_transforms).name}"
    if data.lazy:
        return run_volumes_streaming(args, paths, options, data, channel=channel, table=table, action=action)
    stack = data.data if isinstance(data.data, np.ndarray) else np.asarray(data.data)
    with terminal_progress(enabled=not args.quiet) as bar:
        progress = without_done_stage(bar)
        if table is not None:
            transforms = table
        else:
            settings: dict[str, Any] = options.to_dict()
            transforms = register_pyramid(stack, **settings, axes=data.axes, channel=channel, progress=progress)
        registered = apply_transforms(stack, transforms, failed=args.failed, progress=progress)
        metadata = dict(data.metadata)
        metadata["stackalign"] = provenance(args, options, paths.input, action)
        write_registered(args, paths, data, registered, transforms=transforms, metadata=metadata, progress=progress)
    if paths.table is not None:
        transforms.save(paths.table)
    return transforms, action
