"""Animated GIF reading (Pillow): each GIF frame is one time point."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageSequence, UnidentifiedImageError

from ._axes import plan_axes
from ._stackdata import StackData

__all__ = ["GIF_SUFFIXES", "read_gif"]

GIF_SUFFIXES = (".gif",)


def read_gif(path: Path) -> StackData:
    """Read an animated GIF as (T, Y, X) uint8 (grey palettes) or (T, C, Y, X) RGB.

    GIFs are small, so they are always read into memory. Frames are composited
    by Pillow (partial frames are filled from the previous ones).
    """
    frames = []
    try:
        with Image.open(path) as image:
            for frame in ImageSequence.Iterator(image):
                frames.append(np.asarray(frame.convert("RGB")))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        if not frames:
            raise ValueError(
                f"cannot read {path}: it is not a valid GIF file or it is truncated/corrupt ({exc}). "
                "Check the file (copy or export it again)."
            ) from exc
        raise ValueError(
            f"cannot read {path}: the GIF is truncated after {len(frames)} frames ({exc}). Copy or export it again."
        ) from exc
    stack = np.stack(frames)  # (T, Y, X, 3)
    grey = bool(np.array_equal(stack[..., 0], stack[..., 1]) and np.array_equal(stack[..., 0], stack[..., 2]))
    if grey:
        plan = plan_axes("TYX", stack.shape[:3], source=str(path))
        data = plan.apply(np.ascontiguousarray(stack[..., 0]))
    else:
        plan = plan_axes("TYXS", stack.shape, source=str(path))
        data = plan.apply(stack)
    return StackData(
        data=data,
        axes=plan.out_axes,
        channel_axis=plan.channel_axis,
        metadata={"gif": {"frames": len(frames), "colour": not grey}},
        path=path,
        lazy=False,
    )
