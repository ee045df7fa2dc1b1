"""``stackalign average``: all-pairs Fourier-masked registration and averaging.

The rigidregistration workflow (Fourier mask, every pair correlated,
transitivity outliers, shifts to the mean position, averaged image) as one
command. Writes the average as a float32 TIFF whose description holds the
shift matrices, outliers, shifts, crop and every parameter as JSON; optionally
the registered stack, the transforms table and a PDF/PNG report.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ..core.pairwise import (
    MASK_KINDS,
    PairwiseOptions,
    PairwiseResult,
    register_pairwise,
    save_pairwise_report,
    save_pairwise_tiff,
    save_registered_tiff,
)
from ..io import input_formats_help, read_mask
from ..parsing import parse_index_list
from ._batch import add_batch_arguments, record_result
from ._common import terminal_progress
from ._memory_cap import add_max_memory_argument, describe
from ._options import add_option_arguments, options_from_args
from ._positions import open_stack
from ._safety import Output, add_failed_arguments, check_outputs

__all__ = ["add_parser", "parse_frames", "parse_optional_float", "run"]

EXAMPLES = """\
examples:
  stackalign average -i stem.tif -o stem_average.tif --mask hann --n 4 --maxima gf --report report.pdf
  stackalign average -i stem.tif -o avg.tif --mask elliptical --n 6 --n2 2 --theta 60 --threshold 1.5
  stackalign average -i stem.tif -o avg.tif --bad-frames 3,7 --registered registered.tif --transforms shifts.csv
  stackalign average -i noise.tif -o avg.tif --force     # write even when no frame is trustworthy (else exit 3)

Shift matrices: dy[i][j], dx[i][j] = displacement of frame j relative to frame i (rigidregistration's
X_ij, Y_ij). The transforms table holds, per frame, the correction (dy, dx) in pixels that moves the
frame onto the mean position of the frames; the sample's drift is its negative.
"""


#: the options each argument group offers, in order
MASK_OPTIONS = ("n", "n2", "theta")
PEAK_OPTIONS = ("correlation", "maxima", "num_peaks", "sigma_guess", "window_radius", "upsample")
OUTLIER_OPTIONS = ("threshold", "maxpaths", "max_shift", "bad_frames", "weights", "average")
#: every option the command sets (``registered`` follows --registered)
CLI_OPTIONS = ("mask", *MASK_OPTIONS, *PEAK_OPTIONS, *OUTLIER_OPTIONS)


def parse_optional_float(text: str) -> float | None:
    """A float, or None for 'none'/'off'."""
    if str(text).strip().lower() in ("none", "off", ""):
        return None
    try:
        return float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a number or 'none', got {text!r}") from exc


def parse_frames(text: str) -> list[int]:
    """Comma-separated frame indices, e.g. '3,7,12' (for argparse)."""
    try:
        return parse_index_list(text, what="--bad-frames", example="3,7,12")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _dashed_first(*names: str) -> dict[str, tuple[str, ...]]:
    """``--num-peaks`` and ``--num_peaks`` (the dashed spelling shown first)."""
    return {name: ("--" + name.replace("_", "-"), "--" + name) for name in names}


def _add_io_arguments(p: argparse.ArgumentParser) -> None:
    io = p.add_argument_group("input and output")
    io.add_argument(
        "-i", "--input", required=True, action="append", metavar="IN",
        help=f"input stack: {input_formats_help()}; repeat -i, or quote a glob, for a batch into the -o folder.",
    )
    io.add_argument("-o", "--output", required=True, metavar="OUT.tif", help="the averaged image (.tif/.tiff).")
    io.add_argument("--dataset", default=None, help="HDF5 input: the dataset to read.")
    io.add_argument("--channel", type=int, default=0, help="for (T, C, Y, X) input: the channel to use (default 0).")
    io.add_argument("--no-crop", action="store_true", help="write the full frame, not the area every frame covers.")
    io.add_argument("--report", metavar="PATH", default=None, help="also write a report (.pdf or .png).")
    io.add_argument("--registered", metavar="REG.tif", default=None, help="also write the registered stack.")
    io.add_argument("--transforms", metavar="PATH", default=None, help="also write the per-frame table (.csv/.json).")
    io.add_argument("--overwrite", action="store_true", help="replace existing output files.")
    io.add_argument("--workers", type=int, default=None, help="threads (default: all cores).")
    io.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no summary.")
    add_max_memory_argument(io)
    add_batch_arguments(io)


def _add_method_arguments(p: argparse.ArgumentParser) -> None:
    m = p.add_argument_group("Fourier mask")
    # a mask array comes from --user-mask: --mask offers the named kinds
    m.add_argument(
        "--mask",
        default=PairwiseOptions.default("mask"),
        choices=[k for k in MASK_KINDS if k != "user"],
        help="mask shape (default %(default)s).",
    )
    add_option_arguments(m, PairwiseOptions, MASK_OPTIONS)
    m.add_argument("--user-mask", metavar="MASK.tif", default=None, help="a centred 2-D mask the size of a frame (overrides --mask).")
    c = p.add_argument_group("correlation and peaks")
    add_option_arguments(c, PairwiseOptions, PEAK_OPTIONS, flags=_dashed_first("num_peaks", "sigma_guess", "window_radius"))
    o = p.add_argument_group("outliers and shifts")
    add_option_arguments(
        o,
        PairwiseOptions,
        OUTLIER_OPTIONS,
        flags=_dashed_first("max_shift", "bad_frames"),
        parsers={"threshold": parse_optional_float, "max_shift": parse_optional_float, "bad_frames": parse_frames},
    )
    f = p.add_argument_group(
        "failed frames",
        "frames that are not trustworthy (ok=False) are left out of the average; --failed says what shift they get "
        "in --registered (apply: their estimate, and they are averaged too)",
    )
    add_failed_arguments(f)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``average`` subcommand."""
    p = subparsers.add_parser(
        "average",
        help="all-pairs Fourier-masked registration and averaging (low-dose / atomic-resolution stacks)",
        description=(
            "Correlate every pair of frames through a Fourier mask, reject inconsistent pairs by transitivity, "
            "solve the shift of each frame and average. Writes a float32 TIFF with all matrices and parameters "
            "as JSON in its description."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_io_arguments(p)
    _add_method_arguments(p)
    p.set_defaults(func=run)
    return p


def _check_out(path: str | None, suffixes: tuple[str, ...], what: str, overwrite: bool) -> Path | None:
    if path is None:
        return None
    p = Path(path).expanduser()
    if p.suffix.lower() not in suffixes:
        raise ValueError(f"{what} {p.name}: use one of {', '.join(suffixes)}.")
    if p.exists() and not overwrite:
        raise ValueError(f"{p} exists: pass --overwrite to replace it, or choose another name.")
    return p


def _input_stack(args: argparse.Namespace, out: Path | None) -> Any:
    """The (T, Y, X) stack to average: the file, one channel of it."""
    src = Path(args.input).expanduser()
    if out is not None and src.exists() and out.resolve() == src.resolve():
        raise ValueError("the output would replace the input: choose another output name.")
    data = open_stack(src, args, dataset=args.dataset)
    if data.lazy:
        # every pair of frames is correlated: all the frames' spectra are held at once
        data.close()
        need = int(np.prod(data.data.shape, dtype=np.int64)) * 8
        raise ValueError(
            f"{src.name} does not fit under --max-memory {describe(args.max_memory)}: average correlates every "
            f"pair of frames and holds them all in memory (about {describe(need)}); raise --max-memory, or "
            "average a sub-stack."
        )
    stack = data.data
    if getattr(data, "channel_axis", None) is not None:
        n_ch = stack.shape[1]
        if not 0 <= args.channel < n_ch:
            raise ValueError(f"--channel {args.channel} is out of range: the stack has {n_ch} channels (0..{n_ch - 1}).")
        stack = stack[:, args.channel]
    return stack


def cli_options(args: argparse.Namespace, *, registered: bool = False) -> PairwiseOptions:
    """The :class:`PairwiseOptions` the parsed arguments ask for (``--user-mask`` read as the mask)."""
    extra: dict[str, Any] = {"registered": registered}
    if args.user_mask is not None:
        extra["mask"] = read_mask(args.user_mask)
    return options_from_args(PairwiseOptions, args, CLI_OPTIONS, **extra)


def _write_outputs(
    result: PairwiseResult, out: Path, reg: Path | None, table: Path | None, report: Path | None, crop: bool
) -> list[Path]:
    save_pairwise_tiff(out, result, crop=crop)
    written = [out]
    if reg is not None:
        written.append(save_registered_tiff(reg, result))
    if table is not None:
        written.append(result.transforms.save(table))
    if report is not None:
        written.append(save_pairwise_report(report, result))
    return written


def run(args: argparse.Namespace) -> int:
    """Run ``stackalign average``; returns the exit code."""
    # names, folders, inputs and duplicates first; the extensions are checked by _check_out below
    outputs = [
        Output("-o", args.output),
        Output("--registered", args.registered),
        Output("--transforms", args.transforms),
        Output("--report", args.report),
    ]
    say = None if args.quiet else lambda *a: print(*a, file=sys.stderr)
    check_outputs([args.input, args.user_mask], outputs, overwrite=args.overwrite, say=say)
    out = _check_out(args.output, (".tif", ".tiff"), "output", args.overwrite)
    report = _check_out(args.report, (".pdf", ".png"), "report", args.overwrite)
    reg = _check_out(args.registered, (".tif", ".tiff"), "registered stack", args.overwrite)
    table = _check_out(args.transforms, (".csv", ".json"), "transforms table", args.overwrite)
    stack = _input_stack(args, out)
    options = cli_options(args, registered=reg is not None)
    method = options.average
    with terminal_progress(not args.quiet) as progress:
        result = register_pairwise(stack, options=options.replace(average=None), workers=args.workers, progress=progress)
        if method is not None:
            result = result.with_average(
                stack, average=method, registered=reg is not None, failed=args.failed, workers=args.workers,
                progress=progress,
            )
    record_result(args, result.transforms)
    written = _write_outputs(result, out, reg, table, report, crop=not args.no_crop)
    if not args.quiet:
        print(f"stackalign average: {result.summary()}; crop (rows, cols) {result.crop}", file=sys.stderr)
        for w in result.warnings:
            print(f"warning: {w}", file=sys.stderr)
        for path in written:
            print(f"wrote {path}", file=sys.stderr)
    return 0
