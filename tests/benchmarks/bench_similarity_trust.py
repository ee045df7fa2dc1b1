"""Similarity registration: are the frames marked ok right, and are the flagged ones wrong?

Plain script (not collected by pytest)::

    PYTHONPATH=src python tests/benchmarks/bench_similarity_trust.py --seed 1 --cases 40 --json out.json
    python tests/benchmarks/bench_similarity_trust.py --compare base.json branch.json

Random cases drawn from ``--seed``: content ``texture`` and ``beads``
(``napari_stackalign.synthetic``), ``camera`` (crops of scikit-image's natural
images, cubic spline), ``hex`` / ``square`` lattices (``bench_grid``'s analytic
renderer, periods 4 to 16 px), ``sym2`` (a point-symmetric scene: blobs at
``+p`` and ``-p`` about the canvas centre, so every frame matches the template
equally well turned by 180 degrees) and ``noise`` (no signal); frames 64 to
256 px, square or not, 8 to 14 frames, SNR log-uniform 0.3 .. 20, every frame
an independent pose: angle within +-2, +-30 or +-180 degrees, scale 0.85 ..
1.18 or 1 +- 1 %, shift up to 8 % of the smaller side.

``register_similarity`` runs with its defaults (``template="middle"``) with the
fallback switched off (the flagged frames keep their raw estimate, so a flag
can be checked). Per frame: the error is the largest distance, over the four
frame corners, between where the estimated and the true correction put the
corner (so rotation and scale errors count at the frame edge). Reported:

- ``bad``: frames off by more than 1 px; ``silent``: of those, marked ok (must be 0);
- ``false``: frames within 0.5 px that were flagged (the cost of the flags);
- ``rms ok``: RMS corner error of the ok frames.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_grid import add_noise, render_lattice  # noqa: E402

import napari_stackalign.core.similarity._register as _reg  # noqa: E402
from napari_stackalign.core.similarity import register_similarity  # noqa: E402
from napari_stackalign.synthetic import make_stack  # noqa: E402
from napari_stackalign.transforms import FrameTransforms  # noqa: E402

CONTENTS = ("texture", "beads", "camera", "hex", "square", "sym2", "noise")
SIZES = (64, 96, 128, 160, 192, 256)


def draw_cases(seed: int, n: int) -> list[dict]:
    rng = np.random.default_rng([seed, 29])
    cases = []
    for i in range(n):
        content = CONTENTS[i % len(CONTENTS)] if i < len(CONTENTS) else str(rng.choice(CONTENTS))
        h = int(rng.choice(SIZES))
        w = h if rng.random() < 0.6 else int(rng.choice(SIZES))
        cases.append(
            dict(
                id=i,
                content=content,
                shape=(h, w),
                n_frames=int(rng.integers(8, 15)),
                snr=float(np.exp(rng.uniform(np.log(0.3), np.log(20.0)))),
                noise=str(rng.choice(["poisson", "gaussian"])),
                angle=float(rng.choice([2.0, 30.0, 180.0], p=[0.3, 0.45, 0.25])),
                scale=bool(rng.random() < 0.5),
                period=float(rng.choice([4.0, 5.0, 6.0, 8.0, 10.0, 12.0, 16.0])),
                seed=int(rng.integers(0, 2**31)),
            )
        )
    return cases


def random_poses(case: dict, rng: np.random.Generator) -> FrameTransforms:
    n, (h, w) = case["n_frames"], case["shape"]
    shift = 0.08 * min(h, w)
    if case["scale"]:
        scale = np.exp(rng.uniform(np.log(0.85), np.log(1.18), n))
    else:
        scale = 1.0 + rng.uniform(-0.01, 0.01, n)
    return FrameTransforms(
        dy=rng.uniform(-shift, shift, n),
        dx=rng.uniform(-shift, shift, n),
        angle=rng.uniform(-case["angle"], case["angle"], n),
        scale=scale,
        center=((h - 1) / 2.0, (w - 1) / 2.0),
    )


def _canvas_coords(motion: FrameTransforms, t: int, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    inv = np.linalg.inv(motion.to_matrices()[t])
    rr, cc = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    return inv[0, 0] * rr + inv[0, 1] * cc + inv[0, 2], inv[1, 0] * rr + inv[1, 1] * cc + inv[1, 2]


def render_camera(motion: FrameTransforms, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    from skimage import color, data

    img = getattr(data, str(rng.choice(["camera", "astronaut", "coffee", "moon"])))()
    if img.ndim == 3:
        img = color.rgb2gray(img)
    img = img.astype(np.float64)
    img = (img - img.min()) / (np.ptp(img) or 1.0)
    reach = int(1.5 * math.hypot(*shape)) + 16
    zoom = 2 * reach / min(img.shape) * rng.uniform(1.0, 1.3)
    if zoom > 1:
        img = ndimage.zoom(img, zoom, order=3)
    cy, cx = img.shape[0] // 2, img.shape[1] // 2
    canvas = ndimage.gaussian_filter(img, 0.8) + 0.05
    coeffs = ndimage.spline_filter(canvas, order=3)
    oy, ox = cy - (shape[0] - 1) / 2.0, cx - (shape[1] - 1) / 2.0
    out = np.empty((len(motion), *shape), np.float32)
    for t in range(len(motion)):
        u, v = _canvas_coords(motion, t, shape)
        out[t] = ndimage.map_coordinates(coeffs, [u + oy, v + ox], order=3, prefilter=False, mode="nearest")
    return out


def render_sym2(motion: FrameTransforms, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Blobs at +p and -p about the canvas centre: the scene is its own 180-degree turn."""
    h, w = shape
    c = np.array([(h - 1) / 2.0, (w - 1) / 2.0])
    n = int(rng.integers(4, 10))
    rad = 0.35 * min(h, w)
    p = rng.uniform(-rad, rad, (n, 2))
    pts = np.concatenate([c + p, c - p])
    sig = np.tile(rng.uniform(1.5, 0.05 * min(h, w) + 2, n), 2)
    amp = np.tile(rng.uniform(0.4, 1.0, n), 2)
    out = np.empty((len(motion), h, w), np.float32)
    for t in range(len(motion)):
        u, v = _canvas_coords(motion, t, shape)
        img = np.full(shape, 0.1)
        for (py, px), s, a in zip(pts, sig, amp):
            img += a * np.exp(-((u - py) ** 2 + (v - px) ** 2) / (2 * s * s))
        out[t] = img
    return out


def make_case(case: dict) -> tuple[np.ndarray, FrameTransforms]:
    """(stack, true correction onto the canvas) of ``case``."""
    rng = np.random.default_rng(case["seed"])
    shape = tuple(case["shape"])
    motion = random_poses(case, rng)
    truth = motion.invert()
    content = case["content"]
    if content == "noise":
        if case["noise"] == "poisson":
            stack = rng.poisson(float(np.exp(rng.uniform(np.log(0.5), np.log(200)))), (case["n_frames"], *shape))
            return stack.astype(np.uint16), truth
        return rng.normal(100.0, 10.0, (case["n_frames"], *shape)).astype(np.float32), truth
    if content in ("texture", "beads"):
        return make_stack(
            content, n_frames=case["n_frames"], shape=shape, motion=motion, snr=case["snr"], noise=case["noise"],
            seed=case["seed"] % 100000,
        )
    if content == "camera":
        clean = render_camera(motion, shape, rng)
    elif content == "sym2":
        clean = render_sym2(motion, shape, rng)
    else:
        clean = render_lattice(motion, shape, rng, case["period"], hexagonal=content == "hex")
    return add_noise(clean, case["snr"], case["noise"], rng), truth


def corner_errors(est: FrameTransforms, truth: FrameTransforms, ref: int, shape: tuple[int, int]) -> np.ndarray:
    """Per frame, the largest corner distance between the estimated and the true correction onto frame ``ref``."""
    h, w = shape
    corners = np.array([[0, 0, 1], [0, w - 1, 1], [h - 1, 0, 1], [h - 1, w - 1, 1]], float).T
    t_mats = truth.to_matrices()
    e_mats = est.to_matrices()
    ref_inv = np.linalg.inv(t_mats[ref])
    out = np.empty(len(est))
    for t in range(len(est)):
        true = ref_inv @ t_mats[t]
        d = (e_mats[t] @ corners - true @ corners)[:2]
        out[t] = float(np.sqrt((d**2).sum(axis=0)).max()) if np.all(np.isfinite(d)) else np.inf
    return out


def run_case(case: dict) -> dict:
    stack, truth = make_case(case)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ft = register_similarity(stack, workers=1)
    seconds = time.perf_counter() - t0
    ref = ft.params["template_index"]
    err = corner_errors(ft, truth, ref, tuple(case["shape"]))
    keep = np.arange(len(ft)) != ref
    return dict(
        case=case,
        seconds=seconds,
        err=[float(e) for e in err[keep]],
        ok=[bool(o) for o in np.asarray(ft.ok)[keep]],
        reason=[str(r) for r, k in zip(ft.reason, keep) if k],
    )


def band(case: dict) -> str:
    if case["content"] in ("noise",):
        return "-"
    return "low" if case["snr"] < 1 else ("high" if case["snr"] > 5 else "med")


def summarise(rows: list[dict], key=lambda c: (c["content"], band(c))) -> dict:
    groups: dict = {}
    for r in rows:
        groups.setdefault(key(r["case"]), []).append(r)
    groups[("ALL", "")] = rows
    out = {}
    for k, rs in groups.items():
        err = np.concatenate([np.asarray(r["err"]) for r in rs])
        ok = np.concatenate([np.asarray(r["ok"], bool) for r in rs])
        bad = err > 1.0
        good = err <= 0.5
        rms = float(np.sqrt(np.mean(err[ok & np.isfinite(err)] ** 2))) if (ok & np.isfinite(err)).any() else float("nan")
        out[k] = dict(
            frames=int(err.size), bad=int(bad.sum()), silent=int((bad & ok).sum()), good=int(good.sum()),
            false=int((good & ~ok).sum()), ok=int(ok.sum()), rms_ok=rms,
            seconds=float(sum(r["seconds"] for r in rs)),
        )
    return out


def print_table(title: str, summ: dict) -> None:
    print(f"\n{title}")
    print(f"{'content':9s} {'snr':5s} {'frames':>6s} {'bad':>5s} {'silent':>6s} {'good':>5s} {'false':>5s} "
          f"{'ok':>5s} {'rms ok':>8s}")
    for (content, b), s in sorted(summ.items(), key=lambda kv: (kv[0][0] == "ALL", kv[0])):
        print(f"{content:9s} {b:5s} {s['frames']:6d} {s['bad']:5d} {s['silent']:6d} {s['good']:5d} {s['false']:5d} "
              f"{s['ok']:5d} {s['rms_ok']:8.3f}")


def compare(paths: list[str]) -> None:
    for p in paths:
        rows = json.loads(Path(p).read_text())
        print_table(p, summarise(rows))
        silent = [(r["case"]["id"], r["case"]["content"], round(r["case"]["snr"], 2), round(e, 2))
                  for r in rows for e, o in zip(r["err"], r["ok"]) if o and e > 1]
        print("silent frames (case, content, snr, err):", silent[:20])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cases", type=int, default=40)
    ap.add_argument("--only", type=int, nargs="*")
    ap.add_argument("--json")
    ap.add_argument("--compare", nargs="*")
    ap.add_argument("--fallback", action="store_true", help="keep the fallback (default: raw estimates)")
    args = ap.parse_args()
    if args.compare:
        compare(args.compare)
        return
    if not args.fallback:
        _reg.fill_failed = lambda ft, ok, fallback="interpolate": ft.copy()
    rows = []
    for case in draw_cases(args.seed, args.cases):
        if args.only and case["id"] not in args.only:
            continue
        rows.append(run_case(case))
        r = rows[-1]
        nbad = sum(e > 1 for e in r["err"])
        nsil = sum(e > 1 and o for e, o in zip(r["err"], r["ok"]))
        print(f"#{case['id']} {case['content']} {case['shape']} snr{case['snr']:.2g} a{case['angle']:g} "
              f"bad {nbad} silent {nsil} ok {sum(r['ok'])}/{len(r['ok'])} {r['seconds']:.1f}s", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows))
    print_table(f"seed {args.seed}", summarise(rows))


if __name__ == "__main__":
    main()
