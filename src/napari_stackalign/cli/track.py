"""``stackalign track``: particle drift correction from picks saved in napari.

The non-interactive part of the particle workflow: track the picked
particles through the stack (Gaussian fits), flag those that moved on their
own, compute the per-frame rotation + translation from the chosen ones,
write the aligned stack, and validate (re-fit on the aligned stack, before /
after residuals, held-out particles, leave-one-out). Tables go to CSV, plots
to PNG.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..parsing import parse_index_list
from ._common import terminal_progress

__all__ = ["add_parser", "parse_indices", "run"]

EXAMPLES = """\
examples:
  stackalign track -i frames/ --picks picks.csv -o aligned.tif
  stackalign track -i movie.tif --picks picks.csv -o aligned.h5 --box 11 --holdout 4 \\
      --tracks tracks.csv --transforms transforms.csv --validation validation.csv --plots plots/
  stackalign track -i movie.tif --picks picks.csv -o aligned.tif --particles 0,2,3 --no-rotation

picks.csv comes from the Particles widget (Save picks...) or napari's own Points CSV
(columns axis-0 = frame, axis-1 = y, axis-2 = x). Particles are numbered in the order of
the picks used (rejected picks are skipped unless --all-picks).
"""


def parse_indices(text: str | None, name: str) -> list[int] | None:
    """``"0,2,3"`` -> ``[0, 2, 3]`` (None stays None)."""
    if text is None:
        return None
    return parse_index_list(text, what=f"--{name}", noun="particle numbers", example="0,2,3", allow_empty=False)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``track`` subcommand."""
    p = subparsers.add_parser(
        "track",
        help="correct drift (rotation + translation) from picked particles; validate",
        description=(
            "Track picked particles with 2-D Gaussian fits, correct rotation and translation from their "
            "positions, write the aligned stack, and validate with before/after residuals."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    io_group = p.add_argument_group("input and output")
    io_group.add_argument("-i", "--input", required=True, metavar="IN",
                          help="TIFF, HDF5, GIF, or a folder of single-frame TIFFs (natural order).")
    io_group.add_argument("--picks", required=True, metavar="CSV", help="picked particles (frame, y, x) as CSV.")
    io_group.add_argument("-o", "--output", required=True, metavar="OUT", help="aligned stack (.tif/.tiff or .h5/.hdf5).")
    io_group.add_argument("--dataset", default=None, help="HDF5 input: the dataset to read.")
    io_group.add_argument("--channel", type=int, default=0,
                          help="(T, C, Y, X) input: channel the particles are in (default 0); all channels are corrected.")
    io_group.add_argument("--tracks", metavar="CSV", default=None, help="write the particle tracks table here.")
    io_group.add_argument("--transforms", metavar="CSV", default=None, help="write the per-frame transforms here (.csv/.json).")
    io_group.add_argument("--validation", metavar="CSV", default=None, help="write the validation table here.")
    io_group.add_argument("--plots", metavar="DIR", default=None,
                          help="write trajectories.png and validation.png into this folder.")
    io_group.add_argument("--overwrite", action="store_true", help="replace existing output files.")
    io_group.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no summary.")

    fit = p.add_argument_group("fitting and tracking")
    fit.add_argument("--box", type=int, default=15, help="fit box in px, about 3-4 spot widths (default 15).")
    fit.add_argument("--min-r2", "--min_r2", dest="min_r2", type=float, default=0.5,
                     help="goodness-of-fit gate (default 0.5).")
    fit.add_argument("--spots", choices=("auto", "bright", "dark"), default="auto",
                     help="spot polarity (default auto: decided per particle).")
    fit.add_argument("--all-picks", action="store_true",
                     help="also track picks whose fit was rejected in napari (ok=0 in the CSV).")

    cor = p.add_argument_group("correction and validation")
    cor.add_argument("--particles", default=None, metavar="LIST",
                     help="particles used for the correction, e.g. 0,2,3 (default: all but flagged outliers and held-out).")
    cor.add_argument("--holdout", default=None, metavar="LIST",
                     help="particles kept out of the correction to validate it independently, e.g. 1,4.")
    cor.add_argument("--keep-outliers", action="store_true",
                     help="with the default particle choice, keep particles flagged as moving on their own.")
    cor.add_argument("--no-rotation", action="store_true", help="correct translation only.")
    cor.add_argument("--min-particles", "--min_particles", dest="min_particles", type=int, default=2,
                     help="frames with fewer good fits are interpolated and flagged (default 2).")
    cor.add_argument("--interpolation", choices=("linear", "spline"), default="linear",
                     help="how flagged frames are filled (default linear).")
    cor.add_argument("--reference-frame", "--reference_frame", dest="reference_frame", type=int, default=0,
                     help="frame left unchanged (default 0).")
    cor.add_argument("--statistic", choices=("median", "mean"), default="median",
                     help="drift statistic in the trajectories plot (default median).")
    p.set_defaults(func=run)
    return p


def _check_outputs(args: argparse.Namespace, in_path: Path, out_path: Path) -> dict[str, Path | None]:
    paths: dict[str, Path | None] = {}
    for key, suffixes in (("tracks", (".csv",)), ("transforms", (".csv", ".json")), ("validation", (".csv",))):
        value = getattr(args, key)
        if value is None:
            paths[key] = None
            continue
        path = Path(value).expanduser()
        if path.suffix.lower() not in suffixes:
            raise ValueError(f"--{key} {path.name}: name the file *{suffixes[0]}.")
        if path.resolve() in (in_path.resolve(), out_path.resolve()):
            raise ValueError(f"--{key} must name a file other than the input and the output.")
        if path.exists() and not args.overwrite:
            raise ValueError(f"{path} already exists: pass --overwrite to replace it, or choose another name.")
        paths[key] = path
    if args.plots is not None:
        plots = Path(args.plots).expanduser()
        if plots.exists() and not plots.is_dir():
            raise ValueError(f"--plots {plots} is a file: give a folder.")
        for name in ("trajectories.png", "validation.png"):
            if (plots / name).exists() and not args.overwrite:
                raise ValueError(f"{plots / name} already exists: pass --overwrite to replace it.")
        paths["plots"] = plots
    else:
        paths["plots"] = None
    return paths


def _lazy_frames(stack: Any) -> Any:
    """Frame chunks of a dask array, so the warped output streams into the file."""
    from ..io import frame_chunked_dask

    if type(stack).__module__.startswith("dask."):
        return stack
    # not dask.array.from_array: it copies numpy arrays (a memmap would be read whole)
    return frame_chunked_dask(stack)


def run(args: argparse.Namespace) -> int:
    """Run ``stackalign track``; returns the exit code."""
    from ..core.apply import apply_transforms
    from ..core.particles import (
        flag_outliers,
        plot_trajectories,
        plot_validation,
        read_picks,
        rigid_from_tracks,
        track_particles,
        validate_alignment,
    )
    from ..io import read_stack, write_stack
    from ..plots import save_figure
    from .register import resolve_output_format

    t0 = time.perf_counter()
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr))
    in_path = Path(args.input).expanduser()
    out_path, fmt, note = resolve_output_format(args.output, None)
    if note:
        say(f"stackalign track: {note}")
    if not in_path.exists():
        raise FileNotFoundError(f"input {in_path} does not exist: check the path.")
    if in_path.resolve() == out_path.resolve():
        raise ValueError(f"the output {out_path} is the input: choose another output name.")
    if out_path.exists() and not args.overwrite:
        raise ValueError(f"{out_path} already exists: pass --overwrite to replace it, or choose another name.")
    outputs = _check_outputs(args, in_path, out_path)
    chosen = parse_indices(args.particles, "particles")
    held = parse_indices(args.holdout, "holdout") or []
    if chosen is not None and set(chosen) & set(held):
        raise ValueError(
            f"particles {sorted(set(chosen) & set(held))} are in both --particles and --holdout: a held-out "
            "particle must not drive the correction."
        )
    picks = read_picks(args.picks, only_ok=not args.all_picks)
    dark = {"auto": None, "bright": False, "dark": True}[args.spots]

    data = read_stack(in_path, dataset=args.dataset)
    try:
        stack = data.data
        if data.channel_axis is not None:
            n_channels = int(stack.shape[data.channel_axis])
            if not 0 <= args.channel < n_channels:
                raise ValueError(f"--channel {args.channel} does not exist: the input has {n_channels} channels.")
            measure = stack[:, args.channel]
        else:
            if args.channel != 0:
                raise ValueError("--channel applies to (T, C, Y, X) input only.")
            measure = stack
        n_frames = int(stack.shape[0])
        if n_frames < 2:
            raise ValueError(f"{in_path.name} has {n_frames} frame: drift correction needs at least 2 frames.")
        n = picks.shape[0]
        for name, idx in (("particles", chosen or []), ("holdout", held)):
            bad = [i for i in idx if i >= n]
            if bad:
                raise ValueError(f"--{name} {bad}: there are only {n} particles (0-{n - 1}).")

        with terminal_progress(enabled=not args.quiet) as progress:
            tracks = track_particles(
                measure, picks, box=args.box, min_r2=args.min_r2, dark=dark, progress=progress
            )
            outliers = flag_outliers(tracks, allow_rotation=not args.no_rotation)
            if chosen is None:
                used = [
                    i for i in range(n)
                    if i not in held and (args.keep_outliers or not outliers.outlier[i])
                ]
                if not used:
                    raise ValueError("every particle is held out or flagged: pass --particles to choose.")
            else:
                used = sorted(chosen)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                transforms = rigid_from_tracks(
                    tracks,
                    particles=used,
                    allow_rotation=not args.no_rotation,
                    min_particles=args.min_particles,
                    reference_frame=args.reference_frame,
                    interpolation=args.interpolation,
                )
            for w in caught:
                say(f"stackalign track: warning: {w.message}")
            aligned = apply_transforms(_lazy_frames(stack), transforms)
            metadata = dict(data.metadata)
            metadata["stackalign"] = {
                "method": "particles",
                "params": {
                    "picks": str(Path(args.picks).expanduser().resolve()),
                    "box": args.box,
                    "min_r2": args.min_r2,
                    "spots": args.spots,
                    "particles": used,
                    "holdout": held,
                    "allow_rotation": not args.no_rotation,
                    "min_particles": args.min_particles,
                    "interpolation": args.interpolation,
                    "reference_frame": args.reference_frame,
                },
                "version": __version__,
                "source": str(in_path.resolve()),
            }
            write_stack(
                out_path,
                aligned,
                metadata=metadata,
                transforms=transforms,
                scale=data.scale,
                units=data.units,
                axes=data.axes,
                overwrite=args.overwrite,
                source_path=in_path,
                progress=progress,
            )
            validation = validate_alignment(measure, transforms, tracks, particles=used, holdout=held, progress=progress)
        if outputs["tracks"] is not None:
            tracks.to_csv(outputs["tracks"])
        if outputs["transforms"] is not None:
            transforms.save(outputs["transforms"])
        if outputs["validation"] is not None:
            validation.to_csv(outputs["validation"])
        if outputs["plots"] is not None:
            outputs["plots"].mkdir(parents=True, exist_ok=True)
            save_figure(
                plot_trajectories(tracks, particles=used, outliers=outliers.outlier, holdout=held, statistic=args.statistic,
                                  reference_frame=args.reference_frame),
                outputs["plots"] / "trajectories.png",
            )
            save_figure(plot_validation(validation), outputs["plots"] / "validation.png")
    finally:
        data.close()

    if not args.quiet:
        failed = int((~tracks.ok).sum())
        flagged = np.flatnonzero(outliers.outlier).tolist()
        say(f"stackalign track: {tracks.n_particles} particle(s), {n_frames} frames, {failed} failed fit(s) (flagged, not used)")
        if flagged:
            say(f"  moved on their own (flagged): {flagged}")
        say(f"  correction from particles {used}" + (f", held out {held}" if held else ""))
        say(
            f"  {'rotation + translation' if transforms.params.get('rotation_estimated') else 'translation only'}: "
            f"rotation up to {np.max(np.abs(transforms.angle)):.4f} deg, shift up to "
            f"{np.max(np.hypot(transforms.dy, transforms.dx)):.2f} px"
        )
        if transforms.params.get("interpolated_frames"):
            say(f"  interpolated (flagged) frames: {transforms.params['interpolated_frames']}")
        for line in validation.summary_text().splitlines():
            say(f"  residual motion, {line}")
        say(f"  wrote {out_path} ({fmt.upper()}) in {time.perf_counter() - t0:.1f} s")
    return 0
