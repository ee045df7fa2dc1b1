"""Lattice detection in the template: a weak template's noise must not hide its lattice, and noise is no lattice."""

import numpy as np
import pytest

from napari_stackalign.core.pyramid._periodic import detect_lattice
from napari_stackalign.core.pyramid._template import Template


def _hex_lattice(shape, period, theta, sigma_frac=0.16):
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    a1 = period * np.array([np.cos(theta), np.sin(theta)])
    a2 = period * np.array([np.cos(theta + np.pi / 3), np.sin(theta + np.pi / 3)])
    inv = np.linalg.inv(np.column_stack([a1, a2]))
    f1 = inv[0, 0] * yy + inv[0, 1] * xx
    f2 = inv[1, 0] * yy + inv[1, 1] * xx
    g1, g2 = f1 - np.round(f1), f2 - np.round(f2)
    dy = a1[0] * g1 + a2[0] * g2
    dx = a1[1] * g1 + a2[1] * g2
    return np.exp(-(dy**2 + dx**2) / (2 * (sigma_frac * period) ** 2))


def _template(image):
    image = np.asarray(image, np.float32)
    return Template((image - image.mean()) / image.std(), None)


@pytest.mark.parametrize("period,seed", [(6.0, 0), (8.0, 1), (12.0, 2)])
def test_lattice_found_under_as_much_noise_as_signal(period, seed):
    rng = np.random.default_rng(seed)
    lattice = _hex_lattice((128, 128), period, rng.uniform(0, np.pi))
    # a template of 20 frames at a frame SNR of 0.24 holds about as much noise as lattice
    noisy = lattice / lattice.std() + rng.normal(0.0, 1.0, lattice.shape)
    found = detect_lattice(_template(noisy))
    assert found is not None
    np.testing.assert_allclose(np.hypot(*found.vectors.T), period, rtol=0.05)


@pytest.mark.parametrize("seed", range(6))
def test_noise_is_no_lattice(seed):
    noise = np.random.default_rng(seed).normal(size=(128, 128))
    assert detect_lattice(_template(noise)) is None


def test_smooth_texture_is_no_lattice():
    from scipy import ndimage

    rng = np.random.default_rng(3)
    texture = ndimage.gaussian_filter(rng.normal(size=(160, 160)), 3.0) + 0.3 * rng.normal(size=(160, 160))
    assert detect_lattice(_template(texture)) is None
