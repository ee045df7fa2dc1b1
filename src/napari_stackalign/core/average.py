"""Average aligned frames into one high signal-to-noise image.

Two modes:

``"full"``
    Every output pixel is the mean over the frames that cover it; the
    coverage map (how many frames contributed) comes with it. A true zero in
    the data is data, not a hole: coverage comes from the transforms (or NaN
    borders), never from pixel values.
``"crop"``
    The same mean, cropped to the largest axis-aligned rectangle that every
    frame covers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from .._volume_transforms import VolumeTransforms
from ..progress import ProgressCallback, report
from ..transforms import FrameTransforms
from .apply import (
    apply_transforms,
    chunk_size_option,
    frames_shape,
    order_option,
    workers_option,
)
from .options import Options, option

__all__ = [
    "AVERAGE_DEFAULTS",
    "MODES",
    "AverageOptions",
    "FrameAverage",
    "average_frames",
    "common_rectangle",
    "largest_rectangle",
]

MODES = ("full", "crop")


def _check_mode(mode: Any) -> Any:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}.")
    return mode


@dataclass(frozen=True)
class AverageOptions(Options):
    """Options of :func:`average_frames` (one definition of each; checked when built)."""

    method: ClassVar[str] = "average"

    mode: str = option(
        "full",
        "'full': the mean wherever a frame covers the pixel; 'crop': cut to the rectangle every frame covers",
        kind="str",
        choices=MODES,
        check=_check_mode,
    )
    order: int = order_option()
    chunk_size: int = chunk_size_option("read, resampled and added")
    workers: int | None = workers_option()


#: the defaults, for the signature of :func:`average_frames`
AVERAGE_DEFAULTS = AverageOptions()


@dataclass
class FrameAverage:
    """Result of :func:`average_frames`.

    Attributes
    ----------
    image : ndarray, float32, shape ([C,] Y, X)
        The mean (NaN where no frame contributes); cropped in ``"crop"`` mode.
    coverage : ndarray, int32, shape (Y, X)
        Number of frames that contributed to each pixel (same crop as image).
    crop : tuple of int
        ``(row_start, row_stop, col_start, col_stop)`` of the region every
        frame covers, in the uncropped frame's pixels (empty if none).
    mode : str
        ``"full"`` or ``"crop"``.
    n_frames : int
        Frames averaged.
    """

    image: np.ndarray
    coverage: np.ndarray
    crop: tuple[int, int, int, int]
    mode: str
    n_frames: int


def largest_rectangle(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Largest axis-aligned all-True rectangle in a 2-D boolean mask.

    Returns ``(row_start, row_stop, col_start, col_stop)``; ``(0, 0, 0, 0)``
    when the mask has no True pixel. Runs in O(rows x cols) with the
    histogram-and-stack method.
    """
    mask = np.asarray(mask, dtype=bool)
    rows, cols = mask.shape
    heights = np.zeros(cols, dtype=np.int64)
    best = (0, (0, 0, 0, 0))
    for r in range(rows):
        heights = np.where(mask[r], heights + 1, 0)
        stack: list[int] = []
        for c in range(cols + 1):
            h = heights[c] if c < cols else 0
            start = c
            while stack and heights[stack[-1]] >= h:
                top = stack.pop()
                height = heights[top]
                left = stack[-1] + 1 if stack else 0
                area = height * (c - left)
                if area > best[0]:
                    best = (int(area), (r - int(height) + 1, r + 1, left, c))
                start = top
            del start
            stack.append(c)
    return best[1]


def common_rectangle(coverage: np.ndarray, n_frames: int) -> tuple[int, int, int, int]:
    full = coverage >= n_frames
    if not full.any():
        return (0, 0, 0, 0)
    # fast path: the common area of translations is already a rectangle
    rows = np.flatnonzero(full.any(axis=1))
    cols = np.flatnonzero(full.any(axis=0))
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    if full[r0:r1, c0:c1].all():
        return (int(r0), int(r1), int(c0), int(c1))
    return largest_rectangle(full)


def average_frames(
    stack: Any,
    transforms: FrameTransforms | None = None,
    *,
    mode: str = AVERAGE_DEFAULTS.mode,
    frames: Any = None,
    order: int = AVERAGE_DEFAULTS.order,
    chunk_size: int = AVERAGE_DEFAULTS.chunk_size,
    workers: int | None = AVERAGE_DEFAULTS.workers,
    progress: ProgressCallback | None = None,
    options: AverageOptions | None = None,
) -> FrameAverage:
    """Average a stack into one image, with a coverage map.

    Parameters
    ----------
    stack : array-like, shape (T, Y, X) or (T, C, Y, X)
        With ``transforms``: the *unregistered* stack, warped on the fly
        (never held in memory whole). Without: an already registered stack,
        where NaN marks pixels a frame does not cover.
    transforms : FrameTransforms, optional
        Per-frame transforms to apply before averaging. With
        :class:`~napari_stackalign.VolumeTransforms` the stack is
        (T, [C,] Z, Y, X): ``image`` is ([C,] Z, Y, X), ``coverage``
        (Z, Y, X) and ``crop`` the box ``(z0, z1, y0, y1, x0, x1)``.
    mode : {"full", "crop"}
        See the module docstring.
    frames : array-like of int or bool, optional
        Frames to include. By default all frames, except, with
        ``transforms``, the failed ones (``ok`` False) when at least one frame
        is trustworthy. A failed frame chosen here gets the transform
        interpolated from the trustworthy frames.
    order : {0, 1, 3}
        Interpolation order when warping.
    chunk_size, workers, progress
        As in :func:`~napari_stackalign.apply_transforms`.
    options : AverageOptions, optional
        ``mode``, ``order``, ``chunk_size`` and ``workers`` at once; an
        explicit keyword that differs from its default replaces the option.

    Returns
    -------
    FrameAverage
    """
    opts = AverageOptions.from_call(options, locals())
    if isinstance(transforms, VolumeTransforms):
        return _average_volumes(stack, transforms, frames, opts, progress)
    n_frames, extra, (h, w) = frames_shape(stack)
    if transforms is not None and len(transforms) != n_frames:
        raise ValueError(
            f"the stack has {n_frames} frames but there are {len(transforms)} transforms."
        )
    if frames is None and transforms is not None and transforms.ok.any():
        frames = transforms.ok
    selected = _selected_frames(frames, n_frames)
    total, coverage = _sum_frames(stack, transforms, selected, opts, progress)
    with np.errstate(invalid="ignore", divide="ignore"):
        image = (total / coverage).astype(np.float32)
    image[..., coverage == 0] = np.nan
    crop = common_rectangle(coverage, selected.size)
    if opts.mode == "crop":
        r0, r1, c0, c1 = crop
        image = image[..., r0:r1, c0:c1]
        coverage = coverage[r0:r1, c0:c1]
    return FrameAverage(
        image=image,
        coverage=coverage,
        crop=crop,
        mode=opts.mode,
        n_frames=int(selected.size),
    )


def _average_volumes(
    stack: Any, transforms: VolumeTransforms, frames: Any, opts: AverageOptions, progress: ProgressCallback | None
) -> FrameAverage:
    """:func:`average_frames` of a volume stack (see :func:`~napari_stackalign.core.volume._apply.average_volumes`)."""
    from .volume._apply import average_volumes

    if frames is None and transforms.ok.any():
        frames = transforms.ok
    selected = _selected_frames(frames, int(stack.shape[0]))
    image, coverage, crop = average_volumes(
        stack, transforms, selected, mode=opts.mode, order=opts.order, progress=progress
    )
    return FrameAverage(image=image, coverage=coverage, crop=crop, mode=opts.mode, n_frames=int(selected.size))


def _selected_frames(frames: Any, n_frames: int) -> np.ndarray:
    """The indices of the frames to average (``frames``: indices or a boolean mask; None = all)."""
    if frames is None:
        selected = np.arange(n_frames)
    else:
        sel = np.asarray(frames)
        selected = np.flatnonzero(sel) if sel.dtype == bool else sel.astype(int)
    if selected.size == 0:
        raise ValueError("no frames selected to average.")
    return selected


def _sum_frames(
    stack: Any,
    transforms: FrameTransforms | None,
    selected: np.ndarray,
    opts: AverageOptions,
    progress: ProgressCallback | None,
) -> tuple[np.ndarray, np.ndarray]:
    """The float64 sum of the selected (warped) frames and how many frames cover each pixel."""
    _, extra, (h, w) = frames_shape(stack)
    total = np.zeros((*extra, h, w), dtype=np.float64)
    coverage = np.zeros((h, w), dtype=np.int32)
    chunk_size = opts.chunk_size
    if transforms is not None:
        transforms, _ = transforms.resolve_failed(
            "interpolate"
        )  # over the whole stack, not chunk by chunk
    report(progress, 0, selected.size, "average")
    for start in range(0, selected.size, chunk_size):
        idx = selected[start : start + chunk_size]
        chunk = np.stack([np.asarray(stack[int(t)]) for t in idx]).astype(
            np.float32, copy=False
        )
        if transforms is not None:
            # NaN marks the pixels a frame does not fully cover
            chunk = apply_transforms(
                chunk,
                transforms[idx],
                order=opts.order,
                border="nan",
                output_dtype=np.float32,
                workers=opts.workers,
                failed="apply",
            )
        for k in range(len(idx)):
            _accumulate(total, coverage, chunk[k], extra)
        report(
            progress, min(start + chunk_size, selected.size), selected.size, "average"
        )
    return total, coverage


def _accumulate(
    total: np.ndarray, coverage: np.ndarray, frame: np.ndarray, extra: tuple
) -> None:
    """Add one ([C,] Y, X) frame where it is finite (all channels must be)."""
    valid = np.isfinite(frame)
    if extra:
        valid = valid.all(axis=tuple(range(len(extra))))
    total += np.where(valid, frame, 0.0)
    coverage += valid
