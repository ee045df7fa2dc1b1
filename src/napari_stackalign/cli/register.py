"""``stackalign register``: pyramid translation registration of a time series.

Takes the flags of the reference hierarchical-registration script with the
same syntax and defaults (``--iterate``, ``-s/--smooth``, ``--num_frames``,
``--downsample_rates [1/8,1/4,1/2,1]``, ``--max_movement``,
``--save_as_tif``), and adds what that script lacked: the transforms table
(``--transforms``), re-applying a saved table to another file
(``--apply-transforms``), an ROI or mask that keeps a static label out of the
comparison, a progress bar, and output that keeps the input's dtype,
metadata and calibration.

The estimation flags are built from
:class:`~napari_stackalign.core.pyramid.PyramidOptions` (their names,
defaults and help), and the parsed flags become one ``PyramidOptions``,
which checks them, for the in-memory path (``_register_memory``) and the
streaming path (``_register_stream``).
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..core.checks import check_stack
from ..core.pyramid import PyramidOptions
from ..core.volume import VOLUME_AXES
from ..io import StackData, input_formats_help
from ._batch import add_batch_arguments, record_result
from ._memory_cap import add_max_memory_argument
from ._options import add_option_arguments
from ._positions import open_stack
from ._register_checks import check_paths, read_mask, resolve_output_format, with_region
from ._register_common import (
    ADDITION_OPTIONS,
    DEFAULT_RATES_TEXT,
    FLAGS,
    REFERENCE_OPTIONS,
    REGISTRATION_OPTIONS,
    messages,
    pyramid_options,
    summary,
)
from ._register_memory import run_in_memory
from ._register_piecewise import add_piecewise_arguments, run_piecewise, wants_piecewise
from ._register_stream import add_cluster_arguments, run_streaming, wants_cluster
from ._register_volume import run_volumes
from ._safety import add_failed_arguments
from ._template_from import add_template_from_argument, shared_template

__all__ = ["add_parser", "read_mask", "resolve_output_format", "run"]

EXAMPLES = """\
examples:
  stackalign register -i movie.tif -o movie_registered.h5 --iterate 2 -s 1 --num_frames 50 \\
      --downsample_rates [1/8,1/4,1/2,1] --max_movement 0.5 --save_as_tif 0
  stackalign register -i movie.tif -o registered.tif --transforms shifts.csv --roi 40,290,0,325
  stackalign register -i channel2.tif -o channel2_registered.tif --apply-transforms shifts.csv
  stackalign register -i colloids.tif -o registered.tif --reference previous
  stackalign register -i movie.tif -o registered.tif --reference-frames 10:30
  stackalign register -i movie.tif -o registered.tif --piecewise --patch-size 64 --patch-overlap 32 \
      --transforms shifts.csv   # also writes the field to shifts.npz (apply it with --apply-transforms shifts.npz)

The transforms table holds, per frame, the correction (dy, dx) in pixels that moves
the frame onto the reference; the sample's drift is its negative.
"""

#: what the command line adds to the options' help
NOTES = {
    "smooth": "1: on, 0: off.",
    "downsample_rates": "Written like [1/4,1/2,1] or 0.25,0.5,1.",
    "roi": "Rows R0:R1 and columns C0:C1, e.g. to leave out a burned-in label.",
    "normalize": "1: on, 0: off.",
    "reference_mode": "MODE is one of template, frames, previous, running, image. 'previous' and 'running' suit samples without fixed structure; they run on one machine "
    "(streamed for big files), not on a cluster.",
    "reference_frames": "Written START:STOP, e.g. 10:30 (frames 10 to 29); selects --reference frames.",
}
#: metavariables of the flags that are not a plain number
METAVARS = {
    "downsample_rates": "RATES",
    "roi": "R0,R1,C0,C1",
    "reference_mode": "MODE",
    "reference_frames": "START:STOP",
    "running_frames": "N",
    "keyframe_every": "K",
}


# ------------------------------------------------------------------ parser
def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``register`` subcommand."""
    p = subparsers.add_parser(
        "register",
        help="register a time series (coarse-to-fine translation) and save the result",
        description=(
            "Pyramid (coarse-to-fine) translation registration of a (T, Y, X) time series (any input format below). "
            "Accepts the reference hierarchical-registration script's flags with the same syntax and defaults."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_io_arguments(p.add_argument_group("input and output"))
    _add_pyramid_arguments(p.add_argument_group("registration (the reference tool's flags)"), REGISTRATION_OPTIONS)
    additions = p.add_argument_group("additions")
    _add_table_arguments(additions)
    _add_pyramid_arguments(additions, ADDITION_OPTIONS[:1])
    additions.add_argument(
        "--mask",
        default=None,
        metavar="PATH",
        help="2-D TIFF the size of a frame: nonzero pixels are compared, zero pixels ignored.",
    )
    _add_pyramid_arguments(additions, ADDITION_OPTIONS[1:])
    add_failed_arguments(additions)
    reference = p.add_argument_group("reference (what each frame is registered to)")
    _add_pyramid_arguments(reference, REFERENCE_OPTIONS)
    reference.add_argument(
        "--reference-image",
        "--reference_image",
        dest="reference_image",
        default=None,
        metavar="PATH",
        help="2-D TIFF the size of a frame to register every frame to; selects --reference image.",
    )
    add_piecewise_arguments(p.add_argument_group("piecewise-rigid (non-rigid) registration"))
    add_cluster_arguments(p.add_argument_group("big files and clusters (streamed; see docs/big-data.md)"))
    p.set_defaults(func=run)
    return p


def _add_io_arguments(group: Any) -> None:
    """``-i``, ``-o``, ``--save_as_tif``, ``--dataset``, ``--channel``, ``--overwrite``, ``--compression``, ``-q``."""
    group.add_argument(
        "-i",
        "--input",
        required=True,
        action="append",
        metavar="IN",
        help=f"input stack: {input_formats_help()}; repeat -i, or quote a glob (-i 'runs/*.h5'), "
        "for a batch into the -o folder.",
    )
    group.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUT",
        help="output file; its extension chooses TIFF, HDF5 or an OME-Zarr folder (.ome.zarr) (without one, "
        "--save_as_tif decides).",
    )
    group.add_argument(
        "--save_as_tif",
        "--save-as-tif",
        dest="save_as_tif",
        type=int,
        choices=(0, 1),
        default=None,
        help="1: TIFF, 0: HDF5 (default: from OUT's extension; HDF5 when OUT has none).",
    )
    group.add_argument(
        "--dataset", default=None, help="HDF5 input: the dataset to read (default: image_data or the only stack)."
    )
    group.add_argument(
        "--axes",
        default=None,
        metavar="AXES",
        help="the input's axis order when the file does not say it, e.g. YXT for (rows, cols, frames) "
        "or TCYX; TZYX / TCZYX (or a file that says so, e.g. an ImageJ hyperstack) registers volumes "
        "over time in 3-D (dz, dy, dx); see `stackalign info`.",
    )
    group.add_argument(
        "--channel",
        type=int,
        default=0,
        help="for (T, C, Y, X) or (T, C, Z, Y, X) input: the channel to estimate the motion on (default 0); "
        "all channels are corrected.",
    )
    group.add_argument("--overwrite", action="store_true", help="replace OUT (and the --transforms file) if it exists.")
    group.add_argument(
        "--compression",
        choices=("none", "lzf", "zlib"),
        default="none",
        help="compression of OUT: none (default, disk speed), lzf (HDF5 only, fast) or zlib (smaller, "
        "slow: about 70 MB/s when writing here).",
    )
    group.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no summary.")
    add_max_memory_argument(group)
    add_batch_arguments(group)
    add_template_from_argument(group)


def _add_pyramid_arguments(group: Any, names: tuple[str, ...]) -> None:
    """Flags of these :class:`PyramidOptions` fields: names, defaults and help from the options."""
    add_option_arguments(
        group,
        PyramidOptions,
        names,
        flags=FLAGS,
        metavars=METAVARS,
        notes=NOTES,
        shown_defaults={"downsample_rates": DEFAULT_RATES_TEXT},
    )


def _add_table_arguments(group: Any) -> None:
    """``--transforms`` (write the table) and ``--apply-transforms`` (apply a saved one)."""
    group.add_argument(
        "--transforms", metavar="CSV", default=None, help="also write the per-frame transforms table here."
    )
    group.add_argument(
        "--apply-transforms",
        "--apply_transforms",
        dest="apply_transforms",
        metavar="TABLE",
        default=None,
        help="skip estimation: apply a saved table (.csv or .json), e.g. one estimated on another channel.",
    )


# --------------------------------------------------------------------- run
def run(args: argparse.Namespace) -> int:
    """Run ``stackalign register``; returns the exit code."""
    t0 = time.perf_counter()
    paths = check_paths(args, messages(args))
    cluster = wants_cluster(args)
    options = pyramid_options(args)
    template = shared_template(args, options)
    if template is not None:
        if options.reference_mode != "template" or options.reference_frames is not None:
            raise ValueError(
                "--template-from gives every file the same template: it cannot be combined with --reference, "
                "--reference-frames or --reference-image."
            )
        options = options.replace(reference=template, reference_mode="image")
    data = read_input(paths.input, dataset=args.dataset, axes=args.axes, args=args, volumes=True)
    if data.axes in VOLUME_AXES:
        try:
            transforms, action = run_volumes(args, paths, options, data, cluster=cluster)
        finally:
            data.close()
        if not args.quiet:
            summary(transforms, data.shape, data.dtype, paths, action, time.perf_counter() - t0)
        return 0
    try:
        stack = data.data
        shape, dtype = tuple(int(n) for n in stack.shape), stack.dtype
        estimate_on, channel = _frames_to_estimate(args, data)
        check_stack(estimate_on, what="registration", min_frames=2)
        options = with_region(options, args.mask, shape[-2:])
        reopen = args.axes is not None or getattr(args, "position", None) is not None
        if wants_piecewise(args):
            if data.lazy or cluster:
                raise ValueError(
                    "--piecewise (or applying a .npz field) works on inputs that fit in memory: this one is "
                    "streamed (big file or cluster); register it rigidly, or a cropped/shorter part piecewise."
                )
            transforms, action = run_piecewise(args, paths, options, data, estimate_on)
        elif data.lazy or cluster:
            # big input (opened lazily) or a dask cluster: file to file, flat memory
            transforms, action = run_streaming(
                args, paths, options, channel=channel, n_frames=shape[0], data=data if reopen else None,
                frame_pixels=int(np.prod(shape[1:], dtype=np.int64)), frame_shape=shape[1:], dtype=dtype,
            )
        else:
            transforms, action = run_in_memory(args, paths, options, data, estimate_on)
        record_result(args, transforms)
    finally:
        data.close()
    if not args.quiet:
        summary(transforms, shape, dtype, paths, action, time.perf_counter() - t0)
    return 0


def read_input(
    path: Path, *, dataset: str | None, axes: str | None, args: argparse.Namespace | None = None,
    volumes: bool = False,
) -> StackData:
    """``read_stack`` of the input; an axis order the reader had to guess is an error without ``--axes``.
    ``volumes``: read volumes over time as (T, [C,] Z, Y, X) (see :func:`~napari_stackalign.read_stack`).

    Raises
    ------
    ValueError
        When the file does not label its axes and its shape makes the usual
        (T, Y, X) order doubtful (a last axis much shorter than the others):
        registering it would silently treat rows as frames.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = open_stack(path, args or argparse.Namespace(), dataset=dataset, axes=axes, volumes=volumes)
    for w in caught:
        text = str(w.message)
        if axes is None and "no axis labels" in text:
            data.close()
            raise ValueError(
                f"{text.rstrip('.')}. The axis order of {path.name} is ambiguous: name it with --axes, "
                "e.g. --axes YXT (frames last) or --axes TYX (frames first)."
            )
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return data


def _frames_to_estimate(args: argparse.Namespace, data: StackData) -> tuple[Any, int | None]:
    """The (T, Y, X) frames the motion is estimated on, and the ``--channel`` of a (T, C, Y, X) input (else None)."""
    stack = data.data
    if data.channel_axis is None:
        if args.channel != 0:
            raise ValueError("--channel applies to multichannel (T, C, Y, X) input only; this input has one channel.")
        return stack, None
    n_channels = int(stack.shape[data.channel_axis])
    if not 0 <= args.channel < n_channels:
        raise ValueError(
            f"--channel {args.channel} does not exist: the input has {n_channels} channels (0-{n_channels - 1})."
        )
    return stack[:, args.channel], args.channel
