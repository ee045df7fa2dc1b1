"""Benchmark: pairwise Fourier-masked averaging against its peers, same data, same run.

Peers
-----
- ``ours``: :func:`napari_stackalign.core.pairwise.register_pairwise` end to end
  (spectra, all pairs, outliers, solve, Fourier-shift average), 2 threads.
- ``rigidregistration (re-impl.)``: a faithful plain-numpy re-implementation of
  the rigidregistration loop (``_rigidregistration_reference.py``): complex128
  FFTs of every frame, one full-size inverse FFT per pair, Gaussian fits with
  ``scipy.optimize.curve_fit``, transitivity paths in Python, abs() Fourier
  shifts. For 100 and 200 frames its pair stage is timed on a random subset of
  pairs and extrapolated (stated in the table); its later stages then run on
  our matrices (their cost does not depend on the values).
- ``plain all-pairs FFT loop``: each frame's masked spectrum once, then per pair
  one full-size ``scipy.fft.irfft2`` (float32), brightest pixel + 3-point
  parabola, row-mean solve, Fourier-shift average: what one writes without the
  band-limited, batched machinery.

Data: ``napari_stackalign.synthetic.stem_stack``: the synthetic atomic lattice
(period 8 px, plus a weak texture moving with it) at SNR 0.4 (Poisson), random
drift of up to 4 px with 0.3 px jitter; 40, 100 and 200 frames of 512 x 512.
Mask hann n = 2 (the lattice's Bragg peaks, at 1/8 cycles/px, lie inside it),
Gaussian-fit maxima (3 peaks, sigma 2, radius 6). A second family (period
16, n = 4) exercises the band-limited path. The real STEM ABF stack (internal
data, not shipped) is compared with the reference's published shifts.

Run (2 cores, shared machine: take the lock)::

    flock /tmp/bench.lock /tmp/venv/bin/python tests/benchmarks/bench_pairwise.py [--quick]

The full run writes its section of ``docs/benchmarks-pairwise.md`` (the defaults' section
before it, from ``bench_pairwise_defaults.py``, is kept).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
from scipy import fft as sfft

from napari_stackalign.core.pairwise import fourier_mask, register_pairwise
from napari_stackalign.core.pairwise._spectra import hann2d
from napari_stackalign.synthetic import alignment_error
from napari_stackalign.transforms import FrameTransforms

HERE = Path(__file__).resolve().parent
#: the heading of this benchmark's section of docs/benchmarks-pairwise.md
FIXED_HEADING = "# Benchmark: pairwise Fourier-masked averaging, fixed masks (bench_pairwise.py)"
ROOT = HERE.parents[1]


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


from napari_stackalign import synthetic as scenes

ref = _load("rigidregistration_reference", HERE / "_rigidregistration_reference.py")

WORKERS = 2


# ------------------------------------------------------------------ peers
def run_ours(stack, n, maxima="gf", memory=False):
    if memory:
        tracemalloc.start()
    t0 = time.perf_counter()
    res = register_pairwise(stack, mask="hann", n=n, maxima=maxima, workers=WORKERS)
    dt = time.perf_counter() - t0
    peak = None
    if memory:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return res, dt, peak


def run_plain(stack, n):
    """Per pair: one full-size irfft2 of the masked product, argmax + parabola."""
    t0 = time.perf_counter()
    t, h, w = stack.shape
    mask = fourier_mask((h, w), "hann", n)
    win = hann2d((h, w))
    spectra = np.empty((t, h, w // 2 + 1), dtype=np.complex64)
    for k in range(t):
        f = stack[k].astype(np.float32)
        spectra[k] = sfft.rfft2((f - f.mean()) * win) * mask
    dy = np.zeros((t, t))
    dx = np.zeros((t, t))
    for i in range(t - 1):
        for j in range(i + 1, t):
            cc = sfft.irfft2(spectra[j] * np.conj(spectra[i]), s=(h, w), workers=WORKERS)
            k = int(np.argmax(cc))
            y, x = divmod(k, w)
            up, down = cc[(y - 1) % h, x], cc[(y + 1) % h, x]
            left, right = cc[y, (x - 1) % w], cc[y, (x + 1) % w]
            c0 = cc[y, x]
            sy = (up - down) / (2 * (up - 2 * c0 + down)) if up - 2 * c0 + down < 0 else 0.0
            sx = (left - right) / (2 * (left - 2 * c0 + right)) if left - 2 * c0 + right < 0 else 0.0
            yy = (y if y < h / 2 else y - h) + sy
            xx = (x if x < w / 2 else x - w) + sx
            dy[i, j], dy[j, i] = yy, -yy
            dx[i, j], dx[j, i] = xx, -xx
    shifts = np.stack([dy.mean(axis=1), dx.mean(axis=1)], axis=1)
    fy = sfft.fftfreq(h)[:, None]
    fx = sfft.rfftfreq(w)[None, :]
    total = np.zeros((h, w // 2 + 1), dtype=np.complex128)
    for k in range(t):
        total += sfft.rfft2(stack[k].astype(np.float32)) * np.exp(-2j * np.pi * (fy * shifts[k, 0] + fx * shifts[k, 1]))
    sfft.irfft2(total / t, s=(h, w))
    return FrameTransforms.from_shifts(shifts), time.perf_counter() - t0


def run_reference(stack, n, matrices, subset):
    out = ref.run(stack, mask="hann", n=n, maxima="gf", threshold=10.0, maxpaths=5,
                  pair_subset=subset, matrices=matrices)
    return out


# ------------------------------------------------------------------ table
def fmt_mem(b):
    return "" if b is None else f"{b / 2**20:.0f} MB"


def bench_case(rows, label, n_frames, shape, period, n, subset_limit, quick):
    stack, truth = scenes.stem_stack(n_frames, shape, period=period, texture=0.3, snr=0.4, drift=4.0, seed=n_frames)
    n_pairs = n_frames * (n_frames - 1) // 2
    ours, t_ours, _ = run_ours(stack, n)
    # memory in a separate, untimed run (tracemalloc slows allocation a little)
    _, _, peak = run_ours(stack, n, memory=True)
    e_ours = alignment_error(ours.transforms, truth)["rms"]
    rows.append([label, n_frames, n_pairs, "ours (gf)", f"{t_ours:.2f}", "1.0", f"{e_ours:.4f}", fmt_mem(peak),
                 f"{int(ours.outliers.sum() // 2)} outlier pairs"])
    print(rows[-1], flush=True)
    if n_frames <= 40 or quick:
        dres, t_d, _ = run_ours(stack, n, maxima="dft")
        rows.append([label, n_frames, n_pairs, "ours (dft)", f"{t_d:.2f}", f"{t_d / t_ours:.1f}",
                     f"{alignment_error(dres.transforms, truth)['rms']:.4f}", "", "upsample 20"])
        print(rows[-1], flush=True)
    plain_tf, t_plain = run_plain(stack, n)
    rows.append([label, n_frames, n_pairs, "plain all-pairs FFT loop", f"{t_plain:.2f}", f"{t_plain / t_ours:.1f}",
                 f"{alignment_error(plain_tf, truth)['rms']:.4f}", fmt_mem(n_frames * shape[0] * (shape[1] // 2 + 1) * 8),
                 "full irfft2 per pair, parabola"])
    print(rows[-1], flush=True)
    subset = None if n_pairs <= subset_limit else subset_limit
    out = run_reference(stack, n, (ours.dy, ours.dx), subset)
    times = out["times"]
    if subset is None:
        e_ref = f"{alignment_error(FrameTransforms.from_shifts(out['shifts']), truth)['rms']:.4f}"
        note = "all pairs"
    else:
        e_ref = "n/a"
        note = f"pairs timed on {subset} of {n_pairs}, extrapolated"
    rows.append([label, n_frames, n_pairs, "rigidregistration (re-impl.)", f"{times['total']:.2f}",
                 f"{times['total'] / t_ours:.1f}", e_ref, fmt_mem(n_frames * shape[0] * shape[1] * 16), note])
    print(rows[-1], flush=True)


def bench_real(rows):
    path = Path(os.environ.get("STACKALIGN_REAL_DATA", "/work/shared/data/real")) / "hyperspy-stem-abf" / "stem_abf_data_imagestack.tif"
    if not path.exists():
        print("real STEM stack not found: skipped")
        return
    import tifffile

    stack = tifffile.imread(path).astype(np.float32)
    published_x = np.array([-2.1, -1.5, 0.0, 2.5, 1.1])
    published_y = np.array([5.3, 2.2, -1.3, -2.1, -4.1])
    ours, t_ours, _ = run_ours(stack, 4)
    dev = np.abs(np.c_[ours.shifts[:, 0] - published_x, ours.shifts[:, 1] - published_y]).max()
    resid = np.nanmax(ours.residuals())
    rows.append(["real STEM ABF (internal)", 5, 10, "ours (gf)", f"{t_ours:.2f}", "1.0", f"max residual {resid:.3f}", "",
                 f"largest difference from the published reference shifts {dev:.2f} px"])
    out = ref.run(stack, mask="hann", n=4, maxima="gf")
    devr = np.abs(np.c_[out["shifts"][:, 0] - published_x, out["shifts"][:, 1] - published_y]).max()
    rows.append(["real STEM ABF (internal)", 5, 10, "rigidregistration (re-impl.)", f"{out['times']['total']:.2f}",
                 f"{out['times']['total'] / t_ours:.1f}", "", "", f"largest difference from the published reference shifts {devr:.2f} px"])
    print(rows[-2:], flush=True)


HEADER = ["data", "frames", "pairs", "method", "time (s)", "time / ours", "RMS error (px)", "memory", "notes"]


def table(rows):
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for r in rows:
        lines.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small stacks only (a sanity run, no docs written)")
    p.add_argument("--out", default=None, help="write the markdown table here (default: docs/ for full runs)")
    args = p.parse_args(argv)
    rows: list = []
    t0 = time.perf_counter()
    if args.quick:
        bench_case(rows, "lattice p8, hann n=2", 12, (256, 256), 8, 2, 30, True)
        bench_case(rows, "lattice p16, hann n=4", 12, (256, 256), 16, 4, 30, True)
    else:
        for n_frames in (40, 100, 200):
            bench_case(rows, "lattice p8 + texture, SNR 0.4, hann n=2", n_frames, (512, 512), 8, 2, 800, False)
        for n_frames in (40, 200):
            bench_case(rows, "lattice p16 + texture, SNR 0.4, hann n=4", n_frames, (512, 512), 16, 4, 800, False)
        bench_real(rows)
    text = table(rows)
    print()
    print(text)
    print(f"\ntotal benchmark time {time.perf_counter() - t0:.0f} s")
    out = args.out or (None if args.quick else ROOT / "docs" / "benchmarks-pairwise.md")
    if out is not None:
        header = (
            f"{FIXED_HEADING}\n\n"
            "Command: `flock /tmp/bench.lock /tmp/venv/bin/python tests/benchmarks/bench_pairwise.py`\n\n"
            f"Machine: {os.cpu_count()} cores ({platform.processor() or platform.machine()}), "
            f"Python {sys.version.split()[0]}, numpy {np.__version__}; ours uses {WORKERS} threads, the "
            "re-implementation and the plain loop are single-threaded numpy/scipy as written "
            "(the plain loop's irfft2 uses 2 threads).\n\n"
            "Time is end to end (spectra, all pairs, outliers, solve, average). RMS error: per-frame shift "
            "error after removing a global offset, against the synthetic ground truth. Memory: ours is the "
            "traced peak of Python/numpy allocations during the call (the input stack excluded); the others "
            "are the size of the per-frame spectra they keep (complex128 full FFTs for the re-implementation, "
            "complex64 half spectra for the plain loop).\n\n"
        )
        # the section of bench_pairwise_defaults.py before this one is kept
        old = Path(out).read_text() if Path(out).exists() else ""
        kept = old[: old.index(FIXED_HEADING)] if FIXED_HEADING in old else ""
        Path(out).write_text(kept + header + text + "\n" + _notes())
        print(f"wrote {out}")
    return 0


def _notes():
    return """
Notes
- Data: `napari_stackalign.synthetic.stem_stack`: the `synthetic` lattice (two sublattices) plus a
  band-limited texture (30 % of the lattice's contrast) moving with it, Poisson noise at SNR 0.4,
  drift up to 4 px plus 0.3 px jitter. A perfect lattice alone is only determined up to a lattice
  vector (every method then hops at random), which is why real STEM registration relies on the
  non-periodic low-frequency content that the mask emphasises.
- Where the re-implementation's pair stage is extrapolated, its accuracy is not measured ("n/a").
- The re-implementation runs 3 to 4 times faster than the rigidregistration package itself
  (issue 4), so ratios against the package are about 3 to 4 times those shown.
- Against the plain loop: with n = 2 the mask keeps half of each frequency axis, so every pair
  needs the same full-size inverse FFT the plain loop does, and ours adds the distinct-peak
  search and three Gaussian fits per pair (the unit-cell-hop guard), outliers and the weighted
  solve: 2 to 3 times the plain loop's time, for a lower error (0.030 against 0.036 px at 40
  frames) and a guard against unit-cell hops that this data does not trigger (the 12-frame
  `--quick` run does: the plain loop's error there is 0.57 px, ours 0.05 px). With n = 4 the band
  is a quarter of each axis and ours is faster than the plain loop (a 256 x 256 inverse FFT plus
  DFT windows at the candidate peaks instead of 512 x 512).
- The 40-frame target (RMS <= 0.03 px) is met by `gf` (0.0296) and `dft` (0.0247) on the
  period-8 lattice; the period-16 lattice carries less information per frame at the same SNR
  and no method reaches 0.03 px there.
"""


if __name__ == "__main__":
    sys.exit(main())
