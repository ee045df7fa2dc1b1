"""How precise a refined similarity estimate is: its predicted error in px at the frame corners.

The Gauss-Newton refinement (:mod:`._refine`) solves for four parameters
``p = (a, b, ty, tx)``: ``a`` and ``b`` are the scale and rotation parts in px
of displacement at half the frame diagonal, ``ty, tx`` the shift in px. At its
fixed point the residual ``e`` (the smoothed frame, gain and offset removed,
minus the smoothed template) is orthogonal to the template's steepest-descent
images ``J``. Linearising about the truth, noise ``n`` in the images moves the
estimate by ``dp = A^-1 J^T e`` with ``A = J^T J_f``, where ``J_f`` are the
same images built from the registered *frame's* gradients: the frame and the
template carry independent noise, so ``A`` is an unbiased estimate of the
signal's own Hessian, where ``J^T J`` would also count the noise in the
template's gradients as information (at low SNR it is mostly that).

Both images are smoothed by a Gaussian ``g`` after resampling, so the
residual noise is correlated: with white noise of variance ``v`` per pixel,
``cov(dp) = v A^-1 M A^-T`` with ``M = sum (g * J)(g * J)^T``. ``v`` is taken
from the residual itself, ``v = mean(e^2) / sum(g^2)``: any misfit (intensity
changes, deformation, noise that is not white) makes the residual larger and
the predicted error with it, never smaller.

The predicted error of a frame is the largest, over the four frame corners,
of the RMS displacement error ``sqrt(E|d(corner)|^2)`` that ``cov(dp)``
gives: the rotation and scale uncertainty times the radius, plus the shift
uncertainty. A Cramér-Rao-like figure: what the data allow, at the estimate
the refinement found (it does not see a wrong basin: that is
:mod:`._ambiguity`'s job).
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

__all__ = ["IMPRECISE_PX", "blur_noise_factor", "corner_error", "predicted_error"]

#: a frame whose predicted error at the frame corners (1 sigma, px) exceeds this is flagged
#: "imprecise" and not applied. A flagged frame gets the fallback (interpolated or no correction),
#: which for a drifting sample is worse than an estimate good to half a pixel, so the bar is where
#: the estimate stops being sub-pixel, not where it stops being perfect: real stacks whose content
#: changes between frames (the pystackreg PC12 cell: predicted 0.53-0.66 px, agreeing with
#: TurboReg within 0.6 px) pass, and the generator's wrong frames caught by this test had a
#: predicted error of 0.83 px and more (``bench_similarity_trust.py --seed 3``)
IMPRECISE_PX = 0.75


@lru_cache(maxsize=16)
def blur_noise_factor(sigma: float) -> float:
    """Variance of unit white noise after ``cv2.GaussianBlur(sigma)`` (the sum of the squared kernel)."""
    n = 2 * int(np.ceil(5 * sigma)) + 65
    delta = np.zeros((n, n), np.float32)
    delta[n // 2, n // 2] = 1.0
    kernel = cv2.GaussianBlur(delta, (0, 0), float(sigma), borderType=cv2.BORDER_CONSTANT)
    return float((kernel.astype(np.float64) ** 2).sum())


def steepest_descent(image: np.ndarray, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """The four steepest-descent images (flat, (4, N)) of a smoothed image, in the refinement's parameters.

    ``yy`` (column) and ``xx`` (row) are the pixel coordinates about the centre
    divided by half the diagonal.
    """
    gy, gx = np.gradient(image)
    sd = np.empty((4, *image.shape), dtype=np.float32)
    sd[0] = gy * yy + gx * xx
    sd[1] = -gy * xx + gx * yy
    sd[2] = gy
    sd[3] = gx
    return sd.reshape(4, -1)


def corner_error(cov: np.ndarray, corners: np.ndarray) -> float:
    """Largest RMS displacement error (px) over ``corners`` ((K, 2) normalised (y, x)) for ``cov`` of p."""
    worst = 0.0
    for uy, ux in corners:
        ly = np.array([uy, -ux, 1.0, 0.0])
        lx = np.array([ux, uy, 0.0, 1.0])
        worst = max(worst, float(ly @ cov @ ly + lx @ cov @ lx))
    return float(np.sqrt(worst))


def predicted_error(
    sd_template: np.ndarray,
    sd_template_blurred: np.ndarray,
    frame_smoothed: np.ndarray,
    gain: float,
    residual: np.ndarray,
    mask: np.ndarray,
    *,
    yy: np.ndarray,
    xx: np.ndarray,
    sigma: float,
    corners: np.ndarray,
) -> float:
    """Predicted error (px, 1 sigma) of a refined estimate at the frame corners.

    Parameters
    ----------
    sd_template, sd_template_blurred : ndarray (4, N)
        The template's steepest-descent images, and the same smoothed once more by ``sigma``.
    frame_smoothed : ndarray (H, W)
        The frame resampled through the estimate and smoothed by ``sigma``.
    gain : float
        The factor the refinement applied to the frame (template units per frame unit).
    residual : ndarray (N,)
        The residual at the estimate (zero outside ``mask``).
    mask : ndarray (N,)
        0/1 weights of the pixels used.
    yy, xx : ndarray
        Normalised pixel coordinates (see :func:`steepest_descent`).
    sigma : float
        The smoothing.
    corners : ndarray (K, 2)
        Normalised positions where the error is evaluated.

    Returns
    -------
    float
        ``inf`` when the data do not constrain the four parameters.
    """
    n_valid = float(mask.sum())
    if n_valid < 64:
        return float("inf")
    sd_frame = steepest_descent(frame_smoothed, yy, xx) * np.float32(gain)
    weighted = sd_template * mask
    a_mat = (weighted @ sd_frame.T).astype(np.float64)
    blurred = sd_template_blurred * mask
    m_mat = (blurred @ blurred.T).astype(np.float64)
    v_white = float(residual @ residual) / n_valid / blur_noise_factor(sigma)
    try:
        a_inv = np.linalg.inv(a_mat)
    except np.linalg.LinAlgError:
        return float("inf")
    cov = v_white * (a_inv @ m_mat @ a_inv.T)
    if not np.all(np.isfinite(cov)):
        return float("inf")
    return corner_error(cov, corners)
