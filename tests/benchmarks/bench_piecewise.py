"""Piecewise-rigid registration against a known deformation, and against jnormcorre and suite2p.

Plain script (not collected by pytest)::

    PYTHONPATH=src python tests/benchmarks/bench_piecewise.py [--frames 60] [--size 256] \
        [--peer-python /work/venvs/peers/bin/python] [--kinds neurons,beads] [--snrs 10,3,1] [--rigid-only]

The peers run in their own virtual environment, in a subprocess, one after the other on the same
saved stack::

    python3 -m venv /work/venvs/peers
    /work/venvs/peers/bin/pip install "jax[cpu]<0.9" jnormcorre numpy scipy tifffile
    /work/venvs/peers/bin/pip install --no-deps suite2p==0.14.6
    /work/venvs/peers/bin/pip install numba scikit-learn natsort matplotlib rastermap scanimage-tiff-reader \
        importlib-metadata

Per case (two-photon-like ``neurons`` and ``beads``; SNR 10, 3 and 1): a
stack from :func:`napari_stackalign.synthetic_warp.deformed_stack` (rigid
drift up to 6 px plus a smooth field of about 3 px, rendered analytically,
so the truth has no interpolation error), saved once, then registered by

- ``register_piecewise`` with its defaults (64 px patches, 32 px overlap),
- ``register_piecewise`` on jnormcorre's grid (64 px patches, 16 px overlap),
- jnormcorre's piecewise-rigid mode (``pw_rigid=True``, strides 48 +
  overlaps 16 = 64 px patches, ``max_deviation_rigid=6``, two rigid and two
  piecewise iterations), in its own virtual environment, in a subprocess
  (``_jnormcorre_peer.py``); reported as skipped when that Python or
  jnormcorre is missing,
- suite2p 0.14.6's non-rigid registration (``nonrigid=True``, 64 px blocks,
  ``maxregshiftNR=6``, everything else at suite2p's defaults), the same way
  (``_suite2p_peer.py``),
- the rigid step alone (what the piecewise step adds).

Measures:

- ``field``: RMS (px) of the estimated correction field against the truth
  over the frame (8 px margin), after removing the part of the error that is
  the same in every frame (the template's own deformation: no method can see it);
- ``residual``: the correction applied to the *noise-free* frames; RMS of
  their difference to their mean, in % of the clean frames' standard
  deviation (16 px margin): what motion is left to see;
- ``s``: wall-clock seconds to estimate and resample the stack (jnormcorre:
  ``motion_correct`` plus registering every frame, JIT compilation included;
  suite2p: reference, registration and resampling, numba's compilation included;
  ``warm``: the same again in the same process, compiled), and ``x ours``: each
  row's seconds over our default's (the peers: their warm seconds), from the same run.

``--rigid-only`` adds cases without deformation (``amplitude=0``): there the
truth is the rigid drift, and a method that makes up a deformation shows it in
``field`` (``dev``: the RMS of the estimated field around each frame's mean shift).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

import napari_stackalign as sa
from napari_stackalign.synthetic_warp import deformed_stack

PEER_SCRIPT = Path(__file__).with_name("_jnormcorre_peer.py")
S2P_SCRIPT = Path(__file__).with_name("_suite2p_peer.py")
S2P_PARAMS = {"block_size": [64, 64], "maxregshiftNR": 6}
PEER_PARAMS = {
    "strides": 48,
    "overlaps": 16,
    "max_shifts": 14,
    "max_deviation_rigid": 6,
    "niter_rig": 2,
    "niter_els": 2,
}


def field_error(field: np.ndarray, truth: np.ndarray, margin: int = 8) -> float:
    err = field - truth
    err -= err.mean(axis=0, keepdims=True)
    m = margin
    return float(np.sqrt(np.mean(np.sum(err[:, :, m:-m, m:-m] ** 2, axis=1))))


def apply_field(frames: np.ndarray, field: np.ndarray) -> np.ndarray:
    """``registered[p] = frame[p - d(p)]``, bilinear."""
    h, w = frames.shape[1:]
    rr, cc = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.stack(
        [
            cv2.remap(f, cc - d[1], rr - d[0], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            for f, d in zip(frames, field.astype(np.float32))
        ]
    )


def image_residual(corrected: np.ndarray, clean: np.ndarray, margin: int = 16) -> float:
    m = margin
    c = corrected[:, m:-m, m:-m].astype(np.float64)
    return float(100 * np.sqrt(np.mean((c - c.mean(axis=0)) ** 2)) / clean.std())


def run_ours(stack: np.ndarray, **kwargs) -> tuple[sa.PiecewiseTransforms, float]:
    t0 = time.perf_counter()
    result = sa.register_piecewise(stack, **kwargs)
    sa.apply_transforms(stack, result)
    return result, time.perf_counter() - t0


def deviation(field: np.ndarray, margin: int = 8) -> float:
    """RMS (px) of a field around each frame's mean (0 for a rigid answer)."""
    m = margin
    f = field[:, :, m:-m, m:-m].astype(np.float64)
    return float(np.sqrt(np.mean(np.sum((f - f.mean(axis=(2, 3), keepdims=True)) ** 2, axis=1))))


def run_peer(python: str, script: Path, path: Path, params: dict) -> dict | str:
    out = path.with_suffix(f".{script.stem}.npz")
    try:
        proc = subprocess.run(
            [python, str(script), str(path), str(out), json.dumps(params)],
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"skipped ({exc})"
    if proc.returncode != 0:
        return "skipped (" + (proc.stderr.strip().splitlines() or ["failed"])[-1][:120] + ")"
    with np.load(out) as data:
        return {"field": data["field"], "s": float(data["seconds"]), "warm": float(data["warm_seconds"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--peer-python", default="/work/venvs/peers/bin/python")
    parser.add_argument("--kinds", default="neurons,beads")
    parser.add_argument("--snrs", default="10,3,1")
    parser.add_argument("--rigid-only", action="store_true", help="add cases without deformation")
    parser.add_argument("--no-matched", action="store_true", help="leave out our run on jnormcorre's grid")
    args = parser.parse_args()
    cases = [(k, float(s), 3.0) for k in args.kinds.split(",") for s in args.snrs.split(",")]
    if args.rigid_only:
        cases += [(k, float(args.snrs.split(",")[0]), 0.0) for k in args.kinds.split(",")]
    print(f"{args.frames} frames of {args.size}x{args.size}; load average {os.getloadavg()[0]:.1f}")
    print(f"jnormcorre {PEER_PARAMS}; suite2p {S2P_PARAMS}")
    head = f"{'case':22} {'method':26} {'field px':>9} {'dev px':>7} {'residual %':>10} {'s':>7} {'warm s':>7}"
    print(head + f" {'x ours':>7} {'patches used':>12}")
    with tempfile.TemporaryDirectory() as tmp:
        for kind, snr, amplitude in cases:
            data = deformed_stack(
                kind, n_frames=args.frames, shape=(args.size, args.size), snr=snr, amplitude=amplitude, seed=7
            )
            path = Path(tmp) / f"{kind}_{snr:g}_{amplitude:g}.npy"
            np.save(path, data.stack)
            name = f"{kind} SNR {snr:g}" + (" rigid-only" if amplitude == 0 else "")
            rows = []
            ours, seconds = run_ours(data.stack)
            field = np.stack([ours.correction_field(t) for t in range(len(ours))])
            rows.append(("piecewise 64/32 (default)", field, seconds, None, f"{ours.patch_ok.mean():.0%}"))
            if not args.no_matched:
                matched, seconds_m = run_ours(data.stack, patch_overlap=16)
                field_m = np.stack([matched.correction_field(t) for t in range(len(matched))])
                rows.append(("piecewise 64/16", field_m, seconds_m, None, f"{matched.patch_ok.mean():.0%}"))
            rigid = np.broadcast_to(ours.rigid.shifts[:, :, None, None], field.shape).astype(np.float32)
            rows.append(("rigid step only", rigid, float("nan"), None, ""))
            skipped = []
            for label, script, params in (
                ("jnormcorre pw-rigid 48+16", PEER_SCRIPT, PEER_PARAMS),
                ("suite2p 0.14.6 nonrigid 64", S2P_SCRIPT, S2P_PARAMS),
            ):
                peer = run_peer(args.peer_python, script, path, params)
                if isinstance(peer, dict):
                    rows.append((label, peer["field"], peer["s"], peer["warm"], ""))
                else:
                    skipped.append((label, peer))
            for method, fld, s, warm, used in rows:
                err = field_error(fld, data.truth)
                res = image_residual(apply_field(data.clean, fld), data.clean)
                warm_text = f"{warm:7.2f}" if warm is not None else " " * 7
                ratio = (warm if warm is not None else s) / seconds
                print(
                    f"{name:22} {method:26} {err:9.3f} {deviation(fld):7.3f} {res:10.2f} {s:7.2f} {warm_text}"
                    f" {ratio:7.2f} {used:>12}"
                )
            for label, why in skipped:
                print(f"{name:22} {label:26} {why}")
            truth = data.truth - data.truth.mean(axis=0, keepdims=True)
            truth_rms = np.sqrt(np.mean(np.sum(truth**2, axis=1)))
            print(f"{name:22} {'(truth, varying part)':26} {truth_rms:9.3f} {deviation(data.truth):7.3f}")
            sys.stdout.flush()
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
