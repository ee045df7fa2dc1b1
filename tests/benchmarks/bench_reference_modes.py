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

Run::

    PYTHONPATH=src python tests/benchmarks/bench_reference_modes.py [--quick]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import time
import warnings
from pathlib import Path

import numpy as np
import tifffile
from pystackreg import StackReg

from napari_stackalign.core.pyramid import register_pyramid
from napari_stackalign.synthetic import make_stack

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two seeds, 60 frames only")
    args = parser.parse_args()
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
