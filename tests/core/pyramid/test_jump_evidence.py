"""A frame whose own match vouches for its jump is not flagged by the jump test; one period off, one of
another scene and a precision-limited frame still are."""

from __future__ import annotations

import numpy as np
import pytest

from napari_stackalign.core.pyramid import register_pyramid
from napari_stackalign.core.pyramid._jump_evidence import (
    MIN_TRUSTED_FRACTION,
    SIDE_FRAMES,
    SignalAutocorrelation,
    vouched_jumps,
)
from napari_stackalign.core.pyramid._template import Template
from napari_stackalign.core.pyramid._trust import JUMP_WINDOW, judge, jumps
from napari_stackalign.synthetic import make_stack, shifts_motion


def _blobs(shape=(96, 96), sigma=2.0, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    img = np.zeros(shape)
    for cy, cx in rng.uniform(8, shape[0] - 8, (30, 2)):
        img += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))
    return img - img.mean()


def _lattice(shape=(96, 96), period=8.0) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    img = np.cos(2 * np.pi * yy / period) + np.cos(2 * np.pi * xx / period)
    return img - img.mean()


def test_side_frames_are_the_jump_tests():
    assert SIDE_FRAMES == JUMP_WINDOW


def test_signal_autocorrelation_leaves_the_templates_white_noise_out():
    clean = _blobs()
    noisy = clean + np.random.default_rng(1).normal(0, clean.std(), clean.shape)
    lags = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.5], [3.0, 3.0]])
    rho_clean = SignalAutocorrelation(Template(clean.astype(np.float32), None))(lags)
    rho_noisy = SignalAutocorrelation(Template(noisy.astype(np.float32), None))(lags)
    assert rho_clean[0] == pytest.approx(1.0) and rho_noisy[0] == pytest.approx(1.0)
    assert 1.0 > rho_clean[1] > rho_clean[2] > rho_clean[3]
    # with the noise in, rho at 1 px would be about half of it (the noise's half of the power does not
    # correlate beyond 0); without it, close to the clean template's
    np.testing.assert_allclose(rho_noisy[1:], rho_clean[1:], atol=0.1)
    period = SignalAutocorrelation(Template(_lattice().astype(np.float32), None))(np.array([[8.0, 0.0], [0.0, 8.0]]))
    assert (period > 0.95).all()  # a lattice matches itself one period away


def _rotated_lattice(shape=(64, 96), period=16.0, angle_deg=37.0) -> tuple[np.ndarray, np.ndarray]:
    """A square lattice turned by ``angle_deg`` (it does not tile the frame) and one lattice vector (dy, dx)."""
    a = np.deg2rad(angle_deg)
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(float)
    u = np.cos(a) * xx + np.sin(a) * yy
    v = -np.sin(a) * xx + np.cos(a) * yy
    img = np.exp(2.0 * (np.cos(2 * np.pi * u / period) + np.cos(2 * np.pi * v / period)))  # spots
    return img - img.mean(), np.array([np.sin(a), np.cos(a)]) * period


def test_signal_autocorrelation_is_over_the_overlap():
    """A small template of a lattice that does not tile it: one period away it matches itself over the
    overlap (about 1), though its cyclic autocorrelation (the edges wrapped round) is far lower."""
    img, vector = _rotated_lattice()
    rho = SignalAutocorrelation(Template(img.astype(np.float32), None))
    assert rho(vector)[0] > 0.95 and rho(2 * vector)[0] > 0.9
    assert rho(vector / 2)[0] < 0.2
    power = np.abs(np.fft.fft2(img)) ** 2
    cyclic = np.real(np.fft.ifft2(power))
    at = np.rint(vector).astype(int)
    assert cyclic[at[0], at[1]] / cyclic[0, 0] < 0.9
    # with a mask: the overlap is the valid pixels'
    valid = np.zeros(img.shape, bool)
    valid[4:-4, 6:-6] = True
    masked = np.where(valid, img, 0.0).astype(np.float32)
    assert SignalAutocorrelation(Template(masked, valid))(vector)[0] > 0.95


def test_a_frame_a_period_off_is_not_vouched_for_through_the_jitter():
    """Neighbours jitter 1.5 px, so the jump from their median misses the lattice vector by about that much:
    the match near the vector still explains the frame's quality, and the frame stays flagged."""
    img, vector = _rotated_lattice()
    rho = SignalAutocorrelation(Template(img.astype(np.float32), None))
    rng = np.random.default_rng(2)
    n = 45
    shifts = rng.normal(0, 0.2, (n, 2))
    quality = 0.7 + rng.normal(0, 0.005, n)
    j = 21
    shifts[j + 1] = (2.5, -2.5)  # one neighbour jittered 3.5 px
    shifts[j] = shifts[j + 1] + vector
    for side in (shifts[j - 3 : j], shifts[j + 1 : j + 4]):  # from either side's median alone: vouched
        assert rho(shifts[j] - np.median(side, axis=0))[0] < 0.8
    trusted = np.ones(n, bool)
    far = np.zeros(n, bool)
    far[j] = True
    assert not vouched_jumps(far, shifts, quality, trusted, rho)[j]


def _jittered(n=60, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=float)
    shifts = np.stack([0.05 * t, -0.03 * t], 1) + rng.normal(0, 0.1, (n, 2))
    quality = 0.9 + rng.normal(0, 0.005, n)
    return shifts, quality


@pytest.mark.parametrize(
    "case, vouched",
    [
        ("moved, matches as well as its neighbours", True),
        ("matches worse than its neighbours (another scene)", False),
        ("one lattice period off", False),
        ("quality too noisy to tell", False),
    ],
)
def test_which_jumps_the_match_vouches_for(case, vouched):
    shifts, quality = _jittered()
    j = 30
    shifts[j] += (2.0, 0.0)
    template = Template(_blobs().astype(np.float32), None)
    if case.startswith("matches worse"):
        quality[j] = 0.7
    elif case.startswith("one lattice"):
        shifts[j] += (6.0, 0.0)  # 8 px in all
        template = Template(_lattice().astype(np.float32), None)
    elif case.startswith("quality too noisy"):
        quality = 0.2 + np.random.default_rng(3).normal(0, 0.05, len(quality))
    trusted = np.ones(len(shifts), bool)
    dist, limit = jumps(shifts, trusted)
    far = (dist > limit) & np.isfinite(dist)
    assert far[j] and far.sum() == 1
    keep = vouched_jumps(far, shifts, quality, trusted, SignalAutocorrelation(template))
    assert bool(keep[j]) is vouched and keep.sum() == int(vouched)
    ok, reason = judge(
        shifts, quality, np.zeros(len(shifts), np.int64), np.full(len(shifts), 5000.0),
        in_template=np.zeros(len(shifts), bool), usable_template=0, bound=(40.0, 40.0),
        autocorrelation=SignalAutocorrelation(template),
    )
    assert bool(ok[j]) is vouched and (reason[j] == "") is vouched
    ok_plain, reason_plain = judge(
        shifts, quality, np.zeros(len(shifts), np.int64), np.full(len(shifts), 5000.0),
        in_template=np.zeros(len(shifts), bool), usable_template=0, bound=(40.0, 40.0),
    )
    assert not ok_plain[j] and reason_plain[j].startswith("jumps ")  # without the evidence: flagged


def test_no_jump_is_vouched_for_in_a_stack_where_many_frames_failed():
    """The moved frame the match vouches for, in a stack where more than a fifth of the frames failed already:
    the neighbours may be wrong too, so it stays flagged."""
    shifts, quality = _jittered()
    j = 30
    shifts[j] += (2.0, 0.0)
    rho = SignalAutocorrelation(Template(_blobs().astype(np.float32), None))
    far = np.zeros(len(shifts), bool)
    far[j] = True
    trusted = np.ones(len(shifts), bool)
    assert vouched_jumps(far, shifts, quality, trusted, rho)[j]
    failed = int(np.ceil((1 - MIN_TRUSTED_FRACTION) * len(shifts))) + 1
    trusted[np.r_[0 : failed // 2, len(shifts) - (failed - failed // 2) : len(shifts)]] = False
    assert trusted.mean() < MIN_TRUSTED_FRACTION and trusted[j - 3 : j + 4].all()
    assert not vouched_jumps(far, shifts, quality, trusted, rho)[j]


def test_a_frame_that_moved_is_kept_and_applied_as_estimated():
    """Beads jittering 0.15 px, one frame 2.5 px off the path (it moved): flagged before and interpolated
    2.5 px wrong; now ok, with its estimate."""
    n = 40
    rng = np.random.default_rng(4)
    shifts = np.stack([np.linspace(0, 3, n), np.linspace(0, -2, n)], 1) + rng.normal(0, 0.15, (n, 2))
    shifts[25] += (0.0, 2.5)
    stack, truth = make_stack("beads", n_frames=n, shape=(128, 128), motion=shifts_motion(shifts), snr=4, seed=6)
    ft = register_pyramid(stack)
    assert ft.ok.all(), ft.failure_summary()
    err = ft.with_center(truth.center).shifts - truth.shifts
    err -= np.median(err, axis=0)
    assert np.abs(err[25]).max() < 0.1
    applied, _ = ft.resolve_failed("interpolate")
    np.testing.assert_array_equal(applied.shifts, ft.shifts)
