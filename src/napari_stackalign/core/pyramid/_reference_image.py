"""A user's reference image: the fill of registered frames is not content.

A registered frame (warped with ``border="constant"``) has bands of one fill
value along the edges it was shifted away from, and a plain mean of such
frames (a mean projection of a registered layer) has graded bands there,
darker towards the edge. Matched as content, either is a strong edge that no
frame has, and most frames lose the match, or find a wrong one.
:func:`without_fill` turns those bands into NaN, which the engine treats as
pixels without information (as it treats the template's own uncovered
pixels).

A band is found from the image's row and column profiles (the median of each
row or column, robust to the content): the rows (columns) from an edge
inwards whose profile stays on the fill's side of the interior level, by
more than :data:`BAND_SPREAD` times the interior profile's spread, while the
outermost one differs from that level by more than :data:`FILL_CONTRAST`
times the spread and by more than :data:`FILL_DROP` of the level itself (a
fill of 0 next to content). An edge the content or the illumination makes
darker only gradually (vignetting) is left as it is.
"""

from __future__ import annotations

import numpy as np

__all__ = ["BAND_SPREAD", "FILL_CONTRAST", "FILL_DROP", "fill_bands", "without_fill"]

#: a row of a band is off the interior level by more than this many spreads (MAD, scaled)
BAND_SPREAD = 3.0
#: ... and the outermost row by more than this many
FILL_CONTRAST = 8.0
#: ... and by more than this share of the interior level (a fill of 0 is a deep drop; vignetting is not)
FILL_DROP = 0.3
#: bands never cover more than this share of the rows (columns) on one side
MAX_BAND = 0.45


def _band(profile: np.ndarray) -> int:
    """How many entries from the start of ``profile`` are fill (see the module docstring)."""
    n = profile.size
    inner = profile[n // 4 : n - n // 4]
    if inner.size < 4:
        return 0
    level = float(np.median(inner))
    spread = 1.4826 * float(np.median(np.abs(inner - level)))
    if not spread > 0:
        spread = max(1e-6 * abs(level), 1e-12)
    edge = float(profile[0])
    if not (abs(edge - level) > FILL_CONTRAST * spread and abs(edge - level) > FILL_DROP * abs(level)):
        return 0
    side = np.sign(edge - level)
    off = side * (profile - level) > BAND_SPREAD * spread
    width = int(np.argmin(off)) if not off.all() else n
    return min(width, int(MAX_BAND * n))


def fill_bands(image: np.ndarray) -> tuple[int, int, int, int]:
    """The widths (px) of the fill bands at the top, bottom, left and right of ``image``.

    NaN pixels are ignored (a band already NaN needs nothing); 0 where there
    is none.
    """
    img = np.asarray(image, dtype=np.float64)
    with np.errstate(all="ignore"):
        rows = np.nanmedian(img, axis=1)
        cols = np.nanmedian(img, axis=0)
    out = []
    for profile in (rows, rows[::-1], cols, cols[::-1]):
        finite = np.isfinite(profile)
        if not finite.all():
            if not finite.any():
                return (0, 0, 0, 0)
            # leading NaN rows are already no information: start after them
            lead = int(np.argmax(finite))
            out.append(lead + _band(np.nan_to_num(profile[lead:], nan=float(np.nanmedian(profile)))))
        else:
            out.append(_band(profile))
    return tuple(out)  # type: ignore[return-value]


def without_fill(image: np.ndarray) -> np.ndarray:
    """``image`` as float32 with its fill bands (:func:`fill_bands`) set to NaN."""
    out = np.asarray(image, dtype=np.float32)
    top, bottom, left, right = fill_bands(out)
    if not (top or bottom or left or right):
        return out
    out = out.copy()
    h, w = out.shape
    out[:top] = np.nan
    out[h - bottom :] = np.nan
    out[:, :left] = np.nan
    out[:, w - right :] = np.nan
    return out
