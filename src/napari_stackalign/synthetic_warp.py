"""Synthetic stacks with a known smooth deformation per frame (for piecewise-rigid registration).

Content moves by a rigid drift plus a low-order smooth field, and is
rendered analytically at the moved positions (a sum of Gaussians and of
cosines), so the ground truth has no interpolation error. ``"neurons"`` is
two-photon-like (somata of 3-5 px radius on a faint neuropil background),
``"beads"`` sparse point sources.

The truth is the *correction* field ``d_t(p)`` (the package's convention):
``registered[p] = frame_t[p - d_t(p)]`` is the unmoved scene.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["DEFORM_KINDS", "DeformedStack", "deformed_stack"]

DEFORM_KINDS = ("neurons", "beads")


class DeformedStack(NamedTuple):
    """A stack, its true correction field (T, 2, Y, X) and the clean (noise-free) frames."""

    stack: np.ndarray
    truth: np.ndarray
    clean: np.ndarray


def _motion_model(n_frames: int, drift: float, amplitude: float, rng: np.random.Generator):
    """Per frame: rigid (dy, dx) and coefficients of the smooth field."""
    steps = rng.normal(size=(n_frames, 2))
    steps[0] = 0
    walk = np.cumsum(steps, axis=0)
    walk *= drift / max(np.abs(walk).max(), 1e-9)
    # four smooth modes per axis, their weights varying smoothly in time (breathing-like)
    t = np.arange(n_frames)[:, None]
    freq = rng.uniform(0.05, 0.3, size=(1, 8))
    phase = rng.uniform(0, 2 * np.pi, size=(1, 8))
    coeff = np.sin(freq * t + phase) + 0.3 * rng.normal(size=(n_frames, 8))
    coeff *= amplitude / 2.0
    return walk, coeff, rng.uniform(0, 2 * np.pi, size=8)


def _field(coeff: np.ndarray, phases: np.ndarray, rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]):
    """The smooth part of the content motion (my, mx) at (rows, cols)."""
    h, w = shape
    u, v = 2 * np.pi * rows / h, 2 * np.pi * cols / w
    modes = (np.sin(v + phases[0]), np.sin(u + phases[1]), np.cos(u + v + phases[2]), np.sin(0.5 * u - v + phases[3]))
    my = sum(c * m for c, m in zip(coeff[:4], modes))
    mx = sum(
        c * m
        for c, m in zip(
            coeff[4:],
            (np.sin(u + phases[4]), np.sin(v + phases[5]), np.cos(u - v + phases[6]), np.sin(u + 0.5 * v + phases[7])),
        )
    )
    return my / 2.0, mx / 2.0


def deformed_stack(
    kind: str = "neurons",
    *,
    n_frames: int = 50,
    shape: tuple[int, int] = (256, 256),
    drift: float = 6.0,
    amplitude: float = 3.0,
    snr: float | None = 5.0,
    seed: int = 0,
) -> DeformedStack:
    """A stack whose content moves rigidly and deforms smoothly.

    Parameters
    ----------
    kind : {"neurons", "beads"}
        The content.
    n_frames : int
        Frames.
    shape : (int, int)
        Frame shape.
    drift : float
        Largest rigid displacement (px).
    amplitude : float
        Size of the smooth deformation (px; its largest value over the
        frame is about this).
    snr : float or None
        Standard deviation of the clean frames over that of the (Gaussian)
        noise; None: no noise.
    seed : int
        Random seed.

    Returns
    -------
    DeformedStack
        float32 stack (T, Y, X), the true correction (T, 2, Y, X) and the clean frames.
    """
    if kind not in DEFORM_KINDS:
        raise ValueError(f"kind must be one of {DEFORM_KINDS}, got {kind!r}.")
    rng = np.random.default_rng(seed)
    h, w = shape
    walk, coeff, phases = _motion_model(n_frames, drift, amplitude, rng)
    margin = int(drift + amplitude + 10)
    area = (h + 2 * margin) * (w + 2 * margin)
    if kind == "neurons":
        n = int(area / 260)
        centres = rng.uniform(-margin, [h + margin, w + margin], size=(n, 2))
        sigma = rng.uniform(2.0, 3.5, size=n)
        bright = rng.gamma(2.0, 1.0, size=n)
        waves = rng.normal(size=(12, 2)) * 2 * np.pi / 40.0
        wave_phase = rng.uniform(0, 2 * np.pi, 12)
        wave_amp = rng.uniform(0.05, 0.15, 12)
    else:
        n = int(area / 500)
        centres = rng.uniform(-margin, [h + margin, w + margin], size=(n, 2))
        sigma = np.full(n, 1.3)
        bright = rng.uniform(0.5, 1.5, size=n)
    rr, cc = np.mgrid[0:h, 0:w].astype(np.float64)
    clean = np.zeros((n_frames, h, w), np.float32)
    truth = np.zeros((n_frames, 2, h, w), np.float32)
    for t in range(n_frames):
        # correction d with d(p) = -m(p - d(p)) (fixed point; the field is smooth and small)
        d = np.zeros((2, h, w))
        for _ in range(8):
            my, mx = _field(coeff[t], phases, rr - d[0], cc - d[1], shape)
            d = -np.stack([my + walk[t, 0], mx + walk[t, 1]])
        truth[t] = d
        # frame[q] = scene[q - m(q)]
        my, mx = _field(coeff[t], phases, rr, cc, shape)
        sy, sx = rr - my - walk[t, 0], cc - mx - walk[t, 1]
        img = np.zeros((h, w))
        if kind == "neurons":
            for k in range(12):
                img += wave_amp[k] * (1 + np.cos(waves[k, 0] * sy + waves[k, 1] * sx + wave_phase[k]))
        img += _gaussians(sy, sx, centres, sigma, bright)
        clean[t] = img
    if snr is None:
        return DeformedStack(clean.copy(), truth, clean)
    noise = rng.normal(size=clean.shape).astype(np.float32) * np.float32(clean.std() / snr)
    return DeformedStack(clean + noise, truth, clean)


def _gaussians(sy: np.ndarray, sx: np.ndarray, centres: np.ndarray, sigma: np.ndarray, bright: np.ndarray):
    """Sum of Gaussians at ``centres`` seen at scene positions (sy, sx) (each only near where it lands)."""
    h, w = sy.shape
    out = np.zeros((h, w))
    # where each centre appears in the frame: the displacement is smooth, so look it up roughly
    step = 8
    grid_y, grid_x = sy[::step, ::step], sx[::step, ::step]
    for (cy, cx), s, b in zip(centres, sigma, bright):
        dist = (grid_y - cy) ** 2 + (grid_x - cx) ** 2
        i, j = np.unravel_index(int(np.argmin(dist)), dist.shape)
        if dist[i, j] > (2 * step) ** 2:
            continue
        r = int(4 * s + step + 8)
        r0, r1 = max(i * step - r, 0), min(i * step + r, h)
        c0, c1 = max(j * step - r, 0), min(j * step + r, w)
        if r0 >= r1 or c0 >= c1:
            continue
        dy, dx = sy[r0:r1, c0:c1] - cy, sx[r0:r1, c0:c1] - cx
        out[r0:r1, c0:c1] += b * np.exp(-(dy * dy + dx * dx) / (2 * s * s))
    return out
