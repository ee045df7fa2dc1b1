"""PNG, JPEG and BMP frames (Pillow): one file per frame, in natural order.

A folder of such files (a camera's or a video converter's output, trackpy's
sample videos) is one stack; a single file is a stack only when it holds
several frames (an animated PNG). Grey images give (T, Y, X); colour images
give (T, C, Y, X), or (T, Y, X) when the first frame's colour channels are
all equal (a grey picture saved as RGB), in which case every frame must be
grey too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageSequence, UnidentifiedImageError

from ._axes import plan_axes
from ._formats import IMAGE_SUFFIXES
from ._lazy import FrameReader, decide_lazy, frame_chunked_dask
from ._stackdata import StackData

__all__ = ["IMAGE_SUFFIXES", "read_image_file", "read_image_frames"]

#: Pillow modes read as one grey plane (palette images are expanded to RGB first)
_GREY_MODES = ("1", "L", "I", "F", "I;16", "I;16L", "I;16B", "I;16N")
_PIL_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError)


def _as_array(frame: Image.Image) -> np.ndarray:
    """One Pillow frame as (Y, X) grey or (Y, X, S) colour pixels."""
    mode = frame.mode
    if mode == "1":
        return np.asarray(frame.convert("L"))
    if mode in _GREY_MODES:
        return np.asarray(frame)
    if mode in ("P", "PA", "CMYK", "YCbCr", "HSV", "LAB"):
        frame = frame.convert("RGBA" if "A" in mode or "transparency" in frame.info else "RGB")
    return np.asarray(frame)


def _is_grey(pixels: np.ndarray) -> bool:
    """Colour pixels whose red, green and blue are equal everywhere (alpha ignored)."""
    if pixels.ndim != 3 or pixels.shape[2] < 3:
        return False
    return bool(np.array_equal(pixels[..., 0], pixels[..., 1]) and np.array_equal(pixels[..., 0], pixels[..., 2]))


def _open_pixels(path: Path) -> tuple[np.ndarray, str]:
    """The pixels and Pillow mode of the first frame of ``path`` (a clear error when unreadable)."""
    try:
        with Image.open(path) as image:
            mode = image.mode
            return _as_array(image), mode
    except _PIL_ERRORS as exc:
        raise ValueError(
            f"cannot read {path}: it is not a valid {path.suffix.lstrip('.').upper()} image or it is "
            f"truncated/corrupt ({exc}). Check the file (copy or export it again)."
        ) from exc


@dataclass(frozen=True)
class _FrameLayout:
    """Shape, type and colour handling shared by all frames of a folder."""

    shape: tuple[int, ...]
    dtype: np.dtype
    mode: str
    grey_from_colour: bool

    def pixels(self, array: np.ndarray, path: Path, first: str) -> np.ndarray:
        """``array`` as this layout's frame, or a clear error when it does not match."""
        if self.grey_from_colour and array.ndim == 3:
            if not _is_grey(array):
                raise ValueError(
                    f"{path} is a colour image but {first} (the first frame) is grey: all frames of a folder "
                    "must be grey, or all colour."
                )
            array = array[..., 0]
        if array.shape != self.shape or array.dtype != self.dtype:
            raise ValueError(
                f"{path} holds a {array.shape} {array.dtype} image but {first} is {self.shape} {self.dtype}: "
                "all frames of a folder must have the same size and type."
            )
        return array


def _layout(first_pixels: np.ndarray, mode: str) -> _FrameLayout:
    grey = _is_grey(first_pixels)
    pixels = first_pixels[..., 0] if grey else first_pixels
    return _FrameLayout(tuple(pixels.shape), pixels.dtype, mode, grey)


def read_image_frames(
    files: Sequence[Path],
    *,
    source: Path,
    axes: str | None = None,
    lazy: bool | None = None,
    memory_fraction: float,
) -> StackData:
    """Stack single-frame PNG/JPEG/BMP files (already in frame order) into (T, Y, X) or (T, C, Y, X).

    Parameters
    ----------
    files : sequence of pathlib.Path
        The frame files, one frame each, in frame order.
    source : pathlib.Path
        The folder (or first file's folder), for messages and :attr:`StackData.path`.
    axes : str, optional
        Axis order of the stacked array (frames first), e.g. ``"TYX"`` or
        ``"TYXS"``; by default from the first frame.
    lazy, memory_fraction
        As for :func:`~napari_stackalign.io.read_stack`.
    """
    files = [Path(p) for p in files]
    if not files:
        raise ValueError(f"{source} holds no image files: put one file per frame in the folder.")
    first_pixels, mode = _open_pixels(files[0])
    layout = _layout(first_pixels, mode)
    full = (len(files),) + layout.shape
    plan = plan_axes(axes or ("TYX" if len(layout.shape) == 2 else "TYXS"), full, source=str(source))
    nbytes = int(np.prod(full, dtype=np.int64)) * layout.dtype.itemsize
    is_lazy = decide_lazy(nbytes, lazy, memory_fraction)

    def one(t: int) -> np.ndarray:
        return layout.pixels(_open_pixels(files[t])[0], files[t], files[0].name)

    def read(start: int, stop: int) -> np.ndarray:
        return np.stack([one(t) for t in range(start, stop)])

    raw: Any
    if is_lazy:
        raw = frame_chunked_dask(FrameReader(full, layout.dtype, read))
    else:
        raw = np.empty(full, layout.dtype)
        raw[0] = layout.pixels(first_pixels, files[0], files[0].name)
        for t in range(1, len(files)):
            raw[t] = one(t)
    return StackData(
        data=plan.apply(raw),
        axes=plan.out_axes,
        channel_axis=plan.channel_axis,
        metadata={"files": [p.name for p in files], "image": {"mode": mode, "colour": plan.channel_axis is not None}},
        path=source,
        lazy=is_lazy,
    )


def read_image_file(path: Path, *, axes: str | None = None) -> StackData:
    """Read one PNG/JPEG/BMP file: a stack only if it holds several frames (an animated PNG).

    A single picture is refused with the same message as any single 2-D
    image: open the folder of frames instead. Always read into memory.
    """
    frames = []
    try:
        with Image.open(path) as image:
            mode = image.mode
            for frame in ImageSequence.Iterator(image):
                frames.append(_as_array(frame))
    except _PIL_ERRORS as exc:
        raise ValueError(
            f"cannot read {path}: it is not a valid {path.suffix.lstrip('.').upper()} image or it is "
            f"truncated/corrupt ({exc}). Check the file (copy or export it again)."
        ) from exc
    layout = _layout(frames[0], mode)
    stack = np.stack([layout.pixels(f, path, f"frame 0 of {path.name}") for f in frames])
    default = ("TYX" if stack.ndim == 3 else "TYXS") if len(frames) > 1 else ("YX" if stack.ndim == 3 else "YXS")
    file_axes = axes or default
    if axes is None and len(frames) == 1:
        stack = stack[0]
    try:
        plan = plan_axes(file_axes, stack.shape, source=str(path))
    except ValueError as exc:
        if len(frames) > 1:
            raise
        raise ValueError(f"{exc} For a video saved as one image per frame, open the folder of frames.") from None
    return StackData(
        data=plan.apply(stack),
        axes=plan.out_axes,
        channel_axis=plan.channel_axis,
        metadata={"image": {"mode": mode, "frames": len(frames), "colour": plan.channel_axis is not None}},
        path=path,
        lazy=False,
    )
