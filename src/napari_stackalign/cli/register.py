"""``stackalign register``: pyramid translation registration of a time series.

Takes the flags of the reference hierarchical-registration script with the
same syntax and defaults (``--iterate``, ``-s/--smooth``, ``--num_frames``,
``--downsample_rates [1/8,1/4,1/2,1]``, ``--max_movement``,
``--save_as_tif``), and adds what that script lacked: the transforms table
(``--transforms``), re-applying a saved table to another file
(``--apply-transforms``), an ROI or mask that keeps a static label out of the
comparison, a progress bar, and output that keeps the input's dtype,
metadata and calibration.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..core.apply import apply_transforms
from ..parsing import parse_downsample_rates, parse_roi
from ..transforms import FrameTransforms
from ._common import terminal_progress

__all__ = ["add_parser", "read_mask", "resolve_output_format", "run"]

TIFF_SUFFIXES = (".tif", ".tiff")
HDF5_SUFFIXES = (".h5", ".hdf5", ".hd5")

EXAMPLES = """\
examples:
  stackalign register -i movie.tif -o movie_registered.h5 --iterate 2 -s 1 --num_frames 50 \\
      --downsample_rates [1/8,1/4,1/2,1] --max_movement 0.5 --save_as_tif 0
  stackalign register -i movie.tif -o registered.tif --transforms shifts.csv --roi 40,290,0,325
  stackalign register -i channel2.tif -o channel2_registered.tif --apply-transforms shifts.csv

The transforms table holds, per frame, the correction (dy, dx) in pixels that moves
the frame onto the reference; the sample's drift is its negative.
"""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``register`` subcommand."""
    p = subparsers.add_parser(
        "register",
        help="register a time series (coarse-to-fine translation) and save the result",
        description=(
            "Pyramid (coarse-to-fine) translation registration of a (T, Y, X) time series from TIFF or HDF5. "
            "Accepts the reference hierarchical-registration script's flags with the same syntax and defaults."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    io_group = p.add_argument_group("input and output")
    io_group.add_argument(
        "-i", "--input", required=True, metavar="IN", help="input TIFF (.tif/.tiff) or HDF5 (.h5/.hdf5/.hd5)."
    )
    io_group.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUT",
        help="output file; its extension chooses TIFF or HDF5 (without one, --save_as_tif decides).",
    )
    io_group.add_argument(
        "--save_as_tif",
        "--save-as-tif",
        dest="save_as_tif",
        type=int,
        choices=(0, 1),
        default=None,
        help="1: TIFF, 0: HDF5 (default: from OUT's extension; HDF5 when OUT has none).",
    )
    io_group.add_argument(
        "--dataset", default=None, help="HDF5 input: the dataset to read (default: image_data or the only stack)."
    )
    io_group.add_argument(
        "--channel",
        type=int,
        default=0,
        help="for (T, C, Y, X) input: the channel to estimate the motion on (default 0); all channels are corrected.",
    )
    io_group.add_argument(
        "--overwrite", action="store_true", help="replace OUT (and the --transforms file) if it exists."
    )
    io_group.add_argument(
        "--compression",
        choices=("none", "lzf", "zlib"),
        default="none",
        help="compression of OUT: none (default, disk speed), lzf (HDF5 only, fast) or zlib (smaller, "
        "slow: about 70 MB/s when writing here).",
    )
    io_group.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no summary.")

    est = p.add_argument_group("registration (the reference tool's flags)")
    est.add_argument(
        "--iterate", type=int, default=1, help="registration passes, each against a refined template (default 1)."
    )
    est.add_argument(
        "-s",
        "--smooth",
        type=int,
        choices=(0, 1),
        default=0,
        help="1: Savitzky-Golay smoothing of the offsets (default 0).",
    )
    est.add_argument(
        "--num_frames",
        "--num-frames",
        dest="num_frames",
        type=int,
        default=100,
        help="frames used to build the reference template (default 100).",
    )
    est.add_argument(
        "--downsample_rates",
        "--downsample-rates",
        dest="downsample_rates",
        default="[1/8,1/4,1/2,1]",
        metavar="RATES",
        help="pyramid levels, visited in order, e.g. [1/8,1/4,1/2,1] (default) or 0.25,0.5,1.",
    )
    est.add_argument(
        "--max_movement",
        "--max-movement",
        dest="max_movement",
        type=float,
        default=0.5,
        help="largest motion searched, as a fraction of the frame size split over +/- (default 0.5 = +/-25%%).",
    )

    extra = p.add_argument_group("additions")
    extra.add_argument(
        "--transforms", metavar="CSV", default=None, help="also write the per-frame transforms table here."
    )
    extra.add_argument(
        "--apply-transforms",
        "--apply_transforms",
        dest="apply_transforms",
        metavar="TABLE",
        default=None,
        help="skip estimation: apply a saved table (.csv or .json), e.g. one estimated on another channel.",
    )
    extra.add_argument(
        "--roi",
        default=None,
        metavar="R0,R1,C0,C1",
        help="compare only rows R0:R1 and columns C0:C1 (e.g. to leave out a burned-in label).",
    )
    extra.add_argument(
        "--mask",
        default=None,
        metavar="PATH",
        help="2-D TIFF the size of a frame: nonzero pixels are compared, zero pixels ignored.",
    )
    extra.add_argument(
        "--window_length",
        "--window-length",
        dest="window_length",
        type=int,
        default=11,
        help="smoothing window in frames (odd; default 11).",
    )
    extra.add_argument("--polyorder", type=int, default=3, help="smoothing polynomial order (default 3).")
    extra.add_argument(
        "--normalize",
        type=int,
        choices=(0, 1),
        default=1,
        help="1: normalise each frame's intensity before comparing (robust to bleaching; default 1).",
    )
    from ._register_stream import add_cluster_arguments

    add_cluster_arguments(p.add_argument_group("big files and clusters (streamed; see docs/big-data.md)"))
    p.set_defaults(func=run)
    return p


# ------------------------------------------------------------------ checks
def resolve_output_format(output: str | os.PathLike, save_as_tif: int | None) -> tuple[Path, str, str | None]:
    """Decide the output file and format from OUT's extension and ``--save_as_tif``.

    Returns
    -------
    (path, fmt, note)
        ``fmt`` is ``"tiff"`` or ``"hdf5"``; ``note`` tells the user about a
        file name that was completed (None otherwise).

    Raises
    ------
    ValueError
        When the extension and ``--save_as_tif`` disagree, or the extension
        is neither TIFF nor HDF5.
    """
    path = Path(output).expanduser()
    suffix = path.suffix.lower()
    if suffix in TIFF_SUFFIXES or suffix in HDF5_SUFFIXES:
        fmt = "tiff" if suffix in TIFF_SUFFIXES else "hdf5"
        if save_as_tif is not None and (save_as_tif == 1) != (fmt == "tiff"):
            wanted = "TIFF" if save_as_tif == 1 else "HDF5"
            fix = ".tif" if save_as_tif == 1 else ".h5"
            raise ValueError(
                f"--save_as_tif {save_as_tif} asks for {wanted} but the output {path.name} is "
                f"{'TIFF' if fmt == 'tiff' else 'HDF5'} by its extension: name the output *{fix}, "
                "or drop --save_as_tif (the extension decides)."
            )
        return path, fmt, None
    if suffix in (".csv", ".json", ".png", ".gif", ".jpg", ".jpeg", ".hspy"):
        raise ValueError(
            f"the output {path.name} must be a TIFF (.tif, .tiff) or HDF5 (.h5, .hdf5, .hd5) file, not {suffix}."
        )
    fmt = "tiff" if save_as_tif == 1 else "hdf5"
    completed = Path(str(path) + (".tif" if fmt == "tiff" else ".h5"))
    note = f"the output name has no TIFF or HDF5 extension: writing {fmt.upper()} to {completed}"
    return completed, fmt, note


def read_mask(path: str | os.PathLike, shape: tuple[int, int]) -> np.ndarray:
    """Read a 2-D mask image: nonzero = compare. Raises ValueError on a bad file."""
    import tifffile

    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"mask {path} does not exist: check the path.")
    try:
        mask = np.squeeze(tifffile.imread(path))
    except Exception as exc:  # tifffile raises many types for non-TIFF files
        raise ValueError(f"cannot read the mask {path} as a TIFF image: {exc}") from exc
    if mask.ndim != 2:
        raise ValueError(f"the mask {path.name} has shape {mask.shape}: it must be one 2-D image the size of a frame.")
    if mask.shape != tuple(shape):
        raise ValueError(
            f"the mask {path.name} is {mask.shape[0]}x{mask.shape[1]} but frames are {shape[0]}x{shape[1]}: "
            "draw the mask on a frame of this stack."
        )
    mask = mask != 0
    if not mask.any():
        raise ValueError(f"the mask {path.name} is all zero: nonzero pixels are the ones compared.")
    return mask


def _check_roi(roi: tuple[int, int, int, int], shape: tuple[int, int]) -> None:
    r0, r1, c0, c1 = roi
    if r1 > shape[0] or c1 > shape[1]:
        raise ValueError(
            f"--roi {r0},{r1},{c0},{c1} does not fit a {shape[0]}x{shape[1]} frame: "
            f"row_stop must be <= {shape[0]} and col_stop <= {shape[1]}."
        )


def _same_path(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def _check_estimation_args(args: argparse.Namespace) -> None:
    if args.iterate < 1:
        raise ValueError(f"--iterate must be at least 1, got {args.iterate}.")
    if args.num_frames < 1:
        raise ValueError(f"--num_frames must be at least 1, got {args.num_frames}.")
    if not 0 < args.max_movement <= 1:
        raise ValueError(f"--max_movement must be in (0, 1] (a fraction of the frame size), got {args.max_movement}.")
    if args.smooth:
        if args.window_length < 3 or args.window_length % 2 == 0:
            raise ValueError(f"--window_length must be an odd number of frames >= 3, got {args.window_length}.")
        if not 0 <= args.polyorder < args.window_length:
            raise ValueError(
                f"--polyorder must be >= 0 and smaller than --window_length ({args.window_length}), got {args.polyorder}."
            )


# --------------------------------------------------------------------- run
def run(args: argparse.Namespace) -> int:
    """Run ``stackalign register``; returns the exit code."""
    from ..io import read_stack, write_stack

    t0 = time.perf_counter()
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr))
    in_path = Path(args.input).expanduser()
    out_path, fmt, note = resolve_output_format(args.output, args.save_as_tif)
    if note:
        say(f"stackalign register: {note}")
    if not in_path.exists():
        raise FileNotFoundError(f"input {in_path} does not exist: check the path.")
    if _same_path(in_path, out_path) or in_path.resolve() == out_path.resolve():
        raise ValueError(
            f"the output {out_path} is the input file: choose another output name (the input is never overwritten)."
        )
    if out_path.exists() and not args.overwrite:
        raise ValueError(f"{out_path} already exists: pass --overwrite to replace it, or choose another name.")
    csv_path = Path(args.transforms).expanduser() if args.transforms else None
    if csv_path is not None:
        if csv_path.suffix.lower() not in (".csv", ".json"):
            raise ValueError(f"--transforms {csv_path.name}: the table is written as .csv (or .json); name it *.csv.")
        if csv_path.resolve() in (in_path.resolve(), out_path.resolve()):
            raise ValueError("--transforms must name a file other than the input and the output.")
        if csv_path.exists() and not args.overwrite:
            raise ValueError(f"{csv_path} already exists: pass --overwrite to replace it, or choose another name.")
    if args.compression == "lzf" and fmt == "tiff":
        raise ValueError("--compression lzf exists for HDF5 output only: use zlib (or none) for TIFF.")
    rates = parse_downsample_rates(args.downsample_rates)
    roi = parse_roi(args.roi) if args.roi else None
    if args.apply_transforms is None:
        _check_estimation_args(args)

    data = read_stack(in_path, dataset=args.dataset)
    try:
        stack = data.data
        if data.channel_axis is not None:
            n_channels = int(stack.shape[data.channel_axis])
            if not 0 <= args.channel < n_channels:
                raise ValueError(
                    f"--channel {args.channel} does not exist: the input has {n_channels} channels (0-{n_channels - 1})."
                )
            estimate_on = stack[:, args.channel]
        else:
            if args.channel != 0:
                raise ValueError(
                    "--channel applies to multichannel (T, C, Y, X) input only; this input has one channel."
                )
            estimate_on = stack
        n_frames = int(stack.shape[0])
        frame_shape = tuple(int(n) for n in stack.shape[-2:])
        if n_frames < 2:
            raise ValueError(
                f"{in_path.name} has {n_frames} frame: registration needs a time series of at least 2 frames."
            )
        mask = read_mask(args.mask, frame_shape) if args.mask else None
        if roi is not None:
            _check_roi(roi, frame_shape)
        from ._register_stream import run_streaming, wants_cluster

        if data.lazy or wants_cluster(args):
            # big input (opened lazily) or a dask cluster: file to file, flat memory
            return run_streaming(
                args,
                in_path=in_path,
                out_path=out_path,
                fmt=fmt,
                csv_path=csv_path,
                rates=rates,
                roi=roi,
                mask=mask,
                channel=args.channel if data.channel_axis is not None else None,
                shape=tuple(int(n) for n in stack.shape),
                dtype=stack.dtype,
                t0=t0,
            )

        with terminal_progress(enabled=not args.quiet) as bar:
            progress = _without_done_stage(bar)
            # the input is in memory here (larger files take the streaming
            # path above): resample in memory too, on every core
            registered = None
            if args.apply_transforms is not None:
                transforms = load_table(args.apply_transforms, n_frames, in_path)
                action = f"applied {Path(args.apply_transforms).name}"
            else:
                engine = engine_options(args, rates, roi, mask)
                if estimate_on is stack:
                    # one channel: estimation and resampling overlapped
                    from ..core.pyramid import register_and_apply

                    aligned = register_and_apply(stack, progress=progress, **engine)
                    transforms, registered = aligned.transforms, aligned.data
                else:
                    from ..core.pyramid import register_pyramid

                    transforms = register_pyramid(estimate_on, progress=progress, **engine)
                action = "estimated"
            if registered is None:
                registered = apply_transforms(_in_memory(stack), transforms, progress=progress)
            metadata = dict(data.metadata)
            metadata["stackalign"] = _provenance(args, rates, roi, in_path, action)
            write_stack(
                out_path,
                registered,
                metadata=metadata,
                transforms=transforms,
                scale=data.scale,
                units=data.units,
                axes=data.axes,
                overwrite=args.overwrite,
                source_path=in_path,
                compression=args.compression,
                progress=progress,
            )
        if csv_path is not None:
            transforms.save(csv_path)
    finally:
        data.close()

    if not args.quiet:
        _summary(transforms, stack, out_path, fmt, csv_path, action, time.perf_counter() - t0)
    return 0


def load_table(path: str | os.PathLike, n_frames: int, in_path: Path) -> FrameTransforms:
    """The saved transform table ``--apply-transforms`` names, checked
    against the input's frame count."""
    transforms = FrameTransforms.load(path)
    if len(transforms) != n_frames:
        raise ValueError(
            f"the table {Path(path).name} has {len(transforms)} frames but "
            f"{in_path.name} has {n_frames}: apply a table estimated on a stack with the same frames."
        )
    return transforms


def engine_options(args: argparse.Namespace, rates: tuple, roi: Any, mask: np.ndarray | None) -> dict[str, Any]:
    """The pyramid registration's keyword arguments from the command line
    (the same for the in-memory and the streaming paths)."""
    return {
        "num_frames": args.num_frames,
        "downsample_rates": rates,
        "max_movement": args.max_movement,
        "iterate": args.iterate,
        "smooth": bool(args.smooth),
        "window_length": args.window_length,
        "polyorder": args.polyorder,
        "roi": roi,
        "mask": mask,
        "normalize": bool(args.normalize),
    }


def _without_done_stage(progress: Any) -> Any:
    """Forward progress reports except the final ``"done"`` one (no empty extra bar)."""
    if progress is None:
        return None

    def callback(done: int, total: int, stage: str) -> None:
        if stage != "done":
            progress(done, total, stage)

    return callback


def _in_memory(stack: Any) -> Any:
    """``stack`` as a numpy array when it is not one already (the reader
    hands small files over in memory)."""
    return stack if isinstance(stack, np.ndarray) else np.asarray(stack)


def _provenance(args: argparse.Namespace, rates: tuple, roi: Any, in_path: Path, action: str) -> dict:
    params: dict[str, Any]
    if args.apply_transforms is not None:
        params = {"apply_transforms": str(Path(args.apply_transforms).expanduser().resolve())}
    else:
        params = {
            "num_frames": args.num_frames,
            "downsample_rates": list(rates),
            "max_movement": args.max_movement,
            "iterate": args.iterate,
            "smooth": bool(args.smooth),
            "window_length": args.window_length,
            "polyorder": args.polyorder,
            "roi": list(roi) if roi is not None else None,
            "mask": str(Path(args.mask).expanduser().resolve()) if args.mask else None,
            "normalize": bool(args.normalize),
            "channel": args.channel,
        }
    return {
        "method": "pyramid" if args.apply_transforms is None else "apply",
        "params": params,
        "version": __version__,
        "source": str(in_path.resolve()),
        "action": action,
    }


def _summary(
    transforms: FrameTransforms,
    stack: Any,
    out_path: Path,
    fmt: str,
    csv_path: Path | None,
    action: str,
    seconds: float,
) -> None:
    dy, dx = transforms.dy, transforms.dx
    shape = "x".join(str(int(n)) for n in stack.shape)
    print(f"{action} transforms for {len(transforms)} frames ({shape}, {np.dtype(stack.dtype)})")
    print(f"correction dy: {dy.min():+.2f} .. {dy.max():+.2f} px, dx: {dx.min():+.2f} .. {dx.max():+.2f} px")
    if not np.all(transforms.ok):
        bad = np.flatnonzero(~transforms.ok)
        print(
            f"warning: {bad.size} frame(s) flagged as unreliable: {', '.join(map(str, bad[:20]))}"
            + (" ..." if bad.size > 20 else "")
        )
    print(f"wrote {out_path} ({'TIFF' if fmt == 'tiff' else 'HDF5'}, {np.dtype(stack.dtype)})")
    if csv_path is not None:
        print(f"wrote {csv_path} (per-frame transforms)")
    print(f"done in {seconds:.2f} s")
