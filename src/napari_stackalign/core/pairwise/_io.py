"""Save a pairwise result as TIFF, and read it back.

:func:`save_pairwise_tiff` writes the averaged image as a float32 TIFF whose
ImageDescription is one JSON document (the rigidregistration package stores
its parameters the same way) holding:

- ``dy``, ``dx`` (the raw shift matrices, ``X_ij`` / ``Y_ij`` of the
  reference), ``quality``, ``peak_ratio``, ``scores`` (transitivity),
  ``measured``, ``outliers``, ``valid``;
- ``transforms`` (the per-frame corrections, :meth:`FrameTransforms.to_dict`);
- ``crop`` (``[row_start, row_stop, col_start, col_stop]``) and whether the
  image was cropped;
- ``params`` (every parameter) and ``warnings``;
- ``shape``: the image shape (tifffile reads a JSON description with a
  ``shape`` as the array's shape);
- ``mask``: the Fourier mask on the padded FFT grid (rfft half plane),
  zlib-compressed little-endian float32, base64-encoded.

:func:`read_pairwise_tiff` returns the image and that record with the
matrices as numpy arrays, the mask decoded and the transforms as a
:class:`~napari_stackalign.FrameTransforms`.
"""

from __future__ import annotations

import base64
import json
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from ...files import atomic_path
from ...transforms import FrameTransforms
from ._result import PairwiseResult

__all__ = ["decode_mask", "encode_mask", "read_pairwise_tiff", "save_pairwise_tiff", "save_registered_tiff"]

_TIFF_SUFFIXES = (".tif", ".tiff")
_MATRICES = ("dy", "dx", "quality", "peak_ratio", "scores")
_FLAGS = ("measured", "outliers", "valid")


def encode_mask(mask: np.ndarray) -> dict[str, Any]:
    """A compact JSON form of a float mask (zlib + base64 float32)."""
    arr = np.ascontiguousarray(mask, dtype="<f4")
    return {
        "encoding": "zlib+base64 float32 little-endian",
        "shape": list(arr.shape),
        "data": base64.b64encode(zlib.compress(arr.tobytes(), 6)).decode("ascii"),
    }


def decode_mask(block: dict[str, Any]) -> np.ndarray:
    """Inverse of :func:`encode_mask`."""
    try:
        raw = zlib.decompress(base64.b64decode(block["data"]))
        return np.frombuffer(raw, dtype="<f4").reshape(block["shape"]).astype(np.float32)
    except (KeyError, ValueError, zlib.error) as exc:
        raise ValueError(f"the stored mask cannot be decoded: {exc}") from exc


def _check_path(path: str | Path) -> Path:
    p = Path(path).expanduser()
    if p.suffix.lower() not in _TIFF_SUFFIXES:
        raise ValueError(f"{p.name}: write the average as .tif or .tiff.")
    return p


def _record(result: PairwiseResult, cropped: bool, shape: tuple[int, ...]) -> dict[str, Any]:
    record = result.to_dict()
    # "shape" first: tifffile reads a JSON description holding it as the array shape
    record = {"shape": list(shape), **record}
    record["cropped"] = bool(cropped)
    record["mask"] = {**encode_mask(result.mask), "layout": "rfft half plane of padded_shape, DC at [0, 0]"}
    return record


def save_pairwise_tiff(path: str | Path, result: PairwiseResult, *, crop: bool = True) -> Path:
    """Write the average as a float32 TIFF with the full record as JSON.

    Parameters
    ----------
    path : str or Path
        ``.tif`` / ``.tiff`` output; written atomically.
    result : PairwiseResult
        A result with an average (from :func:`register_pairwise` or
        :meth:`PairwiseResult.with_average`).
    crop : bool
        Write the cropped average (default) or the full frame.

    Returns
    -------
    Path
        The written file.
    """
    p = _check_path(path)
    if result.average is None or result.average_full is None:
        raise ValueError("the result has no average: call result.with_average(stack) first.")
    image = result.average if crop else result.average_full
    if image.size == 0:
        raise ValueError("the cropped average is empty (the frames share no common area): save with crop=False.")
    text = json.dumps(_record(result, crop, image.shape), separators=(",", ":"))
    with atomic_path(p) as tmp:
        tifffile.imwrite(tmp, np.asarray(image, dtype=np.float32), description=text, metadata=None)
    return p


def save_registered_tiff(path: str | Path, result: PairwiseResult) -> Path:
    """Write the registered stack (T, Y, X) float32 with the same JSON record."""
    p = _check_path(path)
    if result.registered is None:
        raise ValueError("the result holds no registered stack: run with registered=True.")
    text = json.dumps(_record(result, False, result.registered.shape), separators=(",", ":"))
    with atomic_path(p) as tmp:
        tifffile.imwrite(tmp, np.asarray(result.registered, dtype=np.float32), description=text, metadata=None)
    return p


def read_pairwise_tiff(path: str | Path) -> tuple[np.ndarray, dict[str, Any]]:
    """Read a TIFF written by :func:`save_pairwise_tiff` (or the registered stack).

    Returns
    -------
    image : ndarray (float32)
    record : dict
        The JSON record with ``dy``, ``dx``, ``quality``, ``peak_ratio``,
        ``scores`` as float arrays (NaN restored), ``measured``, ``outliers``,
        ``valid`` as bool arrays, ``mask`` decoded to an array and
        ``transforms`` as :class:`~napari_stackalign.FrameTransforms`.
    """
    p = Path(path).expanduser()
    try:
        with tifffile.TiffFile(p) as tif:
            image = tif.asarray()
            text = tif.pages[0].description
    except (OSError, tifffile.TiffFileError) as exc:
        raise ValueError(f"cannot read {p}: {exc}") from exc
    try:
        record = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{p.name} has no pairwise record in its description (not written by save_pairwise_tiff?).") from exc
    if not isinstance(record, dict) or record.get("format") != "napari-stackalign pairwise":
        raise ValueError(f"{p.name} has no pairwise record in its description (not written by save_pairwise_tiff?).")
    for key in _MATRICES:
        record[key] = np.array([[np.nan if v is None else v for v in row] for row in record[key]], dtype=np.float64)
    for key in _FLAGS:
        record[key] = np.asarray(record[key], dtype=bool)
    record["mask"] = decode_mask(record["mask"])
    record["transforms"] = FrameTransforms.from_dict(record["transforms"])
    return np.asarray(image, dtype=np.float32), record
