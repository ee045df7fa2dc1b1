"""The batched Gaussian fit: accuracy against ground truth and curve_fit, gates, bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.optimize import curve_fit

from napari_stackalign.core.particles import (
    fit_gaussian,
    fit_gaussians,
    fit_gaussians_at,
)
from napari_stackalign.core.particles._gaussian_fit import extract_boxes


def spot(shape, y0, x0, amp, s_major, s_minor, angle_deg, background=100.0):
    """A rotated elliptical Gaussian; ``angle_deg`` of the long axis, counter-clockwise
    as displayed from +x (the convention of GaussianFit.angle)."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(float)
    th = np.deg2rad(angle_deg)
    dy, dx = yy - y0, xx - x0
    # long-axis direction in (row, col): (-sin, cos)
    u = -dy * np.sin(th) + dx * np.cos(th)
    v = dy * np.cos(th) + dx * np.sin(th)
    return background + amp * np.exp(-0.5 * (u**2 / s_major**2 + v**2 / s_minor**2))


def random_boxes(n, rng, *, noise=4.0, box=15):
    c = (box - 1) / 2
    truth = {
        "y": c + rng.uniform(-1.5, 1.5, n),
        "x": c + rng.uniform(-1.5, 1.5, n),
        "major": rng.uniform(1.4, 2.4, n),
        "angle": rng.uniform(-89, 89, n),
        "amp": rng.uniform(60, 120, n) * np.where(rng.random(n) < 0.5, -1, 1),
    }
    truth["minor"] = truth["major"] * rng.uniform(0.55, 0.95, n)
    boxes = np.stack(
        [
            spot((box, box), truth["y"][i], truth["x"][i], truth["amp"][i], truth["major"][i], truth["minor"][i], truth["angle"][i])
            for i in range(n)
        ]
    )
    return boxes + rng.normal(0, noise, boxes.shape), truth


@pytest.mark.parametrize("amp", [80.0, -80.0], ids=["bright", "dark"])
def test_single_spot_bright_and_dark_elliptical_rotated(amp):
    rng = np.random.default_rng(1)
    image = spot((60, 70), 31.3, 40.8, amp, 2.6, 1.5, 30.0) + rng.normal(0, 1.0, (60, 70))
    fit = fit_gaussian(image, (30, 42), box=15)
    assert fit.ok, fit.reason
    assert fit.dark == (amp < 0)
    assert abs(fit.y - 31.3) < 0.05 and abs(fit.x - 40.8) < 0.05
    assert abs(fit.amplitude - amp) < 2.0
    assert abs(fit.background - 100.0) < 0.5
    assert abs(fit.sigma_major - 2.6) < 0.05 and abs(fit.sigma_minor - 1.5) < 0.05
    assert abs(fit.angle - 30.0) < 1.5
    assert fit.r2 > 0.99
    assert 0 < fit.pos_err < 0.05
    assert fit.reason == ""


def test_round_spot_converges_angle_free():
    """A round spot has no defined angle: the fit still converges (Q parameterisation)."""
    image = spot((25, 25), 12.2, 11.7, 50.0, 2.0, 2.0, 0.0) + np.random.default_rng(2).normal(0, 0.5, (25, 25))
    fit = fit_gaussian(image, (12, 12))
    assert fit.ok
    assert abs(fit.sigma_major - 2.0) < 0.05 and abs(fit.sigma_minor - 2.0) < 0.05


def test_batch_precision_matches_prediction_and_truth():
    rng = np.random.default_rng(3)
    boxes, truth = random_boxes(400, rng)
    fits = fit_gaussians(boxes)
    assert fits.ok.mean() > 0.99
    err = np.hypot(fits.y - truth["y"], fits.x - truth["x"])[fits.ok]
    rms = np.sqrt(np.mean(err**2))
    predicted = np.sqrt(np.mean(fits.pos_err[fits.ok] ** 2))
    assert rms < 0.12
    assert 0.8 < rms / predicted < 1.25  # the reported error is honest
    assert np.all(fits.dark == (truth["amp"] < 0))
    assert np.median(np.abs(fits.sigma_major - truth["major"])) < 0.06
    elongated = fits.ok & (truth["minor"] / truth["major"] < 0.75)
    dang = (fits.angle - truth["angle"] + 90) % 180 - 90
    assert np.median(np.abs(dang[elongated])) < 4.0


def _reference_model(coords, amp, x0, y0, sx, sy, th, off):
    x, y = coords
    a = np.cos(th) ** 2 / (2 * sx**2) + np.sin(th) ** 2 / (2 * sy**2)
    b = -np.sin(2 * th) / (4 * sx**2) + np.sin(2 * th) / (4 * sy**2)
    c = np.sin(th) ** 2 / (2 * sx**2) + np.cos(th) ** 2 / (2 * sy**2)
    return off + amp * np.exp(-(a * (x - x0) ** 2 + 2 * b * (x - x0) * (y - y0) + c * (y - y0) ** 2))


def _curve_fit(box, start):
    """The same 7-parameter model with scipy (unbounded Levenberg-Marquardt from our start)."""
    h, w = box.shape
    y, x = np.mgrid[0:h, 0:w]
    p, _ = curve_fit(_reference_model, (x.ravel(), y.ravel()), box.ravel(), p0=start, maxfev=5000)
    return p


def test_same_least_squares_solution_as_curve_fit():
    rng = np.random.default_rng(4)
    boxes, truth = random_boxes(40, rng)
    fits = fit_gaussians(boxes, noise="gaussian")  # plain least squares, what curve_fit does
    h, w = boxes.shape[1:]
    y, x = np.mgrid[0:h, 0:w]
    for i in range(40):
        start = [truth["amp"][i], truth["x"][i], truth["y"][i], 1.8, 1.6, 0.3, 100.0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            p = _curve_fit(boxes[i], start)
        ours_chi2 = np.sum((boxes[i] - spot((h, w), fits.y[i], fits.x[i], fits.amplitude[i], fits.sigma_major[i],
                                            fits.sigma_minor[i], fits.angle[i], fits.background[i])) ** 2)
        theirs_chi2 = np.sum((boxes[i].ravel() - _reference_model((x.ravel(), y.ravel()), *p)) ** 2)
        assert ours_chi2 <= theirs_chi2 * (1 + 1e-6)
        assert abs(p[2] - fits.y[i]) < 2e-3 and abs(p[1] - fits.x[i]) < 2e-3


def test_polarity_prefers_the_spot_at_the_click_over_a_bright_neighbour():
    """A dark particle at the box centre with a brighter spot at the edge: the
    reference's max/min rule would fit the bright one; ours fits the dark one."""
    image = spot((41, 41), 20.2, 19.6, -60.0, 1.8, 1.8, 0.0) + spot((41, 41), 20.0, 27.0, 90.0, 1.2, 1.2, 0.0) - 100.0
    image += np.random.default_rng(5).normal(0, 0.5, image.shape)
    fit = fit_gaussian(image, (20, 20), box=15)
    assert fit.dark
    assert abs(fit.y - 20.2) < 0.15 and abs(fit.x - 19.6) < 0.3
    forced = fit_gaussian(image, (20, 20), box=15, dark=False)
    assert not forced.dark


def test_failure_reasons():
    rng = np.random.default_rng(6)
    noise = rng.normal(100, 5, (50, 50))
    assert fit_gaussian(np.full((30, 30), 7.0), (15, 15)).reason == "constant box"
    out = fit_gaussian(noise, (-5, 20))
    assert not out.ok and out.reason == "box outside image"
    pure = fit_gaussian(noise, (25, 25))
    assert not pure.ok
    assert pure.reason.startswith(("R\u00b2", "width out of range", "centre outside box", "did not converge", "amplitude"))
    # a long straight scratch: far too wide along its length
    line = np.full((40, 40), 100.0)
    line[:, 18:21] -= 50
    line += rng.normal(0, 1, line.shape)
    scratch = fit_gaussian(line, (20, 19))
    assert not scratch.ok and scratch.reason.startswith(("width out of range", "did not converge"))
    # a spot half out of the box: its centre lies at the box edge
    edge = spot((40, 40), 20.0, 27.2, 80.0, 1.5, 1.5, 0.0) + rng.normal(0, 1, (40, 40))
    cut = fit_gaussians_at(edge, [(20.0, 20.0)], 15)
    assert not cut.ok[0] and cut.reason[0] == "centre outside box"
    # the R2 gate is a real gate
    faint = spot((30, 30), 15.0, 15.0, 12.0, 2.0, 2.0, 0.0) + rng.normal(0, 4, (30, 30))
    f = fit_gaussian(faint, (15, 15), min_r2=0.95)
    assert not f.ok and f.reason.startswith("R\u00b2") and "below 0.95" in f.reason


def test_nan_pixels_are_ignored():
    image = spot((40, 40), 20.3, 5.4, 80.0, 1.6, 1.6, 0.0) + np.random.default_rng(7).normal(0, 1, (40, 40))
    image[:, :3] = np.nan  # e.g. the empty border of a warped frame
    fit = fit_gaussian(image, (20, 6))
    assert fit.ok, fit.reason
    assert abs(fit.y - 20.3) < 0.1 and abs(fit.x - 5.4) < 0.1
    image[:, :] = np.nan
    assert fit_gaussian(image, (20, 6)).reason == "box outside image"


def test_boxes_near_the_border_move_inwards():
    image = np.arange(30 * 40, dtype=float).reshape(30, 40)
    boxes, origins, reasons = extract_boxes(image, [(1.2, 38.9), (15, 20), (40, 5)], 9)
    assert boxes.shape == (3, 9, 9)
    assert origins[0].tolist() == [0, 31] and origins[1].tolist() == [11, 16]
    assert reasons == ["", "", "box outside image"]
    np.testing.assert_array_equal(boxes[1], image[11:20, 16:25])


def test_many_fits_agree_with_one_by_one_and_threads():
    rng = np.random.default_rng(8)
    boxes, _ = random_boxes(300, rng)
    batch = fit_gaussians(boxes, workers=2)
    single = fit_gaussians(boxes, workers=1)
    np.testing.assert_allclose(batch.y, single.y)
    one = fit_gaussians(boxes[17])
    assert abs(one.y[0] - batch.y[17]) < 1e-9
    assert len(fit_gaussians(np.zeros((0, 15, 15)))) == 0
    assert len(fit_gaussians_at(boxes[0], np.zeros((0, 2)), 9)) == 0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"box": 3}, "box must be"),
        ({"box": "big"}, "box must be"),
        ({"min_r2": 2.0}, "min_r2"),
        ({"max_sigma": -1.0}, "max_sigma"),
        ({"dark": "yes"}, "dark must be"),
        ({"max_iter": 0}, "max_iter"),
    ],
)
def test_bad_options_raise(kwargs, match):
    image = spot((30, 30), 15, 15, 50, 2, 2, 0)
    with pytest.raises(ValueError, match=match):
        fit_gaussian(image, (15, 15), **kwargs)


def test_bad_input_raises():
    with pytest.raises(ValueError, match="2-D"):
        fit_gaussian(np.zeros((3, 30, 30)), (15, 15))
    with pytest.raises(ValueError, match="center"):
        fit_gaussian(np.zeros((30, 30)), (15, 15, 2))
    with pytest.raises(ValueError, match="smaller than the box"):
        fit_gaussian(np.ones((10, 10)), (5, 5), box=15)
