"""Reference modes of the pyramid registration against pystackreg (TRANSLATION,
``reference='previous'`` and ``'mean'``), on the same stacks in one run.

Stacks:

- ``diffusing``: particles that diffuse independently (0.5 px per frame and
  axis, 1.6 px wide), carried by a common sub-pixel drift (no fixed
  structure; ``tests/core/pyramid/_diffusing.py``). The truth is what
  particle tracking measures: the chained mean displacement of the
  particles in view. Several seeds, 60 and 150 frames.
- ``beads``: a normal drifting stack with fixed structure
  (``napari_stackalign.synthetic.make_stack``), truth known.
- real bright-field videos (``shared/data/real``, when present):
  bfdc-brightfield-drift (17 frames, the burned-in label left out with an
  ROI / a crop) and shkirskiy-particles (two sets of 5 frames). They have no
  ground truth: the table gives each method's distance to the median of all
  methods, and the last frame's correction (README of the data: bfdc about
  (-8.95, -13.65) px at frame 16, measured there with phase correlation).

Errors are RMS over frames of the 2-D error, after the common offset is
removed (each method keeps a different frame in place).

``--wrong-links`` runs the other table instead: random cases where one
link of a chain can go wrong (periodic content moving near half a period
per frame or drifting slowly, a sudden jump of the stage, a blank frame, low SNR) and a long
low-SNR stack (the chain's random walk), for ``'previous'`` and
``'running'`` with the second path to every frame (this checkout), the same
modes of another checkout without it (``--before SRC``, run in a child
process on the same stacks) and pystackreg ``'previous'``. Per kind: RMS
error, the share of frames off by more than 1 px, the share of those that
were not flagged (``silent``; must be 0) and the CPU time.

Run::

    PYTHONPATH=src python tests/benchmarks/bench_reference_modes.py [--quick]
    PYTHONPATH=src python tests/benchmarks/bench_reference_modes.py --wrong-links --cases 4 --before /path/to/old/src
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import tifffile
from pystackreg import StackReg

from napari_stackalign.core.pyramid import register_pyramid
from napari_stackalign.synthetic import make_stack
from napari_stackalign.transforms import FrameTransforms

HERE = Path(__file__).resolve().parent
REAL = Path(os.environ.get("STACKALIGN_REAL_DATA", "/work/shared/data/real"))


def _load_diffusing():
    path = HERE.parent / "core" / "pyramid" / "_diffusing.py"
    spec = importlib.util.spec_from_file_location("stackalign_bench_diffusing", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.diffusing_stack


#: our modes: label -> register_pyramid keywords
OURS = {
    "template": {},
    "previous": {"reference_mode": "previous"},
    "previous-k1": {"reference_mode": "previous", "keyframe_every": 1},
    "running": {"reference_mode": "running"},
}
PEERS = ("psr-previous", "psr-mean")


def ours(stack: np.ndarray, kwargs: dict, roi=None) -> tuple[np.ndarray, float, int]:
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ft = register_pyramid(stack, roi=roi, **kwargs)
    return np.stack([ft.dy, ft.dx], axis=1), time.perf_counter() - t0, int((~ft.ok).sum())


def pystackreg(stack: np.ndarray, reference: str) -> tuple[np.ndarray, float, int]:
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its guess of the time axis on short stacks
        tmats = StackReg(StackReg.TRANSLATION).register_stack(
            stack.astype(np.float64), reference=reference, verbose=False
        )
    # the correction (dy, dx) is minus the matrix's translation (checked on a known drift)
    return np.stack([-tmats[:, 1, 2], -tmats[:, 0, 2]], axis=1), time.perf_counter() - t0, 0


def rms(est: np.ndarray, truth: np.ndarray) -> float:
    d = est - truth
    d = d - d.mean(axis=0)
    return float(np.sqrt((d**2).sum(axis=1).mean()))


def run_all(stack: np.ndarray, roi=None, cropped: np.ndarray | None = None) -> dict[str, tuple[np.ndarray, float, int]]:
    """Every method on one stack (pystackreg gets ``cropped``, the ROI cut out, when given)."""
    out = {label: ours(stack, kw, roi) for label, kw in OURS.items()}
    peer_stack = stack if cropped is None else cropped
    out["psr-previous"] = pystackreg(peer_stack, "previous")
    out["psr-mean"] = pystackreg(peer_stack, "mean")
    return out


def table_with_truth(name: str, cases: list[tuple[str, np.ndarray, np.ndarray]]) -> None:
    labels = [*OURS, *PEERS]
    errors = {label: [] for label in labels}
    times = {label: 0.0 for label in labels}
    print(f"\n## {name}: RMS error (px) per stack; ratio = method / psr-previous\n")
    print("| stack | " + " | ".join(labels) + " |")
    print("|---" * (len(labels) + 1) + "|")
    for case, stack, truth in cases:
        res = run_all(stack)
        row = []
        for label in labels:
            est, seconds, bad = res[label]
            errors[label].append(rms(est, truth))
            times[label] += seconds
            row.append(f"{errors[label][-1]:.3f}" + (f" ({bad} flagged)" if bad else ""))
        print(f"| {case} | " + " | ".join(row) + " |")
    ref = np.array(errors["psr-previous"])
    print("| **mean** | " + " | ".join(f"**{np.mean(errors[label]):.3f}**" for label in labels) + " |")
    print(
        "| ratio to psr-previous (mean of per-stack ratios) | "
        + " | ".join(f"{np.mean(np.array(errors[label]) / ref):.2f}" for label in labels)
        + " |"
    )
    print("| time (s, all stacks) | " + " | ".join(f"{times[label]:.1f}" for label in labels) + " |")


def real_cases() -> list[tuple[str, np.ndarray, tuple | None]]:
    cases = []
    bfdc = REAL / "bfdc-brightfield-drift" / "bf_Substack_1-16384-1000_l.tif"
    if bfdc.exists():
        cases.append(("bfdc-brightfield-drift (rows 40:)", tifffile.imread(bfdc).astype(np.float32), 40))
    for part in ("example_data1", "example_data2"):
        folder = REAL / "shkirskiy-particles" / part
        if folder.is_dir():
            frames = [tifffile.imread(folder / f"{i}.tif") for i in range(1, 6)]
            cases.append((f"shkirskiy-particles/{part}", np.stack(frames).astype(np.float32), None))
    return cases


def table_real() -> None:
    cases = real_cases()
    if not cases:
        print("\n(real data not present: skipped)")
        return
    labels = [*OURS, *PEERS]
    print(
        "\n## real videos (no ground truth): RMS distance (px) to the median of all methods; last frame's correction\n"
    )
    print("| video | " + " | ".join(labels) + " |")
    print("|---" * (len(labels) + 1) + "|")
    for name, stack, top in cases:
        if top is None:
            res = run_all(stack)
        else:
            h, w = stack.shape[1:]
            res = run_all(stack, roi=(top, h, 0, w), cropped=np.ascontiguousarray(stack[:, top:]))
        ests = {label: res[label][0] - res[label][0][0] for label in labels}
        median = np.median(np.stack(list(ests.values())), axis=0)
        row = [
            f"{rms(ests[label], median):.2f}; last ({ests[label][-1, 0]:+.2f}, {ests[label][-1, 1]:+.2f})"
            + (f"; {res[label][2]} flagged" if res[label][2] else "")
            for label in labels
        ]
        print(f"| {name} | " + " | ".join(row) + " |")


# ------------------------------------------------------------ wrong links
#: the chained modes compared in the wrong-link table
CHAINED = {"previous": {"reference_mode": "previous"}, "running": {"reference_mode": "running"}}


def wrong_link_case(kind: str, rng: np.random.Generator) -> tuple[str, np.ndarray, np.ndarray]:
    """One random stack of ``kind`` (label, stack, true correction (T, 2))."""
    seed = int(rng.integers(1 << 30))
    size = int(rng.choice([96, 128, 160]))
    shape = (size, int(rng.choice([size, size + 32])))
    if kind == "lattice-half":
        # periodic content whose frame-to-frame motion reaches 0.35-0.65 of its period
        period = float(rng.choice([8.0, 12.0]))
        n = 40
        cycle = rng.uniform(14, 24)
        amp = rng.uniform(0.35, 0.65) * period * cycle / (2 * np.pi)
        ang = rng.uniform(0, 2 * np.pi)
        t = np.arange(n)
        path = amp * np.sin(2 * np.pi * t / cycle + rng.uniform(0, 2 * np.pi))[:, None] * [np.sin(ang), np.cos(ang)]
        path = path + rng.normal(0, 0.2, (n, 2))
        snr = float(rng.uniform(2, 10))
        st = make_stack("lattice", n_frames=n, shape=shape, motion=FrameTransforms.from_shifts(path), snr=snr,
                        lattice_period=period, seed=seed)
        label = f"period {period:g}, max step {amp * 2 * np.pi / cycle:.1f} px, SNR {snr:.1f}"
    elif kind == "lattice-slow":
        # periodic content with a slow drift (a chain's motion model can feed on one period hop)
        snr = float(rng.uniform(2, 6))
        st = make_stack("lattice", n_frames=40, shape=shape, drift=0.06 * size, jitter=0.3, snr=snr, seed=seed)
        label = f"drift {0.06 * size:.0f} px, SNR {snr:.1f}"
    elif kind == "jump":
        n = 40
        path = np.cumsum(rng.normal(0, 0.3, (n, 2)), axis=0)
        at = int(rng.integers(8, n - 8))
        path[at:] += rng.uniform(-0.15, 0.15, 2) * shape
        content = str(rng.choice(["beads", "texture"]))
        st = make_stack(content, n_frames=n, shape=shape, motion=FrameTransforms.from_shifts(path), snr=3.0, seed=seed)
        label = f"{content}, jump at {at}"
    elif kind == "blank":
        n = 40
        st = make_stack("beads", n_frames=n, shape=shape, drift=0.1 * size, jitter=0.5, snr=3.0, seed=seed)
        at = int(rng.integers(3, n - 3))
        st.stack[at] = st.stack.mean() if rng.random() < 0.5 else rng.permutation(st.stack[at].ravel()).reshape(shape)
        label = f"blank/shuffled frame {at}"
    elif kind == "low-snr":
        snr = float(rng.uniform(0.5, 1.2))
        st = make_stack("beads", n_frames=40, shape=shape, drift=0.1 * size, jitter=0.3, snr=snr, seed=seed)
        label = f"SNR {snr:.2f}"
    elif kind == "long-low-snr":
        snr = float(rng.uniform(0.8, 1.5))
        st = make_stack("beads", n_frames=200, shape=(96, 96), drift=12, jitter=0.2, snr=snr, seed=seed)
        label = f"200 frames, SNR {snr:.2f}"
    else:
        raise ValueError(kind)
    return label, st.stack, np.stack([st.truth.dy, st.truth.dx], axis=1)


def run_chained(stacks: list[np.ndarray]) -> dict[str, list]:
    """Our chained modes on every stack: per mode, (corrections, ok, cpu seconds) per stack."""
    out: dict[str, list] = {}
    for label, kwargs in CHAINED.items():
        rows = []
        for stack in stacks:
            t0 = time.process_time()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ft = register_pyramid(stack, **kwargs)
            rows.append((np.stack([ft.dy, ft.dx], axis=1), np.asarray(ft.ok), time.process_time() - t0))
        out[label] = rows
    return out


def run_chained_elsewhere(src: str, stacks: list[np.ndarray]) -> dict[str, list]:
    """:func:`run_chained` with another checkout's ``src`` first on the path (a child process)."""
    with tempfile.TemporaryDirectory() as tmp:
        np.savez(Path(tmp) / "in.npz", *stacks)
        env = {**os.environ, "PYTHONPATH": src}
        subprocess.run([sys.executable, __file__, "--worker", tmp], env=env, check=True)
        meta = json.loads((Path(tmp) / "out.json").read_text())
        arrays = np.load(Path(tmp) / "out.npz")
        return {
            label: [(arrays[f"{label}_{i}_est"], arrays[f"{label}_{i}_ok"], sec) for i, sec in enumerate(times)]
            for label, times in meta.items()
        }


def worker(folder: str) -> None:
    data = np.load(Path(folder) / "in.npz")
    stacks = [data[f"arr_{i}"] for i in range(len(data.files))]
    res = run_chained(stacks)
    arrays = {}
    for label, rows in res.items():
        for i, (est, ok, _) in enumerate(rows):
            arrays[f"{label}_{i}_est"], arrays[f"{label}_{i}_ok"] = est, ok
    np.savez(Path(folder) / "out.npz", **arrays)
    (Path(folder) / "out.json").write_text(json.dumps({label: [r[2] for r in rows] for label, rows in res.items()}))


def frame_errors(est: np.ndarray, ok: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-frame error (px) after one common offset (the median over the trusted frames) is removed."""
    d = est - truth
    d = d - np.median(d[ok] if ok.any() else d, axis=0)
    return np.hypot(d[:, 0], d[:, 1])


def table_wrong_links(n_cases: int, seed: int, before: str | None) -> None:
    rng = np.random.default_rng(seed)
    kinds = ("lattice-half", "lattice-slow", "jump", "blank", "low-snr", "long-low-snr")
    cases = [(kind, *wrong_link_case(kind, rng)) for kind in kinds for _ in range(n_cases if kind != "long-low-snr" else max(1, n_cases // 2))]
    stacks = [c[2] for c in cases]
    results = {f"{label} (now)": rows for label, rows in run_chained(stacks).items()}
    if before:
        results.update({f"{label} (before)": rows for label, rows in run_chained_elsewhere(before, stacks).items()})
    psr = []
    for stack in stacks:
        t0 = time.process_time()
        est, _, _ = pystackreg(stack, "previous")
        psr.append((est, np.ones(len(stack), bool), time.process_time() - t0))
    results["psr-previous"] = psr
    print(f"\n## chains with a possible wrong link: {n_cases} random cases per kind (seed {seed})\n")
    print("RMS error (px); share of frames off by > 1 px; silent = share of frames off by > 1 px and ok=True;")
    print("flagged = share of frames with ok=False; CPU s = the kind's total CPU time\n")
    print("| kind | method | RMS | > 1 px | silent | flagged | CPU s |")
    print("|---|---|---|---|---|---|---|")
    for kind in kinds:
        idx = [i for i, c in enumerate(cases) if c[0] == kind]
        for label, rows in results.items():
            errs = [frame_errors(rows[i][0], rows[i][1], cases[i][3]) for i in idx]
            oks = [rows[i][1] for i in idx]
            e = np.concatenate(errs)
            ok = np.concatenate(oks)
            rms_all = np.mean([np.sqrt(np.mean(x**2)) for x in errs])
            print(
                f"| {kind} | {label} | {rms_all:.3f} | {np.mean(e > 1):.3f} | {np.mean((e > 1) & ok):.3f} | "
                f"{np.mean(~ok):.3f} | {sum(rows[i][2] for i in idx):.1f} |"
            )
    for label in CHAINED:
        if before:
            now = sum(r[2] for r in results[f"{label} (now)"])
            old = sum(r[2] for r in results[f"{label} (before)"])
            print(f"\n{label}: CPU time now / before = {now / old:.2f} (all cases)")
    print("\ncases:")
    for kind, label, *_ in cases:
        print(f"- {kind}: {label}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two seeds, 60 frames only")
    parser.add_argument("--wrong-links", action="store_true", help="the table of chains with a possible wrong link")
    parser.add_argument("--cases", type=int, default=4, help="random cases per kind (--wrong-links)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random cases (--wrong-links)")
    parser.add_argument("--before", default=None, help="another checkout's src to compare with (--wrong-links)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker)
        return
    if args.wrong_links:
        table_wrong_links(args.cases, args.seed, args.before)
        return
    diffusing_stack = _load_diffusing()
    seeds = range(2) if args.quick else range(5)
    cases = []
    for seed in seeds:
        s = diffusing_stack(seed=seed)
        cases.append((f"60 frames, seed {seed}", s.data, s.correction))
    if not args.quick:
        for seed in range(3):
            s = diffusing_stack(n_frames=150, seed=seed)
            cases.append((f"150 frames, seed {seed}", s.data, s.correction))
    table_with_truth("diffusing particles + common drift (96x96, no fixed structure)", cases)
    beads = []
    for seed in seeds:
        st = make_stack("beads", n_frames=60, shape=(128, 128), drift=10, jitter=0.3, snr=5, seed=seed)
        beads.append((f"beads seed {seed}", st.stack, np.stack([st.truth.dy, st.truth.dx], axis=1)))
    table_with_truth("beads (fixed structure, 128x128, 60 frames, SNR 5)", beads)
    table_real()


if __name__ == "__main__":
    main()
