"""Frames too small to register are refused up front by every method, with
the frame size and the minimum, never with impossible advice (a first
downsample rate above 1)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from napari_stackalign import (
    register_pairwise,
    register_pyramid,
    register_similarity,
    track_particles,
)
from napari_stackalign.core.pyramid._levels import MIN_SEARCH_SIZE

METHODS = {
    "pyramid": (lambda s: register_pyramid(s), 8),
    "pairwise": (lambda s: register_pairwise(s), 8),
    "similarity": (lambda s: register_similarity(s), 32),
    "particles": (
        lambda s: track_particles(s, [[0, s.shape[1] // 2, s.shape[2] // 2]]),
        5,
    ),
}


@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize("shape", [(1, 1), (3, 3), (5, 5), (7, 1000), (1000, 4)])
def test_tiny_frames_are_too_small(method, shape):
    run, minimum = METHODS[method]
    if min(shape) >= minimum:
        pytest.skip("large enough for this method")
    stack = np.random.default_rng(0).random((4, *shape)).astype(np.float32)
    with pytest.raises(ValueError) as info:
        run(stack)
    message = str(info.value)
    assert f"frames of {shape[0]}x{shape[1]} px are too small" in message, message
    assert f"at least {minimum}x{minimum} px" in message, message


@pytest.mark.parametrize("side", [8, 12, 40])
def test_pyramid_rate_advice_is_possible(side):
    """Frames large enough but a finest rate too coarse: the advice stays at most 1."""
    stack = np.random.default_rng(1).random((4, side, side)).astype(np.float32)
    with pytest.raises(ValueError, match="finest downsample rate") as info:
        register_pyramid(stack, downsample_rates=[0.1])
    message = str(info.value)
    for number in re.findall(r"end at ([0-9.]+)", message):
        assert float(number) <= 1
    assert "up to 1" in message or "downsample_rates=[1]" in message


@pytest.mark.parametrize("side", [8, 12, 40])
def test_pyramid_levels_too_small_to_search_are_skipped(side):
    """The default rates, or a first rate too coarse, on small frames: the levels under 12 px are skipped."""
    stack = np.random.default_rng(1).random((4, side, side)).astype(np.float32)
    for rates in (None, [0.1, 1]):
        kwargs = {} if rates is None else {"downsample_rates": rates}
        ft = register_pyramid(stack, **kwargs)
        assert all(side * rate >= MIN_SEARCH_SIZE for rate in ft.params["levels_used"][:-1])
        assert ft.params["levels_used"][-1] == 1.0


def test_particles_box_larger_than_frames_says_the_range():
    stack = np.random.default_rng(2).random((4, 9, 9)).astype(np.float32)
    with pytest.raises(ValueError, match=r"at least 5 px, at most 9 px"):
        track_particles(stack, [[0, 4, 4]], box=15)
