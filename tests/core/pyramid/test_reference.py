"""Template building that does not collapse when the drift exceeds the features."""

from __future__ import annotations

import numpy as np
import pytest

import napari_stackalign.core.pyramid._reference as refm
from napari_stackalign.core.pyramid import PyramidOptions
from napari_stackalign.core.pyramid._reference import template_levels
from napari_stackalign.core.pyramid._register import register_pyramid
from napari_stackalign.core.pyramid._stages import build_template, plan_pyramid
from napari_stackalign.synthetic import alignment_error, make_stack


@pytest.mark.parametrize("kind", ["beads", "texture"])
@pytest.mark.parametrize("n_frames", [5, 20])
def test_forty_pixel_drift_does_not_collapse(kind, n_frames):
    # num_frames (100) covers the whole stack and the drift (40 px) is far
    # larger than the features: the reference tool's averaged template is a
    # blur here and its shifts collapse towards zero
    stack, truth = make_stack(kind, n_frames=n_frames, shape=(128, 128), drift=40, jitter=0.3, snr=5, seed=3)
    est = register_pyramid(stack, num_frames=100)
    err = alignment_error(est, truth)
    assert err["rms"] < 0.05, err
    assert err["frac_over_1px"] == 0
    np.testing.assert_allclose(np.ptp(est.shifts, axis=0), np.ptp(truth.shifts, axis=0), atol=0.1)
    assert np.ptp(truth.shifts, axis=0).max() > 39.5


def test_the_naive_average_really_collapses_on_that_stack():
    # the same data registered to the plain mean of the frames (what the
    # reference tool does): shifts shrink, so the test above is meaningful
    stack, truth = make_stack("beads", n_frames=5, shape=(128, 128), drift=40, jitter=0.3, snr=5, seed=3)
    naive = register_pyramid(stack, reference=stack.mean(axis=0))
    err = alignment_error(naive, truth)
    assert err["rms"] > 3 and err["frac_over_1px"] > 0.5, err
    assert np.ptp(naive.shifts, axis=0).min() < np.ptp(truth.shifts, axis=0).min() - 3


def test_template_is_sharp_and_in_the_frames_coordinates():
    from napari_stackalign.core.pyramid._engine import FramePreparer, Levels
    from napari_stackalign.core.pyramid._reference import build_reference
    from napari_stackalign.core.workers import thread_pool

    stack, truth = make_stack("beads", n_frames=16, shape=(96, 96), drift=25, snr=4, seed=5, n_beads=30)
    levels = Levels((96, 96), (1 / 4, 1 / 2, 1))
    prep = FramePreparer((96, 96), None, None, True, levels, 3)
    with thread_pool(2) as pool:
        ref = build_reference(stack, 16, prep, levels, 0.5, kernel="lagrange6", fit_gain=True, pool=pool, chunk_size=5)
    assert 1 <= ref.passes <= 3
    # the template frames' shifts (s = -correction) follow the truth
    err = -ref.shifts - truth.shifts
    err -= err.mean(axis=0)
    assert np.abs(err).max() < 0.1
    # sharper than the naive mean: the brightest spots keep their peak
    naive = stack.mean(axis=0)
    naive = (naive - naive.mean()) / naive.std()
    t = ref.template.image
    assert t.max() > 1.5 * naive.max()


def test_single_template_frame():
    stack, truth = make_stack("texture", n_frames=6, shape=(64, 64), drift=6, snr=5, seed=6)
    est = register_pyramid(stack, num_frames=1)
    # the template is frame 0 itself, so frame 0 stays in place (to the
    # Gauss-Newton tolerance: the anchor is its template-building position, 0)
    np.testing.assert_allclose(est.shifts[0], 0, atol=1e-6)
    assert alignment_error(est, truth)["rms"] < 0.05


def test_reference_skips_unusable_seed():
    stack, truth = make_stack("texture", n_frames=9, shape=(64, 64), drift=6, snr=5, seed=7)
    stack = stack.copy()
    stack[4] = 0  # the central frame is blank: the next usable one seeds the template
    est = register_pyramid(stack)
    assert not est.ok[4]
    good = np.arange(9) != 4
    assert alignment_error(est[good], truth[good])["rms"] < 0.05


@pytest.mark.parametrize("iterate", [1, 2])
def test_template_frames_stay_in_place_on_average(iterate):
    """The anchor (fixed when the template is built) leaves the template
    frames where they are on average, to the noise of their mean."""
    stack, truth = make_stack("texture", n_frames=30, shape=(96, 96), drift=6, snr=1.5, seed=8)
    est = register_pyramid(stack, num_frames=12, iterate=iterate)
    mean_template_shift = est.shifts[:12].mean(axis=0)
    assert np.all(np.abs(mean_template_shift) < 0.02), mean_template_shift
    assert alignment_error(est, truth)["rms"] < 0.05


def _lattice_whose_seed_pass_hops():
    """A drifting lattice whose seed pass puts one frame a lattice period off
    (registered to a single noisy frame, 4 frames apart); the pass over all
    frames gets it right."""
    return make_stack("lattice", n_frames=100, shape=(96, 96), drift=3, jitter=0.3, snr=1.5, dtype=np.uint16, seed=1)


def test_disputed_frames_confirmed_against_the_new_template_skip_the_repass(monkeypatch):
    stack, truth = _lattice_whose_seed_pass_hops()
    est = register_pyramid(stack)
    assert est.params["reference_passes"] == 2
    assert alignment_error(est, truth)["rms"] < 0.03
    # without the check, the disagreement makes a third pass, for the same result
    monkeypatch.setattr(refm, "VERIFY_AT_MOST", 0)
    again = register_pyramid(stack)
    assert again.params["reference_passes"] == 3
    np.testing.assert_allclose(again.shifts, est.shifts, atol=0.02)


def test_unconfirmed_frames_make_a_third_pass(monkeypatch):
    stack, truth = _lattice_whose_seed_pass_hops()
    monkeypatch.setattr(refm, "_confirmed", lambda *args: False)
    est = register_pyramid(stack)
    assert est.params["reference_passes"] == 3
    assert alignment_error(est, truth)["rms"] < 0.03


def test_confirmation_checks_where_the_frame_matches():
    stack, _ = make_stack("texture", n_frames=12, shape=(96, 96), drift=8, snr=3, seed=4)
    job = plan_pyramid(stack.shape, stack.dtype, PyramidOptions(num_frames=12))
    opts = job.options
    state = build_template(stack, job)
    preparer = job.preparer()
    upto = template_levels(len(opts.downsample_rates))
    args = (preparer, job.levels, state.template, opts.max_movement, opts.kernel, opts.normalize, upto)
    frames = np.arange(3, 7)
    assert refm._confirmed(stack, frames, state.init, *args)
    wrong = state.init.copy()
    wrong[5] += (0.0, 3.0)
    assert not refm._confirmed(stack, frames, wrong, *args)
