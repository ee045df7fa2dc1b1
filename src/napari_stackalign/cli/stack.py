"""``stackalign stack``: similarity stacking (rotation + scale + shift), then averaging.

The reference image-stacking script's workflow, done right: every frame is
registered onto a template on one channel (rotation, scale and translation),
the same transform is applied to every channel, and the registered frames are
averaged either over the full field (each pixel over the frames that cover it;
a true zero is data) or cropped to the largest region every frame covers.

Input: a multi-frame TIFF or HDF5 file, or a folder of single-frame TIFF files
(natural order: ``2.tif`` before ``10.tif``), as :func:`napari_stackalign.io.read_stack`
reads them. A folder's files may each hold one multichannel frame.

Rule for multichannel frame files: the channel axis is the one the TIFF
declares. Samples per pixel (how GDAL and most tools store 3 or 4 bands,
e.g. the reference script's R, G, B, NIR frames) are channels whether stored
planar (C, Y, X) or interleaved (Y, X, C); an ImageJ or OME file says which
axis is C. A plain 3-D array with no such label (tifffile writes other band
counts as ``QYX``) is refused with a message, and read with ``--axes TCYX``
(each file is (C, Y, X)) or ``--axes TYXC`` (each file is (Y, X, C)); the
letters describe the stacked folder, frames first.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..core.apply import APPLY_DEFAULTS, apply_transforms, is_dask
from ..core.average import FrameAverage, average_frames
from ..core.similarity import SimilarityOptions, register_similarity
from ..io import StackData, frame_chunked_dask, input_formats_help, write_image, write_stack
from ..transforms import FrameTransforms
from ._batch import add_batch_arguments, record_result
from ._common import terminal_progress
from ._memory_cap import add_max_memory_argument
from ._options import add_option_arguments, options_from_args
from ._positions import open_stack
from ._safety import Output, add_failed_arguments, check_outputs

__all__ = ["MODE_ALIASES", "OPTION_FLAGS", "add_parser", "parse_pair", "run", "similarity_options", "write_image"]

#: --mode values: ours, plus the reference script's names
MODE_ALIASES = {"full": "full", "crop": "crop", "cmp": "full", "cmd": "full", "crp": "crop"}
OUTPUT_SUFFIXES = (".tif", ".tiff", ".h5", ".hdf5", ".hd5")
#: the similarity options offered as flags, with their spellings, in the order of ``--help``
OPTION_FLAGS = {
    "template": ("--template",),
    "angle_range": ("--angle-range", "--angle_range"),
    "scale_range": ("--scale-range", "--scale_range"),
    "min_success": ("--min-success", "--min_success"),
    "fallback": ("--fallback",),
}

EXAMPLES = """\
examples:
  stackalign stack -i frames/ -o average.tif --channel 0 --template middle --mode full --log transforms.csv
  stackalign stack -i movie.tif -o average.tif --mode crop --registered registered.tif \\
      --angle-range -30,30 --scale-range 0.8,1.25

The table (--log) holds per frame the correction that maps the frame onto the
template: dy, dx (px), angle (degrees, about the frame centre), scale,
quality (the success score: normalised correlation with the template, -1..1)
and ok (0 for frames that were flagged and got the fallback transform).
"""

# "-30,30" is a value here, not an option: accept number pairs that start with "-"
_NUMBER_OR_PAIR = re.compile(r"^-\d+$|^-\d*\.\d+$|^-?[\d.]+(e-?\d+)?,-?[\d.]+(e-?\d+)?$")


def parse_pair(text: str, name: str) -> tuple[float, float]:
    """Parse ``"a,b"`` into two floats (ValueError naming the option otherwise)."""
    parts = [p for p in re.split(r"[,\s]+", str(text).strip()) if p]
    try:
        if len(parts) != 2:
            raise ValueError
        return float(parts[0]), float(parts[1])
    except ValueError:
        raise ValueError(f"{name} takes two numbers MIN,MAX (e.g. {name} -30,30), got {text!r}.") from None


def _template_arg(text: str) -> str | int:
    text = str(text).strip()
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    return text


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``stack`` subcommand."""
    p = subparsers.add_parser(
        "stack",
        help="register rotation, scale and shift on one channel, apply to all, and average the frames",
        description=(
            "Similarity stacking: measure each frame's rotation, scale and translation against a template "
            "on one channel, apply them to every channel, and average the registered frames "
            "(full field with a coverage count, or cropped to the region all frames cover)."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if hasattr(p, "_negative_number_matcher"):
        p._negative_number_matcher = _NUMBER_OR_PAIR
    _add_io_arguments(p.add_argument_group("input and output"))
    _add_registration_arguments(p.add_argument_group("registration"))
    p.set_defaults(func=run)
    return p


def _add_io_arguments(group: Any) -> None:
    group.add_argument(
        "-i", "--input", required=True, action="append", metavar="IN",
        help=f"input stack: {input_formats_help()}; repeat -i, "
        "or quote a glob, for a batch into the -o folder.",
    )
    group.add_argument(
        "-o", "--output", required=True, metavar="OUT",
        help="the average image: .tif/.tiff (ImageJ, float32) or .h5; (C, Y, X) for multichannel input.",
    )
    group.add_argument("--log", metavar="TABLE", default=None, help="write the per-frame table here (.csv, or .json).")
    group.add_argument("--registered", metavar="REG", default=None,
                       help="also write the registered stack (all channels, the input's data type).")
    group.add_argument("--coverage", metavar="COV", default=None,
                       help="also write the coverage map (frames per pixel of the average).")
    group.add_argument("--dataset", default=None, help="HDF5 input: the dataset to read.")
    group.add_argument("--axes", default=None,
                       help="the input's axis order when the file does not say it, frames first: e.g. TCYX for a "
                            "folder of (C, Y, X) files, TYXC for (Y, X, C) files.")
    group.add_argument("--overwrite", action="store_true", help="replace existing output files.")
    group.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no summary.")
    add_max_memory_argument(group)
    add_batch_arguments(group)


def _add_registration_arguments(group: Any) -> None:
    group.add_argument("--channel", type=int, default=0,
                       help="multichannel input: the channel the motion is measured on (default 0).")
    # names, defaults, choices and help from SimilarityOptions; the ranges stay text until run() parses them
    add_option_arguments(
        group,
        SimilarityOptions,
        OPTION_FLAGS,
        flags=OPTION_FLAGS,
        parsers={"template": _template_arg},
        metavars={"angle_range": "MIN,MAX", "scale_range": "MIN,MAX"},
    )
    group.add_argument("--mode", default="full", choices=sorted(MODE_ALIASES),
                       help="full: mean where covered, with coverage (default); crop: the region every frame "
                            "covers. The reference script's cmp/crp (and its README's cmd) are accepted.")
    group.add_argument("--exclude-flagged", action="store_true",
                       help="leave flagged frames out of the average (default: averaged with their fallback).")
    add_failed_arguments(group)


def similarity_options(args: argparse.Namespace) -> SimilarityOptions:
    """The :class:`SimilarityOptions` of parsed ``stackalign stack`` arguments (ValueError for bad values)."""
    angle_range = parse_pair(args.angle_range, "--angle-range") if args.angle_range else None
    scale_range = parse_pair(args.scale_range, "--scale-range") if args.scale_range else None
    return options_from_args(SimilarityOptions, args, OPTION_FLAGS, angle_range=angle_range, scale_range=scale_range)


def _output_path(text: str | None, what: str, *, overwrite: bool, taken: list[Path]) -> Path | None:
    if text is None:
        return None
    path = Path(text).expanduser()
    if what == "--log":
        if path.suffix.lower() not in (".csv", ".json"):
            raise ValueError(f"--log {path.name}: the table is written as .csv or .json; name it *.csv.")
    elif path.suffix.lower() not in OUTPUT_SUFFIXES:
        raise ValueError(f"{what} {path.name}: write a .tif/.tiff or .h5 file.")
    if path.exists() and not overwrite:
        raise ValueError(f"{path} already exists: pass --overwrite to replace it, or choose another name.")
    if any(path.resolve() == t.resolve() for t in taken):
        raise ValueError(f"{what} {path} is already used for another input or output: choose another name.")
    taken.append(path)
    return path


@dataclass(frozen=True)
class _Outputs:
    """Where ``stackalign stack`` writes: checked before any work is done."""

    average: Path
    log: Path | None
    registered: Path | None
    coverage: Path | None
    overwrite: bool

    @classmethod
    def from_args(cls, args: argparse.Namespace, in_path: Path) -> _Outputs:
        taken = [in_path]
        kw = {"overwrite": args.overwrite, "taken": taken}
        average = _output_path(args.output, "-o/--output", **kw)
        assert average is not None  # -o is required
        return cls(
            average=average,
            log=_output_path(args.log, "--log", **kw),
            registered=_output_path(args.registered, "--registered", **kw),
            coverage=_output_path(args.coverage, "--coverage", **kw),
            overwrite=bool(args.overwrite),
        )


def run(args: argparse.Namespace) -> int:
    """Run ``stackalign stack``; returns the exit code."""
    t0 = time.perf_counter()
    in_path = Path(args.input).expanduser()
    if not in_path.exists():
        raise FileNotFoundError(f"input {in_path} does not exist: check the path.")
    # names, folders, inputs and duplicates first; the extensions are checked by _Outputs below
    files = [
        Output("-o", args.output),
        Output("--log", args.log),
        Output("--registered", args.registered),
        Output("--coverage", args.coverage),
    ]
    say = None if args.quiet else lambda *a: print(*a, file=sys.stderr)
    check_outputs([in_path], files, overwrite=args.overwrite, say=say)
    outputs = _Outputs.from_args(args, in_path)
    opts = similarity_options(args)
    mode = MODE_ALIASES[args.mode]

    data = open_stack(in_path, args, dataset=args.dataset, axes=args.axes)
    try:
        channel = _measured_channel(args.channel, data)
        with terminal_progress(enabled=not args.quiet) as progress:
            transforms = register_similarity(data.data, channel=channel, options=opts, progress=progress)
            frames = np.flatnonzero(transforms.ok) if args.exclude_flagged else None
            if frames is not None and frames.size == 0:
                raise ValueError("every frame was flagged: nothing to average (drop --exclude-flagged).")
            average = average_frames(data.data, transforms, mode=mode, frames=frames, progress=progress)
            block = {
                "method": "similarity",
                "params": {**transforms.params, "mode": mode, "exclude_flagged": bool(args.exclude_flagged)},
                "version": __version__,
                "source": str(in_path.resolve()),
                "transforms": transforms.to_dict(),
                "crop": list(average.crop) if mode == "crop" else None,
            }
            _write_outputs(outputs, data, in_path, transforms, average, block, progress, failed=args.failed)
        if outputs.log is not None:
            transforms.save(outputs.log)
        record_result(args, transforms)
    finally:
        data.close()

    if not args.quiet:
        _summary(transforms, average, outputs.average, time.perf_counter() - t0)
    return 0


def _measured_channel(requested: int, data: StackData) -> int | None:
    """The channel the motion is measured on (None for single-channel input)."""
    if data.channel_axis is None:
        if requested != 0:
            raise ValueError("--channel applies to multichannel input only; this input has one channel.")
        return None
    n_channels = int(data.data.shape[1])
    if not 0 <= requested < n_channels:
        raise ValueError(
            f"--channel {requested} does not exist: the input has {n_channels} channels (0-{n_channels - 1})."
        )
    return int(requested)


def _write_outputs(
    outputs: _Outputs,
    data: StackData,
    in_path: Path,
    transforms: FrameTransforms,
    average: FrameAverage,
    block: dict[str, Any],
    progress: Any,
    *,
    failed: str = APPLY_DEFAULTS.failed,
) -> None:
    """The average, and the coverage map and the registered stack when asked for, with the provenance block."""
    metadata = {**dict(data.metadata), "stackalign": block}
    pixel = data.pixel_size
    write_image(outputs.average, average.image, metadata=metadata, pixel_size=pixel, units=data.units,
                coverage=average.coverage)
    if outputs.coverage is not None:
        write_image(outputs.coverage, average.coverage, metadata=metadata, pixel_size=pixel, units=data.units)
    if outputs.registered is not None:
        registered = apply_transforms(_frame_chunks(data.data), transforms, failed=failed)
        write_stack(
            outputs.registered,
            registered,
            metadata=metadata,
            transforms=transforms,
            scale=data.scale,
            units=data.units,
            axes=data.axes,
            overwrite=outputs.overwrite,
            source_path=in_path if in_path.is_file() else None,
            progress=progress,
        )


def _frame_chunks(stack: Any) -> Any:
    """A dask view in frame chunks, so the registered stack streams into its file."""
    if is_dask(stack):
        return stack
    # not dask.array.from_array: it copies numpy arrays (a memmap would be read whole)
    return frame_chunked_dask(stack)


def _summary(ft: FrameTransforms, average: FrameAverage, out_path: Path, seconds: float) -> None:
    flagged = ft.params.get("flagged", {})
    lines = [
        (
            f"stackalign stack: {len(ft)} frames registered onto frame {ft.params.get('template_index')} "
            f"({ft.params.get('template')}) in {seconds:.1f} s"
        ),
        (
            f"  angle {ft.angle.min():.3f} .. {ft.angle.max():.3f} deg, scale {ft.scale.min():.5f} .. "
            f"{ft.scale.max():.5f}, shift up to {np.hypot(ft.dy, ft.dx).max():.2f} px; "
            f"median success {np.nanmedian(ft.quality):.3f}"
        ),
        f"  average ({average.mode}, {average.n_frames} frames, shape {average.image.shape}) -> {out_path}",
    ]
    for t, why in flagged.items():
        lines.append(f"  flagged frame {t}: {why}")
    print("\n".join(lines), file=sys.stderr)
