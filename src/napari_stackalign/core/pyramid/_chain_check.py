"""Whether two paths of a chain to the same frame agree.

In the chained reference modes a frame ``t`` is linked to the last
trustworthy frame before it, and its position is that frame's position plus
the link. One wrong link that still looks significant (a lattice period hop,
a wrong peak the motion model favoured) would move every later frame. So
each frame is also linked to a second, earlier frame: the two positions
must agree within a tolerance derived from the links' own uncertainty.

A link's uncertainty per axis (px) is the Cramér-Rao-like bound of a
correlation peak's position,

``sigma**2 = (1 - r**2) / (r**2 * neff * G)``,

with ``r`` the link's correlation, ``neff`` its effective number of
independent pixels (:meth:`._engine.PyramidEstimator.effective_pixels`) and
``G`` the mean squared gradient of the standardised reference along the axis
(the curvature of its autocorrelation at the peak, per px**2). Two paths
agree when their distance is at most ``max(MIN_TOLERANCE, K_SIGMA *
sqrt(sigma_1**2 + sigma_2**2))``: ``K_SIGMA`` leaves room for the error the
chain carried into each path's earlier frame, which the bound does not
hold, and ``MIN_TOLERANCE`` keeps sub-pixel noise from ever counting as a
disagreement (the wrong links this catches are whole lattice periods or
wrong peaks, pixels away).
"""

from __future__ import annotations

import numpy as np

from ._engine import Estimate
from ._template import Template

__all__ = ["K_SIGMA", "MIN_TOLERANCE", "gradient_power", "link_sigma", "tolerance"]

#: agreement within this many combined standard deviations of the two links
K_SIGMA = 6.0
#: ... and never less than this (full-resolution px)
MIN_TOLERANCE = 1.0


def gradient_power(template: Template) -> np.ndarray:
    """``G`` per axis (dy, dx): the mean squared difference of neighbouring
    pixels of the standardised template, over the pixel pairs it holds
    information at (per px**2; NaN without any)."""
    img = template.image.astype(np.float64, copy=False)
    out = np.full(2, np.nan)
    for axis in (0, 1):
        diff = np.diff(img, axis=axis)
        if template.valid is not None:
            both = (
                template.valid[1:, :] & template.valid[:-1, :]
                if axis == 0
                else template.valid[:, 1:] & template.valid[:, :-1]
            )
            diff = diff[both]
        if diff.size:
            out[axis] = float(np.mean(diff * diff))
    return out


def link_sigma(est: Estimate, gradient: np.ndarray) -> float:
    """The link's standard deviation of position (px, both axes together; inf when unknown)."""
    r = float(est.quality)
    neff = float(est.neff)
    if not (np.isfinite(r) and r > 0 and np.isfinite(neff) and neff > 0 and np.all(gradient > 0)):
        return float("inf")
    r = min(r, 0.999999)
    per_axis = (1.0 - r * r) / (r * r * neff * np.asarray(gradient, dtype=np.float64))
    return float(np.sqrt(per_axis.sum()))


def tolerance(sigma_a: float, sigma_b: float) -> float:
    """The largest distance (px) at which two paths with these link uncertainties agree."""
    return max(MIN_TOLERANCE, K_SIGMA * float(np.hypot(sigma_a, sigma_b)))
