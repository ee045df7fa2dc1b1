"""The chained modes' second path to every frame: a wrong link that passes the
single-link tests (significant, no flag) is caught by a link to an earlier
frame, decided by a third one, or flagged with its reason and not chained on."""

from __future__ import annotations

import numpy as np
import pytest

from napari_stackalign.core.pyramid import _chain, register_pyramid
from napari_stackalign.core.pyramid._chain_check import MIN_TOLERANCE, link_sigma, tolerance
from napari_stackalign.core.pyramid._engine import Estimate
from napari_stackalign.synthetic import make_stack


@pytest.fixture(scope="module")
def drifting():
    return make_stack("beads", n_frames=24, shape=(80, 80), drift=6, jitter=0.3, snr=6, seed=4)


def _errors(ft, st) -> np.ndarray:
    d = np.stack([ft.dy - st.truth.dy, ft.dx - st.truth.dx], axis=1)
    d -= np.median(d[ft.ok], axis=0)
    return np.hypot(d[:, 0], d[:, 1])


def _inject(monkeypatch, wrong: dict[tuple[int, int], tuple[float, float]], passed: list) -> None:
    """Links (anchor frame, frame) -> an added error (px); the wrong links keep their quality."""
    real = _chain._link

    def link(anchor, t, prepared, prior):
        est = real(anchor, t, prepared, prior)
        extra = wrong.get((anchor.frame, t))
        if extra is None:
            return est
        bad = Estimate((est.shift[0] + extra[0], est.shift[1] + extra[1]), est.quality, est.flags, est.neff)
        passed.append(_chain._trusted(bad))
        return bad

    monkeypatch.setattr(_chain, "_link", link)


def test_a_clean_chain_keeps_every_frame_and_checks_every_link(drifting):
    for kwargs in ({"reference_mode": "previous"}, {"reference_mode": "running", "running_frames": 4}):
        ft = register_pyramid(drifting.stack, **kwargs)
        assert ft.ok.all(), (kwargs, ft.failure_summary())
        assert ft.params["links_disagree"] == 0 and ft.params["links_resolved"] == 0
        # every frame from the third on gets a second path
        assert ft.params["check_links"] + ft.params["keyframe_links"] >= len(ft) - 2
        assert _errors(ft, drifting).max() < 0.3


def test_a_wrong_link_to_the_previous_frame_is_outvoted(drifting, monkeypatch):
    passed: list = []
    _inject(monkeypatch, {(11, 12): (6.0, 0.0)}, passed)
    ft = register_pyramid(drifting.stack, reference_mode="previous", keyframe_every=1)
    assert passed == [True]  # the wrong link passes the single-link tests
    assert ft.params["links_corrected"] == 1
    assert ft.ok.all(), ft.failure_summary()
    # frame 12 took the other path, and no later frame inherits the error
    assert _errors(ft, drifting).max() < 0.3


def test_paths_that_disagree_without_a_decision_flag_the_frame(drifting, monkeypatch):
    passed: list = []
    _inject(monkeypatch, {(10, 12): (6.0, 0.0), (9, 12): (0.0, -6.0)}, passed)
    ft = register_pyramid(drifting.stack, reference_mode="previous", keyframe_every=1)
    assert passed == [True, True]
    assert list(np.flatnonzero(~ft.ok)) == [12], ft.failure_summary()
    assert ft.reason[12].startswith("chain links disagree by 6.0 px (limit 1 px): through frame 11")
    assert "does not decide" in ft.reason[12]
    assert ft.params["links_disagree"] == 1
    # not chained on: frame 13 is registered across it, and stays right
    assert ft.params["gap_links"] == 1
    assert _errors(ft, drifting)[ft.ok].max() < 0.3


def test_an_unconfirmed_first_link_is_dropped_with_its_frame(drifting, monkeypatch):
    passed: list = []
    _inject(monkeypatch, {(0, 1): (0.0, 5.0)}, passed)
    ft = register_pyramid(drifting.stack, reference_mode="previous", keyframe_every=1)
    assert passed == [True]
    # frame 2's two paths (through 1, through 0) disagree and nothing decides:
    # frame 1 (its link was never checked) and frame 2 are flagged
    assert list(np.flatnonzero(~ft.ok)) == [1, 2], ft.failure_summary()
    assert "its link was not confirmed" in ft.reason[1] and "chain links disagree" in ft.reason[2]
    assert _errors(ft, drifting)[ft.ok].max() < 0.3


def test_a_wrong_keyframe_link_is_caught_by_the_previous_frame(drifting, monkeypatch):
    passed: list = []
    # default keyframes every 5 frames: frame 10 is linked to keyframe 5 (and to frame 9)
    _inject(monkeypatch, {(5, 10): (-7.0, 3.0)}, passed)
    ft = register_pyramid(drifting.stack, reference_mode="previous")
    assert passed == [True]
    assert ft.ok.all(), ft.failure_summary()
    assert ft.params["links_corrected"] == 1
    assert _errors(ft, drifting).max() < 0.3


def test_the_running_template_is_checked_too(drifting, monkeypatch):
    passed: list = []
    _inject(monkeypatch, {(15, 16): (0.0, 8.0)}, passed)
    ft = register_pyramid(drifting.stack, reference_mode="running", running_frames=3)
    assert passed == [True]
    assert ft.params["links_corrected"] == 1 and ft.ok.all(), ft.failure_summary()
    assert _errors(ft, drifting).max() < 0.3


def test_the_tolerance_follows_the_links_uncertainty():
    g = np.array([0.5, 0.5])
    sharp = link_sigma(Estimate((0.0, 0.0), 0.9, 0, 2000.0), g)
    weak = link_sigma(Estimate((0.0, 0.0), 0.2, 0, 200.0), g)
    assert 0 < sharp < weak
    assert link_sigma(Estimate((0.0, 0.0), float("nan"), 0, 100.0), g) == np.inf
    assert tolerance(sharp, sharp) == MIN_TOLERANCE
    assert tolerance(weak, weak) > MIN_TOLERANCE
