"""What the in-memory and the streaming paths of ``stackalign register`` share.

The pyramid options the command line offers (built once from the parsed
flags, checked by :class:`~napari_stackalign.core.pyramid.PyramidOptions`),
the files of a run, the saved table ``--apply-transforms`` reads, the
progress forwarding and the summary printed at the end.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from ..core.pyramid import PYRAMID_DEFAULTS, PyramidOptions
from ..parsing import format_downsample_rates, parse_downsample_rates, parse_roi
from ..piecewise_transforms import PiecewiseTransforms
from ..transforms import FrameTransforms
from ._options import options_from_args

__all__ = [
    "ADDITION_OPTIONS",
    "CLI_OPTIONS",
    "DEFAULT_RATES_TEXT",
    "FLAGS",
    "REFERENCE_OPTIONS",
    "REGISTRATION_OPTIONS",
    "RegisterPaths",
    "flag_of",
    "load_table",
    "messages",
    "parse_frame_range",
    "pyramid_options",
    "read_reference_image",
    "reference_rates",
    "summary",
    "without_done_stage",
]

#: the reference tool's flags, in its order (the "registration" group of ``--help``)
REGISTRATION_OPTIONS = ("iterate", "smooth", "num_frames", "downsample_rates", "max_movement")
#: the pyramid options this tool adds (the "additions" group)
ADDITION_OPTIONS = ("roi", "window_length", "polyorder", "normalize")
#: what each frame is registered to (the "reference" group; ``--reference-image`` reads a file)
REFERENCE_OPTIONS = ("reference_mode", "reference_frames", "running_frames", "keyframe_every")
#: every :class:`PyramidOptions` field the command line offers (``--mask`` reads a file: see ``read_mask``)
CLI_OPTIONS = REGISTRATION_OPTIONS + ADDITION_OPTIONS + REFERENCE_OPTIONS
#: spellings other than ``--name`` (and ``--name-with-dashes``)
FLAGS = {
    "smooth": ("-s", "--smooth"),
    "reference_mode": ("--reference", "--reference-mode", "--reference_mode"),
}


@dataclass(frozen=True)
class RegisterPaths:
    """The files of one run, checked before anything is read.

    Attributes
    ----------
    input : Path
        The stack to register.
    output : Path
        The registered stack (its extension completed when it had none).
    fmt : {"tiff", "hdf5", "zarr"}
        The output's format.
    table : Path or None
        Where ``--transforms`` writes the per-frame table.
    """

    input: Path
    output: Path
    fmt: str
    table: Path | None


def reference_rates(rates: tuple[float, ...]) -> str:
    """Rates as the reference tool writes them, e.g. ``"[1/8,1/4,1/2,1]"``."""
    return "[" + format_downsample_rates(rates).replace(" ", "") + "]"


#: ``--downsample_rates`` as typed when not given
DEFAULT_RATES_TEXT = reference_rates(PYRAMID_DEFAULTS.downsample_rates)


def flag_of(name: str) -> str:
    """The flag of one option as the messages name it (``--num_frames``, ``--smooth``)."""
    spellings = FLAGS.get(name, ("--" + name,))
    return next(s for s in spellings if s.startswith("--"))


@contextmanager
def _naming_flags(names: tuple[str, ...] = CLI_OPTIONS) -> Iterator[None]:
    """Put the flags of the options a ``ValueError`` names in front of its message."""
    try:
        yield
    except ValueError as exc:
        text = str(exc)
        named = [flag_of(n) for n in names if len(names) == 1 or re.search(rf"\b{n}\b", text)]
        if not named:
            raise
        raise ValueError(f"{', '.join(named)}: {text}") from exc


def parse_frame_range(text: str) -> tuple[int, int]:
    """``--reference-frames`` as typed, ``START:STOP`` (stop excluded), e.g. ``10:30``."""
    parts = str(text).replace(",", ":").split(":")
    try:
        if len(parts) != 2:
            raise ValueError
        return int(parts[0]), int(parts[1])
    except ValueError as exc:
        raise ValueError(
            f"reference_frames must be written START:STOP (frames START to STOP-1), e.g. 10:30, got {text!r}."
        ) from exc


def read_reference_image(path: str | os.PathLike) -> np.ndarray:
    """The ``--reference-image`` file: one 2-D TIFF image (its shape is checked against the frames later).

    Raises
    ------
    FileNotFoundError
        When the file does not exist.
    ValueError
        When it is not a TIFF holding one 2-D image.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"reference image {path} does not exist: check the path.")
    try:
        image = np.squeeze(tifffile.imread(path))
    except Exception as exc:  # tifffile raises many types for non-TIFF files
        raise ValueError(f"--reference-image: cannot read {path} as a TIFF image: {exc}") from exc
    if image.ndim != 2:
        raise ValueError(f"--reference-image {path.name} must hold one 2-D image, got shape {image.shape}.")
    return image


def pyramid_options(args: argparse.Namespace) -> PyramidOptions:
    """The pyramid options the flags ask for, checked once.

    ``--downsample_rates``, ``--roi`` and ``--reference-frames`` are read from
    their text here (not by argparse), so that a bad value is reported like
    every other one; ``--reference-image`` is read from its file.

    Raises
    ------
    ValueError
        With the options' message, after the flag(s) it concerns.
    """
    with _naming_flags(("downsample_rates",)):
        rates = parse_downsample_rates(args.downsample_rates)
    roi = None
    if args.roi is not None:
        with _naming_flags(("roi",)):
            roi = parse_roi(args.roi)
    extra: dict[str, Any] = {"downsample_rates": rates, "roi": roi}
    if getattr(args, "reference_frames", None) is not None:
        with _naming_flags(("reference_frames",)):
            extra["reference_frames"] = parse_frame_range(args.reference_frames)
    if getattr(args, "reference_image", None) is not None:
        extra["reference"] = read_reference_image(args.reference_image)
    with _naming_flags():
        return options_from_args(PyramidOptions, args, CLI_OPTIONS, **extra)


def messages(args: argparse.Namespace) -> Callable[..., None]:
    """``say(text)``: a line on stderr, unless ``--quiet``."""
    if args.quiet:
        return lambda *a: None
    return lambda *a: print(*a, file=sys.stderr)


def load_table(path: str | Path, n_frames: int, in_path: Path) -> FrameTransforms | PiecewiseTransforms:
    """The saved transform table ``--apply-transforms`` names (a piecewise
    result for ``.npz``), checked against the input's frame count."""
    if Path(path).suffix.lower() == ".npz":
        transforms = PiecewiseTransforms.load(path)
    else:
        transforms = FrameTransforms.load(path)
    if len(transforms) != n_frames:
        raise ValueError(
            f"the table {Path(path).name} has {len(transforms)} frames but "
            f"{in_path.name} has {n_frames}: apply a table estimated on a stack with the same frames."
        )
    return transforms


def without_done_stage(progress: Any) -> Any:
    """Forward progress reports except the final ``"done"`` one (no empty extra bar)."""
    if progress is None:
        return None

    def callback(done: int, total: int, stage: str) -> None:
        if stage != "done":
            progress(done, total, stage)

    return callback


def summary(
    transforms: FrameTransforms,
    shape: tuple[int, ...],
    dtype: Any,
    paths: RegisterPaths,
    action: str,
    seconds: float,
) -> None:
    """Print what was done: the corrections' range, frames flagged, files written, time."""
    dy, dx = transforms.dy, transforms.dx
    dtype = np.dtype(dtype)
    print(f"{action} transforms for {len(transforms)} frames ({'x'.join(str(int(n)) for n in shape)}, {dtype})")
    dz = getattr(transforms, "dz", None)  # volume transforms
    z_text = f"dz: {dz.min():+.2f} .. {dz.max():+.2f} planes, " if dz is not None else ""
    print(f"correction {z_text}dy: {dy.min():+.2f} .. {dy.max():+.2f} px, dx: {dx.min():+.2f} .. {dx.max():+.2f} px")
    if not np.all(transforms.ok):
        bad = np.flatnonzero(~transforms.ok)
        print(
            f"warning: {bad.size} frame(s) flagged as unreliable: {', '.join(map(str, bad[:20]))}"
            + (" ..." if bad.size > 20 else "")
        )
        details = transforms.failure_summary()
        if details:
            print("failed frames:\n  " + details.replace("\n", "\n  "))
    label = {"tiff": "TIFF", "zarr": "OME-Zarr"}.get(paths.fmt, "HDF5")
    print(f"wrote {paths.output} ({label}, {dtype})")
    if paths.table is not None:
        print(f"wrote {paths.table} (per-frame transforms)")
    print(f"done in {seconds:.2f} s")
