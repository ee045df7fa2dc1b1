"""The volume pyramid: block means by powers of two, Z kept at no fewer than ``MIN_PLANES`` planes."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["MIN_PLANES", "MIN_SIDE", "VolumeLevel", "downsample", "plan_levels"]

#: Z is not reduced below this many planes (volumes are often thin)
MIN_PLANES = 8
#: a level whose Y or X side would be shorter than this (px) is skipped
MIN_SIDE = 16


class VolumeLevel:
    """One pyramid level: the rate asked for and the (z, y, x) reduction factors."""

    def __init__(self, rate: float, factors: tuple[int, int, int]) -> None:
        self.rate = rate
        self.factors = factors

    def shape(self, full: tuple[int, int, int]) -> tuple[int, int, int]:
        """The level's (Z, Y, X) for a full-resolution volume of ``full``."""
        return tuple(n // f for n, f in zip(full, self.factors))  # type: ignore[return-value]


def plan_levels(rates: Sequence[float], shape_zyx: tuple[int, int, int]) -> list[VolumeLevel]:
    """The levels used for volumes of ``shape_zyx``.

    Every rate must be a power of two (1, 1/2, 1/4, ...): the volume pyramid
    is made of 2x2x2 block means. Y and X are reduced by ``1 / rate``; Z by
    the largest power of two that leaves at least ``MIN_PLANES`` planes (so
    thin volumes keep their planes). Levels whose Y or X side would be below
    ``MIN_SIDE`` px are skipped; the last level is always kept.

    Raises
    ------
    ValueError
        For a rate that is not a power of two.
    """
    levels: list[VolumeLevel] = []
    z = int(shape_zyx[0])
    for i, rate in enumerate(rates):
        k = round(-math.log2(rate))
        if abs(2.0**-k - rate) > 1e-9:
            raise ValueError(
                f"volume registration takes downsample rates that are powers of two (1, 1/2, 1/4, 1/8, ...), "
                f"got {rate:g}."
            )
        f = 2**k
        fz = 1
        while fz * 2 <= f and z // (fz * 2) >= MIN_PLANES:
            fz *= 2
        level = VolumeLevel(float(rate), (fz, f, f))
        _, ly, lx = level.shape(tuple(shape_zyx))
        if (ly < MIN_SIDE or lx < MIN_SIDE) and i < len(rates) - 1:
            continue
        levels.append(level)
    return levels


def downsample(volume: np.ndarray, factors: tuple[int, int, int]) -> np.ndarray:
    """Block means of ``factors`` (z, y, x) voxels (the remainder at the far ends is cut)."""
    if factors == (1, 1, 1):
        return volume
    fz, fy, fx = factors
    z, y, x = (n // f for n, f in zip(volume.shape, factors))
    cut = volume[: z * fz, : y * fy, : x * fx]
    return cut.reshape(z, fz, y, fy, x, fx).mean(axis=(1, 3, 5), dtype=np.float64).astype(np.float32)
