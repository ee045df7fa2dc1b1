"""Reading a user's 2-D mask image (``stackalign average --user-mask``)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ._tiff import TIFF_SUFFIXES, open_tiff

__all__ = ["read_mask"]


def read_mask(
    path: str | os.PathLike, *, shape: tuple[int, int] | None = None
) -> np.ndarray:
    """Read a 2-D mask from a TIFF file as a float64 array.

    Parameters
    ----------
    path : str or path-like
        A single-image TIFF (``.tif``/``.tiff``); singleton axes are dropped.
    shape : (int, int), optional
        The frame shape the mask must have.

    Returns
    -------
    ndarray of float64, (Y, X)

    Raises
    ------
    ValueError
        Not a TIFF file (or truncated, a FIFO, a folder), not a single 2-D
        image, not real numbers, not finite, or not of ``shape``.
    FileNotFoundError
        When ``path`` does not exist.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"mask {path} does not exist: check the path.")
    if path.suffix.lower() not in TIFF_SUFFIXES:
        raise ValueError(
            f"mask {path.name} must be a TIFF file (.tif or .tiff) holding one 2-D image."
        )
    with open_tiff(path) as tif:
        try:
            arr = tif.series[0].asarray()
        except Exception as exc:  # tifffile raises many kinds for a damaged file
            raise ValueError(
                f"cannot read mask {path}: the TIFF image data is unreadable ({exc})."
            ) from exc
    arr = np.asarray(arr)
    squeezed = arr.squeeze() if arr.ndim > 2 else arr
    if squeezed.ndim != 2:
        raise ValueError(
            f"mask {path.name} has shape {arr.shape}: give one 2-D image (rows, cols) the size of a frame, "
            "not a stack."
        )
    if squeezed.dtype.kind not in "biuf":
        raise ValueError(
            f"mask {path.name} holds {squeezed.dtype} values: give real numbers (a weight per pixel)."
        )
    mask = squeezed.astype(np.float64)
    if not np.all(np.isfinite(mask)):
        raise ValueError(f"mask {path.name} contains NaN or infinite values.")
    if shape is not None and mask.shape != tuple(shape):
        raise ValueError(
            f"mask {path.name} is {mask.shape[0]}x{mask.shape[1]} px but the frames are {shape[0]}x{shape[1]} px: "
            "give a mask the size of one frame."
        )
    return mask
