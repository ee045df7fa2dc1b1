"""Cramér-Rao bounds: the spot position against a closed form and Monte Carlo, the rigid bound's scaling."""

from __future__ import annotations

import numpy as np
import pytest

from napari_stackalign.core.particles import (
    ParticleTracks,
    fit_gaussians,
    position_bound,
    rigid_bound,
    spot_photons,
)
from napari_stackalign.core.particles._options import BoundOptions


def mortensen(sigma: float, photons: float, background: float) -> float:
    """Mortensen et al. 2010 (Nat. Methods 7, 377), the MLE variance per axis (pixel size 1, sigma incl. 1/12)."""
    tau = 2 * np.pi * sigma**2 * background / photons
    return sigma**2 / photons * (1 + 4 * tau + np.sqrt(2 * tau / (1 + 4 * tau)))


@pytest.mark.parametrize(
    "photons, background, sigma",
    [(1000, 1e-9, 1.5), (1000, 1, 1.5), (300, 5, 1.3), (5000, 20, 2.0)],
)
def test_position_bound_matches_mortensen(photons, background, sigma):
    amp = photons / (2 * np.pi * sigma**2)
    cov = position_bound(amp, sigma, None, background, box=25)
    expected = mortensen(sigma, photons, background)
    assert cov.shape == (2, 2)
    assert abs(cov[0, 1]) < 1e-9 * cov[0, 0]
    np.testing.assert_allclose(np.diag(cov), expected, rtol=0.05)


def test_position_bound_units_and_camera():
    # counts at 0.5 photons per count: half the photons, twice the variance
    amp, s, b = 200.0, 1.5, 4.0
    photons = position_bound(amp, s, None, b)
    counts = position_bound(amp, s, None, b, photons_per_count=0.5)
    np.testing.assert_allclose(counts, 2 * photons, rtol=1e-9, atol=1e-12)
    # a baseline that is subtracted changes nothing; read noise only adds
    np.testing.assert_allclose(
        position_bound(amp, s, None, b + 100, offset=100),
        photons,
        rtol=1e-6,
        atol=1e-12,
    )
    assert position_bound(amp, s, None, b, read_noise=2.0)[0, 0] > photons[0, 0]
    # options object, broadcasting and NaN for bad inputs
    many = position_bound([amp, np.nan], s, None, b, options=BoundOptions(box=15))
    assert many.shape == (2, 2, 2)
    np.testing.assert_allclose(many[0], photons)
    assert np.all(np.isnan(many[1]))
    assert spot_photons(amp, s, s) == pytest.approx(amp * 2 * np.pi * s * s)


def _spots(n, photons, background, sigma, rng, box=15):
    yy, xx = np.mgrid[0:box, 0:box]
    c = (box - 1) / 2
    y0, x0 = c + rng.uniform(-0.5, 0.5, n), c + rng.uniform(-0.5, 0.5, n)
    amp = photons / (2 * np.pi * sigma**2)
    mu = background + amp * np.exp(
        -((yy - y0[:, None, None]) ** 2 + (xx - x0[:, None, None]) ** 2)
        / (2 * sigma**2)
    )
    return rng.poisson(mu).astype(float), np.column_stack([y0, x0]), amp


@pytest.mark.parametrize("photons, background", [(2000, 2.0), (800, 10.0)])
def test_poisson_fit_reaches_the_bound_least_squares_does_not(photons, background):
    rng = np.random.default_rng(3)
    boxes, truth, amp = _spots(800, photons, background, 1.5, rng)
    bound = np.sqrt(position_bound(amp, 1.5, None, background)[0, 0])
    ratios = {}
    for noise in ("poisson", "gaussian"):
        fits = fit_gaussians(boxes, noise=noise, workers=1)
        assert fits.ok.mean() > 0.98
        err = (fits.centers - truth)[fits.ok]
        ratios[noise] = float(np.sqrt(np.mean(err**2)) / bound)
    assert 0.9 < ratios["poisson"] < 1.1, (
        ratios
    )  # 800 spots: the std is known to about 3.5 %
    assert ratios["gaussian"] > ratios["poisson"] * 1.03, ratios
    # the reported standard error follows the bound too
    fits = fit_gaussians(boxes, workers=1)
    assert np.median(fits.pos_err) == pytest.approx(np.sqrt(2) * bound, rel=0.15)


def test_poisson_fit_of_white_noise_is_least_squares():
    # white noise: the noise model finds no signal dependence, the weights are equal
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0:15, 0:15]
    clean = 1000 + 100 * np.exp(-((yy - 7.2) ** 2 + (xx - 6.9) ** 2) / (2 * 1.7**2))
    boxes = clean[None] + rng.normal(0, 10, (50, 15, 15))
    a = fit_gaussians(boxes, noise="poisson")
    b = fit_gaussians(boxes, noise="gaussian")
    assert np.max(np.abs(a.y - b.y)) < 0.02


def _tracks(
    layout, photons=1500.0, background=2.0, sigma=1.5, n_frames=4, shape=(256, 256)
):
    n = len(layout)
    t = (n_frames, n)
    amp = photons / (2 * np.pi * sigma**2)
    full = lambda v: np.full(t, v, dtype=float)
    return ParticleTracks(
        y=np.broadcast_to(layout[:, 0], t).copy(),
        x=np.broadcast_to(layout[:, 1], t).copy(),
        amplitude=full(amp),
        sigma_major=full(sigma),
        sigma_minor=full(sigma),
        angle=full(0.0),
        background=full(background),
        r2=full(0.9),
        pos_err=full(0.05),
        ok=np.ones(t, bool),
        reason=np.full(t, "", dtype=object),
        shape=shape,
        picks=np.zeros((n, 3)),
        params={"box": 15},
    )


def _ring(n, radius, center=(127.5, 127.5)):
    a = np.linspace(0, 2 * np.pi, n, endpoint=False) + 0.3
    return np.column_stack(
        [center[0] + radius * np.sin(a), center[1] + radius * np.cos(a)]
    )


def test_rigid_bound_closed_form_and_scaling():
    b = rigid_bound(_tracks(_ring(5, 80.0)))
    s = np.sqrt(
        position_bound(1500 / (2 * np.pi * 1.5**2), 1.5, None, 2.0)[0, 0]
    )  # per axis
    # isotropic equal errors: var(theta) = s^2 / sum r^2, var(t) = s^2 / N per axis at the centroid
    assert b.rotation_rms == pytest.approx(
        np.degrees(s / np.sqrt(5 * 80.0**2)), rel=0.02
    )
    assert b.translation_rms == pytest.approx(np.sqrt(2) * s / np.sqrt(5), rel=0.02)
    assert b.position_median == pytest.approx(np.sqrt(2) * s, rel=0.02)
    # 1 / sqrt(N) and 1 / radius
    b4 = rigid_bound(_tracks(_ring(20, 80.0)))
    assert b4.rotation_rms == pytest.approx(b.rotation_rms / 2, rel=0.02)
    assert b4.translation_rms == pytest.approx(b.translation_rms / 2, rel=0.02)
    b_far = rigid_bound(_tracks(_ring(5, 160.0), shape=(512, 512)))
    assert b_far.rotation_rms == pytest.approx(b.rotation_rms / 2, rel=0.05)
    # translation only: no rotation bound; off-centre layout: the frame centre is worse than the centroid
    assert np.isnan(
        rigid_bound(_tracks(_ring(5, 80.0)), allow_rotation=False).rotation_rms
    )
    off = rigid_bound(_tracks(_ring(5, 30.0, center=(60.0, 60.0))))
    assert np.all(off.translation > off.translation_centroid)
    # brighter particles: lower bound; summary text says what would help
    bright = rigid_bound(_tracks(_ring(5, 80.0), photons=6000.0))
    assert bright.rotation_rms < b.rotation_rms
    text = b.summary_text()
    assert "rotation" in text and "more particles" in text


def test_scatter_ratio_reads_the_noise_against_the_bound():
    rng = np.random.default_rng(2)
    tracks = _tracks(_ring(6, 80.0), n_frames=60)
    s = np.sqrt(position_bound(1500 / (2 * np.pi * 1.5**2), 1.5, None, 2.0)[0, 0])
    clean_y, clean_x = tracks.y.copy(), tracks.x.copy()
    for factor in (1.0, 2.0):
        tracks.y = clean_y + rng.normal(0, factor * s, clean_y.shape)
        tracks.x = clean_x + rng.normal(0, factor * s, clean_x.shape)
        assert rigid_bound(tracks).scatter_ratio == pytest.approx(factor, rel=0.12)
    assert "their bound" in rigid_bound(tracks).advice()
