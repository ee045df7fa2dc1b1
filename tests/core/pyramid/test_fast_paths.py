"""The pyramid's fast paths give the values of the plain ones: effective pixels
measured many frames at once, the jump test's vectorised windows, and the
template sums added in the estimating thread."""

from __future__ import annotations

import numpy as np
import pytest

from napari_stackalign.core.pyramid import _engine
from napari_stackalign.core.pyramid._engine import FramePreparer, Levels, PyramidEstimator, Template
from napari_stackalign.core.pyramid._stages import build_template, plan_pyramid
from napari_stackalign.core.pyramid._trust import JUMP_WINDOW, jumps
from napari_stackalign.synthetic import make_stack


def _smooth(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    return np.cumsum(np.cumsum(rng.normal(size=shape), axis=0), axis=1).astype(np.float32)


@pytest.mark.parametrize("shape", [(256, 256), (96, 64), (131, 200)])
def test_effective_pixels_many_equals_one_by_one(shape):
    rng = np.random.default_rng(3)
    levels = Levels(shape, (1 / 4, 1 / 2, 1))
    base = _smooth(rng, shape)
    plain = FramePreparer(shape, None, None, True, levels, 3)
    mask = np.ones(shape, bool)
    mask[10:30, 5:40] = False
    masked = FramePreparer(shape, None, mask, True, levels, 3)
    valid = np.ones(shape, bool)
    valid[:6] = False
    templates = [Template.from_prepared(plain(base)), Template(Template.from_prepared(plain(base)).image * valid, valid)]
    for template in templates:
        estimator = PyramidEstimator(template, levels, 0.5)
        # more frames than one batch; noise from far below to far above the signal; masked frames among them
        frames = [
            (masked if k % 5 == 0 else plain)(base + rng.normal(scale=s, size=shape).astype(np.float32))
            for k, s in enumerate(np.geomspace(0.01, 1e3, _engine.NEFF_BATCH + 7))
        ]
        one = np.array([estimator.effective_pixels(f.image, f, estimator.active[-1]) for f in frames])
        many = estimator.effective_pixels_many([f.image for f in frames], frames)
        assert np.all(np.isfinite(one))
        np.testing.assert_array_equal(many, one)


def test_estimate_measures_what_the_batch_measures():
    stack, _ = make_stack("texture", n_frames=6, shape=(96, 96), drift=3, snr=2.0, seed=4)
    job = plan_pyramid(stack.shape, stack.dtype)
    state = build_template(stack, job)
    estimator, preparer = job.estimator(state.template), job.preparer()
    frames = [preparer(f) for f in stack]
    whole = [estimator.estimate(f) for f in frames]
    deferred = [estimator.estimate_deferred(f) for f in frames]
    batch = estimator.effective_pixels_many([d[1] for d in deferred], frames)
    for est, (est_deferred, _), neff in zip(whole, deferred, batch):
        assert est_deferred.shift == est.shift and est_deferred.quality == est.quality
        assert np.isnan(est_deferred.neff) and neff == est.neff


def _jumps_loop(shifts: np.ndarray, trusted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The jump test frame by frame (the implementation before it was vectorised)."""
    n = len(shifts)
    idx = np.flatnonzero(trusted)
    dist = np.full(n, np.inf)
    one_sided = np.zeros(n, bool)
    if idx.size < 2:
        return dist, np.full(n, np.inf)
    pts = shifts[idx]
    for t in range(n):
        pos = np.searchsorted(idx, t)
        before = pts[max(pos - JUMP_WINDOW, 0) : pos]
        after_start = pos + 1 if pos < idx.size and idx[pos] == t else pos
        after = pts[after_start : after_start + JUMP_WINDOW]
        best = np.inf
        for side, nearest in ((before, -1), (after, 0)):
            if len(side):
                centre = np.median(side, axis=0) if len(before) and len(after) else side[nearest]
                best = min(best, float(np.linalg.norm(shifts[t] - centre)))
        dist[t] = best
        one_sided[t] = not (len(before) and len(after))
    finite = dist[trusted & np.isfinite(dist) & ~one_sided]
    typical = float(np.median(finite)) if finite.size else 0.0
    limit = max(1.0, 4.0 * typical)
    return dist, np.where(one_sided, 1.5 * limit, limit)


@pytest.mark.parametrize("seed", range(6))
def test_vectorised_jumps_equal_the_frame_by_frame_test(seed):
    rng = np.random.default_rng(seed)
    for n, dims, share in ((1, 2, 1.0), (2, 2, 1.0), (5, 3, 0.6), (40, 2, 0.8), (200, 2, 0.3), (97, 3, 0.95)):
        shifts = np.cumsum(rng.normal(size=(n, dims)), axis=0)
        shifts[rng.random(n) < 0.05] += 20.0  # jumps
        trusted = rng.random(n) < share
        dist, limit = jumps(shifts, trusted)
        ref_dist, ref_limit = _jumps_loop(shifts, trusted)
        np.testing.assert_array_equal(dist, ref_dist)
        np.testing.assert_array_equal(limit, ref_limit)


def test_template_added_inline_equals_added_in_the_background(monkeypatch):
    stack, _ = make_stack("beads", n_frames=30, shape=(128, 128), drift=6, snr=3.0, seed=2)
    job = plan_pyramid(stack.shape, stack.dtype)
    inline = build_template(stack, job)
    monkeypatch.setattr(_engine, "INLINE_ADD_PIXELS", 0)  # every frame through the background thread
    background = build_template(stack, job)
    np.testing.assert_array_equal(inline.template.image, background.template.image)
    np.testing.assert_array_equal(inline.init, background.init)
