"""``stackalign register`` for big inputs and clusters: the streaming path.

``register.run`` hands over here when the input is opened lazily (larger
than a quarter of this machine's memory), or when ``--scheduler`` or
``--workers`` asks for a dask.distributed cluster. Everything then goes
through :func:`~napari_stackalign.core.pyramid._to_file.register_file`: flat memory
whatever the frame count, the output streamed into a temporary file renamed
when complete, and (with a cluster) the estimation spread over its workers.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ._common import terminal_progress

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
    *,
    in_path: Path,
    out_path: Path,
    fmt: str,
    csv_path: Path | None,
    rates: tuple,
    roi: Any,
    mask: np.ndarray | None,
    channel: int | None,
    shape: tuple[int, ...],
    dtype: Any,
    t0: float,
) -> int:
    """Register ``in_path`` into ``out_path`` with :func:`register_file`; returns the exit code."""
    from ..core.pyramid import register_file
    from .register import _summary, _without_done_stage, engine_options, load_table

    cluster = wants_cluster(args)
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr))
    if cluster:
        where = args.scheduler if args.scheduler is not None else f"a local cluster of {args.workers} workers"
        say(f"stackalign register: estimating on {where}")
    else:
        say(f"stackalign register: {in_path.name} is larger than a quarter of the memory: streaming it chunk by chunk")
    transforms = None
    if args.apply_transforms is not None:
        transforms = load_table(args.apply_transforms, shape[0], in_path)
    with terminal_progress(enabled=not args.quiet) as bar:
        result = register_file(
            in_path,
            out_path,
            dataset=args.dataset,
            channel=channel,
            transforms=transforms,
            transforms_path=csv_path,
            scheduler=args.scheduler if cluster else None,
            n_workers=args.workers if cluster else None,
            overwrite=args.overwrite,
            compression=args.compression,
            progress=_without_done_stage(bar),
            **engine_options(args, rates, roi, mask),
        )
    if not args.quiet:
        action = f"applied {Path(args.apply_transforms).name}" if transforms is not None else "estimated"
        _summary(result, _Shape(shape, dtype), out_path, fmt, csv_path, action, time.perf_counter() - t0)
    return 0


class _Shape:
    """Shape and dtype of the input, for the summary."""

    def __init__(self, shape: tuple[int, ...], dtype: Any) -> None:
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
