"""Each frame's lattice site checked by the other frames' defects (no motion prior, or a path of several runs):
``_lattice_frames``."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import napari_stackalign.core.pyramid._lattice_frames as lattice_frames
import napari_stackalign.core.pyramid._periodic as periodic
from napari_stackalign.core.pyramid import register_pyramid
from napari_stackalign.core.pyramid._lattice_frames import check_frames
from napari_stackalign.core.pyramid._periodic import LOWPASS_FACTOR

from ._defect_lattice import hex_basis, jumpy_walk, noisy, render

BASIS = hex_basis(6.0, 0.3)
BOUND = (40.0, 40.0)
MARGIN = 6.0


def _offsets(reach: int = 2) -> np.ndarray:
    ij = np.array([(i, j) for i in range(-reach, reach + 1) for j in range(-reach, reach + 1)], float)
    return ij @ BASIS


def _jumps(n: int, seed: int, step: float = 9.0) -> np.ndarray:
    """Shifts (n, 2) that jump by about ``step`` px a frame: nothing links the frames."""
    rng = np.random.default_rng(seed)
    return rng.uniform(-step, step, (n, 2))


def _check(frames: np.ndarray, positions: np.ndarray, trusted=None, bound=BOUND):
    trusted = np.ones(len(frames), bool) if trusted is None else trusted
    return check_frames(
        lambda k: frames[k], positions, trusted, BASIS, _offsets(), bound=bound, lowpass_sigma=LOWPASS_FACTOR * 6.0
    )


def _stack(n: int = 12, snr: float = 1.0, seed: int = 1, **kwargs):
    """Frames and their shifts in the engine's convention (``frame[p + s] ~ template[p]``: the renderer's
    shifts, which are corrections, negated)."""
    truth = _jumps(n, seed)
    return noisy(render((128, 128), truth, BASIS, salt=seed, **kwargs), snr, seed), -truth


def test_frames_at_their_sites_are_supported():
    frames, truth = _stack()
    found = _check(frames, truth)
    assert found is not None
    assert np.all(found.gain == 0.0) and np.all(found.best == 0.0)
    assert found.support.min() > MARGIN


def test_a_frame_one_lattice_vector_off_is_sent_back():
    frames, truth = _stack()
    positions = truth.copy()
    positions[5] += BASIS[1]
    found = _check(frames, positions)
    assert found.gain[5] > MARGIN + found.look_elsewhere
    np.testing.assert_allclose(found.best[5], -BASIS[1], atol=1e-9)
    others = np.delete(np.arange(len(frames)), 5)
    assert np.all(found.gain[others] == 0.0)
    # the frame off is in the others' reference too, and they still stand
    assert found.support[others].min() > MARGIN


def test_an_untrusted_frame_is_judged_but_not_compared_with():
    frames, truth = _stack()
    positions = truth.copy()
    positions[2] -= BASIS[0]
    trusted = np.ones(len(frames), bool)
    trusted[2] = False
    found = _check(frames, positions, trusted)
    np.testing.assert_allclose(found.best[2], BASIS[0], atol=1e-9)
    assert found.support[np.arange(len(frames)) != 2].min() > MARGIN


def test_a_lattice_without_defects_says_nothing():
    frames, truth = _stack(vacancy=0.0, dopant=0.0)
    positions = truth.copy()
    positions[5] += BASIS[1]
    found = _check(frames, positions)
    assert found.gain.max() < MARGIN and found.support.max() < MARGIN


def test_a_move_beyond_max_movement_is_not_offered():
    frames, truth = _stack()
    positions = truth.copy()
    positions[5] += BASIS[1]
    bound = (float(np.abs(truth[:, 0]).max()) + 0.5, float(np.abs(truth[:, 1]).max()) + 0.5)
    # the way back lies within the bound, so it is offered
    assert _check(frames, positions, bound=(bound[0] + 12, bound[1] + 12)).gain[5] > MARGIN
    positions[5] = truth[5] - BASIS[1]
    far = positions[5] + np.sign(positions[5]) * 20.0
    bound = (float(np.abs(far[0])), float(np.abs(far[1])))
    found = _check(frames, positions, bound=bound)
    assert np.all(np.abs(positions[5] + found.best[5]) <= np.array(bound) + 1e-9)


def test_too_few_trusted_frames_or_too_many_bytes_and_nothing_is_checked(monkeypatch):
    frames, truth = _stack(n=8)
    trusted = np.zeros(8, bool)
    trusted[:3] = True
    assert _check(frames, truth, trusted) is None
    monkeypatch.setattr(lattice_frames, "MAX_SPECTRA_BYTES", 8 * frames[0].size)
    assert _check(frames, truth) is None


def _wrong_and_ok(stack: np.ndarray, truth: np.ndarray) -> tuple[int, int, dict]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = register_pyramid(stack)
    ok = np.asarray(res.ok)
    err = np.asarray(res.shifts) + truth  # corrections against the engine's shifts
    err -= np.median(err[ok] if ok.any() else err, axis=0)
    wrong = np.hypot(*err.T) > 1.0
    return int((wrong & ok).sum()), int((~wrong & ok).sum()), res.params.get("lattice", {})


@pytest.mark.parametrize("seed", [1, 2])
def test_a_jumping_lattice_is_resolved_without_a_frame_off_and_ok(seed):
    stack, truth = _stack(n=20, snr=0.5, seed=seed)
    wrong_ok, right_ok, info = _wrong_and_ok(stack, truth)
    assert info["motion_prior"] is False and info["defects"]["halves_margin"] > MARGIN
    assert wrong_ok == 0 and right_ok >= 18


def test_without_the_defects_band_such_a_lattice_is_left_flagged(monkeypatch):
    monkeypatch.setattr(periodic, "agree_frames", lambda *args, **kwargs: None)
    monkeypatch.setattr(periodic, "check_frames", lambda *args, **kwargs: None)
    stack, truth = _stack(n=20, snr=0.5, seed=1)
    wrong_ok, right_ok, info = _wrong_and_ok(stack, truth)
    assert wrong_ok == 0 and right_ok <= 2 and "defects" not in info


def test_a_jumping_lattice_without_defects_is_not_agreed():
    stack, truth = _stack(n=20, snr=0.5, seed=1, vacancy=0.0, dopant=0.0)
    wrong_ok, _, info = _wrong_and_ok(stack, truth)
    assert wrong_ok == 0 and info.get("defects", {}).get("agreed", 0) == 0


def test_a_frame_beyond_the_offsets_compared_is_not_supported():
    frames, truth = _stack()
    positions = truth.copy()
    positions[5] += 5 * BASIS[0]  # five lattice vectors off: no offset compared brings it back
    found = _check(frames, positions)
    assert found.support[5] < MARGIN and found.gain[5] < MARGIN
    assert np.median(np.delete(found.support, 5)) > 5 * MARGIN


def test_without_the_motion_prior_such_a_frame_is_flagged_where_the_defects_decide():
    from types import SimpleNamespace

    frames, truth = _stack()
    positions = truth.copy()
    positions[5] += 5 * BASIS[0]
    n = len(frames)
    choice = periodic._Choice(
        positions.copy(), np.full(n, 50.0), np.zeros((n, 2)), np.zeros((n, 2)), np.full(n, -np.inf)
    )
    info: dict = {}
    outcome = periodic._defects_band(
        lambda k: frames[k], [], choice, np.zeros(n, bool), np.full(n, np.inf),
        SimpleNamespace(sigma=LOWPASS_FACTOR * 6.0), SimpleNamespace(vectors=BASIS), _offsets(), BOUND, info,
    )
    assert np.flatnonzero(outcome.unsupported).tolist() == [5]
    assert np.flatnonzero(outcome.doubted).tolist() == [5]
    assert info["defects"]["typical_support"] >= periodic.STRONG_SUPPORT
    np.testing.assert_array_equal(choice.positions, positions)  # nothing moved


def test_shifted_sums_are_the_sums_of_the_moved_spectra():
    from napari_stackalign.core.pyramid._lattice_segments import Fine, shifted_sums

    rng = np.random.default_rng(0)
    fine = Fine((48, 40), BASIS, LOWPASS_FACTOR * 6.0)
    spectra = (rng.normal(size=(3, *fine.gain.shape)) + 1j * rng.normal(size=(3, *fine.gain.shape))).astype(np.complex64)
    offsets = _offsets(1) + 0.37
    direct = np.array([[np.real(np.sum(s * fine.phase(o))) for o in offsets] for s in spectra])
    np.testing.assert_allclose(shifted_sums(fine, spectra, offsets), direct, rtol=1e-4, atol=1e-3)


def test_a_margin_of_chance_size_is_not_support_where_the_others_are_far_stronger():
    support = np.array([9000.0, 12000.0, 15000.0, 12.9, 20000.0])
    typical = float(np.median(support))
    assert periodic._chance_sized(support, typical).tolist() == [False, False, False, True, False]
    # a weak band (median under STRONG_SUPPORT) judges nothing this way
    assert not periodic._chance_sized(support / 1000.0, typical / 1000.0).any()
    assert not periodic._chance_sized(support, float("nan")).any()


def _runs_stack(seed: int):
    """``bench_lattice_runs.py``'s stack: a 6 px hexagonal lattice, 60 frames of 160 px at SNR 0.4, steps of
    1.5 px RMS per axis (often beyond half a lattice vector); shifts in the engine's convention."""
    rng = np.random.default_rng(seed)
    basis = hex_basis(6.0, rng.uniform(0, np.pi))
    truth = jumpy_walk(60, 1.5, seed)
    frames = render((160, 160), truth, basis, salt=seed + 1, vacancy=0.02, dopant=0.01)
    return noisy(frames, 0.4, seed), -truth


def test_a_path_of_several_runs_is_checked_by_the_defects_too(monkeypatch):
    # with the motion prior, the runs' check cuts this path into runs; one frame 1 px or more off stayed ok
    # when the defects band checked only the stacks without the motion prior (seed 1 of bench_lattice_runs)
    stack, truth = _runs_stack(1)
    wrong_ok, right_ok, info = _wrong_and_ok(stack, truth)
    assert info["motion_prior"] is True and info["runs"]["count"] > 1
    assert "defects" in info
    assert wrong_ok == 0 and right_ok == 60
    monkeypatch.setattr(periodic, "check_frames", lambda *args, **kwargs: None)
    wrong_ok, _, info = _wrong_and_ok(stack, truth)
    assert wrong_ok == 1


def test_kept_spectra_are_the_band_s_and_read_each_frame_once(monkeypatch):
    from napari_stackalign.core.pyramid import _lattice_segments as segments

    frames, truth = _stack(n=4)
    fine = segments.Fine(frames[0].shape, BASIS, LOWPASS_FACTOR * 6.0)
    kept = segments.KeptSpectra()
    reads = []

    def read(t):
        return lambda: reads.append(t) or frames[t]

    for shift in (np.zeros(2), np.array([1.3, -2.7])):
        for t in range(4):
            got = kept.of(fine, t, read(t), shift)
            np.testing.assert_allclose(got, fine.of(frames[t], shift), rtol=1e-5, atol=1e-3)
    assert reads == [0, 1, 2, 3]  # each frame read (and filtered) once
    # another band (the superlattice notch) is computed afresh, not from the kept spectra
    other = segments.Fine(frames[0].shape, 2 * BASIS, LOWPASS_FACTOR * 6.0)
    np.testing.assert_allclose(kept.of(other, 0, read(0), np.zeros(2)), other.of(frames[0], np.zeros(2)), atol=1e-3)
    assert reads == [0, 1, 2, 3, 0]
    # beyond the budget nothing more is kept
    monkeypatch.setattr(segments, "MAX_SPECTRA_BYTES", 0)
    small = segments.KeptSpectra()
    small.of(fine, 0, read(0), np.zeros(2))
    small.of(fine, 0, read(0), np.zeros(2))
    assert reads[-2:] == [0, 0]
