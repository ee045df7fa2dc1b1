"""Which levels can see a template's content: a constant pedestal under fine
detail must not make the coarse levels look useful."""

import numpy as np

from napari_stackalign.core.pyramid._levels import MIN_LEVEL_POWER, level_power


def _lattice(shape, period, offset):
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float32)
    k = 2 * np.pi / period
    return offset + np.cos(k * xx) + np.cos(k * (0.5 * xx + 0.866 * yy)) + np.cos(k * (-0.5 * xx + 0.866 * yy))


def test_pedestal_does_not_make_coarse_levels_see_a_fine_lattice():
    scales = [(0.125, 0.125), (0.25, 0.25), (0.5, 0.5), (1.0, 1.0)]
    bare = level_power(_lattice((128, 160), 4.0, 0.0), None, scales)
    raised = level_power(_lattice((128, 160), 4.0, 500.0), None, scales)
    # a 4 px lattice is invisible at 1/8 and 1/4 (band < 0.05 and 0.1 cycles/px)
    assert raised[0] < MIN_LEVEL_POWER
    assert raised[1] < MIN_LEVEL_POWER
    assert raised[-1] > 0.99
    np.testing.assert_allclose(raised, bare, atol=0.01)


def test_pedestal_with_invalid_border_is_removed_inside_the_valid_region():
    scales = [(0.125, 0.125), (0.25, 0.25), (1.0, 1.0)]
    img = _lattice((128, 128), 4.0, 800.0)
    valid = np.zeros(img.shape, bool)
    valid[10:-12, 7:-9] = True
    img[~valid] = 0.0
    power = level_power(img, valid, scales)
    assert power[0] < MIN_LEVEL_POWER
    assert power[1] < MIN_LEVEL_POWER
