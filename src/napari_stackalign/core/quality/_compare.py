"""Before/after views of two images or stacks: difference and checkerboard.

Both work on numpy or dask arrays of the same shape (a 2-D image or a
(T, Y, X) stack). With dask input, or with ``lazy=True``, nothing is
computed until a frame is looked at, so a frame-wise view of two long
stacks costs no memory.
"""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np

from ...io import lazy_array
from ..apply import is_dask

__all__ = ["CHECKER_TILE", "checkerboard", "checkerboard_mask", "difference"]

#: default checkerboard tile size in pixels
CHECKER_TILE = 32


def _pair(a: Any, b: Any, lazy: bool) -> tuple[Any, Any, bool]:
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(
            f"the two images have different shapes {tuple(a.shape)} and {tuple(b.shape)}: "
            "compare layers with the same frame size (and frame count for a frame-wise view)."
        )
    if len(a.shape) < 2:
        raise ValueError(f"expected images or stacks, got shape {tuple(a.shape)}.")
    if lazy or any(is_dask(x) for x in (a, b)):
        return _frame_view(a), _frame_view(b), True
    return np.asarray(a), np.asarray(b), False


def _frame_view(x: Any) -> Any:
    """A dask array of ``x`` chunked by single frames, without copying ``x``."""
    if is_dask(x):
        return x
    chunks = (1,) * (len(x.shape) - 2) + tuple(int(n) for n in x.shape[-2:])
    return lazy_array(x, chunks, name_prefix="stackalign-view")


def difference(a: Any, b: Any, *, lazy: bool = False) -> Any:
    """``a - b`` in float32 (no wrap-around for unsigned integers).

    Parameters
    ----------
    a, b : array-like of the same shape
        Images or stacks (numpy, memmap, h5py, dask).
    lazy : bool
        Return a dask array computed frame by frame on demand (always the
        case when an input is a dask array).

    Returns
    -------
    ndarray or dask array of float32
    """
    a, b, _ = _pair(a, b, lazy)
    return a.astype(np.float32) - b.astype(np.float32)


def checkerboard_mask(shape: tuple[int, int], tile: int) -> np.ndarray:
    """Boolean (Y, X) map: True on the tiles that show the first image.

    Raises
    ------
    ValueError
        If ``tile`` is smaller than 1 px.
    """
    tile = int(tile)
    if tile < 1:
        raise ValueError(f"tile must be at least 1 pixel, got {tile}.")
    rows = (np.arange(shape[0]) // tile) % 2
    cols = (np.arange(shape[1]) // tile) % 2
    return (rows[:, None] ^ cols[None, :]) == 0


def checkerboard(a: Any, b: Any, *, tile: int = CHECKER_TILE, lazy: bool = False) -> Any:
    """Mix two images in a checkerboard of ``tile`` x ``tile`` px squares.

    The top-left tile shows ``a``. Edges that continue straight across tile
    borders mean the two are aligned; broken edges show the misalignment.

    Parameters
    ----------
    a, b : array-like of the same shape
        Images or stacks; every frame gets the same pattern.
    tile : int
        Tile size in pixels.
    lazy : bool
        Return a lazy dask array (always the case for dask input).

    Returns
    -------
    ndarray or dask array of float32
    """
    a, b, lazy = _pair(a, b, lazy)
    mask = checkerboard_mask(tuple(a.shape[-2:]), tile)
    if lazy:
        return da.where(mask, a.astype(np.float32), b.astype(np.float32))
    return np.where(mask, a.astype(np.float32), b.astype(np.float32))
