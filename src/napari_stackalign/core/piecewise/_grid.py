"""The grid of overlapping patches."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["PatchGrid", "patch_grid", "patch_starts"]


def patch_starts(length: int, size: int, overlap: int) -> np.ndarray:
    """First pixel of every patch along one axis of ``length`` px.

    Patches of ``size`` (at most ``length``) step by ``size - overlap``;
    the last one ends on the last pixel, so the whole axis is covered.
    """
    size = min(size, length)
    step = max(size - overlap, 1)
    starts = list(range(0, length - size + 1, step))
    if starts[-1] != length - size:
        starts.append(length - size)
    return np.asarray(starts, dtype=int)


class PatchGrid(NamedTuple):
    """Patches ``[row0, row0 + size_y) x [col0, col0 + size_x)``."""

    row_starts: np.ndarray
    col_starts: np.ndarray
    size: tuple[int, int]

    @property
    def rows(self) -> np.ndarray:
        """Patch centres along the rows."""
        return self.row_starts + (self.size[0] - 1) / 2.0

    @property
    def cols(self) -> np.ndarray:
        return self.col_starts + (self.size[1] - 1) / 2.0

    @property
    def shape(self) -> tuple[int, int]:
        return (self.row_starts.size, self.col_starts.size)


def patch_grid(frame_shape: tuple[int, int], size: int, overlap: int) -> PatchGrid:
    """The patch grid of a frame (patches shrink to the frame when it is smaller)."""
    h, w = (int(n) for n in frame_shape)
    return PatchGrid(patch_starts(h, size, overlap), patch_starts(w, size, overlap), (min(size, h), min(size, w)))
