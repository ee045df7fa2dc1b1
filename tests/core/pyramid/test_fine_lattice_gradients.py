"""A fine lattice at a pyramid level: the template's gradients take the sixth-order filter there, so
Gauss-Newton does not overshoot (and diverge) on content near 1/3 cycles/px."""

import warnings

import numpy as np
import pytest

from napari_stackalign.core.pyramid import register_pyramid
from napari_stackalign.core.pyramid._engine import (
    FINE_LATTICE,
    PyramidEstimator,
    fine_lattice_levels,
)
from napari_stackalign.core.pyramid._levels import Levels
from napari_stackalign.core.pyramid._lucas_kanade import (
    DERIVATIVE_TAPS,
    LKTemplate,
    _gradients,
)
from napari_stackalign.core.pyramid._template import Template
from napari_stackalign.synthetic import make_stack

from .test_lattice_detection import _hex_lattice
from .test_trajectory import _drifting_lattice


def _waves(shape, fy, fx):
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    t = np.sin(2 * np.pi * fy * yy) + np.cos(2 * np.pi * fx * xx)
    dy = 2 * np.pi * fy * np.cos(2 * np.pi * fy * yy)
    dx = -2 * np.pi * fx * np.sin(2 * np.pi * fx * xx)
    return t.astype(np.float32), dy, dx


@pytest.mark.parametrize("f, gain", [(0.2, 0.757), (0.25, 0.637), (1 / 3, 0.414)])
def test_two_point_differences_lose_gain_where_the_sixth_order_filter_keeps_it(f, gain):
    t, dy, dx = _waves((48, 60), f, f)
    inner = (slice(4, -4), slice(4, -4))
    gy, gx = _gradients(t, None, 1)
    np.testing.assert_allclose(gy[inner], gain * dy[inner], atol=2e-3 * 2 * np.pi * f)
    gy, gx = _gradients(t, None, 3)
    assert np.abs(gy[inner] - dy[inner]).max() < 0.26 * 2 * np.pi * f  # gain >= 0.74 up to 1/3 cycles/px
    assert np.abs(gx[inner] - dx[inner]).max() < 0.26 * 2 * np.pi * f


def test_the_widest_filter_that_fits_is_used_next_to_invalid_pixels():
    t, _, _ = _waves((40, 40), 0.1, 0.1)
    valid = np.ones(t.shape, bool)
    valid[20:, :] = False
    gy, _ = _gradients(t, valid, 3)
    assert np.all(gy[19:] == 0)  # the 3x3 neighbourhood reaches an invalid pixel
    # one and two rows from the invalid ones: two-point, then fourth-order differences
    np.testing.assert_allclose(gy[18, 5:-5], (t[19, 5:-5] - t[17, 5:-5]) / 2, rtol=1e-5, atol=1e-6)
    fourth = (t[15, 5:-5] - 8 * t[16, 5:-5] + 8 * t[18, 5:-5] - t[19, 5:-5]) / 12
    np.testing.assert_allclose(gy[17, 5:-5], fourth, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="derivative_radius"):
        LKTemplate(t, derivative_radius=4)
    assert sorted(DERIVATIVE_TAPS) == [1, 2, 3]


def test_fine_lattice_levels_are_those_where_the_lattice_is_finer_than_the_bar():
    lattice = Template(_hex_lattice((128, 128), 6.0, 0.3).astype(np.float32), None)
    scales = [(0.125, 0.125), (0.25, 0.25), (0.5, 0.5), (1.0, 1.0)]
    # a 6 px hexagonal lattice: first-order frequencies up to 1.155 / 6 = 0.19 cycles/px at full resolution
    assert fine_lattice_levels(lattice, scales, range(4)) == {0, 1, 2}
    assert 0.19 < FINE_LATTICE
    beads = make_stack("beads", n_frames=1, shape=(128, 128), snr=20, seed=1).stack[0].astype(np.float32)
    assert fine_lattice_levels(Template(beads, None), scales, range(4)) == set()
    estimator = PyramidEstimator(lattice, Levels((128, 128), (0.125, 0.25, 0.5, 1.0)), 0.5)
    assert {i: lk.derivative_radius for i, lk in estimator._lk.items()} == {
        i: (3 if i in estimator.fine_lattice_levels else 1) for i in estimator.active
    }


def test_a_fine_lattice_on_a_faint_background_is_registered():
    # a 6 px lattice (3 px at the 1/2 level, where the coarse levels hand over to it) on a faint
    # background, drifting 45 px: with two-point differences Gauss-Newton diverged at 1/2, the template
    # was a blur and 53 of 90 frames were flagged "did not converge", 25 "lost the match", 12 ok
    stack, pos = _drifting_lattice(90, (128, 128), 6.0, 0.5, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ft = register_pyramid(stack, max_movement=0.9, smooth=False)
    err = np.column_stack([ft.dy, ft.dx]) + pos
    err -= np.median(err, axis=0)
    off = np.hypot(*err.T)
    assert ft.ok.all(), ft.failure_summary()
    assert np.sqrt(np.mean(off**2)) < 0.05
