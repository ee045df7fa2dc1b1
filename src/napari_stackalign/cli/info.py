"""``stackalign info PATH``: what a file (or folder of frames) holds."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from ..io import MEMORY_FRACTION, input_formats_help, read_stack, total_memory

__all__ = ["add_parser", "describe", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "info",
        help="show what a stack file holds (shape, dtype, axes, pixel size, metadata, transforms)",
        description=(
            "Show what a stack file or folder of frames holds, as read_stack sees it, "
            "without reading its pixels."
        ),
    )
    parser.add_argument("path", help=f"the stack file or folder: {input_formats_help()}")
    parser.add_argument("--dataset", metavar="NAME", help="HDF5: the dataset holding the stack (e.g. imaging)")
    parser.add_argument(
        "--axes",
        metavar="AXES",
        help="the file's axis order when it does not say it, e.g. YXT for (rows, cols, frames)",
    )
    parser.set_defaults(func=run)
    return parser


def describe(stack: Any) -> list[str]:
    """Lines describing a :class:`~napari_stackalign.io.StackData`."""
    lines = [
        f"path:        {stack.path}",
        f"shape:       {stack.shape}",
        f"dtype:       {stack.dtype}",
        f"axes:        {stack.axes}"
        + (f" (channel axis {stack.channel_axis})" if stack.channel_axis is not None else ""),
        f"frames:      {stack.n_frames}",
    ]
    if stack.pixel_size is not None:
        unit = stack.units or "(no unit)"
        lines.append(f"pixel size:  {stack.pixel_size[0]:.6g} x {stack.pixel_size[1]:.6g} {unit} (row x col)")
        if stack.scale[0] != 1.0:
            lines.append(f"frame step:  {stack.scale[0]:.6g}")
    else:
        lines.append("pixel size:  not calibrated")
    nbytes = int(np.prod(stack.shape, dtype=np.int64)) * stack.dtype.itemsize
    budget = MEMORY_FRACTION * total_memory()
    lazy = nbytes > budget
    lines.append(
        f"lazy:        {'yes' if lazy else 'no'} ({_size(nbytes)} {'>' if lazy else '<='} "
        f"{_size(budget)}, {MEMORY_FRACTION:.0%} of RAM: "
        f"{'opened as a dask array, read on demand' if lazy else 'read into memory'})"
    )
    keys = ", ".join(sorted(map(str, stack.metadata))) or "none"
    lines.append(f"metadata:    {keys}")
    if stack.transforms is not None:
        t = stack.transforms
        method = f", method {t.method!r}" if t.method else ""
        lines.append(f"transforms:  yes ({len(t)} frames{method})")
    else:
        lines.append("transforms:  none")
    return lines


def _size(nbytes: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if nbytes < 1000:
            return f"{nbytes:.3g} {unit}"
        nbytes /= 1000
    return f"{nbytes:.3g} TB"


def run(args: argparse.Namespace) -> int:
    # lazy=True: only headers are read, however big the file (GIFs are always read whole)
    stack = read_stack(args.path, dataset=args.dataset, axes=args.axes, lazy=True)
    try:
        print("\n".join(describe(stack)))
    finally:
        stack.close()
    return 0
