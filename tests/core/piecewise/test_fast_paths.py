"""The piecewise step's vectorised shortcuts give the answers of the plain computations they replace."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy import ndimage

import napari_stackalign as sa
from napari_stackalign.core.piecewise._grid import patch_grid
from napari_stackalign.core.piecewise._patches import PatchTemplates, _vertices
from napari_stackalign.core.piecewise._register import _template
from napari_stackalign.piecewise_transforms import PiecewiseTransforms


def _image(seed: int, shape=(160, 176)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return ndimage.gaussian_filter(rng.normal(size=shape), 2.0).astype(np.float32) * 10 + 50


def _plain_effective_pixels(patches: PatchTemplates, crops: np.ndarray, used: np.ndarray) -> np.ndarray:
    """Bartlett's count with the frame patch's isotropic spectrum expanded back to every frequency."""
    rings, order, starts = patches._rings, patches._order, patches._starts
    counts = np.maximum(np.bincount(rings), 1)
    crops = crops.astype(np.float64) - crops.mean(axis=(1, 2), keepdims=True)
    power = np.abs(np.fft.rfft2(crops)) ** 2
    logs = np.log(np.maximum(power.reshape(len(crops), -1)[:, order], 1e-30))
    level = np.exp(np.add.reduceat(logs, starts, axis=1) / counts + np.euler_gamma)
    spec_n = level[:, rings]
    spec_n[:, 0] = 0
    out = []
    for k, j in enumerate(used):
        t = patches.patches[j][5].ravel()
        out.append(t.sum() * spec_n[k].sum() / (t * spec_n[k]).sum())
    return np.array(out)


@pytest.mark.parametrize("size", [64, 40])
def test_effective_pixels_from_ring_sums_equal_the_expanded_spectrum(size):
    template = _image(0)
    patches = PatchTemplates(template, patch_grid(template.shape, size, size // 2), 6, "lagrange6")
    used = np.flatnonzero(patches._row >= 0)
    rng = np.random.default_rng(1)
    frame = _image(2) + rng.normal(scale=3, size=template.shape).astype(np.float32)
    crops = np.stack([frame[r : r + size, c : c + size] for r in patches.grid.row_starts for c in patches.grid.col_starts])
    got = patches._effective_pixels(crops[used].copy(), used)
    np.testing.assert_allclose(got, _plain_effective_pixels(patches, crops[used], used), rtol=1e-4)
    assert np.all(got > 3)


def _plain_vertex(values: np.ndarray, i: int) -> float:
    if i <= 0 or i >= values.size - 1:
        return 0.0
    left, centre, right = float(values[i - 1]), float(values[i]), float(values[i + 1])
    den = left - 2 * centre + right
    if not den < 0:
        return 0.0
    return min(max(0.5 * (left - right) / den, -0.5), 0.5)


@pytest.mark.parametrize("length", [1, 2, 3, 7, 13])
def test_vertices_are_the_parabola_through_each_peak(length):
    rng = np.random.default_rng(length)
    values = rng.normal(size=(200, length)).astype(np.float32)
    values[:20] = 0.5  # flat rows: no curvature
    values[20:40, :] = np.arange(length)  # a peak on the end
    peaks = values.argmax(axis=1)
    peaks[40:60] = rng.integers(0, length, 20)  # not the maximum: a parabola opening upwards may follow
    want = [_plain_vertex(v, int(p)) for v, p in zip(values, peaks)]
    np.testing.assert_array_equal(_vertices(values, peaks), want)


def _plain_search(patches: PatchTemplates, frame: np.ndarray, rigid_shift) -> dict[int, tuple]:
    """The whole-pixel search one patch at a time (cv2.matchTemplate per patch, as before it was batched)."""
    sy, sx = patches.size
    h, w = frame.shape
    k = patches.search
    step = 2 if patches.coarse else 1
    out = {}
    for j in np.flatnonzero(patches._row >= 0).tolist():
        r0, c0, _, tpl, tpl_full, _ = patches.patches[j]
        iy0, ix0 = round(r0 - rigid_shift[0]), round(c0 - rigid_shift[1])
        a0, a1 = max(0, k - iy0), min(sy, h - k - iy0)
        b0, b1 = max(0, k - ix0), min(sx, w - k - ix0)
        if a1 - a0 < max(16, 0.5 * sy) or b1 - b0 < max(16, 0.5 * sx):
            continue
        window = frame[iy0 + a0 - k : iy0 + a1 + k, ix0 + b0 - k : ix0 + b1 + k]
        pattern = tpl_full[a0:a1, b0:b1] if (a0, a1, b0, b1) != (0, sy, 0, sx) else None
        if pattern is not None:
            pattern = cv2.pyrDown(pattern) if patches.coarse else np.ascontiguousarray(pattern)
        else:
            pattern = tpl
        window = cv2.pyrDown(window) if patches.coarse else window
        scores = cv2.matchTemplate(window, pattern, cv2.TM_CCOEFF_NORMED)
        py, px = np.unravel_index(int(np.argmax(scores)), scores.shape)
        edge = py in (0, scores.shape[0] - 1) or px in (0, scores.shape[1] - 1)
        out[j] = (
            iy0 - k + step * (py + _plain_vertex(scores[:, px], py)),
            ix0 - k + step * (px + _plain_vertex(scores[py, :], px)),
            edge,
        )
    return out


@pytest.mark.parametrize("size", [64, 24])
@pytest.mark.parametrize("rigid_shift", [(0.0, 0.0), (4.6, -7.3), (-9.5, 3.2)])
def test_batched_search_equals_one_patch_at_a_time(size, rigid_shift):
    template = _image(3)
    frame = ndimage.shift(template, (-rigid_shift[0] + 0.8, -rigid_shift[1] - 1.7), order=3, mode="nearest")
    frame = frame + np.random.default_rng(4).normal(scale=2, size=frame.shape).astype(np.float32)
    patches = PatchTemplates(template, patch_grid(template.shape, size, size // 2), 6, "lagrange6")
    want = _plain_search(patches, frame, rigid_shift)
    h, w = frame.shape
    k = patches.search
    iy0 = np.rint(patches._r0 - rigid_shift[0]).astype(np.int64)
    ix0 = np.rint(patches._c0 - rigid_shift[1]).astype(np.int64)
    a0, a1 = np.maximum(0, k - iy0), np.minimum(size, h - k - iy0)
    b0, b1 = np.maximum(0, k - ix0), np.minimum(size, w - k - ix0)
    rows = np.array([i for i, j in enumerate(patches._usable) if int(j) in want])
    assert rows.size == len(want) and rows.size > 0
    found, edge = patches._search(frame, rows, iy0, ix0, a0, a1, b0, b1)
    cropped = 0
    for i, (start, on_edge) in zip(rows, zip(found, edge)):
        j = int(patches._usable[i])
        np.testing.assert_allclose(start, want[j][:2], atol=1e-9)
        assert bool(on_edge) == want[j][2]
        cropped += (a0[i], a1[i], b0[i], b1[i]) != (0, size, 0, size)
    assert cropped > 0  # the patches on the frame's edge were searched with part of their pattern


def test_first_template_through_the_rigid_path_equals_the_field_path():
    rng = np.random.default_rng(5)
    stack = np.stack([ndimage.shift(_image(6), rng.uniform(-4, 4, 2), order=3) for _ in range(6)])
    rigid = sa.register_pyramid(stack)
    grid = patch_grid(stack.shape[1:], 64, 32)
    zero = PiecewiseTransforms(rigid, grid.rows, grid.cols, np.zeros((6, *grid.shape, 2)), stack.shape[1:])
    frames = np.arange(6)
    got = _template(stack, zero, frames, "1/1", None)
    plain = sa.apply_transforms(stack.astype(np.float32), zero, order=3, border="nan", failed="apply")
    valid = np.isfinite(plain)
    want = np.where(valid.any(axis=0), np.nansum(plain, axis=0) / np.maximum(valid.sum(axis=0), 1), np.nan)
    np.testing.assert_array_equal(np.isfinite(got), np.isfinite(want))
    np.testing.assert_allclose(got[np.isfinite(got)], want[np.isfinite(want)], atol=1e-4)


def test_later_passes_reuse_the_registered_frames_with_the_same_answer(monkeypatch):
    from napari_stackalign.core.piecewise import _register
    from napari_stackalign.synthetic_warp import deformed_stack

    stack = deformed_stack("neurons", n_frames=12, shape=(128, 128), snr=5, amplitude=2.0, seed=3).stack
    cached = sa.register_piecewise(stack, patch_size=48, patch_overlap=24)
    monkeypatch.setattr(_register, "REGISTERED_CACHE_BYTES", 0)  # each pass resamples every frame twice
    plain = sa.register_piecewise(stack, patch_size=48, patch_overlap=24)
    np.testing.assert_array_equal(cached.residual, plain.residual)
    np.testing.assert_array_equal(cached.patch_flag, plain.patch_flag)
    np.testing.assert_array_equal(cached.patch_quality, plain.patch_quality)


def test_a_start_on_the_pixel_grid_skips_the_filter_with_the_same_answer():
    from napari_stackalign.core.piecewise._batch_lk import BatchLK
    from napari_stackalign.core.pyramid._lucas_kanade import LKTemplate

    base = _image(7, (96, 96)) - 50  # zero mean, as in test_batch_lk (float32 sums)
    moved = ndimage.shift(base, (0.41, -0.66), order=3, mode="nearest").astype(np.float32)
    corners = [(y, x) for y in (4, 36, 68) for x in (4, 36, 68)]
    templates = [LKTemplate(base[y : y + 24, x : x + 24]) for y, x in corners]
    starts = np.array(corners, float)  # whole pixels: the first step reads the frame as it is
    batch = BatchLK(templates).refine(moved, starts)
    for k, template in enumerate(templates):
        one = template.refine(moved, tuple(starts[k]))
        np.testing.assert_allclose(batch.shift[k], one.shift, atol=1e-4)
        np.testing.assert_allclose(batch.ncc[k], one.ncc, atol=1e-4)
        np.testing.assert_allclose(batch.shift[k], np.add(corners[k], (0.41, -0.66)), atol=0.05)
