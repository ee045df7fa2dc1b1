"""The input checks every method shares (one copy, one wording)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_stackalign.core.checks import STACK_AXES, check_mask, check_roi, check_stack


def test_check_stack_returns_the_shape():
    assert check_stack(np.zeros((3, 16, 20), np.uint16)) == (3, 16, 20)
    assert check_stack(np.zeros((2, 8, 8), bool)) == (2, 8, 8)


@pytest.mark.parametrize(
    ("stack", "kwargs", "message"),
    [
        ([1, 2, 3], {}, "array-like with a shape"),
        (np.zeros((16, 16)), {"what": "pairwise averaging"}, "single 2-D image .* pairwise averaging needs a time series"),
        (np.zeros((2, 2, 16, 16)), {}, r"\(T, C, Y, X\) stack use one channel"),
        (np.zeros((0, 16, 16)), {}, "no frames"),
        (np.zeros((1, 16, 16)), {"min_frames": 2, "what": "pairwise averaging"}, "1 frame.*needs at least 2"),
        (np.zeros((3, 4, 16)), {"min_size": 8}, "frames of 4x16 px are too small"),
        (np.zeros((3, 16, 16), complex), {}, "dtype complex128"),
        (np.zeros((3, 16, 16), "U1"), {}, "dtype <U1"),
    ],
)
def test_check_stack_says_what_is_wrong(stack, kwargs, message):
    with pytest.raises(ValueError, match=message):
        check_stack(stack, **kwargs)


def test_stack_axes_is_the_wording_of_the_messages():
    with pytest.raises(ValueError) as info:
        check_stack(np.zeros(5))
    assert STACK_AXES in str(info.value)


def test_check_roi():
    assert check_roi(None, (32, 32)) is None
    assert check_roi((0, 16, 4, 20), (32, 32)) == (0, 16, 4, 20)
    assert check_roi(np.array([0, 16, 4, 20]), (32, 32)) == (0, 16, 4, 20)
    with pytest.raises(ValueError, match="four integers"):
        check_roi((0, 16, 4), (32, 32))
    with pytest.raises(ValueError, match="four integers"):
        check_roi((0, 16.5, 4, 20), (32, 32))
    with pytest.raises(ValueError, match="integers"):
        check_roi("abcd", (32, 32))
    with pytest.raises(ValueError, match="not a rectangle inside the 32x32 frame"):
        check_roi((0, 40, 0, 16), (32, 32))
    with pytest.raises(ValueError, match="not a rectangle"):
        check_roi((10, 5, 0, 16), (32, 32))
    with pytest.raises(ValueError, match="smaller than 16x16"):
        check_roi((0, 8, 0, 16), (32, 32), min_size=16)


def test_check_mask():
    assert check_mask(None, (4, 4)) is None
    got = check_mask(np.eye(4, dtype=np.uint8), (4, 4))
    assert got.dtype == bool and got.sum() == 4
    with pytest.raises(ValueError, match=r"mask has shape \(3, 3\) but frames are \(4, 4\)"):
        check_mask(np.ones((3, 3), bool), (4, 4))
    with pytest.raises(ValueError, match="must be boolean"):
        check_mask(np.full((4, 4), 2), (4, 4))
    with pytest.raises(ValueError, match="fewer than 256 pixels"):
        check_mask(np.ones((4, 4), bool), (4, 4), min_pixels=256)
