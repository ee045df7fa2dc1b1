"""Difference and checkerboard views: values, laziness, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from napari_stackalign.core.quality import (
    checkerboard,
    checkerboard_mask,
    difference,
)


def test_checkerboard_mask_pattern():
    mask = checkerboard_mask((5, 7), 2)
    expected = np.array(
        [
            [1, 1, 0, 0, 1, 1, 0],
            [1, 1, 0, 0, 1, 1, 0],
            [0, 0, 1, 1, 0, 0, 1],
            [0, 0, 1, 1, 0, 0, 1],
            [1, 1, 0, 0, 1, 1, 0],
        ],
        dtype=bool,
    )
    np.testing.assert_array_equal(mask, expected)
    with pytest.raises(ValueError, match="at least 1 pixel"):
        checkerboard_mask((4, 4), 0)


def test_checkerboard_takes_tiles_alternately_from_both():
    a = np.full((2, 8, 8), 1, np.uint8)
    b = np.full((2, 8, 8), 200, np.uint8)
    board = checkerboard(a, b, tile=4)
    assert board.dtype == np.float32 and board.shape == (2, 8, 8)
    assert (board[:, :4, :4] == 1).all() and (board[:, :4, 4:] == 200).all()
    assert (board[:, 4:, :4] == 200).all() and (board[:, 4:, 4:] == 1).all()


def test_difference_has_no_unsigned_wraparound():
    a = np.array([[1, 2], [3, 4]], np.uint16)
    b = np.array([[4, 3], [2, 1]], np.uint16)
    np.testing.assert_array_equal(difference(a, b), [[-3, -1], [1, 3]])


def test_lazy_views_compute_only_on_demand():
    da = pytest.importorskip("dask.array")
    rng = np.random.default_rng(0)
    a, b = rng.random((6, 16, 16)), rng.random((6, 16, 16))
    lazy = difference(a, b, lazy=True)
    assert isinstance(lazy, da.Array) and lazy.chunks[0] == (1,) * 6
    np.testing.assert_allclose(np.asarray(lazy[3]), a[3] - b[3], rtol=1e-5, atol=1e-6)
    board = checkerboard(da.from_array(a, chunks=(2, 16, 16)), b, tile=3)
    assert isinstance(board, da.Array)
    np.testing.assert_allclose(np.asarray(board), checkerboard(a, b, tile=3))


def test_shapes_must_match():
    with pytest.raises(ValueError, match="different shapes"):
        difference(np.zeros((3, 4, 4)), np.zeros((3, 4, 5)))
    with pytest.raises(ValueError, match="different shapes"):
        checkerboard(np.zeros((4, 4)), np.zeros((2, 4, 4)))


def test_lazy_views_do_not_copy_their_inputs():
    pytest.importorskip("dask.array")
    a = np.zeros((4, 8, 8), np.float32)
    b = np.zeros((4, 8, 8), np.float32)
    lazy = difference(a, b, lazy=True)
    a[2] = 5.0  # a copy made when the view was built would not see this
    assert float(np.asarray(lazy[2]).max()) == 5.0
    board = checkerboard(a, b, tile=2, lazy=True)
    b[1] = 7.0
    assert float(np.asarray(board[1]).max()) == 7.0
