"""Frames after the template frames follow the trajectory (a lattice drifting many lattice vectors)."""

import warnings

import numpy as np
import pytest
from scipy import ndimage

from napari_stackalign.core.pyramid import register_pyramid
from napari_stackalign.core.pyramid._trajectory import Trajectory

from .test_lattice_detection import _hex_lattice


def _priors(trajectory, shifts, usable, pieces):
    """The prior of every frame, estimating (recording) them in ``pieces`` (frame ranges) in order."""
    priors = []
    for a, b in pieces:
        # every frame of a piece asks before any of its batch is recorded, as run_frames does
        b0 = a
        while b0 < b:
            b1 = min(trajectory.next_boundary(b0), b)
            prior = trajectory.prior(b0)
            for j in range(b0, b1):
                priors.append(prior)
                trajectory.record(j, shifts[j], usable[j])
            b0 = b1
    return np.array(priors)


def test_priors_are_the_median_of_the_batch_before_whatever_the_pieces():
    rng = np.random.default_rng(3)
    shifts = np.cumsum(rng.normal(size=(41, 2)), axis=0)
    usable = rng.random(41) > 0.3
    usable[6:12] = False  # batches without a usable frame keep the prior of the one before
    one = _priors(Trajectory(3, (0.5, -0.5)), shifts, usable, [(0, 41)])
    split = _priors(Trajectory(3, (0.5, -0.5)), shifts, usable, [(0, 4), (4, 5), (5, 17), (17, 41)])
    np.testing.assert_array_equal(one, split)
    np.testing.assert_array_equal(one[:3], [[0.5, -0.5]] * 3)  # nothing recorded yet
    for k in range(1, 14):
        # the latest earlier batch with a usable frame
        before = [j for j in range(3 * k) if usable[j]]
        last = max(j // 3 for j in before) if before else None
        rows = [shifts[j] for j in range(3 * last, 3 * last + 3) if usable[j]] if last is not None else []
        expected = np.median(rows, axis=0) if rows else [0.5, -0.5]
        np.testing.assert_allclose(one[3 * k], expected)


def test_frames_are_recorded_in_order():
    trajectory = Trajectory(2)
    trajectory.record(4, (0.0, 0.0), True)
    with pytest.raises(ValueError, match="later batch"):
        trajectory.record(1, (0.0, 0.0), True)
    with pytest.raises(ValueError, match="at least 1"):
        Trajectory(0)


def _drifting_lattice(n_frames, shape, period, speed, seed, background=0.3, noise=0.3):
    """A hexagonal lattice on a faint non-repeating background, drifting ``speed`` px per frame along a
    straight line (sub-pixel positions), plus white noise; returns the frames and their positions."""
    rng = np.random.default_rng(seed)
    margin = int(speed * n_frames) + 8
    big = (shape[0] + 2 * margin, shape[1] + 2 * margin)
    canvas = _hex_lattice(big, period, rng.uniform(0, np.pi))
    smooth = ndimage.gaussian_filter(rng.normal(size=big), 12.0)
    canvas = canvas / canvas.std() + background * smooth / smooth.std()
    direction = rng.normal(size=2)
    direction /= np.hypot(*direction)
    pos = np.arange(n_frames)[:, None] * speed * direction[None]
    pos -= pos.mean(axis=0)
    frames = np.empty((n_frames, *shape), np.float32)
    for t, (dy, dx) in enumerate(pos):
        moved = ndimage.shift(canvas, (dy, dx), order=3, mode="nearest")
        frames[t] = moved[margin : margin + shape[0], margin : margin + shape[1]] + rng.normal(0.0, noise, shape)
    return frames, pos


@pytest.mark.parametrize("period", [12.0, 16.0])
def test_frames_after_the_template_follow_a_lattice_drifting_many_lattice_vectors(period):
    # 0.5 px per frame for 90 frames: the last frames are about 42 px (3-4 lattice vectors) from the
    # median of the 12 template frames. Expecting them there (before) put 28 (12 px) and 15 (16 px) of
    # them, marked ok, whole lattice vectors off: the faint background did not settle the coarse search
    stack, pos = _drifting_lattice(90, (128, 128), period, 0.5, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ft = register_pyramid(stack, num_frames=12, max_movement=0.9, smooth=False)
        chunked = register_pyramid(stack, num_frames=12, max_movement=0.9, smooth=False, chunk_size=7)
    # the correction moves frame t by -pos[t] (up to one common offset)
    err = np.column_stack([ft.dy, ft.dx]) + pos
    err -= np.median(err, axis=0)
    off = np.hypot(*err.T)
    assert int(np.sum(ft.ok & (off > 1.0))) == 0
    assert ft.ok.sum() >= 85, ft.ok.sum()
    assert np.sqrt(np.mean(off[ft.ok] ** 2)) < 0.1
    # the trajectory does not depend on how the frames were chunked
    np.testing.assert_array_equal(np.column_stack([chunked.dy, chunked.dx]), np.column_stack([ft.dy, ft.dx]))
