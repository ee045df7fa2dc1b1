"""Similarity registration (rotation + scale + shift): napari-stackalign against imreg_dft.

Synthetic stacks with known motion (``napari_stackalign.synthetic.make_stack``
with an exact ``motion``): frame 0 is the template (no motion), every other
frame is rotated by up to 30 degrees, scaled by 0.8..1.25 and shifted by up
to 10 px (about the frame centre), with Poisson noise at several SNRs. Both
methods register frames 1..T-1 onto frame 0.

Errors are against the true correction: angle (degrees), scale (absolute)
and shift (px, about the frame centre ``((H-1)/2, (W-1)/2)``; imreg_dft's
``tvec`` is read about the centre that gives it the smaller error). A frame
whose error exceeds 0.5 degree, 0.5 % in scale or 1 px is a *gross failure*:
counted, and left out of the error statistics. For napari-stackalign the
number of frames it flagged itself (``ok=False``) is shown too.

Timing is per registered frame: imreg_dft's ``similarity(template, frame)``
(one thread, its defaults ``numiter=1, order=3``; the median over the pairs)
and ``register_similarity`` with 1 thread and with all cores (2 here; the
median of 3 runs over the stack, template set-up included). The ratio
compares one thread with one thread. The machine is shared, so single
timings can be off by a factor of 2; the ratio is measured in the same run.

Run::

    /tmp/venv/bin/python tests/benchmarks/bench_similarity.py [--quick] [--out docs/benchmarks-similarity.md]

Needs ``pip install imreg_dft`` (PyPI 2.0.0 runs on numpy 2).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings

import numpy as np

from napari_stackalign.core.similarity import register_similarity
from napari_stackalign.synthetic import make_stack
from napari_stackalign.transforms import FrameTransforms

GROSS = (0.5, 0.005, 1.0)  # angle deg, relative scale, shift px


def motion_for(n_frames: int, shape: tuple[int, int], seed: int) -> FrameTransforms:
    rng = np.random.default_rng(seed)
    center = ((shape[0] - 1) / 2.0, (shape[1] - 1) / 2.0)
    n = n_frames - 1
    return FrameTransforms(
        dy=np.r_[0.0, rng.uniform(-10, 10, n)],
        dx=np.r_[0.0, rng.uniform(-10, 10, n)],
        angle=np.r_[0.0, rng.uniform(-30, 30, n)],
        scale=np.r_[1.0, np.exp(rng.uniform(np.log(0.8), np.log(1.25), n))],
        center=center,
    )


def errors(est: FrameTransforms, truth: FrameTransforms) -> dict[str, np.ndarray]:
    est = est.with_center(truth.center)
    da = np.mod(est.angle - truth.angle + 180.0, 360.0) - 180.0
    return {
        "angle": np.abs(da),
        "scale": np.abs(est.scale - truth.scale),
        "shift": np.hypot(est.dy - truth.dy, est.dx - truth.dx),
        "rel_scale": np.abs(est.scale / truth.scale - 1),
    }


def summarise(err: dict[str, np.ndarray]) -> dict[str, float]:
    gross = (err["angle"] > GROSS[0]) | (err["rel_scale"] > GROSS[1]) | (err["shift"] > GROSS[2])
    good = ~gross
    out = {"gross": int(gross.sum()), "n": int(gross.size)}
    if good.any():
        out.update(
            angle_rms=float(np.sqrt(np.mean(err["angle"][good] ** 2))),
            angle_max=float(err["angle"][good].max()),
            scale_max=float(err["scale"][good].max()),
            shift_rms=float(np.sqrt(np.mean(err["shift"][good] ** 2))),
        )
    else:
        out.update(angle_rms=np.nan, angle_max=np.nan, scale_max=np.nan, shift_rms=np.nan)
    return out


def run_imreg(stack: np.ndarray, truth: FrameTransforms) -> tuple[dict, float]:
    import imreg_dft as ird

    template = stack[0].astype(np.float64)
    results, times = [], []
    for t in range(1, stack.shape[0]):
        t0 = time.perf_counter()
        res = ird.similarity(template, stack[t].astype(np.float64))
        times.append(time.perf_counter() - t0)
        results.append(res)
    h, w = stack.shape[1:]
    best = None
    for center in (((h - 1) / 2.0, (w - 1) / 2.0), (h / 2.0, w / 2.0)):
        est = FrameTransforms(
            dy=[r["tvec"][0] for r in results],
            dx=[r["tvec"][1] for r in results],
            angle=[r["angle"] for r in results],
            scale=[r["scale"] for r in results],
            center=center,
        )
        summary = summarise(errors(est, truth[1:]))
        key = (summary["gross"], summary["shift_rms"])
        if best is None or key < best[0]:
            best = (key, summary)
    return best[1], float(np.median(times))


def run_ours(
    stack: np.ndarray, truth: FrameTransforms, workers: int | None, refine: bool = True, repeats: int = 3
) -> tuple[dict, float]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        est = register_similarity(stack, template=0, workers=workers, refine=refine)
        times.append((time.perf_counter() - t0) / (stack.shape[0] - 1))
    elapsed = float(np.median(times))
    summary = summarise(errors(est[1:], truth[1:]))
    summary["flagged"] = int((~est.ok[1:]).sum())
    return summary, elapsed


def fmt(v: float, digits: int) -> str:
    return "n/a" if not np.isfinite(v) else f"{v:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer frames and cases (about a minute)")
    parser.add_argument("--out", help="also write the markdown table to this file")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")  # imreg_dft's SyntaxWarnings / deprecations

    if args.quick:
        cases = [(256, "texture", 3.0, 6), (512, "texture", 3.0, 4)]
    else:
        cases = [
            (256, "texture", 10.0, 12),
            (256, "texture", 3.0, 12),
            (256, "texture", 1.0, 12),
            (256, "beads", 3.0, 12),
            (512, "texture", 10.0, 8),
            (512, "texture", 3.0, 8),
            (512, "texture", 1.0, 8),
            (512, "beads", 3.0, 8),
        ]
    rows = []
    for size, kind, snr, n_frames in cases:
        shape = (size, size)
        motion = motion_for(n_frames, shape, seed=size + int(10 * snr))
        stack, truth = make_stack(kind, n_frames=n_frames, shape=shape, motion=motion, snr=snr, seed=7)
        register_similarity(stack[:2], template=0, workers=1)  # warm-up (FFT plans, imports)
        ird_sum, ird_t = run_imreg(stack, truth)
        ours_sum, ours_t1 = run_ours(stack, truth, workers=1)
        _, ours_t2 = run_ours(stack, truth, workers=None)
        raw_sum, raw_t1 = run_ours(stack, truth, workers=1, refine=False)
        case = f"{size}x{size} {kind} SNR {snr:g}"
        for name, s, t in (
            ("imreg_dft similarity", ird_sum, ird_t),
            ("stackalign, no refinement", raw_sum, raw_t1),
            ("stackalign", ours_sum, ours_t1),
        ):
            row = {
                "case": case,
                "method": name,
                "frames": s["n"],
                "gross": s["gross"],
                "flagged": s.get("flagged", ""),
                "angle_rms": s["angle_rms"],
                "angle_max": s["angle_max"],
                "scale_max": s["scale_max"],
                "shift_rms": s["shift_rms"],
                "ms1": 1e3 * t,
                "ms2": 1e3 * ours_t2 if name == "stackalign" else np.nan,
                "ratio": ird_t / t,
            }
            rows.append(row)
            print(
                f"{case:24s} {name:26s} gross {row['gross']}/{row['frames']} flagged {row['flagged']!s:>2} "
                f"angle rms/max {fmt(row['angle_rms'], 4)}/{fmt(row['angle_max'], 4)} deg  "
                f"scale max {fmt(row['scale_max'], 5)}  shift rms {fmt(row['shift_rms'], 3)} px  "
                f"{row['ms1']:7.1f} ms/frame (1 thread)  {fmt(row['ms2'], 1)} ms (all cores)  "
                f"speed-up x{row['ratio']:.1f}",
                flush=True,
            )

    header = (
        "| case | method | gross failures | flagged | angle err RMS / max (deg) | scale err max | "
        "shift err RMS (px) | ms/frame, 1 thread | ms/frame, all cores | speed vs imreg_dft |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = [
        f"| {r['case']} | {r['method']} | {r['gross']}/{r['frames']} | {r['flagged']} | "
        f"{fmt(r['angle_rms'], 4)} / {fmt(r['angle_max'], 4)} | {fmt(r['scale_max'], 5)} | "
        f"{fmt(r['shift_rms'], 3)} | {r['ms1']:.1f} | {fmt(r['ms2'], 1)} | x{r['ratio']:.1f} |"
        for r in rows
    ]
    table = header + "\n".join(lines) + "\n"
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, numpy {np.__version__}"
    print()
    print(machine)
    print(table)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(table)


if __name__ == "__main__":
    main()
