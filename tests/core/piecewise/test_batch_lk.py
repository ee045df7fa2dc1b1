"""BatchLK refines every patch of a frame together, with the answers of LKTemplate.refine one patch at a time."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from napari_stackalign.core.piecewise._batch_lk import BatchLK
from napari_stackalign.core.pyramid._lucas_kanade import LKTemplate

PATCH = 24


def _scene(seed: int) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]:
    """A smooth random frame, a sub-pixel shifted copy of it, and the patch corners."""
    rng = np.random.default_rng(seed)
    base = ndimage.gaussian_filter(rng.normal(size=(96, 96)), 2.0).astype(np.float32)
    moved = ndimage.shift(base, (0.37, -0.61), order=3, mode="nearest").astype(np.float32)
    moved += rng.normal(scale=0.01, size=moved.shape).astype(np.float32)
    corners = [(y, x) for y in (4, 36, 68) for x in (4, 36, 68)]
    return base, moved, corners


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_batch_refinement_matches_one_patch_at_a_time(seed, weighted):
    base, moved, corners = _scene(seed)
    templates = [LKTemplate(base[y : y + PATCH, x : x + PATCH]) for y, x in corners]
    starts = np.array([(y - 0.3, x + 0.4) for y, x in corners], float)  # patch coordinates into the frame
    weights = None
    if weighted:
        weights = np.ones(moved.shape, np.float32)
        weights[:20, :30] = 0.0  # the first patch partly masked
    batch = BatchLK(templates).refine(moved, starts, weights=weights)
    for k, template in enumerate(templates):
        one = template.refine(moved, tuple(starts[k]), weights=weights)
        assert bool(batch.failed[k]) == one.failed
        if one.failed:
            continue
        np.testing.assert_allclose(batch.shift[k], one.shift, atol=1e-4)
        assert bool(batch.converged[k]) == one.converged
        np.testing.assert_allclose(batch.ncc[k], one.ncc, atol=1e-4)
        if not weighted or k > 0:
            np.testing.assert_allclose(batch.shift[k], np.add(corners[k], (0.37, -0.61)), atol=0.05)


def test_an_empty_batch_is_refused():
    with pytest.raises(ValueError, match="at least one template"):
        BatchLK([])
