"""Pyramid levels too small to search are skipped: a level whose shorter side is under ``MIN_SEARCH_SIZE`` px."""

from __future__ import annotations

import numpy as np
import pytest

from napari_stackalign.core.pyramid import register_pyramid
from napari_stackalign.core.pyramid._levels import MIN_SEARCH_SIZE
from napari_stackalign.synthetic import make_stack


@pytest.mark.parametrize(
    "shape, levels",
    [
        ((64, 128), [0.25, 0.5, 1.0]),  # 1/8 would be 8x16 px
        ((96, 128), [0.125, 0.25, 0.5, 1.0]),  # 1/8 is 12x16 px
        ((40, 40), [0.5, 1.0]),  # 1/4 would be 10x10 px
    ],
)
def test_levels_under_the_search_size_are_skipped(shape, levels):
    assert MIN_SEARCH_SIZE == 12
    stack, truth = make_stack("texture", n_frames=12, shape=shape, drift=3, snr=5, seed=2)
    ft = register_pyramid(stack)
    assert ft.params["levels_used"] == levels
    assert ft.ok.all(), ft.failure_summary()
    err = ft.with_center(truth.center).shifts - truth.shifts
    err -= np.median(err, axis=0)
    assert np.abs(err).max() < 0.2


def test_the_last_level_is_used_even_when_small():
    stack, _ = make_stack("texture", n_frames=8, shape=(12, 12), drift=1, snr=10, seed=1)
    ft = register_pyramid(stack, downsample_rates=[1.0])
    assert ft.params["levels_used"] == [1.0]
