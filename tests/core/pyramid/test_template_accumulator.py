"""The template accumulator: registered frames averaged onto the template grid."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from napari_stackalign.core.pyramid._frames import FrameWeights, PreparedFrame
from napari_stackalign.core.pyramid._levels import Levels
from napari_stackalign.core.pyramid._template import TemplateAccumulator

SHAPE = (64, 72)


def _scene(seed: int = 0) -> np.ndarray:
    """A smooth random scene, large enough to cut shifted frames from."""
    rng = np.random.default_rng(seed)
    big = rng.standard_normal((SHAPE[0] + 40, SHAPE[1] + 40)).astype(np.float32)
    return cv2.GaussianBlur(big, (0, 0), 2.5)


def _frame_at(scene: np.ndarray, shift: tuple[int, int], gain: float = 1.0, offset: float = 0.0) -> np.ndarray:
    """``frame[p + shift] = gain * scene[p + 20] + offset`` (whole-pixel shifts)."""
    dy, dx = shift
    crop = scene[20 - dy : 20 - dy + SHAPE[0], 20 - dx : 20 - dx + SHAPE[1]]
    return np.ascontiguousarray(gain * crop + offset, dtype=np.float32)


def _standardized(image: np.ndarray) -> np.ndarray:
    return (image - image.mean()) / image.std()


@pytest.mark.parametrize("with_weights", [False, True], ids=["plain", "weights"])
def test_average_of_shifted_frames_is_the_scene(with_weights: bool) -> None:
    """Frames that are shifted, rescaled copies of one scene average back to
    the (standardised) scene where they overlap, with or without weights."""
    scene = _scene()
    truth = scene[20 : 20 + SHAPE[0], 20 : 20 + SHAPE[1]]
    acc = TemplateAccumulator(SHAPE, normalize=True, kernel="lagrange6")
    levels = Levels(SHAPE, (0.5, 1.0))
    for k, (shift, gain, offset) in enumerate([((0, 0), 1.0, 0.0), ((3, -2), 2.0, 5.0), ((-4, 5), 0.5, -3.0)]):
        image = _frame_at(scene, shift, gain, offset)
        weights = FrameWeights(np.ones(SHAPE, np.float32), levels, 3) if with_weights else None
        acc.add(acc.register(PreparedFrame(image, weights, True), shift))
        assert acc.count == k + 1
    template = acc.template()
    inside = (slice(8, -8), slice(8, -8))  # covered by every frame
    got = template.image[inside]
    want = _standardized(truth[inside])
    # each frame is standardised over its own overlap, so compare after
    # standardising the common interior
    np.testing.assert_allclose(_standardized(got), want, atol=2e-3)
    assert np.corrcoef(got.ravel(), want.ravel())[0, 1] > 0.9999


def test_plain_and_weighted_paths_agree() -> None:
    """All-ones weights give the template of the unweighted path (the
    unweighted path adds a frame's constant through a corner table)."""
    scene = _scene(1)
    levels = Levels(SHAPE, (0.5, 1.0))
    templates = []
    for with_weights in (False, True):
        acc = TemplateAccumulator(SHAPE, normalize=True, kernel="lagrange6")
        for shift in [(0.0, 0.0), (2.3, -1.6), (-3.7, 4.2)]:
            image = _frame_at(scene, (0, 0))
            weights = FrameWeights(np.ones(SHAPE, np.float32), levels, 3) if with_weights else None
            acc.add(acc.register(PreparedFrame(image, weights, True), shift))
        templates.append(acc.template())
    plain, weighted = templates
    np.testing.assert_array_equal(plain.valid, weighted.valid)
    np.testing.assert_allclose(plain.image, weighted.image, atol=1e-4)


def test_constant_region_is_not_added() -> None:
    acc = TemplateAccumulator(SHAPE, normalize=True, kernel="lagrange6")
    flat = np.full(SHAPE, 7.0, np.float32)
    assert acc.register(PreparedFrame(flat, None, True), (0.4, 0.3)) is None
    acc.add(None)
    assert acc.count == 0
    with pytest.raises(ValueError, match="no usable frame"):
        acc.template()


def test_coverage_marks_where_no_frame_reached() -> None:
    """A frame shifted by 10 px leaves a strip of the template uncovered."""
    scene = _scene(2)
    acc = TemplateAccumulator(SHAPE, normalize=True, kernel="lagrange6")
    acc.add(acc.register(PreparedFrame(_frame_at(scene, (0, 0)), None, True), (10.0, 0.0)))
    template = acc.template()
    assert template.valid is not None
    # template pixel p needs frame pixels p + 10 - 2 .. p + 10 + 3 (6-tap
    # kernel): rows 51.. and the 2 first and 3 last columns are not covered
    assert not template.valid[51:].any()
    assert not template.valid[:, :2].any() and not template.valid[:, -3:].any()
    assert template.valid[:51, 2:-3].all()
    assert np.all(template.image[~template.valid] == 0)
    covered = template.image[template.valid]
    assert abs(float(covered.mean())) < 1e-4 and abs(float(covered.std()) - 1.0) < 1e-3
