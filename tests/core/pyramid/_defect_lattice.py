"""A drifting hexagonal lattice with vacancies and dopants fixed on the sample (for the lattice tests).

Rendered analytically at each frame's position (no interpolation): ``frame[p] = sample[p + s]`` for the
frame's shift ``s``, the shift a registration reports for it.
"""

from __future__ import annotations

import numpy as np


def hex_basis(period: float, theta: float) -> np.ndarray:
    """The two lattice vectors (rows, ``(dy, dx)`` px) of a hexagonal lattice."""
    return period * np.array([[np.cos(theta), np.sin(theta)], [np.cos(theta + np.pi / 3), np.sin(theta + np.pi / 3)]])


def render(
    shape: tuple[int, int],
    shifts: np.ndarray,
    basis: np.ndarray,
    *,
    vacancy: float = 0.04,
    dopant: float = 0.02,
    salt: int = 7,
    atom: float = 0.16,
) -> np.ndarray:
    """Frames (T, Y, X) of the lattice seen at ``shifts`` (T, 2): each site present (1), vacant (0) or a
    brighter dopant (1.8), decided by a hash of the site (so the defects stay on the sample)."""
    inv = np.linalg.inv(basis.T)
    period = float(np.min(np.hypot(basis[:, 0], basis[:, 1])))
    sigma = atom * period
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    frames = np.empty((len(shifts), *shape), np.float32)
    for t, s in enumerate(np.asarray(shifts, np.float64)):
        u, v = yy + s[0], xx + s[1]
        f1 = inv[0, 0] * u + inv[0, 1] * v
        f2 = inv[1, 0] * u + inv[1, 1] * v
        n1, n2 = np.round(f1), np.round(f2)
        g1, g2 = f1 - n1, f2 - n2
        dy = basis[0, 0] * g1 + basis[1, 0] * g2
        dx = basis[0, 1] * g1 + basis[1, 1] * g2
        key = (n1.astype(np.int64) * 73856093) ^ (n2.astype(np.int64) * 19349663) ^ salt
        h = ((key * 2654435761) % 1000003) / 1000003.0
        site = np.where(h < vacancy, 0.0, np.where(h > 1 - dopant, 1.8, 1.0))
        frames[t] = 0.1 + site * np.exp(-(dy**2 + dx**2) / (2 * sigma**2))
    return frames


def noisy(frames: np.ndarray, snr: float, seed: int) -> np.ndarray:
    """``frames`` plus white noise of ``std(frame 0) / snr``."""
    rng = np.random.default_rng(seed)
    return (frames + rng.normal(0.0, float(frames[0].std()) / snr, frames.shape)).astype(np.float32)


def jumpy_walk(n: int, step: float, seed: int) -> np.ndarray:
    """Shifts (n, 2) of a random walk whose steps have a Rayleigh spread ``step`` (px)."""
    rng = np.random.default_rng(seed)
    return np.cumsum(np.vstack([[0.0, 0.0], rng.normal(0.0, step, (n - 1, 2))]), axis=0)
