"""The lattice runs' check (``core/pyramid/_lattice_segments.py``): what it changes and what it costs.

Plain script (not collected by pytest)::

    PYTHONPATH=src python tests/benchmarks/bench_lattice_runs.py --seeds 0 1 2 3 4 5 6 7

Each seed draws one stack of ``tests/core/pyramid/_defect_lattice.py``: a hexagonal 6 px lattice with 2 %
vacancies and 1 % dopants, 60 frames of 160 px at SNR 0.4, its steps of 1.5 px RMS per axis (often
beyond half a lattice vector). Each stack is registered twice in the same run, with the check and with
it switched off (``check_runs`` returning None, as when the motion links every frame), both with
``register_pyramid``'s defaults. Per stack and in total: frames wrong by more than 1 px yet ok ("silent",
after removing the median offset of the ok frames), frames right and ok, and the seconds of each
registration (best of ``--repeat``).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core" / "pyramid"))
from _defect_lattice import hex_basis, jumpy_walk, noisy, render

import napari_stackalign.core.pyramid._periodic as periodic
from napari_stackalign.core.pyramid import register_pyramid


def stack_for(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    basis = hex_basis(6.0, rng.uniform(0, np.pi))
    truth = jumpy_walk(60, 1.5, seed)
    frames = render((160, 160), truth, basis, salt=seed + 1, vacancy=0.02, dopant=0.01)
    return noisy(frames, 0.4, seed), truth


def score(stack: np.ndarray, truth: np.ndarray, repeat: int) -> tuple[int, int, float]:
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = register_pyramid(stack)
        best = min(best, time.perf_counter() - start)
    ok = np.asarray(res.ok)
    err = np.asarray(res.shifts) - truth
    err -= np.median(err[ok] if ok.any() else err, axis=0)
    wrong = np.hypot(*err.T) > 1.0
    return int((wrong & ok).sum()), int((~wrong & ok).sum()), best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(8)))
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    check = periodic.check_runs
    totals = np.zeros((2, 3))
    print(f"{'seed':>4} | {'with the check: silent, right&ok, s':>36} | {'without: silent, right&ok, s':>30}")
    for seed in args.seeds:
        stack, truth = stack_for(seed)
        rows = []
        for enabled in (True, False):
            periodic.check_runs = check if enabled else (lambda *a, **k: None)
            rows.append(score(stack, truth, args.repeat))
        periodic.check_runs = check
        totals += np.array(rows)
        (a1, b1, c1), (a2, b2, c2) = rows
        print(f"{seed:>4} | {a1:>14} {b1:>10} {c1:>9.2f} | {a2:>8} {b2:>10} {c2:>9.2f}")
    (a1, b1, c1), (a2, b2, c2) = totals
    print(f"{'all':>4} | {a1:>14.0f} {b1:>10.0f} {c1:>9.2f} | {a2:>8.0f} {b2:>10.0f} {c2:>9.2f}")
    print(f"time with the check / without: {c1 / c2:.2f}")


if __name__ == "__main__":
    main()
