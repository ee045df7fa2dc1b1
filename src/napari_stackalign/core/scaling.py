"""Frames to the float32 the estimators compute in, without losing the signal.

The estimators square and sum pixel values in float32. Data far from the
usual range break that: float32 values near 1e20 (or up to 3e38) overflow when
squared, values near 1e-30 underflow to zero ("constant frames"), and an
int64 or uint64 stack whose values sit near 2**62 with small variations loses
every variation in the cast to float32 (24-bit mantissa). :class:`WorkingScale`
removes an offset (in integer arithmetic for integer data) and multiplies by
a power of two, in float64, before the cast, so that such a stack registers as
well as the same stack at a normal scale. For data in the usual range (every
8- and 16-bit stack, and floats of moderate magnitude) it does nothing: the
frames are converted exactly as before.

An offset and a positive factor common to all frames change no estimate of
a shift, rotation or scale: the methods remove each frame's mean and compare
normalised images. The scale is chosen once per stack (from the first frames
read that are not blank) so that every frame is treated alike.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "FLOAT32_EXACT",
    "SAFE_MAGNITUDE",
    "WorkingScale",
    "to_float32",
    "working_scale",
]

#: Integers above this magnitude are not all exact in float32 (24-bit mantissa).
FLOAT32_EXACT = 2**24
#: (low, high): magnitudes outside this range are rescaled by a power of two.
#: Squares and sums of a million squares stay finite and normal in float32.
SAFE_MAGNITUDE = (2.0**-40, 2.0**40)
#: A float offset larger than this many times the spread is removed (float32
#: keeps about 7 digits: 1e4 x the spread would leave 3).
OFFSET_RATIO = 2.0**10
#: The factor is a power of two whose exponent is a multiple of this.
EXPONENT_STEP = 8


class WorkingScale(NamedTuple):
    """``(raw - offset) * factor``, computed in float64 (integers: the
    subtraction exact, in integer arithmetic), then cast to float32."""

    offset: int | float = 0
    factor: float = 1.0

    @property
    def identity(self) -> bool:
        """True when the frames are converted as they are."""
        return self.offset == 0 and self.factor == 1.0


IDENTITY = WorkingScale()


def _finite_range(arr: np.ndarray) -> tuple[float, float, float] | None:
    """(min, max, mean) of the finite values in float64, or None when there are none."""
    values = np.asarray(arr, dtype=np.float64)
    finite = np.isfinite(values)
    if not finite.all():
        values = values[finite]
    if values.size == 0:
        return None
    return (
        float(values.min()),
        float(values.max()),
        float(values.mean(dtype=np.float64)),
    )


def has_spread(sample: Any) -> bool:
    """Whether ``sample`` has finite values that are not all equal (so that a
    scale chosen from it is worth keeping for the rest of the stack)."""
    arr = np.asarray(sample)
    if arr.size == 0 or arr.dtype.kind not in "biuf":
        return False
    if arr.dtype.kind in "biu":
        return bool(arr.min() != arr.max())
    found = _finite_range(arr)
    return found is not None and found[1] > found[0]


def working_scale(sample: Any) -> WorkingScale:
    """The :class:`WorkingScale` for a stack, from a sample of its frames.

    Parameters
    ----------
    sample : array-like
        One or a few frames (any shape) of the stack, in its own dtype.

    Returns
    -------
    WorkingScale
        The identity for data in the usual range.
    """
    arr = np.asarray(sample)
    kind = arr.dtype.kind
    if arr.size == 0 or kind not in "biuf":
        return IDENTITY
    offset: int | float = 0
    if kind in "iu":
        lo, hi = int(arr.min()), int(arr.max())
        if max(abs(lo), abs(hi)) <= FLOAT32_EXACT:
            return IDENTITY
        offset = lo
        magnitude = float(hi - lo)
    elif kind == "b":
        return IDENTITY
    else:
        found = _finite_range(arr)
        if found is None:
            return IDENTITY
        lo, hi, mean = found
        spread = hi - lo
        if spread > 0 and abs(mean) > OFFSET_RATIO * spread:
            offset = mean
        magnitude = max(abs(lo - offset), abs(hi - offset))
    factor = 1.0
    low, high = SAFE_MAGNITUDE
    if magnitude > 0 and not low <= magnitude <= high:
        # a power of two (exact), in steps of 2**8 so that frames of one stack
        # sampled apart (one preparer per process) almost always agree
        factor = 2.0 ** (
            -EXPONENT_STEP * math.floor(math.log2(magnitude) / EXPONENT_STEP)
        )
    return WorkingScale(offset, factor)


def to_float32(raw: Any, scale: WorkingScale = IDENTITY) -> np.ndarray:
    """A new C-contiguous float32 array of ``(raw - offset) * factor``.

    NaN and inf stay NaN and inf (the callers detect them); an integer offset
    is subtracted exactly (modulo 2**64 for 64-bit integers, whose differences
    from the stack's minimum are then exact as unsigned integers).
    """
    arr = np.asarray(raw)
    if scale.identity or arr.dtype.kind not in "iuf":
        return np.array(arr, dtype=np.float32, order="C", copy=True)
    if arr.dtype.kind in "iu":
        if arr.dtype.itemsize == 8:
            wrapped = arr.astype(np.uint64, copy=False) - np.uint64(
                int(scale.offset) % 2**64
            )
            # values below the sample's minimum wrap to huge numbers: bring them back as negatives
            below = wrapped >= np.uint64(2**63)
            diff = wrapped.astype(np.float64)
            if below.any():
                diff[below] = -(np.uint64(0) - wrapped[below]).astype(np.float64)
        else:
            diff = arr.astype(np.int64) - int(scale.offset)
            diff = diff.astype(np.float64)
        out = diff
    else:
        out = arr.astype(np.float64)
        if scale.offset:
            out -= float(scale.offset)
    if scale.factor != 1.0:
        out *= scale.factor
    return np.ascontiguousarray(out, dtype=np.float32)
