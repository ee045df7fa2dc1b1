"""Volume (T, Z, Y, X) registration against napari-correct-drift's method.

Plain script (not collected by pytest)::

    PYTHONPATH=src /work/main/.venv/bin/python tests/benchmarks/bench_volume.py [--quick] [--out docs/volumes.md]

Every method runs on the same synthetic volumes (``napari_stackalign.synthetic_volume``:
exact sub-voxel drift in z, y and x, a random walk of about +/-2 planes and
+/-6 px plus 0.3 voxel jitter) in the same run:

- ours: ``register_pyramid(stack, axes="TZYX")`` (defaults);
- napari-correct-drift's estimator: ``skimage.registration.phase_cross_correlation``
  in 3-D with ``upsample_factor`` 10 and 100 (its phase normalisation is
  optional there, so both): every frame against the first frame
  (``pcc10_f0``, ``pcc100_f0``; ``cc100_f0`` without phase normalisation),
  against the previous frame with the shifts summed (its "relative" mode,
  ``cc100_prev``) or against the mean of the stack (``pcc100_mean``).

``--stream`` measures the file-to-file path instead: the same volume file
(HDF5, uint16) registered in memory (``read_stack`` whole, ``register_pyramid``,
``apply_transforms``, ``write_stack``) and streamed
(``register_volumes_to_file`` on the lazily opened file; also with 2
estimating threads), each in a fresh process: seconds, peak RSS, and RSS above
the process after its imports, in MB and in float32 volumes; the outputs are
checked to be equal.

Per case: RMS error per axis (z, y, x) and of the 3-D error norm (voxels,
after removing one constant offset, ``synthetic_volume.volume_error``) of
what would be applied (frames a method flags as failed are interpolated from
the trustworthy ones, as ``apply_transforms`` does; only ours flags), the
share of frames off by more than 0.5 voxel, the frames flagged, seconds, and
the peer's RMS over ours (ratio > 1: ours is more accurate).
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import skimage
from skimage.registration import phase_cross_correlation

from napari_stackalign import VolumeTransforms, register_pyramid
from napari_stackalign.synthetic_volume import make_volume_stack, volume_error


def ours(stack: np.ndarray) -> VolumeTransforms:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return register_pyramid(stack, axes="TZYX")


def pcc(stack: np.ndarray, upsample: int, reference: str, normalization: str | None = "phase") -> VolumeTransforms:
    """napari-correct-drift's estimator: every frame against the first frame, the mean of the stack,
    or the previous frame (its "relative" mode; the shifts are summed)."""
    if reference == "previous":
        steps = [np.zeros(3)]
        for prev, frame in itertools.pairwise(stack):
            steps.append(phase_cross_correlation(prev, frame, upsample_factor=upsample, normalization=normalization)[0])
        return VolumeTransforms.from_shifts(np.cumsum(steps, axis=0))
    ref = stack[0] if reference == "first" else stack.mean(axis=0)
    shifts = np.array(
        [
            phase_cross_correlation(ref, frame, upsample_factor=upsample, normalization=normalization)[0]
            for frame in stack
        ]
    )
    return VolumeTransforms.from_shifts(shifts)


METHODS = {
    "ours": ours,
    "pcc10_f0": lambda s: pcc(s, 10, "first"),
    "pcc100_f0": lambda s: pcc(s, 100, "first"),
    "cc100_f0": lambda s: pcc(s, 100, "first", None),
    "cc100_prev": lambda s: pcc(s, 100, "previous", None),
    "pcc100_mean": lambda s: pcc(s, 100, "mean"),
}


def run(cases: list[tuple[str, float, int]], n_frames: int, shape: tuple[int, int, int]) -> list[dict]:
    rows = []
    # +/-2 planes and +/-6 px at 32x128x128; scaled down for smaller volumes (within the search bound)
    amplitude = (2.0 * shape[0] / 32, 6.0 * shape[1] / 128, 6.0 * shape[2] / 128)
    for scene, snr, seed in cases:
        vols = make_volume_stack(n_frames, shape, scene=scene, snr=snr, seed=seed, amplitude=amplitude)
        for name, method in METHODS.items():
            start = time.perf_counter()
            est = method(vols.data)
            seconds = time.perf_counter() - start
            flagged = int((~est.ok).sum())
            est, _ = est.resolve_failed("interpolate")  # what apply_transforms applies
            err = volume_error(est, vols.truth)
            diff = est.shifts_zyx - vols.truth.shifts_zyx
            diff = diff - np.median(diff, axis=0)
            diff = diff - diff.mean(axis=0)
            over = float(np.mean(np.linalg.norm(diff, axis=1) > 0.5))
            rows.append(
                {
                    "scene": scene,
                    "snr": snr,
                    "seed": seed,
                    "method": name,
                    **err,
                    "over": over,
                    "seconds": seconds,
                    "flagged": flagged,
                }
            )
            print(
                f"{scene:8s} snr={snr:<4g} seed={seed} {name:12s} rms z/y/x {err['rms_z']:.4f} {err['rms_y']:.4f} "
                f"{err['rms_x']:.4f}  rms {err['rms']:.4f}  >0.5 {over:.2f}  flagged {flagged}  {seconds:6.1f} s",
                flush=True,
            )
    return rows


def table(rows: list[dict]) -> str:
    peers = [m for m in METHODS if m != "ours"]
    lines = [
        "| scene | SNR | seed | method | RMS z | RMS y | RMS x | RMS 3-D | max | frames > 0.5 vox | flagged | s | RMS / ours |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key in dict.fromkeys((r["scene"], r["snr"], r["seed"]) for r in rows):
        group = {r["method"]: r for r in rows if (r["scene"], r["snr"], r["seed"]) == key}
        base = group["ours"]["rms"]
        for name in ["ours", *peers]:
            r = group[name]
            ratio = "1" if name == "ours" else f"{r['rms'] / base:.1f}x"
            lines.append(
                f"| {key[0]} | {key[1]:g} | {key[2]} | {name} | {r['rms_z']:.4f} | {r['rms_y']:.4f} | "
                f"{r['rms_x']:.4f} | {r['rms']:.4f} | {r['max']:.3f} | {r['over']:.2f} | {r['flagged']} | {r['seconds']:.1f} | "
                f"{ratio} |"
            )
    summary = [
        "",
        (
            "Geometric mean over the cases of each peer's RMS over ours (> 1: ours is more accurate), "
            "and of its time over ours:"
        ),
        "",
    ]
    for name in peers:
        ratios = [r["rms"] / o["rms"] for r, o in _pairs(rows, name)]
        times = [r["seconds"] / o["seconds"] for r, o in _pairs(rows, name)]
        summary.append(
            f"- {name}: RMS {np.exp(np.mean(np.log(ratios))):.1f}x ours, time "
            f"{np.exp(np.mean(np.log(times))):.2f}x ours"
        )
    return "\n".join(lines + summary)


def _pairs(rows: list[dict], name: str) -> list[tuple[dict, dict]]:
    out = []
    for r in rows:
        if r["method"] == name:
            o = next(
                x
                for x in rows
                if x["method"] == "ours" and (x["scene"], x["snr"], x["seed"]) == (r["scene"], r["snr"], r["seed"])
            )
            out.append((r, o))
    return out


def _status_mb(field: str) -> float:
    """``VmRSS`` (resident now) or ``VmHWM`` (its peak) of this process in MB (``ru_maxrss`` is not used:
    Linux carries it over from the parent process across fork and exec)."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def stream_case(how: str, src: str, out: str) -> None:
    """One run in this (fresh) process; prints its seconds and memory as JSON."""
    from napari_stackalign import apply_transforms, read_stack, write_stack
    from napari_stackalign.core.volume import register_volumes_to_file

    base = _status_mb("VmRSS")
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if how == "memory":
            data = read_stack(src, volumes=True, lazy=False)
            tf = register_pyramid(data.data, axes=data.axes)
            write_stack(out, apply_transforms(data.data, tf), axes=data.axes, transforms=tf, compression="none")
        else:
            data = read_stack(src, volumes=True, lazy=True)
            workers = 2 if how == "stream2" else None
            register_volumes_to_file(data.data, out, axes=data.axes, workers=workers)
    seconds = time.perf_counter() - start
    peak = _status_mb("VmHWM")
    print(json.dumps({"seconds": seconds, "peak_mb": peak, "base_mb": base}))


def stream_bench(frame_counts: list[int], shape: tuple[int, int, int], seed: int) -> str:
    from napari_stackalign import read_stack, write_stack

    volume_mb = int(np.prod(shape)) * 4 / 2**20
    lines = [
        "| volumes | input (uint16) MB | path | s | s / in memory | peak RSS MB | above imports MB | "
        "above imports, float32 volumes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for n in frame_counts:
            vols = make_volume_stack(n, shape, scene="texture", snr=5.0, seed=seed)
            src = Path(tmp) / f"in{n}.h5"
            write_stack(src, (vols.data * 300 + 400).clip(0, 65535).astype(np.uint16), axes="TZYX", compression="none")
            del vols
            results = {}
            for how in ("memory", "stream", "stream2"):
                out = Path(tmp) / f"{how}{n}.h5"
                done = subprocess.run(
                    [sys.executable, __file__, "--stream-case", how, str(src), str(out)],
                    check=True, capture_output=True, text=True,
                )
                results[how] = json.loads(done.stdout.strip().splitlines()[-1])
                print(n, how, results[how], flush=True)
            ref = read_stack(Path(tmp) / f"memory{n}.h5", volumes=True, lazy=False).data
            for how in ("stream", "stream2"):
                same = np.array_equal(read_stack(Path(tmp) / f"{how}{n}.h5", volumes=True, lazy=False).data, ref)
                if not same:
                    raise AssertionError(f"{how} output differs from the in-memory output ({n} volumes)")
            for how, name in (("memory", "in memory"), ("stream", "streamed"), ("stream2", "streamed, 2 threads")):
                r = results[how]
                above = r["peak_mb"] - r["base_mb"]
                lines.append(
                    f"| {n} | {src.stat().st_size / 1e6:.0f} | {name} | {r['seconds']:.1f} | "
                    f"{r['seconds'] / results['memory']['seconds']:.2f} | {r['peak_mb']:.0f} | {above:.0f} | "
                    f"{above / volume_mb:.0f} |"
                )
    return "\n".join(lines) + "\n\nStreamed outputs equal to the in-memory ones (checked)."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="12 frames of 16x64x64, one seed")
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--shape", type=int, nargs=3, default=(32, 128, 128))
    parser.add_argument("--seeds", type=int, nargs="+", default=(0, 1))
    parser.add_argument("--snr", type=float, nargs="+", default=(1.0, 5.0))
    parser.add_argument("--out", help="write the markdown table to this file (printed anyway)")
    parser.add_argument(
        "--stream", type=int, nargs="+", metavar="T",
        help="measure the streaming path instead, on files of T volumes of --shape (e.g. --stream 30 60)",
    )
    parser.add_argument("--stream-case", nargs=3, metavar=("HOW", "IN", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stream_case:
        stream_case(*args.stream_case)
        return
    if args.stream:
        text = (
            f"volumes of {args.shape[0]}x{args.shape[1]}x{args.shape[2]} voxels (texture, SNR 5, seed "
            f"{args.seeds[0]}); numpy {np.__version__}, Python {platform.python_version()}, command: "
            f"{' '.join(sys.argv)}\n\n" + stream_bench(args.stream, tuple(args.shape), args.seeds[0])
        )
        print()
        print(text)
        if args.out:
            with open(args.out, "w", encoding="utf-8") as fh:
                fh.write(text + "\n")
        return
    n_frames, shape, seeds = args.frames, tuple(args.shape), tuple(args.seeds)
    if args.quick:
        n_frames, shape, seeds = 12, (16, 64, 64), (0,)
    cases = [(scene, snr, seed) for scene in ("beads", "texture") for snr in args.snr for seed in seeds]
    rows = run(cases, n_frames, shape)
    text = (
        f"{n_frames} frames of {shape[0]}x{shape[1]}x{shape[2]} voxels; numpy {np.__version__}, "
        f"scikit-image {skimage.__version__}, Python {platform.python_version()}, "
        f"command: {' '.join(sys.argv)}\n\n" + table(rows)
    )
    print()
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    main()
