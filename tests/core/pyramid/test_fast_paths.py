"""The pyramid's fast paths give the values of the plain ones: the effective
pixels (measured inline or in the background), the jump test's vectorised
windows, the template sums added in the estimating thread, and the lattice
resolver's correlations without warping."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from napari_stackalign.core.pyramid import _engine
from napari_stackalign.core.pyramid._engine import FramePreparer, Levels, PyramidEstimator, Template
from napari_stackalign.core.pyramid._periodic import _bilinear_correlations
from napari_stackalign.core.pyramid._stages import build_template, estimate_range, plan_pyramid
from napari_stackalign.core.pyramid._trust import JUMP_WINDOW, jumps
from napari_stackalign.synthetic import make_stack


def _smooth(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    return np.cumsum(np.cumsum(rng.normal(size=shape), axis=0), axis=1).astype(np.float32)


@pytest.mark.parametrize("shape", [(256, 256), (96, 64), (131, 200)])
def test_effective_pixels_as_before(shape):
    """The ring sums by one sparse product and OpenCV's logarithm give what
    numpy's bincount and logarithm gave (the implementation before)."""
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
        last = estimator.active[-1]
        t = estimator._lk_image(template.image, template.valid)
        spec = np.abs(np.fft.rfft2(t)) ** 2
        spec[0, 0] = 0
        fy = np.abs(np.fft.fftfreq(shape[0]))[:, None]
        fx = np.fft.rfftfreq(shape[1])[None, :]
        rings = np.floor(np.hypot(fy, fx) * min(shape)).astype(np.int64).ravel()
        counts = np.bincount(rings)
        ring_power = np.bincount(rings, weights=spec.ravel(), minlength=counts.size)
        for k, scale in enumerate(np.geomspace(0.01, 1e3, 12)):
            frame = (masked if k % 3 == 0 else plain)(base + rng.normal(scale=scale, size=shape).astype(np.float32))
            img = estimator._compared(frame.image, frame, last).astype(np.float64)
            logs = np.bincount(rings, weights=np.log(np.maximum(np.abs(np.fft.rfft2(img)) ** 2, 1e-30)).ravel())
            level = np.exp(logs / np.maximum(counts, 1) + np.euler_gamma)
            var_f = float(level @ counts) - float(level[rings[0]])
            expected = float(spec.sum()) * var_f / float(level @ ring_power)
            assert estimator.effective_pixels(frame.image, frame, last) == pytest.approx(expected, rel=2e-5)


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
        # equal to rounding: the vectorised norm and the loop's np.linalg.norm may round the last bit
        # differently on another CPU (SIMD paths)
        np.testing.assert_allclose(dist, ref_dist, rtol=1e-12, atol=0)
        np.testing.assert_allclose(limit, ref_limit, rtol=1e-12, atol=0)


def test_template_added_inline_equals_added_in_the_background(monkeypatch):
    stack, _ = make_stack("beads", n_frames=30, shape=(128, 128), drift=6, snr=3.0, seed=2)
    job = plan_pyramid(stack.shape, stack.dtype)
    inline = build_template(stack, job)
    monkeypatch.setattr(_engine, "INLINE_ADD_PIXELS", 0)  # every frame through the background thread
    background = build_template(stack, job)
    np.testing.assert_array_equal(inline.template.image, background.template.image)
    np.testing.assert_array_equal(inline.init, background.init)


def test_compared_image_is_zero_mean_over_the_pixels_compared():
    """The masked mean by one dot product and the in-place passes give numpy's where (the code before)."""
    rng = np.random.default_rng(5)
    shape = (96, 80)
    levels = Levels(shape, (1 / 2, 1))
    base = _smooth(rng, shape) + 50.0
    valid = np.ones(shape, bool)
    valid[:7] = False
    valid[:, -5:] = False
    mask = np.ones(shape, bool)
    mask[20:40, 10:30] = False
    template = Template(Template.from_prepared(FramePreparer(shape, None, None, True, levels, 3)(base)).image * valid, valid)
    estimator = PyramidEstimator(template, levels, 0.5)
    last = estimator.active[-1]
    for frame_mask in (None, mask):
        frame = FramePreparer(shape, None, frame_mask, True, levels, 3)(base + rng.normal(size=shape).astype(np.float32))
        compared = valid.copy()
        if frame.weights is not None:
            compared &= frame.weights.eroded(last) > 0
        img = frame.image.astype(np.float64)
        expected = np.where(compared, img - img[compared].mean(), 0.0)
        got = estimator._compared(frame.image, frame, last)
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * np.abs(img).max())


def test_effective_pixels_measured_in_the_background_equal_those_measured_inline(monkeypatch):
    stack, _ = make_stack("beads", n_frames=24, shape=(128, 128), drift=6, snr=3.0, seed=4)
    stack[5] = 0  # an unusable frame: nothing to measure
    job = plan_pyramid(stack.shape, stack.dtype)
    state = build_template(stack, job)
    monkeypatch.setattr(_engine, "BACKGROUND_NEFF_PIXELS", 10**9)
    inline = estimate_range(stack, job, state, 0, job.n_frames)
    monkeypatch.setattr(_engine, "BACKGROUND_NEFF_PIXELS", 0)
    background = estimate_range(stack, job, state, 0, job.n_frames)
    assert np.isfinite(inline.neff).sum() == job.n_frames - 1 and np.isnan(inline.neff[5])
    np.testing.assert_array_equal(background.neff, inline.neff)
    np.testing.assert_array_equal(background.shifts, inline.shifts)
    np.testing.assert_array_equal(background.quality, inline.quality)


def _warped_correlations(low: np.ndarray, t: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """Each corner's correlation by warping (the resolver's code before)."""
    h, w = t.shape
    out = []
    for cy, cx in corners:
        m = np.array([[1.0, 0.0, cx], [0.0, 1.0, cy]])
        moved = cv2.warpAffine(
            low, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE
        ).astype(np.float64)
        moved -= moved.mean()
        out.append(float((moved * t).sum() / np.sqrt((moved * moved).sum() * (t * t).sum())))
    return np.array(out)


@pytest.mark.parametrize("seed", range(4))
def test_correlations_without_warping_equal_the_warped_ones(seed):
    rng = np.random.default_rng(seed)
    big = (int(rng.integers(40, 90)), int(rng.integers(40, 90)))
    low = (cv2.GaussianBlur(rng.normal(size=big).astype(np.float32), (0, 0), 2.0) + 3.0).astype(np.float32)
    size = (int(rng.integers(10, big[0] - 4)), int(rng.integers(10, big[1] - 4)))
    t = cv2.GaussianBlur(rng.normal(size=size), (0, 0), 2.0)
    t -= t.mean()
    span = np.array([big[0] - size[0], big[1] - size[1]], float)
    corners = np.concatenate(
        [
            rng.uniform(0, 1, size=(30, 2)) * span,  # inside
            np.array([[0.0, 0.0], span, [span[0], 0.0], [0.0, span[1]], [span[0] - 0.25, span[1] - 0.5]]),  # edges
            np.array([[-0.5, 1.0], [1.0, span[1] + 0.25], [span[0] + 2.0, -3.0]]),  # samples leave the image
        ]
    )
    np.testing.assert_allclose(_bilinear_correlations(low, t, corners), _warped_correlations(low, t, corners), atol=1e-6)
