"""``stackalign register`` for inputs that fit in memory.

``register.run`` hands over here when the reader loaded the input into
memory and no cluster was asked for: estimate (or load ``--apply-transforms``),
resample on every core, and write the output with the input's metadata and
calibration and a ``stackalign`` provenance block.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..core.apply import APPLY_DEFAULTS, apply_transforms
from ..core.pyramid import PyramidOptions, register_and_apply, register_pyramid
from ..io import StackData, write_stack
from ..transforms import FrameTransforms
from ._common import terminal_progress
from ._register_common import CLI_OPTIONS, RegisterPaths, load_table, without_done_stage

__all__ = ["provenance", "run_in_memory", "write_registered"]


def run_in_memory(
    args: argparse.Namespace,
    paths: RegisterPaths,
    options: PyramidOptions,
    data: StackData,
    estimate_on: Any,
) -> tuple[FrameTransforms, str]:
    """Register ``data`` (motion estimated on ``estimate_on``: the stack or one channel), write the output
    and the table; returns the transforms and what was done (for the summary)."""
    stack = data.data
    with terminal_progress(enabled=not args.quiet) as bar:
        progress = without_done_stage(bar)
        # the input is in memory here (larger files take the streaming path):
        # resample in memory too, on every core
        if args.apply_transforms is not None:
            transforms = load_table(args.apply_transforms, int(stack.shape[0]), paths.input)
            registered, action = None, f"applied {Path(args.apply_transforms).name}"
        else:
            overlap = args.failed == APPLY_DEFAULTS.failed  # the overlapped path applies the default policy
            transforms, registered = _estimate(
                stack, estimate_on if overlap else None, options, progress
            )
            action = "estimated"
        if registered is None:
            registered = apply_transforms(_in_memory(stack), transforms, failed=args.failed, progress=progress)
        metadata = dict(data.metadata)
        metadata["stackalign"] = provenance(args, options, paths.input, action)
        write_registered(args, paths, data, registered, transforms=transforms, metadata=metadata, progress=progress)
    if paths.table is not None:
        transforms.save(paths.table)
    return transforms, action


def write_registered(
    args: argparse.Namespace,
    paths: RegisterPaths,
    data: StackData,
    registered: Any,
    *,
    transforms: Any,
    metadata: dict,
    progress: Any,
) -> None:
    """Write the registered stack to ``paths.output`` with the input's calibration and axes (``-o``,
    ``--overwrite``, ``--compression``), its transforms and ``metadata``."""
    write_stack(
        paths.output,
        registered,
        metadata=metadata,
        transforms=transforms,
        scale=data.scale,
        units=data.units,
        axes=data.axes,
        overwrite=args.overwrite,
        source_path=paths.input,
        compression=args.compression,
        progress=progress,
    )


def _estimate(
    stack: Any, estimate_on: Any, options: PyramidOptions, progress: Any
) -> tuple[FrameTransforms, np.ndarray | None]:
    """The transforms, and the registered stack when it came with them (``estimate_on`` None: the stack,
    not overlapped with the resampling). A template shared by a batch (``--template-from``) is the
    options' reference image."""
    kwargs = {**options.to_dict(), "progress": progress}
    if estimate_on is None:
        return register_pyramid(stack, **kwargs), None
    if estimate_on is stack:
        # one channel: estimation and resampling overlapped
        aligned = register_and_apply(stack, **kwargs)
        return aligned.transforms, aligned.data
    return register_pyramid(estimate_on, **kwargs), None


def _in_memory(stack: Any) -> Any:
    """``stack`` as a numpy array when it is not one already (the reader
    hands small files over in memory)."""
    return stack if isinstance(stack, np.ndarray) else np.asarray(stack)


def provenance(args: argparse.Namespace, options: PyramidOptions, in_path: Path, action: str) -> dict:
    """The ``stackalign`` metadata block of the output: method, parameters, version, source."""
    params: dict[str, Any]
    if args.apply_transforms is not None:
        params = {"apply_transforms": str(Path(args.apply_transforms).expanduser().resolve())}
    else:
        params = {}
        for name in options.specs():
            if name == "mask":
                params[name] = str(Path(args.mask).expanduser().resolve()) if args.mask else None
            elif name in CLI_OPTIONS:
                value = getattr(options, name)
                params[name] = list(value) if isinstance(value, tuple) else value
        params["channel"] = args.channel
    return {
        "method": "pyramid" if args.apply_transforms is None else "apply",
        "params": params,
        "version": __version__,
        "source": str(in_path.resolve()),
        "action": action,
    }
