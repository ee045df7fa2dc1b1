"""A folder (or a list) of single-frame image files (TIFF, PNG, JPEG, BMP) read as one stack, in natural order."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._axes import plan_axes
from ._formats import IMAGE_SUFFIXES
from ._images import read_image_file, read_image_frames
from ._lazy import FrameReader, decide_lazy, frame_chunked_dask
from ._stackdata import StackData
from ._tiff import TIFF_SUFFIXES, open_tiff, read_tiff, tiff_header

__all__ = ["FRAME_SUFFIXES", "frame_files", "natural_key", "read_frames"]

#: file types a folder of frames may hold (one type per folder)
FRAME_SUFFIXES = TIFF_SUFFIXES + IMAGE_SUFFIXES
_SAME_KIND = {".tiff": ".tif", ".jpeg": ".jpg"}

_DIGITS = re.compile(r"(\d+)")


def natural_key(path: str | Path) -> tuple:
    """Sort key putting ``2.tif`` before ``10.tif`` (numbers compared as numbers)."""
    name = Path(path).name
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part.lower()) for part in _DIGITS.split(name) if part)


def frame_kind(path: Path) -> str:
    """The frame file type of ``path`` (``.tif`` for .tif and .tiff, ``.jpg`` for .jpg and .jpeg)."""
    suffix = path.suffix.lower()
    return _SAME_KIND.get(suffix, suffix)


def frame_files(folder: Path) -> list[Path]:
    """The frame files of ``folder`` (not hidden), in natural order (``frame2`` before ``frame10``).

    TIFF files when there are any (other files beside them are ignored);
    otherwise PNG, JPEG or BMP files, which must all be of one type.
    """
    files = [
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in FRAME_SUFFIXES and not p.name.startswith(".")
    ]
    tiffs = [p for p in files if p.suffix.lower() in TIFF_SUFFIXES]
    if tiffs:
        return sorted(tiffs, key=natural_key)
    kinds = sorted({frame_kind(p) for p in files})
    if len(kinds) > 1:
        counts = ", ".join(f"{sum(frame_kind(p) == k for p in files)} {k}" for k in kinds)
        raise ValueError(
            f"{folder} holds frames of several image types ({counts}): a folder must hold one type. "
            "Move the other files out, or pass the list of frame files."
        )
    return sorted(files, key=natural_key)


def _read_one(path: Path, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    with open_tiff(path) as tif:
        try:
            frame = tif.series[0].asarray()
        except Exception as exc:
            raise ValueError(f"cannot read frame file {path}: it is truncated or corrupt ({exc}).") from exc
    if frame.shape != shape or frame.dtype != dtype:
        raise ValueError(
            f"{path} holds a {frame.shape} {frame.dtype} image but the first frame is {shape} {dtype}: "
            "all frames of a folder must have the same size and type."
        )
    return frame


def read_frames(
    files: Sequence[Path],
    *,
    source: Path,
    axes: str | None = None,
    lazy: bool | None = None,
    memory_fraction: float,
) -> StackData:
    """Stack single-frame TIFF files (already in frame order) into (T, Y, X) or (T, C, Y, X)."""
    files = [Path(p) for p in files]
    if not files:
        raise ValueError(
            f"{source} holds no frame files (.tif, .tiff, .png, .jpg, .jpeg, .bmp): put one file per frame in "
            "the folder."
        )
    if files[0].suffix.lower() in IMAGE_SUFFIXES:
        if len(files) == 1:
            return read_image_file(files[0], axes=axes)
        return read_image_frames(files, source=source, axes=axes, lazy=lazy, memory_fraction=memory_fraction)
    if len(files) == 1:
        return read_tiff(files[0], axes=axes, lazy=lazy, memory_fraction=memory_fraction)
    first = tiff_header(files[0])
    shape, dtype, frame_axes = first.shape, first.dtype, first.axes
    if axes is None and len(shape) > 2 and frame_axes not in ("CYX", "YXS", "SYX"):
        raise ValueError(
            f"{source}: {files[0].name} holds {shape} ({frame_axes}) rather than one frame; a folder must hold "
            "one 2-D frame (or one multichannel frame) per file. Open the multi-frame files one by one."
        )
    for path in files[1:]:
        other, other_dtype = tiff_header(path, with_metadata=False)[:2]
        if other != shape or other_dtype != dtype:
            raise ValueError(
                f"{path} holds a {other} {other_dtype} image but {files[0].name} is {shape} {dtype}: all frames "
                "of a folder must have the same size and type."
            )
    full = (len(files),) + tuple(shape)
    plan = plan_axes(axes or "T" + frame_axes, full, source=str(source))
    nbytes = int(np.prod(full, dtype=np.int64)) * dtype.itemsize
    is_lazy = decide_lazy(nbytes, lazy, memory_fraction)

    def read(start: int, stop: int) -> np.ndarray:
        return np.stack([_read_one(files[t], tuple(shape), dtype) for t in range(start, stop)])

    raw: Any
    if is_lazy:
        raw = frame_chunked_dask(FrameReader(full, dtype, read))
    else:
        raw = np.empty(full, dtype)
        for t, path in enumerate(files):
            raw[t] = _read_one(path, tuple(shape), dtype)
    scale = None
    if first.pixel_size is not None:
        scale = (1.0,) * (len(plan.out_axes) - 2) + tuple(first.pixel_size)
    return StackData(
        data=plan.apply(raw),
        axes=plan.out_axes,
        channel_axis=plan.channel_axis,
        scale=scale,
        units=first.units,
        metadata={"files": [p.name for p in files], **first.metadata},
        path=source,
        lazy=is_lazy,
    )
