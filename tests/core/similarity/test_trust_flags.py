"""Similarity registration's trust flags: ambiguous candidate choices and imprecise frames.

A frame whose candidate choice is a coin flip (a point-symmetric object turned
by 180 degrees matches itself) or whose predicted error at the frame corners
is large must be flagged with its reason, and a clean frame must not be.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from napari_stackalign import FrameTransforms
from napari_stackalign.core.similarity import register_similarity
from napari_stackalign.core.similarity._ambiguity import (
    AMBIGUITY_SIGMA,
    Peak,
    analyse_surface,
    contenders,
    refined_choice,
    score_spread,
)
from napari_stackalign.core.similarity._precision import IMPRECISE_PX, blur_noise_factor, corner_error
from napari_stackalign.core.similarity._refine import similarity_matrix
from napari_stackalign.synthetic import make_stack


def test_a_point_symmetric_object_turned_at_random_is_flagged_ambiguous_never_silently_wrong(scenes) -> None:
    rng = np.random.default_rng(4)
    shape = (128, 128)
    motion = scenes.poses(10, shape, rng, angle=180.0)
    stack = scenes.render_blobs(motion, shape, scenes.point_symmetric_scene(shape, rng), rng)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ft = register_similarity(stack, fallback="identity", workers=1)
    ref = ft.params["template_index"]
    err = scenes.corner_errors(ft, motion.invert(), ref, shape)
    # each frame is right or 180 degrees off (the scene cannot tell): a wrong one must be flagged
    wrong = err > 1.0
    assert not np.any(wrong & ft.ok), (err, ft.ok)
    flagged = [r for t, r in enumerate(ft.reason) if t != ref]
    assert all("ambiguous" in r for r in flagged), flagged
    assert len(flagged) == len(ft) - 1  # every frame has its 180-degree twin
    # the reason names the twin, half a turn from the best
    assert any("180" in r or "-180" in r or "+18" in r for r in flagged), flagged


def test_clean_frames_are_not_flagged_and_their_predicted_error_is_small(scenes) -> None:
    shape = (128, 128)
    rng = np.random.default_rng(2)
    motion = scenes.poses(8, shape, rng, angle=20.0)
    stack, truth = make_stack("texture", n_frames=8, shape=shape, motion=motion, snr=10.0, seed=3)
    ft = register_similarity(stack, workers=1)
    ref = ft.params["template_index"]
    assert ft.ok.all(), list(ft.reason)
    predicted = ft.params["predicted_error_px"]
    assert predicted[ref] is None
    others = np.array([p for t, p in enumerate(predicted) if t != ref], dtype=float)
    assert np.all(others < IMPRECISE_PX)
    err = np.delete(scenes.corner_errors(ft, truth, ref, shape), ref)
    assert np.sqrt(np.mean(err**2)) < 0.2


def test_the_predicted_error_follows_the_measured_spread_of_the_estimates(scenes) -> None:
    """The same pose under fresh noise: the RMS corner error over frames is what the prediction said (within 2x)."""
    shape = (96, 96)
    n = 16
    center = ((shape[0] - 1) / 2.0, (shape[1] - 1) / 2.0)
    for snr in (1.0, 3.0):
        motion = FrameTransforms(
            dy=np.full(n, 2.3), dx=np.full(n, -1.7), angle=np.full(n, 7.0), scale=np.full(n, 1.03), center=center
        )
        motion.dy[0] = motion.dx[0] = motion.angle[0] = 0.0
        motion.scale[0] = 1.0
        stack, truth = make_stack("texture", n_frames=n, shape=shape, motion=motion, snr=snr, noise="gaussian", seed=11)
        ft = register_similarity(stack, template="first", workers=1)
        err = scenes.corner_errors(ft, truth, 0, shape)[1:]
        predicted = np.array(ft.params["predicted_error_px"][1:], dtype=float)
        measured = float(np.sqrt(np.mean(err**2)))
        expected = float(np.median(predicted))
        assert 0.5 * expected < measured < 2.0 * expected, (snr, measured, expected)


def test_contenders_skip_the_same_solution_and_keep_a_close_distinct_one() -> None:
    shape = (64, 64)

    def peak(value: float, dy: float = 0.0, dx: float = 0.0, second: float = -np.inf) -> Peak:
        return Peak(dy, dx, value, 0.01, second, 20.0, 20.0)

    # a clear winner: nothing within AMBIGUITY_SIGMA
    assert contenders([(0.0, 1.0, peak(0.5)), (90.0, 1.0, peak(0.2))], shape) == []
    # the same solution reached from a nearby angle does not count
    assert contenders([(0.0, 1.0, peak(0.5)), (0.3, 1.0, peak(0.49))], shape) == []
    # its 180-degree twin scoring as well is a contender, with its margin in sigma
    found = contenders([(0.0, 1.0, peak(0.5)), (180.0, 1.0, peak(0.49))], shape)
    assert len(found) == 1
    angle, scale, _, _, margin = found[0]
    assert angle == 180.0 and scale == 1.0
    assert margin == pytest.approx(0.01 / (np.sqrt(2.0) * 0.01))
    assert margin < AMBIGUITY_SIGMA
    # a second position on the winner's own surface (a lattice one period away)
    found = contenders([(0.0, 1.0, peak(0.5, second=0.495))], shape)
    assert [(a, dy, dx) for a, _, dy, dx, _ in found] == [(0.0, 20.0, 20.0)]


def test_analyse_surface_finds_the_second_maximum_outside_the_main_peak() -> None:
    yy, xx = np.mgrid[0:64, 0:64]
    corr = np.exp(-((yy - 10) ** 2 + (xx - 12) ** 2) / 4.0) + 0.6 * np.exp(-((yy - 40) ** 2 + (xx - 30) ** 2) / 4.0)
    found = analyse_surface(corr, 10.0, 12.0, float(corr[10, 12]))
    assert found.second == pytest.approx(0.6, abs=1e-3)
    assert (found.second_dy, found.second_dx) == (40 - 64, 30)
    assert (found.dy, found.dx) == (10.0, 12.0)


def test_refined_choice_takes_the_best_score_and_says_when_the_margin_is_thin() -> None:
    shape = (100, 100)
    center = (49.5, 49.5)
    best = similarity_matrix(0.0, 1.0, center, (1.0, 0.0))
    twin = similarity_matrix(180.0, 1.0, center, (1.0, 0.0))
    near = similarity_matrix(0.05, 1.0, center, (1.0, 0.05))
    # the same solution twice: no note, the higher score wins
    k, note = refined_choice([(near, 0.80, 1.0, 0.05), (best, 0.81, 1.0, 0.05)], shape, 1.0)
    assert (k, note) == (1, "")
    # a distinct solution far behind: no note
    k, note = refined_choice([(best, 0.9, 1.0, 0.05), (twin, 0.3, 1.0, 0.05)], shape, 1.0)
    assert (k, note) == (0, "")
    # a distinct solution within the noise of the score: flagged, the better one kept
    spread = np.hypot(score_spread(0.300, 1.0, shape, 1.0), score_spread(0.299, 1.0, shape, 1.0))
    assert (0.300 - 0.299) / spread < AMBIGUITY_SIGMA
    k, note = refined_choice([(twin, 0.299, 1.0, 0.05), (best, 0.300, 1.0, 0.05)], shape, 1.0)
    assert k == 1 and note.startswith("ambiguous: runner-up at angle")


def test_corner_error_and_blur_factor_by_hand() -> None:
    # shift only: one px of variance on each axis gives sqrt(2) px at every corner
    cov = np.diag([0.0, 0.0, 1.0, 1.0])
    assert corner_error(cov, np.array([[0.5, 0.5], [-0.5, 0.5]])) == pytest.approx(np.sqrt(2.0))
    # rotation only: the corner at normalised radius r moves by r per unit of b
    cov = np.diag([0.0, 4.0, 0.0, 0.0])
    assert corner_error(cov, np.array([[0.6, 0.8]])) == pytest.approx(2.0)
    # unit white noise after a Gaussian of sigma: variance 1 / (4 pi sigma^2)
    assert blur_noise_factor(3.0) == pytest.approx(1.0 / (4.0 * np.pi * 9.0), rel=0.02)


def test_frames_whose_predicted_error_is_beyond_the_bar_are_flagged_imprecise_with_the_figure() -> None:
    stack, _ = make_stack("texture", n_frames=8, shape=(96, 96), rotation=10.0, scale=0.02, snr=0.3,
                          noise="gaussian", seed=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ft = register_similarity(stack, workers=1)
    predicted = ft.params["predicted_error_px"]
    imprecise = [t for t, r in enumerate(ft.reason) if r.startswith("imprecise")]
    assert imprecise
    for t in imprecise:
        assert not ft.ok[t]
        assert predicted[t] > IMPRECISE_PX
        stated = float(ft.reason[t].split("predicted error ")[1].split(" px")[0])
        assert stated == pytest.approx(predicted[t], abs=0.006)
    # a frame under the bar is never flagged for it
    assert all(not r.startswith("imprecise") for t, r in enumerate(ft.reason) if (predicted[t] or 0) <= IMPRECISE_PX)
