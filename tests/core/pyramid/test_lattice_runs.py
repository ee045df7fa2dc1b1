"""Runs of frames the motion does not link, placed by the other frames' defects (``_lattice_segments``)."""

from __future__ import annotations

import warnings

import cv2
import numpy as np
import pytest

import napari_stackalign.core.pyramid._lattice_segments as segments
import napari_stackalign.core.pyramid._periodic as periodic
from napari_stackalign.core.pyramid import register_pyramid
from napari_stackalign.core.pyramid._lattice_segments import check_runs, runs_of
from napari_stackalign.core.pyramid._periodic import LOWPASS_FACTOR

from ._defect_lattice import hex_basis, jumpy_walk, noisy, render

BASIS = hex_basis(6.0, 0.3)
CAP, MARGIN, BOUND = 12.0, 6.0, (40.0, 40.0)


def _offsets(reach: int = 2) -> np.ndarray:
    ij = np.array([(i, j) for i in range(-reach, reach + 1) for j in range(-reach, reach + 1)], float)
    return ij @ BASIS


def _two_runs(n: int = 30, cut: int = 20) -> np.ndarray:
    """A slow drift with one step of half a lattice vector at ``cut`` (the motion cannot tell it from
    the same step one lattice vector shorter)."""
    rng = np.random.default_rng(3)
    steps = rng.normal(0.0, 0.15, (n, 2))
    steps[0] = 0.0
    steps[cut] = 0.5 * BASIS[0]
    return np.cumsum(steps, axis=0)


def _check(frames: np.ndarray, positions: np.ndarray, bound: tuple[float, float] = BOUND):
    """``check_runs`` as the resolver calls it: the frames as they are, and low-passed as ``_LowPass``
    low-passes them (a blur of 0.6 times the longest lattice vector, area-averaged by ``step``)."""
    sigma = LOWPASS_FACTOR * 6.0
    step = max(1, int(sigma / 1.5))
    lows = []
    for frame in frames:
        small = cv2.resize(frame, (frame.shape[1] // step, frame.shape[0] // step), interpolation=cv2.INTER_AREA)
        lows.append(cv2.GaussianBlur(small, (0, 0), sigma / step))
    blobs = lows[0].size / (4 * np.pi * (sigma / step) ** 2)
    return check_runs(
        lambda k: frames[k], lows, positions, BASIS, _offsets(), sigma=0.3, cap=CAP, bound=bound, margin=MARGIN,
        step=step, blobs=blobs, lowpass_sigma=sigma,
    )


def test_runs_are_cut_where_a_step_could_be_a_lattice_vector_longer():
    truth = _two_runs()
    assert runs_of(truth, _offsets(), 0.3, MARGIN) == [(0, 20), (20, 30)]
    # nothing links the frames: each is a run of its own
    assert runs_of(truth, _offsets(), float("inf"), MARGIN) == [(t, t + 1) for t in range(30)]


def test_a_run_one_lattice_vector_off_is_moved_back_to_the_frames_before_it():
    truth = _two_runs()
    frames = noisy(render((128, 128), truth, BASIS, salt=5), 1.0, seed=1)
    given = truth.copy()
    given[20:] -= BASIS[0]  # the step estimated as half a lattice vector back instead of forward
    # frame[p] = sample[p + s]: the engine's s (frame[p + s] ~ template[p]) is -truth
    found = _check(frames, -given)
    assert found is not None and found.runs == [(0, 20), (20, 30)]
    np.testing.assert_allclose(-found.positions, truth, atol=1e-9)
    assert [(m["from"], m["to"]) for m in found.moves] == [(20, 30)]
    assert np.isinf(found.margin).all()  # both runs placed


@pytest.mark.parametrize("seed", range(3))
def test_right_runs_are_placed_where_they_are(seed):
    truth = _two_runs()
    frames = noisy(render((128, 128), truth, BASIS, salt=seed + 11), 1.0, seed=seed)
    found = _check(frames, -truth)
    np.testing.assert_allclose(found.positions, -truth, atol=1e-12)
    assert not found.moves and np.isinf(found.margin).all()


def test_a_path_the_motion_links_throughout_is_one_placed_run():
    truth = _two_runs()
    truth[20:] -= 0.5 * BASIS[0]  # no step of half a lattice vector: every step is the motion's
    frames = noisy(render((128, 128), truth, BASIS, salt=5), 1.0, seed=1)
    found = _check(frames, -truth)
    assert found.runs == [(0, 30)] and not found.moves
    assert np.isinf(found.margin).all()
    np.testing.assert_allclose(found.positions, -truth, atol=1e-12)


def test_a_lattice_without_defects_leaves_the_run_ambiguous():
    truth = _two_runs()
    # nothing on the sample breaks the lattice: a run's site is anyone's guess, and it is said
    frames = noisy(render((128, 128), truth, BASIS, vacancy=0.0, dopant=0.0), 1.0, seed=2)
    given = truth.copy()
    given[20:] -= BASIS[0]
    found = _check(frames, -given)
    np.testing.assert_allclose(found.positions, -given, atol=1e-12)  # not moved on noise
    assert np.isinf(found.margin[:20]).all()  # the longest run is the reference
    assert (found.margin[20:] < MARGIN).all()


def test_a_move_beyond_max_movement_is_not_made():
    truth = _two_runs()
    frames = noisy(render((128, 128), truth, BASIS, salt=5), 1.0, seed=1)
    given = truth.copy()
    given[20:] -= BASIS[0]
    reach = float(np.abs(given).max(axis=0).max()) + 0.5
    found = _check(frames, -given, bound=(reach, reach))
    assert np.all(np.abs(found.positions) <= reach)


def test_beyond_the_memory_budget_only_the_background_band_is_compared(monkeypatch):
    truth = _two_runs()
    frames = noisy(render((128, 128), truth, BASIS, salt=5), 1.0, seed=1)
    given = truth.copy()
    given[20:] -= BASIS[0]
    assert _check(frames, -given).moves  # the defects band places the run
    monkeypatch.setattr(segments, "MAX_SPECTRA_BYTES", 1024)
    found = _check(frames, -given)
    # the low-passed vacancies still place it (less surely)
    np.testing.assert_allclose(-found.positions, truth, atol=1e-9)


def _weak_jumpy_lattice(seed: int):
    """A 6 px hexagonal lattice with 2 % vacancies at SNR 0.4, whose steps (Rayleigh spread 1.5 px)
    often cross half a lattice vector."""
    rng = np.random.default_rng(seed)
    basis = hex_basis(6.0, rng.uniform(0, np.pi))
    truth = jumpy_walk(60, 1.5, seed)
    frames = render((160, 160), truth, basis, salt=seed + 1, vacancy=0.02, dopant=0.01)
    return noisy(frames, 0.4, seed), truth


def _wrong_and_ok(stack: np.ndarray, truth: np.ndarray) -> tuple[int, int]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = register_pyramid(stack)
    ok = np.asarray(res.ok)
    err = np.asarray(res.shifts) - truth
    err -= np.median(err[ok] if ok.any() else err, axis=0)
    wrong = np.hypot(*err.T) > 1.0
    return int((wrong & ok).sum()), int((~wrong & ok).sum())


def test_a_weak_lattice_whose_steps_cross_half_a_lattice_vector(monkeypatch):
    stack, truth = _weak_jumpy_lattice(0)
    wrong_ok, right_ok = _wrong_and_ok(stack, truth)
    assert wrong_ok == 0 and right_ok >= 55
    # without the runs' check, blocks of frames a lattice vector off pass as ok
    monkeypatch.setattr(periodic, "check_runs", lambda *args, **kwargs: None)
    wrong_ok, right_ok = _wrong_and_ok(stack, truth)
    assert wrong_ok >= 5
