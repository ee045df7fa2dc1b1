"""Blocks produced ahead of their reader: ReadAhead and WarpedFrames."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest

from napari_stackalign.core.apply import WarpedFrames, apply_transforms
from napari_stackalign.core.frames import ReadAhead, frame_ranges
from napari_stackalign.transforms import FrameTransforms


def _stack(n: int = 23) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 1000, size=(n, 16, 20)).astype(np.uint16)


class _Failing:
    """Frames whose block starting at ``bad`` cannot be read."""

    def __init__(self, frames: np.ndarray, bad: int) -> None:
        self.frames, self.bad = frames, bad
        self.shape, self.dtype = frames.shape, frames.dtype

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, slice) and key.start == self.bad:
            raise OSError("disk read failed")
        return self.frames[key]


def _alive(prefix: str) -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(prefix) and t.is_alive()]


def test_read_ahead_gives_the_frames_in_order_and_out_of_order() -> None:
    stack = _stack()
    ranges = frame_ranges(0, len(stack), 5)
    with ReadAhead(stack, ranges) as ahead:
        np.testing.assert_array_equal(ahead[0:5], stack[0:5])
        # a request that is not the next range is read directly
        np.testing.assert_array_equal(ahead[7], stack[7])
        np.testing.assert_array_equal(ahead[12:14], stack[12:14])
        for a, b in ranges[1:]:
            np.testing.assert_array_equal(ahead[a:b], stack[a:b])
    assert not _alive("stackalign-read-ahead")


def test_read_error_reaches_the_reader_and_the_thread_stops() -> None:
    stack = _stack()
    frames = _Failing(stack, bad=10)
    with ReadAhead(frames, frame_ranges(0, len(stack), 5)) as ahead:
        np.testing.assert_array_equal(ahead[0:5], stack[0:5])
        np.testing.assert_array_equal(ahead[5:10], stack[5:10])
        with pytest.raises(OSError, match="disk read failed"):
            ahead[10:15]
    assert not _alive("stackalign-read-ahead")


def test_reader_that_stops_early_leaves_no_thread() -> None:
    stack = _stack(200)
    ahead = ReadAhead(stack, frame_ranges(0, len(stack), 2), depth=1).start()
    np.testing.assert_array_equal(ahead[0:2], stack[0:2])
    ahead.close()
    assert not ahead.started
    assert not _alive("stackalign-read-ahead")


@pytest.mark.parametrize("read_block", [7, 3, 23])
def test_warped_frames_equal_apply_transforms_whatever_the_read_blocks(read_block: int) -> None:
    stack = _stack()
    n = len(stack)
    transforms = FrameTransforms(dy=np.linspace(-2.5, 3.0, n), dx=np.linspace(1.2, -0.7, n), center=(7.5, 9.5))
    expected = apply_transforms(stack, transforms)
    with WarpedFrames(stack, transforms, block=5) as warped:
        assert warped.shape == stack.shape and warped.dtype == expected.dtype
        got = np.concatenate([warped[a:b] for a, b in frame_ranges(0, n, read_block)])
        # out of order: computed on the spot
        np.testing.assert_array_equal(warped[4], expected[4])
    np.testing.assert_array_equal(got, expected)
    assert not _alive("stackalign-warp-ahead")


def test_warp_error_reaches_the_reader() -> None:
    stack = _stack()
    transforms = FrameTransforms(dy=np.zeros(len(stack)), dx=np.zeros(len(stack)), center=(7.5, 9.5))
    with WarpedFrames(_Failing(stack, bad=5), transforms, block=5) as warped:
        np.testing.assert_array_equal(warped[0:5], stack[0:5])
        with pytest.raises(OSError, match="disk read failed"):
            warped[5:10]
    assert not _alive("stackalign-warp-ahead")
