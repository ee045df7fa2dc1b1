"""Templates: a full-resolution image with its valid pixels, and the
accumulator that averages registered frames into a new one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np

from ._frames import PreparedFrame
from ._lucas_kanade import KERNELS, sample_shifted, valid_region

__all__ = ["Registered", "Template", "TemplateAccumulator"]


@dataclass
class Template:
    """A template (full resolution of the compared area) and where it holds
    information."""

    image: np.ndarray  # float32 (h, w), zero-mean (unit variance) where valid, 0 elsewhere
    valid: np.ndarray | None  # bool (h, w); None: everywhere

    @classmethod
    def from_prepared(cls, frame: PreparedFrame, normalize: bool = True) -> Template:
        valid = None if frame.weights is None else frame.weights.full > 0.5
        return cls(_standardize(frame.image, valid, normalize), valid)

    def moved(self, step: tuple[int, int]) -> Template:
        """The template moved by whole pixels: ``new[q] = old[q - step]``.

        A frame matching the old template at shift ``s`` matches the new one
        at ``s - step``. The strip the move uncovers holds no information.
        """
        dy, dx = int(step[0]), int(step[1])
        if dy == 0 and dx == 0:
            return self
        h, w = self.image.shape
        image = np.zeros_like(self.image)
        valid = np.zeros((h, w), bool)
        src_r = slice(max(0, -dy), min(h, h - dy))
        dst_r = slice(max(0, dy), min(h, h + dy))
        src_c = slice(max(0, -dx), min(w, w - dx))
        dst_c = slice(max(0, dx), min(w, w + dx))
        image[dst_r, dst_c] = self.image[src_r, src_c]
        valid[dst_r, dst_c] = True if self.valid is None else self.valid[src_r, src_c]
        return Template(image, valid)


def _standardize(image: np.ndarray, valid: np.ndarray | None, normalize: bool) -> np.ndarray:
    img = image.astype(np.float32, copy=True)
    sel = img if valid is None else img[valid]
    if sel.size == 0:
        return img * 0
    img -= np.float32(sel.mean(dtype=np.float64))
    if valid is not None:
        img[~valid] = 0
    if normalize:
        sd = float(np.sqrt(np.mean((img if valid is None else img[valid]).astype(np.float64) ** 2)))
        if sd > 0:
            img /= np.float32(sd)
    return img


class Registered(NamedTuple):
    """A frame resampled onto the template grid over ``region``.

    The standardised frame is ``(values - mean) * scale`` (times ``weights``
    when there are weights, which are then already applied to ``values``).
    """

    values: np.ndarray  # float32, region-sized, as sampled (weighted: standardised)
    weights: np.ndarray | None  # float32 region-sized, or None (all 1)
    region: tuple[int, int, int, int]
    mean: float  # subtracted when added (0 with weights: already done)
    scale: float  # multiplies values when added (1 with weights: already done)


class TemplateAccumulator:
    """Averages frames resampled onto the template grid (translation only).

    Each frame is sampled at ``p + s`` with the same Lagrange interpolation as
    the sub-pixel step (so the template is not blurred more than needed and
    has no interpolation bias), standardised over the pixels it covers, and
    added with a coverage count.

    Without weights a frame is added as ``values * scale`` in one OpenCV call
    and its constant ``-mean * scale`` goes, like its coverage, into a table
    of rectangle corners summed once at the end (2-D differences), so adding
    a frame reads and writes the template once.
    """

    def __init__(self, shape: tuple[int, int], normalize: bool, kernel: str) -> None:
        self.shape = shape
        self.normalize = normalize
        self.kernel = kernel
        self.total = np.zeros(shape, np.float32)
        self.weight = np.zeros(shape, np.float32)
        self._corners = np.zeros((shape[0] + 1, shape[1] + 1), np.int64)
        self._offsets = np.zeros((shape[0] + 1, shape[1] + 1), np.float64)
        self.count = 0

    def register(self, frame: PreparedFrame, shift: tuple[float, float]) -> Registered | None:
        """Resample ``frame`` at ``p + shift`` (thread-safe, no side effect)."""
        m = KERNELS[self.kernel]
        ny, nx = int(np.floor(shift[0])), int(np.floor(shift[1]))
        region = valid_region((ny, nx), frame.image.shape, self.shape, m)
        r0, r1, c0, c1 = region
        if r1 - r0 < 2 or c1 - c0 < 2:
            return None
        values = sample_shifted(frame.image, shift, region, self.kernel)
        if frame.weights is not None:
            full = frame.weights.eroded_full()
            wts = np.ascontiguousarray(full[r0 + ny : r1 + ny, c0 + nx : c1 + nx])
            n = float(cv2.sumElems(wts)[0])
            if n < 16:
                return None
            values = np.ascontiguousarray(values)
            mean = float(np.dot(values.ravel(), wts.ravel())) / n
            values = (values - np.float32(mean)) * wts
            flat = values.ravel()
            var = float(np.dot(flat, flat)) / n
            if not var > 0:
                return None
            if self.normalize:
                values *= np.float32(1.0 / np.sqrt(var))
            return Registered(values, wts, region, 0.0, 1.0)
        n = float(values.shape[0] * values.shape[1])
        mean = cv2.sumElems(values)[0] / n
        mean_square = cv2.norm(values, cv2.NORM_L2SQR) / n
        var = mean_square - mean * mean
        # (nearly) constant over the region: nothing to register
        if not var > 1e-9 * mean_square:
            return None
        scale = 1.0 / np.sqrt(var) if self.normalize else 1.0
        return Registered(values, None, region, mean, scale)

    def add(self, registered: Registered | None) -> None:
        if registered is None:
            return
        r0, r1, c0, c1 = registered.region
        total = self.total[r0:r1, c0:c1]
        if registered.weights is None:
            cv2.scaleAdd(registered.values, registered.scale, total, dst=total)
            # coverage and constant of whole rectangles: 2-D difference
            # tables, summed at the end
            for table, value in ((self._corners, 1), (self._offsets, -registered.mean * registered.scale)):
                table[r0, c0] += value
                table[r0, c1] -= value
                table[r1, c0] -= value
                table[r1, c1] += value
        else:
            np.add(total, registered.values, out=total)
            weight = self.weight[r0:r1, c0:c1]
            np.add(weight, registered.weights, out=weight)
        self.count += 1

    def template(self) -> Template:
        if self.count == 0:
            raise ValueError("no usable frame to build a reference from (all frames constant, empty or masked).")
        self.weight += np.cumsum(np.cumsum(self._corners, axis=0), axis=1)[:-1, :-1].astype(np.float32)
        self.total += np.cumsum(np.cumsum(self._offsets, axis=0), axis=1)[:-1, :-1].astype(np.float32)
        self._corners[:] = 0
        self._offsets[:] = 0
        valid = self.weight >= 0.5
        mean = np.zeros(self.shape, np.float32)
        np.divide(self.total, self.weight, out=mean, where=valid)
        all_valid = bool(valid.all())
        return Template(_standardize(mean, None if all_valid else valid, self.normalize), None if all_valid else valid)
