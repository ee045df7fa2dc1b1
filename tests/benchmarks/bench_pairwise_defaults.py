"""Benchmark: ``register_pairwise`` with its defaults against the plain all-pairs loop of the
independent generator ``shared/bench/anchors.py`` (``allpairs_naive_n40``), same stacks, same run.

Cases: camera, beads and lattice at 256 x 256 with high, medium and very low SNR, plus the
low-dose lattice at 512 x 512; 40 frames each (the loop's ``N_PAIRS``), several seeds.
Both peers see the same 40 frames; the error is the RMS after removing one constant offset
(the harness's ``pose_errors``), time is the estimation only (best of ``--reps``).

Run from the repository root (2 shared cores: keep it short)::

    PYTHONPATH=src python tests/benchmarks/bench_pairwise_defaults.py --seeds 1 2 3 4 5
    PYTHONPATH=src python tests/benchmarks/bench_pairwise_defaults.py --cases lattice-512 --seeds 3

``--params '{"n": 2}'`` passes options to ``register_pairwise``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from napari_stackalign import NoSignalWarning
from napari_stackalign.core.pairwise import register_pairwise

ANCHORS = Path(os.environ.get("ANCHORS", "/work/shared/bench/anchors.py"))
N_FRAMES = 40

CASES = [(c, 256, n) for c in ("camera", "beads", "lattice") for n in ("high", "medium", "vlow")]
CASES.append(("lattice", 512, "vlow"))


def _anchors():
    spec = importlib.util.spec_from_file_location("anchors_bench", ANCHORS)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["anchors_bench"] = mod
    spec.loader.exec_module(mod)
    return mod


def _ours(stack: np.ndarray, params: dict) -> tuple[np.ndarray, np.ndarray]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoSignalWarning)
        res = register_pairwise(stack, average=None, **params)
    ft = res.transforms
    applied, _ = ft.resolve_failed("interpolate")
    return -applied.shifts, np.asarray(ft.ok)


def _best_time(fn, reps: int):
    best, out = np.inf, None
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def markdown(runs: list[list[dict]]) -> str:
    """Per case, median (and worst) over the seeds of each saved run: ours, the loop, and their times."""
    head = "| case | seeds |" + "".join(
        f" run {k + 1}: ours px (worst) | loop px (worst) | ours s | loop s |" for k in range(len(runs))
    )
    lines = [head, "|" + "---|" * (2 + 4 * len(runs))]
    for name in dict.fromkeys(r["case"] for r in runs[0]):
        cells = []
        for rows in runs:
            sel = [r for r in rows if r["case"] == name]
            med = {k: float(np.median([r[k] for r in sel])) for k in ("ours", "loop", "t_ours", "t_loop")}
            worst = {k: max(r[k] for r in sel) for k in ("ours", "loop")}
            cells.append(
                f" {med['ours']:.4f} ({worst['ours']:.3f}) | {med['loop']:.4f} ({worst['loop']:.3f}) | "
                f"{med['t_ours']:.2f} | {med['t_loop']:.2f} |"
            )
        lines.append(f"| {name} | {len(sel)} |" + "".join(cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    ap.add_argument("--cases", default="", help="regex on case names")
    ap.add_argument("--params", default="{}", help="JSON options for register_pairwise")
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--json", default="", help="write the rows here")
    ap.add_argument("--markdown", nargs="+", default=[], metavar="JSON", help="print the markdown table of saved runs")
    args = ap.parse_args(argv)
    if args.markdown:
        print(markdown([json.loads(Path(p).read_text()) for p in args.markdown]))
        return 0
    params = json.loads(args.params)
    anchors = _anchors()
    import re

    rows = []
    print(
        f"{'case':24s} {'seed':>4s} {'snr':>6s} {'ours px':>8s} {'loop px':>8s} {'ours s':>7s} {'loop s':>7s} "
        f"{'ok':>5s}"
    )
    for content, size, noise in CASES:
        name = f"{content}-{size}-{noise}"
        if args.cases and not re.search(args.cases, name):
            continue
        for seed in args.seeds:
            case = anchors._case(content, size, N_FRAMES, noise)
            stack, shifts, _angles, info = anchors.generate_case(case, seed)
            stack = np.ascontiguousarray(stack[:N_FRAMES])
            truth = np.asarray(shifts)[:N_FRAMES]
            t_ours, (disp, ok) = _best_time(lambda s=stack: _ours(s, params), args.reps)
            t_loop, est = _best_time(lambda s=stack: anchors._allpairs_est(s, {}), args.reps)
            e_ours = anchors.pose_errors(disp, None, truth, None)["rms_px"]
            e_loop = anchors.pose_errors(est["disp"], None, truth, None)["rms_px"]
            row = {
                "case": name,
                "seed": seed,
                "snr": info["snr"],
                "ours": e_ours,
                "loop": e_loop,
                "t_ours": t_ours,
                "t_loop": t_loop,
                "ok": int(ok.sum()),
            }
            rows.append(row)
            print(
                f"{name:24s} {seed:4d} {info['snr']:6.2f} {e_ours:8.4f} {e_loop:8.4f} {t_ours:7.2f} {t_loop:7.2f} "
                f"{int(ok.sum()):3d}/{ok.size}",
                flush=True,
            )
    print("\nsummary (median over seeds)")
    print(f"{'case':24s} {'ours px':>8s} {'loop px':>8s} {'ratio':>6s} {'ours s':>7s} {'loop s':>7s} {'speedup':>7s}")
    for name in dict.fromkeys(r["case"] for r in rows):
        sel = [r for r in rows if r["case"] == name]
        med = {k: float(np.median([r[k] for r in sel])) for k in ("ours", "loop", "t_ours", "t_loop")}
        print(
            f"{name:24s} {med['ours']:8.4f} {med['loop']:8.4f} {med['ours'] / med['loop']:6.2f} "
            f"{med['t_ours']:7.2f} {med['t_loop']:7.2f} {med['t_loop'] / med['t_ours']:7.1f}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
