"""Blocks of frames one lattice vector off, found by comparing block means (``_lattice_blocks``)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import ndimage

from napari_stackalign.core.pyramid._lattice_blocks import MIN_BLOCK, fix_blocks

from .test_lattice_detection import _hex_lattice

SIGMA = 3.0  # the low-passed content's blob size (px)
VECTORS = np.array([[6.0, 0.0], [3.0, 5.2]])


def _offsets(reach: int = 2) -> np.ndarray:
    ij = np.array([(i, j) for i in range(-reach, reach + 1) for j in range(-reach, reach + 1)], float)
    return ij @ VECTORS


def _lows(positions: np.ndarray, noise: float, seed: int, shape=(128, 128)) -> list[np.ndarray]:
    """Low-passed frames of one smooth background, frame[p + s] = background[p], plus smoothed noise."""
    rng = np.random.default_rng(seed)
    background = ndimage.gaussian_filter(rng.normal(size=shape), SIGMA)
    background /= background.std()
    lows = []
    for s in positions:
        frame = ndimage.shift(background, s, order=3, mode="nearest")
        smooth_noise = ndimage.gaussian_filter(rng.normal(size=shape), SIGMA)
        lows.append((frame + noise * smooth_noise / smooth_noise.std()).astype(np.float32))
    return lows


def _blobs(shape=(128, 128)) -> float:
    return shape[0] * shape[1] / (4 * np.pi * SIGMA**2)


def _positions(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.cumsum(rng.normal(0.0, 0.4, (n, 2)), axis=0)


@pytest.mark.parametrize("seed", range(3))
def test_a_block_one_lattice_vector_off_is_moved_back(seed):
    n, b = 30, 18
    truth = _positions(n, seed)
    lows = _lows(truth, noise=1.5, seed=seed)  # each frame's background at two thirds of its noise
    given = truth.copy()
    given[b:] += VECTORS[0]  # frames 18-29 one lattice vector off: their mean matches their own copy
    fixed, fixes = fix_blocks(lows, given, _offsets(), 1, _blobs(), (30.0, 30.0), 6.0)
    np.testing.assert_allclose(fixed, truth, atol=1e-9)
    assert [(f["from"], f["to"]) for f in fixes] == [(b, n)]
    np.testing.assert_allclose(fixes[0]["by"], -VECTORS[0], atol=0.01)
    assert fixes[0]["gain"] > 6.0


def test_the_smaller_block_moves_and_several_blocks_are_fixed():
    n = 36
    truth = _positions(n, 7)
    lows = _lows(truth, noise=1.5, seed=7)
    given = truth.copy()
    given[:8] += VECTORS[1]  # a short block at the start and one at the end, off by other vectors
    given[28:] -= VECTORS[0]
    fixed, fixes = fix_blocks(lows, given, _offsets(), 1, _blobs(), (30.0, 30.0), 6.0)
    # a block mean cannot place its boundary to the frame (one frame more or less changes it little):
    # the frame-by-frame choice that follows, against the template of the joined blocks, settles those
    spans = sorted((f["from"], f["to"]) for f in fixes)
    assert len(spans) == 2
    assert spans[0][0] == 0 and abs(spans[0][1] - 8) <= 1
    assert abs(spans[1][0] - 28) <= 1 and spans[1][1] == 36
    off = np.hypot(*(fixed - truth).T) > 1e-6
    assert off.sum() <= 2 and set(np.flatnonzero(off)) <= {7, 8, 27, 28}


@pytest.mark.parametrize("seed", range(4))
def test_right_positions_are_left_alone(seed):
    truth = _positions(40, seed)
    fixed, fixes = fix_blocks(_lows(truth, 3.0, seed), truth, _offsets(), 1, _blobs(), (30.0, 30.0), 6.0)
    assert fixes == []
    np.testing.assert_array_equal(fixed, truth)


@pytest.mark.parametrize("seed", range(4))
def test_noise_moves_nothing(seed):
    rng = np.random.default_rng(seed)
    lows = [ndimage.gaussian_filter(rng.normal(size=(128, 128)), SIGMA).astype(np.float32) for _ in range(40)]
    given = _positions(40, seed)
    given[20:] += VECTORS[0]
    fixed, fixes = fix_blocks(lows, given, _offsets(), 1, _blobs(), (30.0, 30.0), 6.0)
    assert fixes == []


def test_a_move_beyond_max_movement_is_not_made():
    truth = _positions(30, 1)
    truth[:8, 0] -= 12.0  # the first 8 frames sit 12 px up, beyond a 10 px bound
    given = truth.copy()
    given[:8] += VECTORS[0]  # put 6 px down, inside it
    lows = _lows(truth, 1.0, 1)
    bound = (10.0, 30.0)
    assert (np.abs(given[:, 0]) < bound[0]).all()
    fixed, fixes = fix_blocks(lows, given, _offsets(), 1, _blobs(), bound, 6.0)
    assert fixes == []
    np.testing.assert_array_equal(fixed, given)
    # with room, the same block is moved back
    fixed, fixes = fix_blocks(lows, given, _offsets(), 1, _blobs(), (30.0, 30.0), 6.0)
    np.testing.assert_allclose(fixed, truth, atol=1e-9)


def test_too_few_frames_for_two_blocks():
    truth = _positions(2 * MIN_BLOCK - 1, 0)
    fixed, fixes = fix_blocks(_lows(truth, 1.0, 0), truth + VECTORS[0], _offsets(), 1, _blobs(), (30.0, 30.0), 6.0)
    assert fixes == []


def _drifting_hex_stack(seed: int):
    """An 8 px hexagonal lattice on a faint background (0.2 of its std) under strong white noise
    (3.5 times it), 40 frames of 384 px drifting 1 px per frame with a random walk and 1.1 px jitter:
    some steps cross half a lattice vector."""
    rng = np.random.default_rng([seed, 7])
    n, size, speed, jitter = 40, 384, 1.0, 1.1
    margin = int(speed * n / 2 + 12 * jitter) + 12
    big = (size + 2 * margin, size + 2 * margin)
    canvas = _hex_lattice(big, 8.0, rng.uniform(0, np.pi))
    smooth = ndimage.gaussian_filter(rng.normal(size=big), 12.0)
    canvas = canvas / canvas.std() + 0.2 * smooth / smooth.std()
    d = rng.normal(size=2)
    d /= np.hypot(*d)
    pos = np.arange(n)[:, None] * speed * d[None] + 0.5 * np.cumsum(rng.normal(0, jitter, (n, 2)), axis=0)
    pos += rng.normal(0, jitter, (n, 2))
    pos -= pos.mean(axis=0)
    pos = np.clip(pos, -margin + 2, margin - 2)
    frames = np.empty((n, size, size), np.float32)
    for t, (dy, dx) in enumerate(pos):
        moved = ndimage.shift(canvas, (dy, dx), order=1, mode="nearest")
        frames[t] = moved[margin : margin + size, margin : margin + size] + rng.normal(0, 3.5, (size, size))
    return frames, pos


@pytest.mark.parametrize("seed", [0, 4])
def test_template_blocks_a_lattice_vector_apart_are_joined(seed):
    # before the block means were compared, 15 (seed 0) and 18 (seed 4) of the 40 frames were one
    # lattice vector off and ok: the template held the background at two offsets, each block matched
    # its own copy, and rebuilding the template from the blocks kept them apart
    from napari_stackalign.core.pyramid import register_pyramid

    frames, pos = _drifting_hex_stack(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ft = register_pyramid(frames, max_movement=0.9)
    assert ft.params["lattice"]["motion_prior"]
    assert ft.params["lattice"]["block_moves"]
    err = np.column_stack([ft.dy, ft.dx]) + pos
    err -= np.median(err[ft.ok], axis=0)
    assert int(np.sum(ft.ok & (np.hypot(*err.T) > 1.0))) == 0
    assert ft.ok.sum() >= 38
