"""Synthetic volume time series with known sub-voxel 3-D drift (tests, benchmarks).

Each frame shows the same scene moved by ``drift[t] = (z, y, x)`` voxels:
``frame_t[p] = scene[p - drift[t]]``, rendered exactly (no interpolation):
beads are Gaussians evaluated at their moved centres, texture is band-limited
noise moved by a Fourier phase ramp on a canvas larger than the volume (so
nothing wraps in). The correction a registration should return is
``-drift`` (up to one constant offset: each method picks its own reference).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._volume_transforms import VolumeTransforms

__all__ = ["SCENES", "SyntheticVolumes", "make_volume_stack", "random_drift", "volume_error"]

SCENES = ("beads", "texture")


@dataclass
class SyntheticVolumes:
    """``data`` (T, Z, Y, X) float32 or (T, C, Z, Y, X), ``truth`` the corrections, ``drift`` (T, 3)."""

    data: np.ndarray
    truth: VolumeTransforms
    drift: np.ndarray


def random_drift(
    n_frames: int,
    rng: np.random.Generator,
    *,
    amplitude: tuple[float, float, float] = (2.0, 6.0, 6.0),
    jitter: float = 0.3,
) -> np.ndarray:
    """A smooth random walk plus jitter, (T, 3) voxels, within about ``+/- amplitude`` per axis."""
    steps = rng.normal(size=(n_frames, 3))
    walk = np.cumsum(steps, axis=0)
    walk -= walk.mean(axis=0)
    span = np.maximum(np.abs(walk).max(axis=0), 1e-9)
    walk = walk / span * np.asarray(amplitude)
    return walk + rng.normal(scale=jitter, size=walk.shape) * (np.asarray(amplitude) > 0)


def _beads(shape: tuple[int, int, int], drift: np.ndarray, rng: np.random.Generator, density: float) -> np.ndarray:
    z, h, w = shape
    n_beads = max(int(density * z * h * w / 1000.0), 4)
    margin = np.abs(drift).max(axis=0) + 4
    centres = np.stack([rng.uniform(-margin[a], shape[a] - 1 + margin[a], n_beads) for a in range(3)], axis=1)
    sigma = rng.uniform(1.0, 2.0, n_beads)
    amp = rng.uniform(0.5, 1.0, n_beads)
    out = np.zeros((len(drift), *shape), np.float32)
    grids = [np.arange(n, dtype=np.float64) for n in shape]
    for t, d in enumerate(drift):
        c = centres + d
        for (cz, cy, cx), s, a in zip(c, sigma, amp):
            r = int(np.ceil(4 * s))
            sl = [
                slice(max(int(np.floor(v)) - r, 0), min(int(np.ceil(v)) + r + 1, n))
                for v, n in zip((cz, cy, cx), shape)
            ]
            if any(x.stop <= x.start for x in sl):
                continue
            gz = np.exp(-((grids[0][sl[0]] - cz) ** 2) / (2 * s * s))
            gy = np.exp(-((grids[1][sl[1]] - cy) ** 2) / (2 * s * s))
            gx = np.exp(-((grids[2][sl[2]] - cx) ** 2) / (2 * s * s))
            out[t][tuple(sl)] += (a * gz[:, None, None] * gy[None, :, None] * gx[None, None, :]).astype(np.float32)
    return out


def _texture(shape: tuple[int, int, int], drift: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    pad = (np.ceil(np.abs(drift).max(axis=0)) + 8).astype(int)
    canvas = tuple(int(n + 2 * p) for n, p in zip(shape, pad))
    freqs = np.meshgrid(*[np.fft.fftfreq(n) for n in canvas[:-1]], np.fft.rfftfreq(canvas[-1]), indexing="ij")
    radius = np.sqrt(sum(f**2 for f in freqs))
    # band-limited: a smooth fall-off well below Nyquist
    spectrum = np.fft.rfftn(rng.normal(size=canvas), axes=(0, 1, 2)) * np.exp(-((radius / 0.08) ** 2))
    out = np.empty((len(drift), *shape), np.float32)
    for t, d in enumerate(drift):
        ramp = np.exp(-2j * np.pi * sum(f * v for f, v in zip(freqs, d)))
        moved = np.fft.irfftn(spectrum * ramp, s=canvas, axes=(0, 1, 2))
        out[t] = moved[pad[0] : pad[0] + shape[0], pad[1] : pad[1] + shape[1], pad[2] : pad[2] + shape[2]]
    out -= out.min()
    return out / out.max()


def make_volume_stack(
    n_frames: int = 30,
    shape: tuple[int, int, int] = (32, 128, 128),
    *,
    scene: str = "beads",
    snr: float | None = 5.0,
    seed: int = 0,
    drift: np.ndarray | None = None,
    channels: int | None = None,
    density: float = 0.3,
    amplitude: tuple[float, float, float] = (2.0, 6.0, 6.0),
) -> SyntheticVolumes:
    """Volumes over time with known drift.

    Parameters
    ----------
    n_frames, shape
        T and (Z, Y, X).
    scene : {"beads", "texture"}
        Gaussian beads (``density`` per 1000 voxels) or band-limited texture.
    snr : float or None
        Signal standard deviation over Gaussian noise standard deviation
        (None: no noise).
    seed : int
        Random seed (scene, drift and noise).
    drift : ndarray (T, 3), optional
        The motion in voxels; a random walk by default (:func:`random_drift`
        within about ``+/- amplitude`` (z, y, x)).
    channels : int, optional
        Make a (T, C, Z, Y, X) stack: channel c is the scene times ``c + 1``
        with its own noise (all move together).
    """
    if scene not in SCENES:
        raise ValueError(f"scene must be one of {SCENES}, got {scene!r}.")
    rng = np.random.default_rng(seed)
    drift = random_drift(n_frames, rng, amplitude=amplitude) if drift is None else np.asarray(drift, dtype=np.float64)
    if drift.shape != (n_frames, 3):
        raise ValueError(f"drift must have shape ({n_frames}, 3), got {drift.shape}.")
    clean = _beads(shape, drift, rng, density) if scene == "beads" else _texture(shape, drift, rng)
    signal_std = float(clean.std())

    def noisy(img: np.ndarray) -> np.ndarray:
        if snr is None:
            return img.astype(np.float32)
        return (img + rng.normal(scale=signal_std / snr, size=img.shape)).astype(np.float32)

    if channels is None:
        data = noisy(clean)
    else:
        data = np.stack([noisy(clean * (c + 1)) for c in range(channels)], axis=1)
    truth = VolumeTransforms.from_shifts(-drift, center=((shape[1] - 1) / 2.0, (shape[2] - 1) / 2.0), method="truth")
    return SyntheticVolumes(data=data, truth=truth, drift=drift)


def volume_error(estimate: VolumeTransforms, truth: VolumeTransforms) -> dict[str, float]:
    """RMS error per axis (z, y, x) and of the 3-D norm, and the max norm (voxels), after removing
    one constant offset (the median, then the mean, of the differences)."""
    err = estimate.shifts_zyx - truth.shifts_zyx
    err = err - np.median(err, axis=0)
    err = err - err.mean(axis=0)
    norm = np.linalg.norm(err, axis=1)
    rms = np.sqrt(np.mean(err**2, axis=0))
    return {
        "rms_z": float(rms[0]),
        "rms_y": float(rms[1]),
        "rms_x": float(rms[2]),
        "rms": float(np.sqrt(np.mean(norm**2))),
        "max": float(norm.max()),
    }
