"""``stackalign demo``: register the bundled real bright-field stack and show the result.

Writes into OUTDIR (default ``./stackalign-demo``):

- ``brightfield_registered.tif``: the registered stack (input dtype, uint8);
- ``brightfield_transforms.csv``: the per-frame correction table;
- ``brightfield_drift.png``: the measured sample drift per frame;
- ``brightfield_before_after.png``: the mean image before and after, with
  their sharpness and frame-to-mean correlation;

and prints what it measured. The stack has a burned-in text label in its
top-left corner that does not move; it is masked out so it cannot anchor
the registration. Runs headless (matplotlib without a GUI backend).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..core.pyramid import register_and_apply
from ..core.quality import common_region, mean_image, quality_report
from ..io import StackData, write_stack
from ..io.samples import load_sample
from ..plots import draw_before_after, draw_drift, new_figure, save_figure
from ..transforms import FrameTransforms
from ._common import terminal_progress

__all__ = ["FILES", "LABEL_BOX", "add_parser", "run", "run_demo"]

#: rows and columns (r0, r1, c0, c1) of the sample's burned-in "bf frame ..." label, with a margin
LABEL_BOX = (0, 24, 0, 140)
#: what the demo writes, by role
FILES = {
    "stack": "brightfield_registered.tif",
    "table": "brightfield_transforms.csv",
    "drift": "brightfield_drift.png",
    "before_after": "brightfield_before_after.png",
}


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``demo`` subcommand."""
    p = subparsers.add_parser(
        "demo",
        help="register the bundled real bright-field stack and write the results and plots",
        description=(
            "Register the bundled real bright-field drift stack (17 frames, 290x325, with a static text "
            "label that is masked out) and write the registered stack, the transforms table, a drift plot "
            "and a before/after image into OUTDIR."
        ),
    )
    p.add_argument(
        "-o",
        "--output",
        "--outdir",
        dest="outdir",
        default="stackalign-demo",
        metavar="OUTDIR",
        help="folder to write into (created if needed; default ./stackalign-demo).",
    )
    p.add_argument("--progress", action="store_true", help="show progress bars (the demo takes about a second).")
    p.set_defaults(func=run)
    return p


def label_mask(shape: tuple[int, int]) -> np.ndarray:
    """True everywhere except the burned-in label (True = compared)."""
    mask = np.ones(shape, dtype=bool)
    r0, r1, c0, c1 = LABEL_BOX
    mask[r0:r1, c0:c1] = False
    return mask


def run_demo(outdir: str | Path, *, progress: Any = None) -> dict[str, Any]:
    """Register the bright-field sample and write the demo files into ``outdir``.

    Returns
    -------
    dict
        ``files`` (role -> path), ``n_frames``, ``shape``, ``dtype``,
        ``transforms``, ``drift_range`` ((min, max) sample drift in px for rows
        and columns), ``before`` and ``after`` (quality reports measured on the
        area every registered frame covers, label masked), ``region`` and
        ``seconds``.
    """
    t0 = time.perf_counter()
    outdir = _output_folder(outdir)
    sample = load_sample("brightfield")
    stack = np.asarray(sample.data)
    n_frames, height, width = stack.shape
    mask = label_mask((height, width))

    # estimation and resampling overlapped: what register_pyramid then apply_transforms give
    aligned = register_and_apply(stack, mask=mask, progress=progress)
    transforms, registered = aligned.transforms, aligned.data

    region = common_region((height, width), transforms)
    before = quality_report(stack, roi=region, mask=mask)
    after = quality_report(registered, roi=region, mask=mask)

    files = {role: outdir / name for role, name in FILES.items()}
    _write_results(files, sample, registered, transforms, progress)
    _draw_figures(files, stack, registered, transforms, before, after)

    drift = -transforms.shifts
    return {
        "files": files,
        "n_frames": int(n_frames),
        "shape": (int(height), int(width)),
        "dtype": str(stack.dtype),
        "transforms": transforms,
        "drift_range": (
            (float(drift[:, 0].min()), float(drift[:, 0].max())),
            (float(drift[:, 1].min()), float(drift[:, 1].max())),
        ),
        "before": before,
        "after": after,
        "region": region,
        "seconds": time.perf_counter() - t0,
    }


def _output_folder(outdir: str | Path) -> Path:
    """``outdir``, created if needed (a file there is an error)."""
    outdir = Path(outdir).expanduser()
    if outdir.exists() and not outdir.is_dir():
        raise ValueError(f"{outdir} is a file: give a folder for the demo's output.")
    outdir.mkdir(parents=True, exist_ok=True)
    return outdir


def _write_results(
    files: dict[str, Path], sample: StackData, registered: np.ndarray, transforms: FrameTransforms, progress: Any
) -> None:
    """The registered stack (with the sample's metadata and the transforms) and the transforms table."""
    r0, r1, c0, c1 = LABEL_BOX
    metadata = dict(sample.metadata)
    metadata["stackalign"] = {
        "method": "pyramid",
        "params": dict(transforms.params),
        "demo": f"stackalign demo: the burned-in label (rows {r0}-{r1}, columns {c0}-{c1}) was masked out",
    }
    write_stack(
        files["stack"],
        registered,
        metadata=metadata,
        transforms=transforms,
        scale=sample.scale,
        units=sample.units,
        overwrite=True,
        progress=progress,
    )
    transforms.to_csv(files["table"])


def _draw_figures(
    files: dict[str, Path],
    stack: np.ndarray,
    registered: np.ndarray,
    transforms: FrameTransforms,
    before: dict[str, Any],
    after: dict[str, Any],
) -> None:
    """The drift plot and the before/after mean images."""
    fig = new_figure(6.4, 3.6)
    draw_drift(fig, transforms, title="Bright-field sample: measured drift (= −correction applied)")
    save_figure(fig, files["drift"])
    fig = new_figure(9.0, 5.2)
    draw_before_after(
        fig,
        mean_image(stack),
        mean_image(registered),
        labels=("mean of the raw frames", "mean of the registered frames"),
        sharpness=(before["sharpness"], after["sharpness"]),
        correlation=(before["correlation_mean"], after["correlation_mean"]),
    )
    save_figure(fig, files["before_after"])


def run(args: argparse.Namespace) -> int:
    """Run ``stackalign demo``; returns the exit code."""
    with terminal_progress(enabled=args.progress) as bar:
        progress = None if bar is None else (lambda d, t, s: s != "done" and bar(d, t, s))
        result = run_demo(args.outdir, progress=progress)
    (r_lo, r_hi), (c_lo, c_hi) = result["drift_range"]
    before, after = result["before"], result["after"]
    flagged = int(np.sum(~result["transforms"].ok))
    r0, r1, c0, c1 = result["region"]
    lines = [
        (
            f"Registered the bundled bright-field stack: {result['n_frames']} frames of "
            f"{result['shape'][0]}x{result['shape'][1]} px ({result['dtype']}), burned-in label masked out."
        ),
        (
            f"Sample drift: rows {r_lo:+.2f} .. {r_hi:+.2f} px (range {r_hi - r_lo:.2f}), "
            f"columns {c_lo:+.2f} .. {c_hi:+.2f} px (range {c_hi - c_lo:.2f}); {flagged} frame(s) flagged."
        ),
        f"Measured on rows {r0}-{r1}, columns {c0}-{c1} (every registered frame has data there):",
        (
            f"  sharpness of the mean image:      before {before['sharpness']:.4g}   after {after['sharpness']:.4g}"
            f"   ({after['sharpness'] / before['sharpness']:.2f}x)"
        ),
        (
            f"  mean frame-to-mean correlation:   before {before['correlation_mean']:.3f}   "
            f"after {after['correlation_mean']:.3f}"
        ),
        (
            f"  lowest frame-to-mean correlation: before {before['correlation_min']:.3f}   "
            f"after {after['correlation_min']:.3f}"
        ),
        f"Time taken: {result['seconds']:.2f} s",
        f"Wrote into {Path(args.outdir).expanduser().resolve()}:",
    ]
    lines += [f"  {path.name}" for path in result["files"].values()]
    print("\n".join(lines))
    return 0
