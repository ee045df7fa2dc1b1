"""How many threads should estimate frames, and what overlapping the apply buys.

Plain script (not collected by pytest)::

    /tmp/venv/bin/python tests/benchmarks/bench_threads.py [--out docs/benchmarks-threads.md]

1. Frame estimation (the final pass of pyramid registration, template
   already built) with 1 and 2 estimating threads, per frame, best of 5 runs.
   Estimating a frame is a few dozen short numpy/OpenCV calls, each one
   releasing and re-taking the GIL; this measures whether a second thread
   gains anything (the answer sets ``estimation_workers``' default).
2. Estimation plus apply at 512x512 x1000: ``register_pyramid`` then
   ``apply_transforms`` (one after the other), against ``register_and_apply``
   (apply overlapped in a background thread), best of 3 runs; the outputs are
   checked to be identical.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pyramid import Case, make_case  # noqa: E402

from napari_stackalign.core.apply import apply_transforms  # noqa: E402
from napari_stackalign.core.pyramid import register_and_apply, register_pyramid  # noqa: E402
from napari_stackalign.core.pyramid._stages import (  # noqa: E402
    build_template,
    estimate_range,
    plan_pyramid,
)


def best_of(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def threads_table(quick: bool) -> str:
    rows = ["| case | 1 thread, us/frame | 2 threads, us/frame | 2 threads / 1 thread |", "|---|---|---|---|"]
    kinds = ("texture", "lattice") if quick else ("beads", "texture", "lattice")
    for size in (256, 512):
        for kind in kinds:
            n = 300
            stack, _ = make_case(Case(kind, size, n, "medium"))
            job = plan_pyramid(stack.shape, stack.dtype)
            state = build_template(stack, job)
            prep, est = job.preparer(), job.estimator(state.template)
            per = {}
            with ThreadPoolExecutor(2) as pool:
                for label, p in (("1", None), ("2", pool)):
                    t = best_of(
                        lambda p=p: estimate_range(stack, job, state, 100, n, preparer=prep, estimator=est, pool=p), 5
                    )
                    per[label] = t / (n - 100) * 1e6
            rows.append(f"| {kind} {size}px | {per['1']:.0f} | {per['2']:.0f} | {per['2'] / per['1']:.2f} |")
            print(rows[-1], flush=True)
    return "\n".join(rows) + "\n"


def overlap_table(quick: bool) -> str:
    rows = [
        "| case | estimation only fps | register_pyramid + apply_transforms fps | register_and_apply fps |",
        "|---|---|---|---|",
    ]
    kinds = ("texture",) if quick else ("beads", "texture", "lattice")
    for kind in kinds:
        n = 1000
        stack, _ = make_case(Case(kind, 512, n, "medium"))
        t_est = best_of(lambda: register_pyramid(stack), 3)
        t_seq = best_of(lambda: apply_transforms(stack, register_pyramid(stack)), 3)
        t_one = best_of(lambda: register_and_apply(stack), 3)
        same = np.array_equal(apply_transforms(stack, register_pyramid(stack)), register_and_apply(stack).data)
        if not same:
            raise AssertionError("register_and_apply differs from register_pyramid + apply_transforms")
        rows.append(f"| {kind} 512px x{n} | {n / t_est:.0f} | {n / t_seq:.0f} | {n / t_one:.0f} |")
        print(rows[-1], flush=True)
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    threads = threads_table(args.quick)
    overlap = overlap_table(args.quick)
    load = os.getloadavg()
    info = (
        f"Machine: {os.cpu_count()} cores ({platform.processor() or platform.machine()}), Python "
        f"{platform.python_version()}, numpy {np.__version__}, OpenCV {cv2.__version__} "
        f"({cv2.getNumThreads()} OpenCV threads). Load average at the end: {load[0]:.1f} / {load[1]:.1f} / "
        f"{load[2]:.1f}. Total run time {time.perf_counter() - t0:.0f} s.\n"
    )
    text = (
        "# Benchmark: estimating threads and the overlapped apply\n\n"
        "Rerun with:\n\n```\nflock /tmp/bench.lock /tmp/venv/bin/python tests/benchmarks/bench_threads.py"
        + (" --quick" if args.quick else "")
        + (f" --out {args.out}" if args.out else "")
        + "\n```\n\n"
        + info
        + "\nFrame estimation (final pass, template built, medium SNR, 200 frames, best of 5):\n\n"
        + threads
        + "\nEstimation plus apply, 1000 frames (best of 3; the two outputs are checked to be identical):\n\n"
        + overlap
    )
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
