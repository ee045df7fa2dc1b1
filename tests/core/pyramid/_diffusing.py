"""A synthetic stack without fixed structure: particles that diffuse
independently, all carried by one common sub-pixel drift.

The truth is the common drift only (each particle's own walk is not motion
of the sample holder): a registration that follows the particles' average
displacement gets it right, one that matches the first frames loses it as
the particles wander off their starting places.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["DiffusingStack", "diffusing_stack"]


@dataclass
class DiffusingStack:
    data: np.ndarray  # (T, Y, X) float32
    drift: np.ndarray  # (T, 2): the common displacement (dy, dx) of the particles, frame 0 = (0, 0)
    tracked: np.ndarray  # (T, 2): the chained mean displacement of the particles in view (particle tracking)

    @property
    def correction(self) -> np.ndarray:
        """The true correction (dy, dx) per frame: minus the tracked drift."""
        return -self.tracked


def diffusing_stack(
    *,
    n_frames: int = 60,
    shape: tuple[int, int] = (96, 96),
    n_particles: int = 120,
    sigma: float = 1.6,
    diffusion: float = 0.5,
    drift_step: float = 0.2,
    snr: float = 8.0,
    seed: int = 0,
) -> DiffusingStack:
    """Render the stack.

    Parameters
    ----------
    n_frames, shape
        Frames and their (Y, X) size.
    n_particles : int
        Gaussian particles (width ``sigma`` px), spread over a box 20 px
        larger than the frame on each side (they enter and leave it).
    diffusion : float
        Each particle's own random step per frame and axis (px, standard deviation).
    drift_step : float
        The common drift: a smooth random walk with this step (px) per frame
        and axis, plus a constant velocity of the same size.
    snr : float
        Peak particle amplitude over the standard deviation of the Gaussian noise.
    seed : int
        Random seed.
    """
    rng = np.random.default_rng(seed)
    h, w = shape
    pad = 20.0
    box = np.array([h + 2 * pad, w + 2 * pad])
    start = rng.uniform(0, 1, (n_particles, 2)) * box - pad
    own = np.cumsum(rng.normal(0, diffusion, (n_frames, n_particles, 2)), axis=0)
    own[0] = 0
    # the particles' own walks average to zero in every frame, so the common
    # drift is their mean displacement (what particle tracking measures)
    own -= own.mean(axis=1, keepdims=True)
    velocity = rng.normal(0, drift_step, 2)
    walk = np.cumsum(rng.normal(0, drift_step, (n_frames, 2)), axis=0)
    # smooth the walk (the stage drifts, it does not jitter)
    kernel = np.ones(5) / 5
    walk = np.stack([np.convolve(np.pad(walk[:, a], 2, mode="edge"), kernel, mode="valid") for a in range(2)], axis=1)
    drift = walk + velocity * np.arange(n_frames)[:, None]
    drift -= drift[0]
    # what particle tracking measures: the mean displacement, from each frame
    # to the next, of the particles seen in both (inside the frame, 3 px from
    # its edges), chained
    positions = start[None] + own + drift[:, None, :]
    seen = np.all((positions > 3) & (positions < np.array([h, w]) - 3), axis=2)
    steps = np.zeros((n_frames, 2))
    for t in range(1, n_frames):
        both = seen[t] & seen[t - 1]
        steps[t] = (positions[t, both] - positions[t - 1, both]).mean(axis=0)
    tracked = np.cumsum(steps, axis=0)
    yy = np.arange(h, dtype=np.float64)
    xx = np.arange(w, dtype=np.float64)
    amplitude = rng.uniform(0.6, 1.0, n_particles)
    frames = np.empty((n_frames, h, w), np.float32)
    for t in range(n_frames):
        pos = positions[t]
        gy = np.exp(-0.5 * ((yy[None, :] - pos[:, :1]) / sigma) ** 2) * amplitude[:, None]
        gx = np.exp(-0.5 * ((xx[None, :] - pos[:, 1:]) / sigma) ** 2)
        frames[t] = (gy.T @ gx).astype(np.float32)
    frames += rng.normal(0, 1.0 / snr, frames.shape).astype(np.float32)
    return DiffusingStack(frames + np.float32(0.1), drift, tracked)
