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
from typing import Any, NamedTuple

import numpy as np

from .._version import __version__
from ..core.apply import apply_transforms
from ..core.particles import (
    SPOT_TYPES,
    TRACK_DEFAULTS,
    DriftOptions,
    OutlierReport,
    ParticleTracks,
    ParticleValidation,
    RigidOptions,
    TrackOptions,
    flag_outliers,
    plot_trajectories,
    plot_validation,
    read_picks,
    rigid_from_tracks,
    spot_type,
    track_particles,
    validate_alignment,
)
from ..files import check_writable_dir
from ..io import frame_chunked_dask, input_formats_help, write_stack
from ..parsing import parse_index_list
from ..plots import save_figure
from ..transforms import FrameTransforms
from ._batch import add_batch_arguments, record_result
from ._common import terminal_progress
from ._memory_cap import add_max_memory_argument
from ._options import add_option_arguments, options_from_args
from ._positions import open_stack
from ._safety import Output, add_failed_arguments, check_outputs
from .register import resolve_output_format

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


#: the options each command-line flag sets (the flags are built from the options objects)
TRACK_FLAGS = ("box", "min_r2")
RIGID_FLAGS = ("min_particles", "interpolation", "reference_frame")
DRIFT_FLAGS = ("statistic", "reference_frame")
#: the spellings of today's flags: dashes first, underscores accepted
_SPELLINGS = {
    "min_r2": ("--min-r2", "--min_r2"),
    "min_particles": ("--min-particles", "--min_particles"),
    "reference_frame": ("--reference-frame", "--reference_frame"),
}


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
    _add_io_arguments(p.add_argument_group("input and output"))
    _add_fit_arguments(p.add_argument_group("fitting and tracking"))
    _add_correction_arguments(p.add_argument_group("correction and validation"))
    p.set_defaults(func=run)
    return p


def _add_io_arguments(io_group: Any) -> None:
    io_group.add_argument("-i", "--input", required=True, action="append", metavar="IN",
                          help=f"input stack: {input_formats_help()}; repeat -i, or "
                               "quote a glob, for a batch into the -o folder (every file tracked from the same --picks).")
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
    add_max_memory_argument(io_group)
    add_batch_arguments(io_group)


def _add_fit_arguments(fit: Any) -> None:
    add_option_arguments(fit, TrackOptions, TRACK_FLAGS, flags=_SPELLINGS, parsers={"box": int})
    auto = spot_type(TRACK_DEFAULTS.dark)
    fit.add_argument("--spots", choices=tuple(SPOT_TYPES), default=auto,
                     help=f"spot polarity (default {auto}: decided per particle).")
    fit.add_argument("--all-picks", action="store_true",
                     help="also track picks whose fit was rejected in napari (ok=0 in the CSV).")


def _add_correction_arguments(cor: Any) -> None:
    cor.add_argument("--particles", default=None, metavar="LIST",
                     help="particles used for the correction, e.g. 0,2,3 (default: all but flagged outliers and held-out).")
    cor.add_argument("--holdout", default=None, metavar="LIST",
                     help="particles kept out of the correction to validate it independently, e.g. 1,4.")
    cor.add_argument("--keep-outliers", action="store_true",
                     help="with the default particle choice, keep particles flagged as moving on their own.")
    cor.add_argument("--no-rotation", action="store_true", help="correct translation only.")
    add_failed_arguments(cor)
    add_option_arguments(cor, RigidOptions, RIGID_FLAGS, flags=_SPELLINGS)
    add_option_arguments(cor, DriftOptions, ("statistic",))


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
    if type(stack).__module__.startswith("dask."):
        return stack
    # not dask.array.from_array: it copies numpy arrays (a memmap would be read whole)
    return frame_chunked_dask(stack)


class _Outcome(NamedTuple):
    """What a run measured and decided."""

    tracks: ParticleTracks
    outliers: OutlierReport
    used: list[int]
    held: list[int]
    transforms: FrameTransforms
    validation: ParticleValidation


def _check_paths(args: argparse.Namespace, say: Any) -> tuple[Path, Path, str, dict[str, Path | None]]:
    """Input, output, its format and the extra outputs, checked before any work."""
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
    check_writable_dir(out_path)
    outputs = _check_outputs(args, in_path, out_path)
    files = [
        Output("-o", str(out_path)),
        Output("--tracks", args.tracks, (".csv",)),
        Output("--transforms", args.transforms, (".csv", ".json")),
        Output("--validation", args.validation, (".csv",)),
        Output("--plots", args.plots, folder=True, files=("trajectories.png", "validation.png")),
    ]
    check_outputs([in_path, args.picks], files, overwrite=args.overwrite, say=say)
    return in_path, out_path, fmt, outputs


def _particle_choice(args: argparse.Namespace) -> tuple[list[int] | None, list[int]]:
    """``--particles`` (None: the default choice) and ``--holdout``, never overlapping."""
    chosen = parse_indices(args.particles, "particles")
    held = parse_indices(args.holdout, "holdout") or []
    if chosen is not None and set(chosen) & set(held):
        raise ValueError(
            f"particles {sorted(set(chosen) & set(held))} are in both --particles and --holdout: a held-out "
            "particle must not drive the correction."
        )
    return chosen, held


def _measured(data: Any, args: argparse.Namespace, in_path: Path, n: int, choice: tuple) -> Any:
    """The (T, Y, X) frames the particles are in (one channel of (T, C, Y, X) input), checked."""
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
    chosen, held = choice
    for name, idx in (("particles", chosen or []), ("holdout", held)):
        bad = [i for i in idx if i >= n]
        if bad:
            raise ValueError(f"--{name} {bad}: there are only {n} particles (0-{n - 1}).")
    return measure


def _used(chosen: list[int] | None, held: list[int], outliers: OutlierReport, n: int, keep_outliers: bool) -> list[int]:
    """The particles that drive the correction: ``--particles``, else all but held-out and flagged ones."""
    if chosen is not None:
        return sorted(chosen)
    used = [i for i in range(n) if i not in held and (keep_outliers or not outliers.outlier[i])]
    if not used:
        raise ValueError("every particle is held out or flagged: pass --particles to choose.")
    return used


def _rigid(tracks: ParticleTracks, used: list[int], options: RigidOptions, say: Any) -> FrameTransforms:
    """The correction; its warnings (interpolated frames, one particle) go to the terminal."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        transforms = rigid_from_tracks(tracks, particles=used, options=options)
    for w in caught:
        say(f"stackalign track: warning: {w.message}")
    return transforms


def _provenance(args: argparse.Namespace, in_path: Path, outcome_params: dict[str, Any]) -> dict[str, Any]:
    """The ``stackalign`` metadata block of the aligned stack."""
    return {
        "method": "particles",
        "params": {"picks": str(Path(args.picks).expanduser().resolve()), **outcome_params},
        "version": __version__,
        "source": str(in_path.resolve()),
    }


def _write_aligned(
    args: argparse.Namespace, data: Any, paths: tuple[Path, Path], transforms: FrameTransforms, params: dict,
    progress: Any,
) -> None:
    """Warp every channel by the correction and stream it into the output file."""
    in_path, out_path = paths
    aligned = apply_transforms(_lazy_frames(data.data), transforms, failed=args.failed)
    metadata = dict(data.metadata)
    metadata["stackalign"] = _provenance(args, in_path, params)
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


def _write_tables(outputs: dict[str, Path | None], outcome: _Outcome, drift: DriftOptions) -> None:
    """The tracks, transforms and validation tables and the two plots, where asked."""
    if outputs["tracks"] is not None:
        outcome.tracks.to_csv(outputs["tracks"])
    if outputs["transforms"] is not None:
        outcome.transforms.save(outputs["transforms"])
    if outputs["validation"] is not None:
        outcome.validation.to_csv(outputs["validation"])
    if outputs["plots"] is not None:
        outputs["plots"].mkdir(parents=True, exist_ok=True)
        save_figure(
            plot_trajectories(
                outcome.tracks, particles=outcome.used, outliers=outcome.outliers.outlier, holdout=outcome.held,
                options=drift,
            ),
            outputs["plots"] / "trajectories.png",
        )
        save_figure(plot_validation(outcome.validation), outputs["plots"] / "validation.png")


def _print_summary(say: Any, outcome: _Outcome, out_path: Path, fmt: str, elapsed: float) -> None:
    tracks, transforms = outcome.tracks, outcome.transforms
    failed = int((~tracks.ok).sum())
    flagged = np.flatnonzero(outcome.outliers.outlier).tolist()
    say(f"stackalign track: {tracks.n_particles} particle(s), {tracks.n_frames} frames, {failed} failed fit(s) (flagged, not used)")
    if flagged:
        say(f"  moved on their own (flagged): {flagged}")
    say(f"  correction from particles {outcome.used}" + (f", held out {outcome.held}" if outcome.held else ""))
    say(
        f"  {'rotation + translation' if transforms.params.get('rotation_estimated') else 'translation only'}: "
        f"rotation up to {np.max(np.abs(transforms.angle)):.4f} deg, shift up to "
        f"{np.max(np.hypot(transforms.dy, transforms.dx)):.2f} px"
    )
    if transforms.params.get("interpolated_frames"):
        say(f"  interpolated (flagged) frames: {transforms.params['interpolated_frames']}")
    for line in outcome.validation.summary_text().splitlines():
        say(f"  residual motion, {line}")
    say(f"  wrote {out_path} ({fmt.upper()}) in {elapsed:.1f} s")


def run(args: argparse.Namespace) -> int:
    """Run ``stackalign track``; returns the exit code."""
    t0 = time.perf_counter()
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr))
    in_path, out_path, fmt, outputs = _check_paths(args, say)
    chosen, held = _particle_choice(args)
    track_opts = options_from_args(TrackOptions, args, TRACK_FLAGS, dark=SPOT_TYPES[args.spots])
    rigid_opts = options_from_args(RigidOptions, args, RIGID_FLAGS, allow_rotation=not args.no_rotation)
    drift_opts = options_from_args(DriftOptions, args, DRIFT_FLAGS)
    picks = read_picks(args.picks, only_ok=not args.all_picks)

    data = open_stack(in_path, args, dataset=args.dataset)
    try:
        measure = _measured(data, args, in_path, picks.shape[0], (chosen, held))
        with terminal_progress(enabled=not args.quiet) as progress:
            tracks = track_particles(measure, picks, progress=progress, options=track_opts)
            outliers = flag_outliers(tracks, allow_rotation=rigid_opts.allow_rotation)
            used = _used(chosen, held, outliers, picks.shape[0], args.keep_outliers)
            transforms = _rigid(tracks, used, rigid_opts, say)
            params = {
                "box": track_opts.box, "min_r2": track_opts.min_r2, "spots": args.spots, "particles": used,
                "holdout": held, **{name: getattr(rigid_opts, name) for name in ("allow_rotation", *RIGID_FLAGS)},
            }
            _write_aligned(args, data, (in_path, out_path), transforms, params, progress)
            validation = validate_alignment(measure, transforms, tracks, particles=used, holdout=held, progress=progress)
        outcome = _Outcome(tracks, outliers, used, held, transforms, validation)
        record_result(args, transforms)
        _write_tables(outputs, outcome, drift_opts)
    finally:
        data.close()

    if not args.quiet:
        _print_summary(say, outcome, out_path, fmt, time.perf_counter() - t0)
    return 0
