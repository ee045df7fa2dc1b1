"""Pyramid registration of drifting lattices: silent wrong frames and right frames marked ok.

Plain script (not collected by pytest)::

    PYTHONPATH=src python tests/benchmarks/bench_lattice_drift.py --start 0 --stop 30
    PYTHONPATH=src python tests/benchmarks/bench_lattice_drift.py --start 30 --stop 60

Each index draws one stack (``numpy.random.default_rng([index, 99])``): a hexagonal
or square lattice (alternating), period 5, 6, 8, 10 or 12 px, on a smooth non-repeating
background of 0.05, 0.1, 0.3 or 0.6 times the lattice's spread, drifting in a straight
line at 0.2-0.8 px per frame with Gaussian jitter of 0, 0.2 or 0.5 px, white noise of
0.3, 0.7 or 1.2, 40 or 90 frames of 96, 128 or 192 px (cubic-spline shifts of a larger
canvas). ``register_pyramid(stack, max_movement=0.9)`` runs with its defaults otherwise.
Per stack: frames marked ok, frames wrong by more than 1 px yet ok ("silent", after
removing the constant offset of the better half of the frames), frames right within
0.5 px and ok; then the totals. Measured figures: docs/pyramid-algorithm.md ("Lattices
whose frames hop in blocks").
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core" / "pyramid"))
from test_lattice_detection import _hex_lattice, _square_lattice

from napari_stackalign.core.pyramid import register_pyramid


def stack_for(index: int) -> tuple[np.ndarray, np.ndarray, tuple]:
    """The stack of ``index``, its positions (the correction is ``-positions``) and what was drawn."""
    rng = np.random.default_rng([index, 99])
    period = float(rng.choice([5, 6, 8, 10, 12]))
    background = float(rng.choice([0.05, 0.1, 0.3, 0.6]))
    speed = float(rng.uniform(0.2, 0.8))
    noise = float(rng.choice([0.3, 0.7, 1.2]))
    n = int(rng.choice([40, 90]))
    size = int(rng.choice([96, 128, 192]))
    kind = ["hex", "square"][index % 2]
    jitter = float(rng.choice([0.0, 0.2, 0.5]))
    margin = int(speed * n + 3 * jitter * 4) + 12
    big = (size + 2 * margin, size + 2 * margin)
    render = _hex_lattice if kind == "hex" else _square_lattice
    canvas = render(big, period, rng.uniform(0, np.pi))
    smooth = ndimage.gaussian_filter(rng.normal(size=big), 12.0)
    canvas = canvas / canvas.std() + background * smooth / smooth.std()
    direction = rng.normal(size=2)
    direction /= np.hypot(*direction)
    pos = np.arange(n)[:, None] * speed * direction[None] + rng.normal(0, jitter, (n, 2))
    pos -= pos.mean(axis=0)
    frames = np.empty((n, size, size), np.float32)
    for t, (dy, dx) in enumerate(pos):
        moved = ndimage.shift(canvas, (dy, dx), order=3, mode="nearest")
        frames[t] = moved[margin : margin + size, margin : margin + size] + rng.normal(0, noise, (size, size))
    return frames, pos, (kind, period, background, round(speed, 2), noise, n, size, jitter)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--stop", type=int, default=30)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    frames_total = silent_total = right_total = ok_total = 0
    for index in range(args.start, args.stop):
        stack, pos, drawn = stack_for(index)
        ft = register_pyramid(stack, max_movement=0.9)
        err = np.column_stack([ft.dy, ft.dx]) + pos
        first = np.hypot(*(err - np.median(err, axis=0)).T)
        better = first <= np.percentile(first, 50)
        off = np.hypot(*(err - np.median(err[better], axis=0)).T)
        silent = int((ft.ok & (off > 1)).sum())
        right = int((ft.ok & (off <= 0.5)).sum())
        frames_total += len(off)
        silent_total += silent
        right_total += right
        ok_total += int(ft.ok.sum())
        print(index, drawn, "ok", int(ft.ok.sum()), "silent", silent, "right", right, flush=True)
    print(f"totals: frames {frames_total}, silent {silent_total}, right and ok {right_total}, ok {ok_total}")


if __name__ == "__main__":
    main()
