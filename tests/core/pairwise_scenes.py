"""Low-dose STEM-like stacks with known motion (shared by the pairwise tests and benchmark).

An atomic lattice (``napari_stackalign.synthetic`` "lattice") plus a weak
band-limited texture moving with it (thickness / contamination contrast: a
perfect lattice alone is only defined up to a lattice vector), with Poisson
noise at the requested SNR (std of the clean frame / std of the noise).
"""

from __future__ import annotations

import numpy as np

from napari_stackalign.synthetic import make_stack, random_motion
from napari_stackalign.transforms import FrameTransforms


def stem_stack(n_frames, shape, *, period=8.0, texture=0.3, snr=0.4, drift=3.0, jitter=0.3, motion=None, seed=0):
    """(stack float32, truth FrameTransforms) of a noisy lattice + texture."""
    if motion is None:
        motion = random_motion(n_frames, shape, drift=drift, jitter=jitter, rng=seed)
    lat, truth = make_stack("lattice", n_frames=n_frames, shape=shape, motion=motion, snr=None,
                            lattice_period=period, seed=seed)
    clean = lat / lat[0].std()
    if texture:
        tex, _ = make_stack("texture", n_frames=n_frames, shape=shape, motion=motion, snr=None, seed=seed + 1)
        clean = clean + texture * tex / tex[0].std()
    clean = clean - clean.min() + 0.1
    if snr is None:
        return clean.astype(np.float32), truth
    gain = (snr * np.sqrt(clean[0].mean()) / clean[0].std()) ** 2
    rng = np.random.default_rng(seed + 2)
    return rng.poisson(clean * gain).astype(np.float32), truth


def shifts_motion(shifts):
    """Content motion with the given per-frame displacements (T, 2)."""
    shifts = np.asarray(shifts, dtype=float)
    return FrameTransforms(dy=shifts[:, 0], dx=shifts[:, 1])
