"""Can a pyramid ``ok`` be trusted? Many random cases, one table.

Plain script (not collected by pytest)::

    PYTHONPATH=src python tests/benchmarks/bench_pyramid_trust.py [--seeds 30] [--frames 40] [--size 128]

Each seed draws one case: content (beads, texture, a hexagonal lattice with a
weak texture, or pure noise), an SNR in 0.3-10 (log-uniform), a drift up to
10 % of the frame and a jitter up to 1 px, and registers it with
``register_pyramid`` (defaults). Per content and SNR band it prints the RMS
error of the ok frames and of all frames (after removing one global offset),
the share of frames off by more than 1 px, the share of those NOT flagged
(``ok=True``: a silent wrong frame; the target is 0), and the share of frames
flagged. Noise-only stacks have no truth: every frame should fail.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from napari_stackalign.core.pyramid import register_pyramid
from napari_stackalign.synthetic import make_stack, random_motion, stem_stack

KINDS = ("beads", "texture", "lattice", "noise")


def draw_case(
    seed: int, n_frames: int, size: int
) -> tuple[str, float, np.ndarray, np.ndarray | None]:
    """(kind, snr, stack, true shifts or None) of one random case."""
    rng = np.random.default_rng([seed, 13])
    kind = KINDS[seed % len(KINDS)]
    snr = float(np.exp(rng.uniform(np.log(0.3), np.log(10.0))))
    shape = (size, size)
    motion = random_motion(
        n_frames,
        shape,
        drift=rng.uniform(1, 0.1 * size),
        jitter=rng.uniform(0, 1.0),
        rotation=0,
        scale=0,
        rng=seed,
    )
    if kind == "noise":
        stack = rng.poisson(20.0, size=(n_frames, *shape)).astype(np.float32)
        return kind, float("nan"), stack, None
    if kind == "lattice":
        stack, truth = stem_stack(
            n_frames, shape, period=8.0, snr=snr, motion=motion, seed=seed
        )
    else:
        stack, truth = make_stack(
            kind, n_frames=n_frames, shape=shape, motion=motion, snr=snr, seed=seed
        )
    return kind, snr, stack, truth.shifts


def errors(estimate: np.ndarray, truth: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Per-frame error norm after removing one global offset (fit on ok frames)."""
    err = estimate - truth
    ref = ok if ok.any() else np.ones(len(ok), bool)
    err = err - np.median(err[ref], axis=0)
    return np.hypot(err[:, 0], err[:, 1])


def band(snr: float) -> str:
    if not np.isfinite(snr):
        return "-"
    return "low (<1)" if snr < 1 else ("medium (1-3)" if snr < 3 else "high (>=3)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=32)
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--size", type=int, default=128)
    args = ap.parse_args()
    rows: dict[tuple[str, str], list] = {}
    t0 = time.perf_counter()
    for seed in range(args.seeds):
        kind, snr, stack, truth = draw_case(seed, args.frames, args.size)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ft = register_pyramid(stack)
        ok = np.asarray(ft.ok, bool)
        rec = rows.setdefault((kind, band(snr)), [])
        if truth is None:
            rec.append((np.full(len(ok), np.nan), ok))
        else:
            rec.append((errors(ft.shifts, truth, ok), ok))
    print(
        f"{args.seeds} cases, {args.frames} frames of {args.size}x{args.size}, {time.perf_counter() - t0:.0f} s"
    )
    head = f"{'content':8} {'SNR':13} {'cases':>5} {'RMS ok':>8} {'RMS all':>8} {'>1px':>7} {'>1px ok':>8} {'flagged':>8}"
    print(head)
    print("-" * len(head))
    for (kind, b), rec in sorted(rows.items()):
        err = np.concatenate([e for e, _ in rec])
        ok = np.concatenate([o for _, o in rec])
        if kind == "noise":
            print(
                f"{kind:8} {b:13} {len(rec):5d} {'-':>8} {'-':>8} {'-':>7} {np.mean(ok):8.3f} {np.mean(~ok):8.3f}"
            )
            continue
        rms_ok = float(np.sqrt(np.mean(err[ok] ** 2))) if ok.any() else float("nan")
        rms = float(np.sqrt(np.mean(err**2)))
        off = err > 1.0
        silent = float(np.mean(ok[off])) if off.any() else 0.0
        print(
            f"{kind:8} {b:13} {len(rec):5d} {rms_ok:8.3f} {rms:8.3f} {np.mean(off):7.3f} {silent:8.3f} {np.mean(~ok):8.3f}"
        )
    print(
        "'>1px ok': share of the frames off by more than 1 px that were marked ok (target 0);"
    )
    print("noise rows: '>1px ok' is the share of noise frames marked ok (target 0).")


if __name__ == "__main__":
    main()
