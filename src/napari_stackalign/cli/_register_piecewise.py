"""``stackalign register --piecewise``: piecewise-rigid registration of an input that fits in memory.

The rigid pyramid step takes the usual flags; ``--patch-size``,
``--patch-overlap`` and ``--max-deviation`` come from
:class:`~napari_stackalign.core.piecewise.PiecewiseOptions`. ``--transforms
T.csv`` writes the rigid table there and the whole result (rigid part,
patch centres, residual field, patch flags) to ``T.npz`` beside it;
``--apply-transforms T.npz`` applies such a result to another file (e.g.
another channel). Big files opened lazily and clusters are refused (exit 2).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..core.apply import apply_transforms
from ..core.piecewise import PiecewiseOptions, register_piecewise
from ..core.pyramid import PyramidOptions
from ..io import StackData
from ..piecewise_transforms import PiecewiseTransforms
from ._common import terminal_progress
from ._options import add_option_arguments, options_from_args
from ._register_common import RegisterPaths, load_table, without_done_stage
from ._register_memory import provenance, write_registered

__all__ = ["PIECEWISE_CLI_OPTIONS", "add_piecewise_arguments", "field_path", "run_piecewise", "wants_piecewise"]

#: the :class:`PiecewiseOptions` fields the command line offers
PIECEWISE_CLI_OPTIONS = ("patch_size", "patch_overlap", "max_deviation")


def add_piecewise_arguments(group: Any) -> None:
    """``--piecewise`` and the patch flags (names, defaults and help from :class:`PiecewiseOptions`)."""
    group.add_argument(
        "--piecewise",
        action="store_true",
        help="after the rigid step, register overlapping patches and correct a smooth residual field per frame "
        "(non-rigid motion, as suite2p/NoRMCorre); --transforms T.csv also writes the field to T.npz.",
    )
    add_option_arguments(
        group,
        PiecewiseOptions,
        PIECEWISE_CLI_OPTIONS,
        metavars={"patch_size": "PX", "patch_overlap": "PX", "max_deviation": "PX"},
    )


def wants_piecewise(args: argparse.Namespace) -> bool:
    """``--piecewise``, or ``--apply-transforms`` of a piecewise result (.npz)."""
    applied = getattr(args, "apply_transforms", None)
    return bool(args.piecewise) or (applied is not None and Path(applied).suffix.lower() == ".npz")


def field_path(table: Path) -> Path:
    """Where the piecewise result goes beside the ``--transforms`` table."""
    return table.with_suffix(".npz")


def run_piecewise(
    args: argparse.Namespace, paths: RegisterPaths, options: PyramidOptions, data: StackData, estimate_on: Any
) -> tuple[PiecewiseTransforms, str]:
    """Register (or apply a saved field to) ``data`` in memory, write the output and the tables."""
    patch_options = options_from_args(PiecewiseOptions, args, PIECEWISE_CLI_OPTIONS)
    stack = data.data
    if paths.table is not None and field_path(paths.table).exists() and not args.overwrite:
        raise ValueError(f"{field_path(paths.table)} already exists: pass --overwrite to replace it.")
    with terminal_progress(enabled=not args.quiet) as bar:
        progress = without_done_stage(bar)
        if args.apply_transforms is not None:
            result = load_table(args.apply_transforms, int(stack.shape[0]), paths.input)
            action = f"applied {Path(args.apply_transforms).name}"
        else:
            result = register_piecewise(estimate_on, rigid_options=options, options=patch_options, progress=progress)
            action = "estimated (piecewise)"
        registered = apply_transforms(stack, result, failed=args.failed, progress=progress)
        metadata = dict(data.metadata)
        block = provenance(args, options, paths.input, action)
        if isinstance(result, PiecewiseTransforms) and args.apply_transforms is None:
            block["method"] = "piecewise"
            block["params"]["piecewise"] = patch_options.to_dict()
        metadata["stackalign"] = block
        rigid = result.rigid if isinstance(result, PiecewiseTransforms) else result
        write_registered(args, paths, data, registered, transforms=rigid, metadata=metadata, progress=progress)
    if paths.table is not None:
        rigid = result.rigid if isinstance(result, PiecewiseTransforms) else result
        rigid.save(paths.table)
        if isinstance(result, PiecewiseTransforms):
            result.save(field_path(paths.table))
    if not args.quiet and isinstance(result, PiecewiseTransforms):
        used = float(result.patch_ok.mean()) if result.patch_ok.size else 0.0
        print(
            f"piecewise: {result.patch_rows.size}x{result.patch_cols.size} patches, {used:.0%} used as estimated, "
            f"residual field RMS up to {result.residual_rms().max():.2f} px"
        )
    return result, action
