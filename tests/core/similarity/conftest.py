"""Scenes and error measures shared by the similarity tests (a fixture: the tests are imported with
``--import-mode=importlib``, so one test module cannot import another)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from napari_stackalign import FrameTransforms


def corner_errors(est: FrameTransforms, truth: FrameTransforms, ref: int, shape: tuple[int, int]) -> np.ndarray:
    """Per frame, the largest distance over the frame corners between the estimated and the true correction."""
    h, w = shape
    corners = np.array([[0, 0, 1], [0, w - 1, 1], [h - 1, 0, 1], [h - 1, w - 1, 1]], float).T
    t_mats, e_mats = truth.to_matrices(), est.to_matrices()
    ref_inv = np.linalg.inv(t_mats[ref])
    return np.array(
        [float(np.sqrt(((e @ corners - (ref_inv @ t) @ corners)[:2] ** 2).sum(axis=0)).max()) for e, t in
         zip(e_mats, t_mats)]
    )


def poses(
    n: int, shape: tuple[int, int], rng: np.random.Generator, angle: float, log_scale: float = 0.05
) -> FrameTransforms:
    """``n`` independent poses: shifts up to 6 % of the smaller side, angles within ``+-angle`` degrees,
    log scales within ``+-log_scale`` (none drawn when 0)."""
    shift = 0.06 * min(shape)
    dy = rng.uniform(-shift, shift, n)
    dx = rng.uniform(-shift, shift, n)
    turn = rng.uniform(-angle, angle, n)
    scale = np.exp(rng.uniform(-log_scale, log_scale, n)) if log_scale > 0 else np.ones(n)
    return FrameTransforms(dy=dy, dx=dx, angle=turn, scale=scale, center=((shape[0] - 1) / 2.0, (shape[1] - 1) / 2.0))


def point_symmetric_scene(shape: tuple[int, int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Blob centres at +p and -p about the centre (the scene is its own 180-degree turn), and their sizes."""
    h, w = shape
    c = np.array([(h - 1) / 2.0, (w - 1) / 2.0])
    p = rng.uniform(-0.3 * min(shape), 0.3 * min(shape), (6, 2))
    return np.concatenate([c + p, c - p]), np.tile(rng.uniform(2.0, 5.0, 6), 2)


def render_blobs(
    motion: FrameTransforms, shape: tuple[int, int], scene: tuple[np.ndarray, np.ndarray], rng: np.random.Generator
) -> np.ndarray:
    """The blobs of ``scene`` moved by ``motion``, on a pedestal of 0.1, with noise of 0.02."""
    pts, sig = scene
    h, w = shape
    rr, cc = np.mgrid[0:h, 0:w].astype(np.float64)
    out = np.empty((len(motion), h, w), np.float32)
    for t, m in enumerate(motion.to_matrices()):
        inv = np.linalg.inv(m)
        u = inv[0, 0] * rr + inv[0, 1] * cc + inv[0, 2]
        v = inv[1, 0] * rr + inv[1, 1] * cc + inv[1, 2]
        img = np.full(shape, 0.1)
        for (py, px), s in zip(pts, sig):
            img += np.exp(-((u - py) ** 2 + (v - px) ** 2) / (2 * s * s))
        out[t] = img + rng.normal(0.0, 0.02, shape)
    return out


@pytest.fixture
def scenes() -> SimpleNamespace:
    """:func:`corner_errors`, :func:`poses`, :func:`point_symmetric_scene` and :func:`render_blobs`."""
    return SimpleNamespace(
        corner_errors=corner_errors, poses=poses, point_symmetric_scene=point_symmetric_scene,
        render_blobs=render_blobs,
    )
