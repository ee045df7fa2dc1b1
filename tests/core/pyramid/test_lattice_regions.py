"""Lattice frames rotated against the template: the regions' residuals and the centre's error
(``_lattice_regions``), and no frame silently pixels off on a rotating lattice stack."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from napari_stackalign.core.pyramid._lattice_regions import CENTRE_TOLERANCE, RegionCheck, centre_error

PERIOD = 10.0
VECTORS = np.array([[PERIOD, 0.0], [0.0, PERIOD]])


def _square_lattice(shape, angle_deg, shift, seed=0):
    """A 10 px square lattice with a weak centred sublattice and vacancies (fixed to the lattice sites),
    rotated by ``angle_deg`` about the frame centre, then displaced by ``shift`` (rows, cols):
    ``frame[p] = lattice(R (p - c) + c - shift)``."""
    h, w = shape
    rr, cc = np.mgrid[0:h, 0:w].astype(np.float64)
    cy, cx = (h - 1) / 2, (w - 1) / 2
    a = np.deg2rad(angle_deg)
    y = np.cos(a) * (rr - cy) - np.sin(a) * (cc - cx) + cy - shift[0]
    x = np.sin(a) * (rr - cy) + np.cos(a) * (cc - cx) + cx - shift[1]
    img = np.full(shape, 0.1)
    for (oy, ox), amp in (((0.0, 0.0), 1.0), ((0.5, 0.5), 0.5)):
        fy, fx = y / PERIOD - oy, x / PERIOD - ox
        ny, nx = np.round(fy), np.round(fx)
        key = (ny.astype(np.int64) * 73856093) ^ (nx.astype(np.int64) * 19349663) ^ seed
        site = np.where(((key * 2654435761) % 1000003) / 1000003.0 < 0.04, 0.0, 1.0)
        img += amp * site * np.exp(-((fy - ny) ** 2 + (fx - nx) ** 2) * PERIOD**2 / (2 * 1.6**2))
    return img.astype(np.float32)


def _standard(img):
    return ((img - img.mean()) / img.std()).astype(np.float32)


@pytest.mark.parametrize("angle", [0.6, -0.9])
def test_a_rotated_frame_shows_the_translations_error_at_its_centre(angle):
    shape = (192, 1024)
    template = _standard(_square_lattice(shape, 0.0, (0.0, 0.0)))
    check = RegionCheck(template, None, PERIOD)
    assert check.usable
    frame = _standard(_square_lattice(shape, angle, (0.0, 0.0)))
    # the translation of the centre (0 here): the regions depart from it, the fit's centre does not
    fit = centre_error(check.residuals(frame, (0.0, 0.0)), check.centres, VECTORS)
    assert fit is not None
    centre, spread, stderr = fit
    assert np.hypot(*centre) < CENTRE_TOLERANCE
    assert spread > 0.5 * np.deg2rad(abs(angle)) * 512  # the edges of the frame, minus the region's half
    # a translation 3.5 px off the centre's (where the lattice may still match well on average)
    centre, _, stderr = centre_error(check.residuals(frame, (3.5, 0.0)), check.centres, VECTORS)
    np.testing.assert_allclose(centre, (-3.5, 0.0), atol=0.3)
    assert stderr < 0.3
    # and the centre's error is known up to a lattice vector only: 6.5 px off reads as 3.5 px the other way
    centre, _, _ = centre_error(check.residuals(frame, (6.5, 0.0)), check.centres, VECTORS)
    np.testing.assert_allclose(centre, (3.5, 0.0), atol=0.3)


def test_too_small_frames_or_too_few_regions_are_not_checked():
    assert not RegionCheck(np.zeros((60, 60), np.float32), None, PERIOD).usable  # one region
    check = RegionCheck(np.zeros((256, 256), np.float32), None, PERIOD)
    assert centre_error(np.full((len(check.regions), 2), np.nan), check.centres, VECTORS) is None


def test_rotating_lattice_stack_has_no_frame_pixels_off_and_ok():
    # grid seed 202, case 5 in kind: a 10 px square lattice, 192x1024, 15 frames turning by up to 0.9 degrees
    # and drifting. The frames turned one way, against a template of mostly the other, matched the lattice
    # frame-wide 3.4-4.2 px from their centre's displacement, with a fair quality, and were marked ok
    from napari_stackalign.core.pyramid import register_pyramid

    rng = np.random.default_rng(12)
    n = 15
    angles = rng.uniform(-0.9, 0.7, n)
    angles[0] = 0.0
    shifts = np.column_stack([rng.uniform(-20, 20, n), rng.uniform(-25, 25, n)])
    stack = np.stack([_square_lattice((192, 1024), a, s, seed=3) for a, s in zip(angles, shifts)])
    stack += rng.normal(0.0, stack[0].std() / 9.5, stack.shape).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ft = register_pyramid(stack)
    assert ft.params.get("lattice") is not None
    # the correction moves frame t by -shift[t] at its centre (up to one common offset)
    centre = ((192 - 1) / 2, (1024 - 1) / 2)
    err = ft.with_center(centre).shifts + shifts
    err -= np.median(err[ft.ok], axis=0)
    off = np.hypot(*err.T) > 1.0
    assert int(np.sum(ft.ok & off)) == 0, np.round(err, 1)
    assert ft.ok.sum() >= 5
    flagged = [r for r in ft.reason if "rotated or deformed against the template" in r]
    assert flagged, ft.failure_summary()


def test_screen_takes_evenly_spaced_and_the_lowest_quality_frames():
    from napari_stackalign.core.pyramid._lattice_regions import screen

    assert screen(np.ones(10), 24).tolist() == list(range(10))
    quality = np.full(200, 0.9)
    quality[[17, 93, 150]] = 0.4
    quality[60] = np.nan
    picked = screen(quality, 24)
    assert {17, 60, 93, 150} <= set(picked.tolist())  # NaN counts as the lowest
    assert {0, 199} <= set(picked.tolist())
    assert len(picked) <= 24


def test_a_long_lattice_stack_that_does_not_turn_is_screened_not_checked_frame_by_frame():
    from .test_lattice_detection import _lattice_stack, _silent

    silent, ft = _silent(*_lattice_stack(30, (160, 160), 6.0, 7.0, seed=4))
    assert silent == 0
    assert ft.params["lattice"]["rotated_frames"] is None  # screened: no frame turns
