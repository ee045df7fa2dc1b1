"""Piecewise-rigid registration against a known deformation, and against jnormcorre.

Plain script (not collected by pytest)::

    PYTHONPATH=src python tests/benchmarks/bench_piecewise.py [--frames 60] [--size 256] \
        [--peer-python /work/venvs/jnc/bin/python]

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
  ``warm``: the same again, compiled).
"""

from __future__ import annotations

import argparse
import json
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
PEER_PARAMS = {
    "strides": 48,
    "overlaps": 16,
    "max_shifts": 14,
    "max_deviation_rigid": 6,
    "niter_rig": 2,
    "niter_els": 2,
}
CASES = [(kind, snr) for kind in ("neurons", "beads") for snr in (10.0, 3.0, 1.0)]


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


def run_peer(python: str, path: Path) -> dict | str:
    out = path.with_suffix(".peer.npz")
    try:
        proc = subprocess.run(
            [python, str(PEER_SCRIPT), str(path), str(out), json.dumps(PEER_PARAMS)],
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
    parser.add_argument("--peer-python", default="/work/venvs/jnc/bin/python")
    parser.add_argument("--cases", type=int, default=len(CASES), help="run only the first N cases")
    args = parser.parse_args()
    print(f"{args.frames} frames of {args.size}x{args.size}; jnormcorre {PEER_PARAMS}")
    print(f"{'case':16} {'method':26} {'field px':>9} {'residual %':>10} {'s':>7} {'warm s':>7} {'patches used':>12}")
    with tempfile.TemporaryDirectory() as tmp:
        for kind, snr in CASES[: args.cases]:
            data = deformed_stack(kind, n_frames=args.frames, shape=(args.size, args.size), snr=snr, seed=7)
            path = Path(tmp) / f"{kind}_{snr:g}.npy"
            np.save(path, data.stack)
            name = f"{kind} SNR {snr:g}"
            rows = []
            ours, seconds = run_ours(data.stack)
            field = np.stack([ours.correction_field(t) for t in range(len(ours))])
            rows.append(("piecewise 64/32 (default)", field, seconds, None, f"{ours.patch_ok.mean():.0%}"))
            matched, seconds_m = run_ours(data.stack, patch_overlap=16)
            field_m = np.stack([matched.correction_field(t) for t in range(len(matched))])
            rows.append(("piecewise 64/16", field_m, seconds_m, None, f"{matched.patch_ok.mean():.0%}"))
            rigid = np.broadcast_to(ours.rigid.shifts[:, :, None, None], field.shape).astype(np.float32)
            rows.append(("rigid step only", rigid, float("nan"), None, ""))
            peer = run_peer(args.peer_python, path)
            if isinstance(peer, dict):
                rows.append(("jnormcorre pw-rigid 48+16", peer["field"], peer["s"], peer["warm"], ""))
            for method, fld, s, warm, used in rows:
                err = field_error(fld, data.truth)
                res = image_residual(apply_field(data.clean, fld), data.clean)
                warm_text = f"{warm:7.2f}" if warm is not None else " " * 7
                print(f"{name:16} {method:26} {err:9.3f} {res:10.2f} {s:7.2f} {warm_text} {used:>12}")
            if not isinstance(peer, dict):
                print(f"{name:16} {'jnormcorre':26} {peer}")
            truth = data.truth - data.truth.mean(axis=0, keepdims=True)
            print(f"{name:16} {'(truth, varying part)':26} {np.sqrt(np.mean(np.sum(truth**2, axis=1))):9.3f}")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
