"""Run jnormcorre's piecewise-rigid motion correction on a saved stack (peer of bench_piecewise.py).

Runs in jnormcorre's own virtual environment (jax), in a subprocess::

    /work/venvs/jnc/bin/python tests/benchmarks/_jnormcorre_peer.py IN.npy OUT.npz PARAMS_JSON

Writes the dense correction field (T, 2, Y, X) in this package's convention
(``registered[p] = frame[p - d(p)]``), rebuilt exactly as jnormcorre applies
it (its patch shifts resized bicubically by ``jax.image.resize``), and the
wall-clock seconds: ``seconds`` (motion_correct plus the final registration
of every frame, JIT compilation included) and ``warm_seconds`` (the same
again in the same process, compiled).
"""

from __future__ import annotations

import json
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from jnormcorre import motion_correction as mc
from jnormcorre.utils.lazy_array import lazy_data_loader


class ArrayLoader(lazy_data_loader):
    """An in-memory stack as jnormcorre's lazy loader."""

    def __init__(self, data: np.ndarray) -> None:
        self.data = data

    @property
    def dtype(self) -> str:
        return str(self.data.dtype)

    @property
    def shape(self):
        return self.data.shape

    def _compute_at_indices(self, indices):
        return self.data[indices]


def correct(stack: np.ndarray, params: dict) -> tuple[np.ndarray, float]:
    t0 = time.perf_counter()
    strides = (params["strides"], params["strides"])
    overlaps = (params["overlaps"], params["overlaps"])
    max_shifts = (params["max_shifts"], params["max_shifts"])
    corrector = mc.MotionCorrect(
        ArrayLoader(stack),
        max_shifts=max_shifts,
        frames_per_split=len(stack),
        niter_rig=params["niter_rig"],
        pw_rigid=True,
        strides=strides,
        overlaps=overlaps,
        max_deviation_rigid=params["max_deviation_rigid"],
        niter_els=params["niter_els"],
    )
    frame_corrector, _ = corrector.motion_correct()
    _, shifts = mc.register_frames_to_template_pwrigid(
        stack,
        frame_corrector.template,
        strides[0],
        strides[1],
        overlaps[0],
        overlaps[1],
        max_shifts,
        frame_corrector.upsample_factor_fft,
        params["max_deviation_rigid"],
        frame_corrector.add_to_movie,
    )
    shifts = np.asarray(shifts)  # (T, tiles, 2): minus jnormcorre's (row, col) sampling offsets
    seconds = time.perf_counter() - t0
    h, w = stack.shape[1:]
    sum_0, sum_1 = h - strides[0] - overlaps[0], w - strides[1] - overlaps[1]
    grid = (sum_0 // strides[0] + 1 + (sum_0 % strides[0] > 0), sum_1 // strides[1] + 1 + (sum_1 % strides[1] > 0))
    field = np.zeros((len(stack), 2, h, w), np.float32)
    for t in range(len(stack)):
        for k in range(2):
            # m_reg[p] = img[p + s(p)], s = resize(grid of -shifts): the correction is d = -s
            s = jax.image.resize(jnp.asarray(-shifts[t, :, k].reshape(grid), jnp.float32), (h, w), method="cubic")
            field[t, k] = -np.asarray(s)
    return field, seconds


def main() -> None:
    stack = np.load(sys.argv[1]).astype(np.float32)
    params = json.loads(sys.argv[3])
    field, seconds = correct(stack, params)
    _, warm = correct(stack, params)
    np.savez(sys.argv[2], field=field, seconds=seconds, warm_seconds=warm)


if __name__ == "__main__":
    main()
