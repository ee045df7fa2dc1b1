"""The checks every method makes of its input, written once, with one wording.

Each raises ``ValueError`` with a message that says what to do.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..layouts import CHANNEL_STACK_AXES, STACK_AXES

__all__ = [
    "CHANNEL_STACK_AXES",
    "STACK_AXES",
    "check_chunk_size",
    "check_mask",
    "check_roi",
    "check_roi_format",
    "check_stack",
]


def check_stack(
    stack: Any,
    *,
    what: str = "registration",
    min_frames: int = 1,
    min_size: int = 1,
    kinds: str = "biuf",
) -> tuple[int, int, int]:
    """Check that ``stack`` is a (T, Y, X) time series and return its shape.

    Parameters
    ----------
    stack : array-like
        Anything with ``shape`` (and ``dtype``): numpy, memmap, h5py, dask.
    what : str
        The method, for the messages ("pairwise averaging needs ...").
    min_frames : int
        Fewest frames the method can work with.
    min_size : int
        Smallest frame height and width in pixels.
    kinds : str
        Allowed dtype kinds (``numpy.dtype.kind``): b, i, u, f.

    Returns
    -------
    (T, Y, X) : tuple of int

    Raises
    ------
    ValueError
        Not array-like, not 3-D (a 2-D image, or a 4-D stack whose channel must
        be chosen first), too few frames, frames too small, or a dtype that is
        not numbers.
    """
    shape = getattr(stack, "shape", None)
    if shape is None:
        raise ValueError(f"stack must be an array-like with a shape (numpy, memmap, h5py or dask), {STACK_AXES}.")
    shape = tuple(int(s) for s in shape)
    if len(shape) == 2:
        raise ValueError(
            f"a single 2-D image of shape {shape} was given: {what} needs a time series {STACK_AXES}."
        )
    if len(shape) != 3:
        raise ValueError(
            f"expected a {STACK_AXES} time series, got shape {shape}; for a {CHANNEL_STACK_AXES} stack "
            "use one channel (stack[:, c]) and apply the transforms to all channels."
        )
    n, h, w = shape
    if n < 1:
        raise ValueError("the stack has no frames.")
    if n < min_frames:
        raise ValueError(f"the stack has {n} frame(s): {what} needs at least {min_frames}.")
    if h < min_size or w < min_size:
        raise ValueError(
            f"frames of {h}x{w} px are too small for {what}: at least {min_size}x{min_size} px are needed."
        )
    dtype = np.dtype(getattr(stack, "dtype", np.float32))
    if dtype.kind not in kinds:
        raise ValueError(f"cannot use a stack of dtype {dtype} for {what}; use integer or float data.")
    return n, h, w


def check_roi_format(roi: Any) -> tuple[int, int, int, int]:
    """``roi`` as four integers ``(row_start, row_stop, col_start, col_stop)``;
    :func:`check_roi` checks it against a frame."""
    try:
        vals = [int(v) for v in roi]
        exact = all(float(v) == int(v) for v in roi)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"roi must be four integers (row_start, row_stop, col_start, col_stop), got {roi!r}.") from exc
    if len(vals) != 4 or not exact:
        raise ValueError(f"roi must be four integers (row_start, row_stop, col_start, col_stop), got {roi!r}.")
    return tuple(vals)  # type: ignore[return-value]


def check_roi(roi: Any, shape: tuple[int, int], *, min_size: int = 1) -> tuple[int, int, int, int] | None:
    """Check a rectangle ``(row_start, row_stop, col_start, col_stop)`` inside a frame of ``shape``.

    Parameters
    ----------
    roi : sequence of 4 integers, or None
    shape : (int, int)
        The frame's (Y, X).
    min_size : int
        Smallest height and width of the rectangle.

    Returns
    -------
    tuple of 4 int, or None when ``roi`` is None
    """
    if roi is None:
        return None
    vals = check_roi_format(roi)
    r0, r1, c0, c1 = vals
    h, w = shape
    if not (0 <= r0 < r1 <= h and 0 <= c0 < c1 <= w):
        raise ValueError(
            f"roi {tuple(vals)} is not a rectangle inside the {h}x{w} frame "
            f"(need 0 <= row_start < row_stop <= {h} and 0 <= col_start < col_stop <= {w})."
        )
    if r1 - r0 < min_size or c1 - c0 < min_size:
        raise ValueError(f"roi {tuple(vals)} is smaller than {min_size}x{min_size} pixels; choose a larger region.")
    return r0, r1, c0, c1


def check_mask(mask: Any, shape: tuple[int, int], *, min_pixels: int = 1) -> np.ndarray | None:
    """Check a (Y, X) boolean mask of the pixels to compare (True = compare).

    Returns
    -------
    ndarray of bool, or None when ``mask`` is None
    """
    if mask is None:
        return None
    arr = np.asarray(mask)
    if arr.shape != tuple(shape):
        raise ValueError(f"mask has shape {arr.shape} but frames are {tuple(shape)}; give a (Y, X) boolean array.")
    if arr.dtype != bool:
        if arr.dtype.kind not in "biu" or not np.isin(arr, (0, 1)).all():
            raise ValueError("mask must be boolean (True = compare this pixel).")
        arr = arr.astype(bool)
    if arr.sum() < min_pixels:
        raise ValueError(f"the mask keeps fewer than {min_pixels} pixels; keep more of the frame (True = compare).")
    return arr


def check_chunk_size(chunk_size: Any) -> int:
    """``chunk_size`` (frames read and processed at a time) as an integer of at least 1."""
    try:
        whole = not isinstance(chunk_size, (bool, np.bool_)) and int(chunk_size) == chunk_size
    except (TypeError, ValueError):
        whole = False
    if not whole or chunk_size < 1:
        raise ValueError(f"chunk_size must be a whole number of frames, at least 1, got {chunk_size!r}.")
    return int(chunk_size)
