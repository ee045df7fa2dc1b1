"""Synthetic bead scenes with known particle trajectories (shared by the particle tests)."""

from __future__ import annotations

import numpy as np

from napari_stackalign.synthetic import make_stack
from napari_stackalign.transforms import FrameTransforms


def bead_scene(motion: FrameTransforms, shape, *, snr=8.0, n_beads=50, seed=0, margin=10, min_gap=13, **kw):
    """Stack, true bead trajectories (T, N, 2) of isolated beads inside every frame."""
    stack, truth = make_stack("beads", n_frames=len(motion), shape=shape, motion=motion, snr=snr,
                              n_beads=n_beads, seed=seed, **kw)
    pos = np.asarray(truth.params["bead_positions"])
    mats = motion.to_matrices()
    traj = np.einsum("tij,nj->tni", mats[:, :2, :2], pos) + mats[:, None, :2, 2]
    inside = np.all(
        (traj[..., 0] > margin) & (traj[..., 0] < shape[0] - margin)
        & (traj[..., 1] > margin) & (traj[..., 1] < shape[1] - margin),
        axis=0,
    )
    # isolated in every frame (beads outside the frame count as neighbours too)
    gaps = []
    for t in range(len(motion)):
        d = np.hypot(*(traj[t][:, None] - traj[t][None]).transpose(2, 0, 1))
        np.fill_diagonal(d, np.inf)
        gaps.append(d.min(axis=1))
    isolated = np.min(gaps, axis=0) > min_gap
    idx = np.flatnonzero(inside & isolated)
    return stack, truth, traj[:, idx]


def linear_motion(n, shape, dy, dx, angle=0.0):
    center = ((shape[0] - 1) / 2, (shape[1] - 1) / 2)
    return FrameTransforms(dy=np.linspace(0, dy, n), dx=np.linspace(0, dx, n), angle=np.linspace(0, angle, n), center=center)
