"""``stackalign register`` on volumes over time, (T, Z, Y, X) or (T, C, Z, Y, X): in memory, 3-D."""

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

__all__ = ["run_volumes"]


def run_volumes(
    args: argparse.Namespace, paths: RegisterPaths, options: PyramidOptions, data: StackData, *, cluster: bool
) -> tuple[VolumeTransforms, str]:
    """Register a volume stack (motion estimated on ``--channel`` of TCZYX input, applied to every channel),
    write the output and the table; returns the transforms and what was done.

    Raises
    ------
    ValueError
        For input opened lazily (larger than memory) or ``--cluster`` (volumes are registered in memory
        only, for now), ``--channel`` on single-channel volumes, ``--mask``, or a 2-D table to apply.
    """
    if data.lazy or cluster:
        raise ValueError(
            f"{paths.input.name} is a volume stack {data.shape} too large to hold in memory here (or --cluster "
            "was given): volumes are registered in memory only for now. Split it into shorter time ranges, "
            "or register a sub-volume (crop Z, Y, X) and apply the table with --apply-transforms."
        )
    if args.mask:
        raise ValueError("--mask is not supported for volume stacks yet: use --roi (rows and columns of every plane).")
    channel = None
    if data.axes == "TCZYX":
        channel = args.channel
    elif args.channel != 0:
        raise ValueError("--channel applies to multichannel (T, C, Z, Y, X) input only; this input has one channel.")
    stack = data.data if isinstance(data.data, np.ndarray) else np.asarray(data.data)
    with terminal_progress(enabled=not args.quiet) as bar:
        progress = without_done_stage(bar)
        if args.apply_transforms is not None:
            transforms = load_table(args.apply_transforms, int(stack.shape[0]), paths.input)
            if not isinstance(transforms, VolumeTransforms):
                raise ValueError(
                    f"{Path(args.apply_transforms).name} is a 2-D table (no dz column): volumes take a table of "
                    "(dz, dy, dx) estimated on a volume stack."
                )
            action = f"applied {Path(args.apply_transforms).name}"
        else:
            settings: dict[str, Any] = options.to_dict()
            transforms = register_pyramid(stack, **settings, axes=data.axes, channel=channel, progress=progress)
            action = "estimated"
        registered = apply_transforms(stack, transforms, failed=args.failed, progress=progress)
        metadata = dict(data.metadata)
        metadata["stackalign"] = provenance(args, options, paths.input, action)
        write_registered(args, paths, data, registered, transforms=transforms, metadata=metadata, progress=progress)
    if paths.table is not None:
        transforms.save(paths.table)
    return transforms, action
