"""A registered frame, or a plain mean of registered frames, as the reference image: its fill is not content."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from napari_stackalign.core.apply import apply_transforms
from napari_stackalign.core.pyramid import register_pyramid
from napari_stackalign.core.pyramid._reference_image import fill_bands, without_fill
from napari_stackalign.synthetic import make_stack


@pytest.fixture(scope="module")
def scene():
    stack, truth = make_stack("beads", n_frames=30, shape=(128, 160), drift=14, snr=2.0, seed=4)
    registered = apply_transforms(stack, truth)  # border "constant": filled with 0 where a frame is not
    return stack, truth, registered


def test_fill_bands_of_a_registered_frame(scene):
    _stack, truth, registered = scene
    far = int(np.argmax(np.hypot(truth.dy, truth.dx)))
    top, bottom, left, right = fill_bands(registered[far])
    # the frame was shifted by (dy, dx): the fill is on the side it moved away from
    dy, dx = truth.dy[far], truth.dx[far]
    assert (top if dy > 0 else bottom) >= int(abs(dy)) - 1
    assert (left if dx > 0 else right) >= int(abs(dx)) - 1
    assert (bottom if dy > 0 else top) == 0 and (right if dx > 0 else left) == 0


def test_fill_bands_of_a_plain_mean(scene):
    _stack, truth, registered = scene
    bands = fill_bands(registered.mean(axis=0))
    assert sum(bands) > 0
    # the graded band is at most as wide as the motion
    reach = np.ceil(np.abs([truth.dy.max(), truth.dy.min(), truth.dx.max(), truth.dx.min()])).max()
    assert max(bands) <= reach + 1


@pytest.mark.parametrize("image", ["beads", "ramp", "texture"])
def test_no_bands_where_there_is_no_fill(image):
    rng = np.random.default_rng(0)
    if image == "beads":
        img = make_stack("beads", n_frames=1, shape=(96, 96), snr=3.0, seed=1)[0][0]
    elif image == "ramp":  # vignetting: darker towards the edges, gradually
        yy, xx = np.mgrid[:96, :96]
        img = 100 - 0.01 * ((yy - 48) ** 2 + (xx - 48) ** 2) + rng.normal(0, 1, (96, 96))
    else:
        img = make_stack("texture", n_frames=1, shape=(96, 96), snr=3.0, seed=1)[0][0]
    assert fill_bands(img) == (0, 0, 0, 0)
    np.testing.assert_array_equal(without_fill(img), np.asarray(img, np.float32))


def test_fill_bands_of_constant_and_nan_images():
    assert fill_bands(np.zeros((32, 32))) == (0, 0, 0, 0)
    img = np.full((32, 32), np.nan)
    assert fill_bands(img) == (0, 0, 0, 0)


@pytest.mark.parametrize("which", ["one registered frame", "mean of the registered frames"])
def test_registering_to_a_filled_reference(scene, which):
    stack, truth, registered = scene
    far = int(np.argmax(np.hypot(truth.dy, truth.dx)))
    reference = registered[far] if which == "one registered frame" else registered.mean(axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ft = register_pyramid(stack, reference=reference)
    # before: most frames lost the match (flagged) and some were pixels off
    assert ft.ok.all()
    err = ft.with_center(truth.center).shifts - truth.shifts
    assert np.abs(err - np.median(err, axis=0)).max() < 0.2
