"""Run suite2p's non-rigid registration on a saved stack (peer of bench_piecewise.py).

Runs in suite2p's own virtual environment (torch, numba), in a subprocess::

    /work/venvs/s2p/bin/python tests/benchmarks/_suite2p_peer.py IN.npy OUT.npz PARAMS_JSON

suite2p 0.14.6, the last release whose registration is numpy/numba (1.x moved it to torch
tensors and cellpose): ``compute_reference_and_register_frames`` with ``nonrigid=True``
(reference from all frames, a rigid whole-pixel shift per frame, then a sub-pixel shift
per block, bilinear between the block centres), every other setting at suite2p's default
unless PARAMS_JSON names it (``block_size``, ``maxregshiftNR``, ...).

Writes the dense correction field (T, 2, Y, X) in this package's convention
(``registered[p] = frame[p - d(p)]``), rebuilt as suite2p applies it (its rigid
``np.roll`` by ``(-ymax, -xmax)``, then ``Y[p] = X[p + up(p)]`` with ``up`` from
``nonrigid.upsample_block_shifts``: so ``d = -(rigid + up)``), and the wall-clock
seconds: ``seconds`` (reference, registration and resampling of every frame, numba's
compilation included) and ``warm_seconds`` (the same again in the same process, compiled).
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
from suite2p import default_ops
from suite2p.registration import nonrigid, register


def correct(stack: np.ndarray, params: dict) -> tuple[np.ndarray, float, np.ndarray]:
    ops = default_ops()
    ops.update(nonrigid=True, nimg_init=len(stack), batch_size=len(stack), **params)
    frames = stack.copy()
    t0 = time.perf_counter()
    outputs = register.compute_reference_and_register_frames(frames, ops=ops)
    seconds = time.perf_counter() - t0
    _, _, _, _, (ymax, xmax, _), (ymax1, xmax1, _), _ = outputs
    n, h, w = stack.shape
    yblock, xblock, nblocks, _, _ = nonrigid.make_blocks(Ly=h, Lx=w, block_size=ops["block_size"])
    yup, xup = nonrigid.upsample_block_shifts(
        Lx=w, Ly=h, nblocks=nblocks, xblock=xblock, yblock=yblock, ymax1=ymax1, xmax1=xmax1
    )
    field = np.empty((n, 2, h, w), np.float32)
    field[:, 0] = -(np.asarray(ymax, np.float32)[:, None, None] + yup)
    field[:, 1] = -(np.asarray(xmax, np.float32)[:, None, None] + xup)
    return field, seconds, frames


def main() -> None:
    stack = np.load(sys.argv[1]).astype(np.float32)
    params = json.loads(sys.argv[3])
    field, seconds, registered = correct(stack, params)
    _, warm, _ = correct(stack, params)
    np.savez(sys.argv[2], field=field, seconds=seconds, warm_seconds=warm, registered=registered)


if __name__ == "__main__":
    main()
