"""One prepared volume at a time: a channel of a TCZYX stack, cropped to the ``roi``, float and zero-mean."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._checks import VolumeLayout
from ._engine import prepare_volume

__all__ = ["VolumeReader"]


class VolumeReader:
    """``reader(t)``: frame ``t`` prepared for the estimator (None when it has no contrast).

    Only ``stack[t]`` (``stack[t, channel]``) is read, so a lazily opened
    stack (h5py, dask, memmap) is never loaded whole.
    """

    def __init__(
        self,
        stack: Any,
        layout: VolumeLayout,
        channel: int | None,
        roi: tuple[int, int, int, int] | None,
        normalize: bool,
    ) -> None:
        self.stack = stack
        self.layout = layout
        self.channel = channel
        self.roi = roi
        self.normalize = normalize

    def crop(self, volume: np.ndarray) -> np.ndarray:
        """``volume`` cut to the roi's rows and columns (every plane)."""
        if self.roi is None:
            return volume
        r0, r1, c0, c1 = self.roi
        return volume[:, r0:r1, c0:c1]

    def __call__(self, t: int) -> np.ndarray | None:
        return prepare_volume(self.crop(self.layout.volume(self.stack, t, self.channel)), self.normalize)
