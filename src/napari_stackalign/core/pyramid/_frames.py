"""Frame preparation: ROI crop, float32 (data far from the usual range first
brought into it: :mod:`~napari_stackalign.core.scaling`), ignored pixels (mask,
NaN) and their weights at every pyramid level."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from ..scaling import WorkingScale, has_spread, to_float32, working_scale
from ._levels import Levels

__all__ = ["FramePreparer", "FrameWeights", "PreparedFrame"]


@dataclass
class PreparedFrame:
    """A frame ready to compare: float32 crop; ignored pixels (mask, NaN) hold
    the mean of the others and have weight 0."""

    image: np.ndarray
    weights: Any  # FrameWeights or None
    usable: bool


class FrameWeights:
    """Per-pixel 0/1 weights of a frame with their pyramid versions (cached).

    ``level(i)`` gives the weights at level ``i`` (a level pixel counts only
    when all its full-resolution pixels do); ``eroded(i)`` additionally drops
    pixels whose interpolation support touches an ignored pixel.
    """

    def __init__(self, weights: np.ndarray, levels: Levels, margin: int) -> None:
        self.full = np.ascontiguousarray(weights, dtype=np.float32)
        self.mask8 = (self.full > 0.5).view(np.uint8)
        self._levels = levels
        self._margin = margin
        self._level: dict[int, np.ndarray] = {}
        self._eroded: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()

    def level(self, i: int) -> np.ndarray:
        with self._lock:
            if i not in self._level:
                w = self._levels.build_one(self.full, i)
                self._level[i] = (w >= 0.999).astype(np.float32)
            return self._level[i]

    def _erode(self, key: Any, image: np.ndarray) -> np.ndarray:
        with self._lock:
            if key not in self._eroded:
                size = 2 * self._margin + 1
                kernel = np.ones((size, size), np.uint8)
                self._eroded[key] = cv2.erode(image, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=1)
            return self._eroded[key]

    def eroded(self, i: int) -> np.ndarray:
        return self._erode(i, self.level(i))

    def eroded_full(self) -> np.ndarray:
        """Full-resolution weights, eroded by the interpolation support."""
        return self._erode("full", self.full)


class FramePreparer:
    """Raw frame -> compared image.

    Parameters
    ----------
    frame_shape : (int, int)
        Full frame shape (Y, X).
    roi : (row_start, row_stop, col_start, col_stop) or None
        Rectangle compared (in frame pixels).
    mask : ndarray of bool (Y, X) or None
        Pixels compared (True).
    normalize : bool
        Whether templates are built from frames scaled to unit variance
        (else only made zero-mean).
    levels : Levels
        Geometry of the cropped frames (for the weights' pyramid).
    margin : int
        Interpolation support (for eroding weights).
    """

    def __init__(
        self,
        frame_shape: tuple[int, int],
        roi: tuple[int, int, int, int] | None,
        mask: np.ndarray | None,
        normalize: bool,
        levels: Levels,
        margin: int,
    ) -> None:
        if roi is None:
            roi = (0, frame_shape[0], 0, frame_shape[1])
        self.roi = tuple(int(v) for v in roi)
        self._sl = (slice(self.roi[0], self.roi[1]), slice(self.roi[2], self.roi[3]))
        self.shape = (self.roi[1] - self.roi[0], self.roi[3] - self.roi[2])
        self.normalize = normalize
        self.levels = levels
        self.margin = margin
        self.static: FrameWeights | None = None
        # offset and power-of-two factor for data far from the usual range,
        # chosen from the first frame prepared that is not blank (the same for every later one)
        self.scale: WorkingScale | None = None
        self._scale_lock = threading.Lock()
        if mask is not None:
            crop = np.asarray(mask, dtype=bool)[self._sl]
            if not crop.all():
                self.static = FrameWeights(crop, levels, margin)

    def __call__(self, raw: np.ndarray) -> PreparedFrame:
        raw = np.asarray(raw)[self._sl]
        scale = self.scale
        if scale is None:
            scale = working_scale(raw)
            if has_spread(raw):  # a blank frame says nothing: decide on the next one
                with self._scale_lock:
                    if self.scale is None:
                        self.scale = scale
                    scale = self.scale
        img = to_float32(raw, scale)
        weights = self.static
        if raw.dtype.kind == "f" and not np.isfinite(cv2.sumElems(img)[0]):
            bad = ~np.isfinite(img)
            base = np.ones(self.shape, np.float32) if weights is None else weights.full
            weights = FrameWeights(base * ~bad, self.levels, self.margin)
            img[bad] = 0.0
        if weights is not None:
            wfull = weights.full
            n = float(cv2.sumElems(wfull)[0])
            if n < 16:
                img.fill(0)
                return PreparedFrame(img, weights, False)
            mean = cv2.mean(img, mask=weights.mask8)[0]
            img -= np.float32(mean)
            img *= wfull
        else:
            # zero mean keeps float32 sums exact enough for any offset
            img -= np.float32(cv2.sumElems(img)[0] / img.size)
        return PreparedFrame(img, weights, True)
