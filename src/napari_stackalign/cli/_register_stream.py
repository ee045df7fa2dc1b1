"""``stackalign register`` for big inputs and clusters: the streaming path.

``register.run`` hands over here when the input is opened lazily (it does
not fit under ``--max-memory``, see ``_memory_cap``), or when ``--scheduler`` or
``--workers`` asks for a dask.distributed cluster. Everything then goes
through :func:`~napari_stackalign.core.pyramid.register_file`: flat memory
whatever the frame count, each chunk of the input read once (estimated, warped
and written; a cluster, the chained reference modes and OME-Zarr or compressed
TIFF outputs read it twice), the output streamed into a temporary file renamed
when complete, and (with a cluster) the estimation spread over its workers.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..core.apply import APPLY_DEFAULTS
from ..core.pyramid import PyramidOptions, register_file, register_stack_to_file
from ..io import StackData
from ..transforms import FrameTransforms
from ._chunk_advice import chunk_advice
from ._common import terminal_progress
from ._memory_cap import describe, max_memory_of, streaming_limit
from ._register_common import RegisterPaths, load_table, messages, without_done_stage

__all__ = ["add_cluster_arguments", "run_streaming", "wants_cluster"]


def add_cluster_arguments(group: Any) -> None:
    """Add ``--scheduler`` and ``--workers`` to an argument group."""
    group.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="estimate on the dask.distributed cluster at ADDRESS (e.g. tcp://10.0.0.5:8786); "
        "its workers must read IN under the same path.",
    )
    group.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="estimate on a local dask.distributed cluster of N worker processes (loopback only).",
    )


def wants_cluster(args: argparse.Namespace) -> bool:
    """Whether ``--scheduler`` or ``--workers`` was given (checking they are not both)."""
    scheduler = getattr(args, "scheduler", None)
    workers = getattr(args, "workers", None)
    if scheduler is not None and workers is not None:
        raise ValueError("give either --scheduler ADDRESS (an existing cluster) or --workers N (a local one), not both.")
    if workers is not None and workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}.")
    return scheduler is not None or workers is not None


def run_streaming(
    args: argparse.Namespace,
    paths: RegisterPaths,
    options: PyramidOptions,
    *,
    channel: int | None,
    n_frames: int,
    data: StackData | None = None,
    frame_pixels: int = 0,
    frame_shape: tuple[int, ...] = (),
    dtype: Any = None,
) -> tuple[FrameTransforms, str]:
    """Register ``paths.input`` into ``paths.output`` with :func:`register_file`.

    With ``data`` (the input opened with ``--axes``: its frames reordered
    lazily, or one position of the file) the frames are streamed from it by
    :func:`register_stack_to_file` instead, which does not reopen the file in
    its own axis order. A template shared by a batch
    (``--template-from``) is the options' reference image. With ``--max-memory`` the frame buffers get what the
    cap leaves (:func:`~napari_stackalign.cli._memory_cap.streaming_limit`); with ``frame_shape`` and
    ``dtype`` (one frame of the input), a cap that leaves chunks too small for full speed is said
    (:func:`~napari_stackalign.cli._chunk_advice.chunk_advice`).

    Returns
    -------
    (transforms, action)
        The transforms applied, and what was done (for the summary).
    """
    cluster = wants_cluster(args)
    say = messages(args)
    if getattr(args, "failed", APPLY_DEFAULTS.failed) != APPLY_DEFAULTS.failed:
        raise ValueError(
            f"--failed {args.failed}: big (streamed) inputs and clusters apply the default, "
            f"--failed {APPLY_DEFAULTS.failed}; drop the flag."
        )
    if cluster:
        where = args.scheduler if args.scheduler is not None else f"a local cluster of {args.workers} workers"
        say(f"stackalign register: estimating on {where}")
    else:
        cap = max_memory_of(args)
        say(
            f"stackalign register: {paths.input.name} does not fit in memory"
            + (f" under --max-memory {describe(cap)}" if cap is not None else "")
            + ": streaming it chunk by chunk"
        )
    budget = {}
    if max_memory_of(args) is not None and not cluster:
        budget["memory_limit"] = streaming_limit(max_memory_of(args), frame_pixels)
        advice = chunk_advice(max_memory_of(args), frame_shape, dtype) if frame_shape else None
        if advice is not None:
            say(f"stackalign register: {advice}")
    table = None
    if args.apply_transforms is not None:
        table = load_table(args.apply_transforms, n_frames, paths.input)
    if data is not None:
        if cluster:
            raise ValueError(
                "--axes cannot be combined with --scheduler/--workers yet (the workers read the file in its own "
                "axis order): drop the cluster options, or save the stack as (T, Y, X) first."
            )
        with terminal_progress(enabled=not args.quiet) as bar:
            done = register_stack_to_file(
                data.data,
                paths.output,
                channel=channel,
                transforms=table,
                overwrite=args.overwrite,
                compression=args.compression,
                metadata=data.metadata,
                scale=data.scale,
                units=data.units,
                axes=data.axes,
                source_path=paths.input,
                progress=without_done_stage(bar),
                **budget,
                **options.to_dict(),
            )
        if paths.table is not None:
            done.transforms.save(paths.table)
        action = f"applied {Path(args.apply_transforms).name}" if table is not None else "estimated"
        return done.transforms, action
    with terminal_progress(enabled=not args.quiet) as bar:
        result = register_file(
            paths.input,
            paths.output,
            dataset=args.dataset,
            channel=channel,
            transforms=table,
            transforms_path=paths.table,
            scheduler=args.scheduler if cluster else None,
            n_workers=args.workers if cluster else None,
            overwrite=args.overwrite,
            compression=args.compression,
            progress=without_done_stage(bar),
            **budget,
            **options.to_dict(),
        )
    action = f"applied {Path(args.apply_transforms).name}" if table is not None else "estimated"
    return result, action
