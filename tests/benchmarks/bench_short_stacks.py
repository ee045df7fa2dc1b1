"""Short stacks: pyramid ``register_and_apply`` against cv2.phaseCorrelate + warpAffine.

Plain script (not collected by pytest); run from the repository root::

    PYTHONPATH=src python tests/benchmarks/bench_short_stacks.py [--repeats 5] [--seed 7] \\
        [--frames 100,1000] [--out docs/benchmarks-short-stacks.md]

Stacks come from the independent generator ``../shared/bench/anchors.py``
(``--anchors`` to point elsewhere): beads, camera and lattice content, 100
frames (``--frames``: any lengths, e.g. ``100,1000``), 256x256 and 512x512,
medium noise. For each stack, in the same process and interleaved (ours,
cv2, the FFT ceilings, then again), best of ``--repeats``:

- **ours**: :func:`~napari_stackalign.core.pyramid.register_and_apply` with
  its defaults (estimate plus apply);
- **cv2**: ``cv2.phaseCorrelate`` with a Hann window against the mean of the
  first ``N_REF`` (10) frames, then ``cv2.warpAffine`` (bilinear), as the
  anchors harness runs it (its ``mean_ref``; the mean of the whole stack would
  be a blur of the drift, 5-16 px RMS instead of 0.1-0.2 px on beads and camera);
- **FFT ceiling**: one ``scipy.fft.rfft2`` plus one ``irfft2`` of each frame
  (float32): the cost of one FFT-bound estimate per frame;
- **cv2 DFT ceiling**: the same with OpenCV's real DFT (``cv2.dft`` plus
  ``cv2.idft``, packed spectrum), the fastest FFT at hand.

The machine may be shared: the ratios (measured in the same run) are what to
compare, not the absolute frames/s. The accuracy columns are the RMS error
(px, after removing one constant offset) of each method's shifts against the
generator's truth.
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from scipy import fft as sfft

from napari_stackalign.core.pyramid import register_and_apply

#: ``shared/bench/anchors.py`` beside the checkout (or beside the folder of worktrees)
DEFAULT_ANCHORS = next(
    (p / "shared" / "bench" / "anchors.py" for p in Path(__file__).resolve().parents[3:5] if (p / "shared").is_dir()),
    Path("../shared/bench/anchors.py"),
)
CONTENTS = ("beads", "camera", "lattice")
SIZES = (256, 512)
FRAMES = (100,)
#: cv2's reference: the mean of the first N_REF frames (the anchors harness's ``mean_ref``)
N_REF = 10


def load_anchors(path: Path) -> Any:
    """The anchors generator module."""
    spec = importlib.util.spec_from_file_location("anchors", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["anchors"] = module
    spec.loader.exec_module(module)
    return module


def ours(stack: np.ndarray) -> np.ndarray:
    """Content displacement per frame (the negated correction), after ``register_and_apply``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = register_and_apply(stack)
        applied, _ = result.transforms.resolve_failed("interpolate")
    return -np.asarray(applied.shifts, dtype=np.float64)


def cv2_phase(stack: np.ndarray) -> np.ndarray:
    """cv2.phaseCorrelate (Hann) against the mean of the first ``N_REF`` frames, then cv2.warpAffine;
    the displacement per frame."""
    ref = stack[:N_REF].astype(np.float32).mean(axis=0)
    h, w = ref.shape
    win = cv2.createHanningWindow((w, h), cv2.CV_32F)
    disp = np.empty((len(stack), 2))
    out = np.empty(stack.shape, np.float32)
    for t in range(len(stack)):
        frame = stack[t].astype(np.float32)
        (sx, sy), _ = cv2.phaseCorrelate(ref.copy(), frame.copy(), win)
        disp[t] = (sy, sx)
        mat = np.array([[1.0, 0.0, -sx], [0.0, 1.0, -sy]])
        out[t] = cv2.warpAffine(frame, mat, (w, h), flags=cv2.INTER_LINEAR)
    return disp


def fft_ceiling(stack: np.ndarray) -> None:
    """One forward and one inverse real FFT per frame."""
    for t in range(len(stack)):
        frame = stack[t].astype(np.float32)
        sfft.irfft2(sfft.rfft2(frame), s=frame.shape)


def cv2_dft_ceiling(stack: np.ndarray) -> None:
    """One forward and one inverse real DFT per frame (OpenCV, packed spectrum)."""
    for t in range(len(stack)):
        frame = stack[t].astype(np.float32)
        cv2.idft(cv2.dft(frame), flags=cv2.DFT_REAL_OUTPUT | cv2.DFT_SCALE)


def rms_error(disp: np.ndarray, truth: np.ndarray) -> float:
    """RMS of the error vector after removing its mean (px)."""
    err = disp - truth
    err = err - err.mean(axis=0)
    return float(np.sqrt(np.mean(np.sum(err**2, axis=1))))


def best_times(fns: list[Callable[[], Any]], repeats: int) -> tuple[list[float], list[Any]]:
    """Best wall time of each function, the calls interleaved; and each one's last result."""
    best = [np.inf] * len(fns)
    results: list[Any] = [None] * len(fns)
    for _ in range(repeats):
        for k, fn in enumerate(fns):
            t0 = time.perf_counter()
            results[k] = fn()
            best[k] = min(best[k], time.perf_counter() - t0)
    return best, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--contents", default=",".join(CONTENTS))
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--frames", default=",".join(map(str, FRAMES)), help="stack lengths, e.g. 100,1000")
    parser.add_argument("--noise", default="medium")
    parser.add_argument("--anchors", type=Path, default=DEFAULT_ANCHORS)
    parser.add_argument("--out", type=Path, default=None, help="also write the table (markdown) here")
    args = parser.parse_args()
    anchors = load_anchors(args.anchors)
    header = (
        "| stack | ours (frames/s) | cv2 (frames/s) | ours / cv2 | FFT ceiling (frames/s) | ours / ceiling "
        "| cv2 DFT ceiling (frames/s) | RMS ours (px) | RMS cv2 (px) |\n|---|---|---|---|---|---|---|---|---|"
    )
    rows = []
    print(header, flush=True)
    for frames in (int(f) for f in args.frames.split(",")):
        for size in (int(s) for s in args.sizes.split(",")):
            for content in args.contents.split(","):
                case = anchors._case(content, size, frames, args.noise)
                stack, truth, _, _ = anchors.generate_case(case, args.seed)
                n = len(stack)
                ours(stack[:8])  # warm up (imports, FFT plans)
                fns = [
                    lambda s=stack: ours(s),
                    lambda s=stack: cv2_phase(s),
                    lambda s=stack: fft_ceiling(s),
                    lambda s=stack: cv2_dft_ceiling(s),
                ]
                (t_ours, t_cv2, t_fft, t_dft), (d_ours, d_cv2, _, _) = best_times(fns, args.repeats)
                row = (
                    f"| {case.name} | {n / t_ours:.0f} | {n / t_cv2:.0f} | {t_cv2 / t_ours:.2f}x | {n / t_fft:.0f} "
                    f"| {t_fft / t_ours:.2f} | {n / t_dft:.0f} | {rms_error(d_ours, truth):.4f} "
                    f"| {rms_error(d_cv2, truth):.4f} |"
                )
                rows.append(row)
                print(row, flush=True)
    if args.out is not None:
        command = "PYTHONPATH=src python tests/benchmarks/bench_short_stacks.py " + " ".join(sys.argv[1:])
        intro = (
            f"Measured with `{command}` (seed {args.seed}, best of {args.repeats}, interleaved), "
            f"{platform.processor() or platform.machine()}, Python {platform.python_version()}, "
            f"OpenCV {cv2.__version__}."
        )
        text = "\n".join([intro, "", header, *rows, ""])
        args.out.write_text(text)


if __name__ == "__main__":
    main()
