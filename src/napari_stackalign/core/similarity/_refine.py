"""Gauss-Newton refinement of a similarity transform against a fixed template.

Inverse-compositional Lucas-Kanade (Baker & Matthews 2004) for the
four-parameter similarity model (rotation, isotropic scale, translation), on
a coarse-to-fine pyramid, with gain and offset between the frame and the
template removed at every step.

At each step the frame is resampled once through the current estimate
(``cv2.warpAffine``, bicubic), both images are smoothed by the same Gaussian
*after* resampling (so the smoothing does not depend on the estimate), the
frame's gain and offset are fitted to the template over the pixels both
cover, and the update solves a 4x4 normal system built from the template's
gradients (computed once per template). The fixed point, where the residual
is orthogonal to the template's steepest-descent images, does not depend on
the Hessian, so noise in the template's gradients slows convergence but does
not bias the result.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ._options import SIMILARITY_DEFAULTS
from ._precision import predicted_error, steepest_descent

__all__ = ["RefineResult", "SimilarityRefiner", "similarity_matrix"]


def similarity_matrix(angle_deg: float, scale: float, center: tuple[float, float], shift=(0.0, 0.0)) -> np.ndarray:
    """3x3 (row, col) matrix ``p -> scale * R(angle) (p - center) + center + shift``."""
    a = np.deg2rad(angle_deg)
    c, s = scale * np.cos(a), scale * np.sin(a)
    cy, cx = center
    return np.array(
        [
            [c, -s, cy - (c * cy - s * cx) + shift[0]],
            [s, c, cx - (s * cy + c * cx) + shift[1]],
            [0.0, 0.0, 1.0],
        ]
    )


def _rc_to_cv(m: np.ndarray) -> np.ndarray:
    """(row, col) 3x3 matrix -> OpenCV (x, y) 2x3 matrix."""
    return np.array([[m[1, 1], m[1, 0], m[1, 2]], [m[0, 1], m[0, 0], m[0, 2]]], dtype=np.float64)


def _level_matrix(m: np.ndarray, level: int) -> np.ndarray:
    """Express a full-resolution (row, col) matrix at pyramid ``level``.

    ``cv2.pyrDown`` puts output pixel ``i`` on input pixel ``2 i``.
    """
    f = 2.0**level
    s = np.diag([1.0 / f, 1.0 / f, 1.0])
    return s @ m @ np.linalg.inv(s)


@dataclass
class RefineResult:
    """Outcome of :meth:`SimilarityRefiner.refine`.

    Attributes
    ----------
    matrix : ndarray (3, 3)
        Template -> frame (row, col) matrix (the inverse of the correction).
    ncc : float
        Normalised (Pearson) correlation of the smoothed template and the
        smoothed, resampled frame over the pixels both cover, at full
        resolution: 1 for a perfect match, about 0 for unrelated content.
    overlap : float
        Share of the template's pixels the frame covers.
    iterations : int
        Gauss-Newton steps taken (all levels).
    converged : bool
        Whether the last level reached the step tolerance.
    predicted_error : float
        Predicted error (px, 1 sigma) of the estimate at the frame corners,
        from the noise in the residual (see :mod:`._precision`); NaN when the
        refinement stopped early.
    """

    matrix: np.ndarray
    ncc: float
    overlap: float
    iterations: int
    converged: bool
    predicted_error: float = float("nan")


class _Level:
    """Precomputed template data for one pyramid level: the smoothed
    template, its four steepest-descent images (gradient times the warp's
    Jacobian) and the masks of usable pixels."""

    def __init__(
        self,
        template: np.ndarray,
        level: int,
        sigma: float,
        margin: int,
        center: tuple[float, float],
        valid: np.ndarray | None,
    ):
        self.level = level
        self.shape = template.shape
        h, w = template.shape
        self.template = cv2.GaussianBlur(template, (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101)
        f = 2.0**level
        cy, cx = center[0] / f, center[1] / f
        self.center = (cy, cx)
        # coordinates normalised by the half diagonal for a well-conditioned system
        self.norm = 0.5 * float(np.hypot(h, w))
        yy = ((np.arange(h, dtype=np.float32) - cy) / self.norm)[:, None]
        xx = ((np.arange(w, dtype=np.float32) - cx) / self.norm)[None, :]
        # d/d a (scale part of A = [[1+a, -b], [b, 1+a]]), d/d b (rotation part), d/d ty, d/d tx
        self.sd = steepest_descent(self.template, yy, xx)
        self.yy, self.xx = yy, xx
        # the frame corners in normalised units, and (full resolution only) the
        # steepest-descent images smoothed once more: what the predicted error needs
        self.corners = np.array(
            [[sy * (h - 1) / 2.0 / self.norm, sx * (w - 1) / 2.0 / self.norm] for sy in (-1, 1) for sx in (-1, 1)]
        )
        self.sd_blurred = None
        if level == 0:
            self.sd_blurred = np.stack(
                [
                    cv2.GaussianBlur(img.reshape(h, w), (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101).reshape(-1)
                    for img in self.sd
                ]
            )
        inner = np.zeros((h, w), dtype=bool)
        inner[margin : h - margin, margin : w - margin] = True
        if valid is not None:
            # keep clear of invalid template pixels by the smoothing reach
            reach = int(np.ceil(3 * sigma)) + 1
            kernel = np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)
            inner &= cv2.erode(valid.astype(np.uint8), kernel, borderType=cv2.BORDER_CONSTANT, borderValue=1) > 0
        self.template_mask = inner.reshape(-1).astype(np.uint8)
        # source frame's valid area (for the coverage test), with a margin
        self.source_inner = np.zeros((h, w), dtype=np.uint8)
        self.source_inner[margin : h - margin, margin : w - margin] = 1
        self.t_flat = self.template.reshape(-1)
        self.sigma = sigma

    def update_matrix(self, dp: np.ndarray) -> np.ndarray:
        """(row, col) matrix at this level for the parameter step ``dp``."""
        a, b, ty, tx = (float(v) for v in dp)
        cy, cx = self.center
        # W(x) = A (x - c) + c + t with A = I + [[a, -b], [b, a]] in normalised units
        A = np.array([[1 + a, -b], [b, 1 + a]])
        m = np.eye(3)
        m[:2, :2] = A
        m[:2, 2] = np.array([cy, cx]) - A @ np.array([cy, cx]) + np.array([ty, tx])
        return m


class SimilarityRefiner:
    """Refine template -> frame similarity matrices for one fixed template.

    Parameters
    ----------
    template : ndarray (Y, X)
        The reference image.
    levels : int, optional
        Pyramid levels below full resolution (default: halve until the
        smaller side would drop below 64 px, at most 3).
    sigma : float
        Gaussian smoothing (px, at every level) applied after resampling.
    margin : int
        Pixels at the borders of the template and the frame left out.
    max_iter : int
        Gauss-Newton steps per level at most.
    tol : float
        Stop at full resolution when a step moves the frame by less than
        ``tol`` pixels at half the frame diagonal from the centre.
    coarse_tol : float
        The same for the coarser levels (in their pixels).
    valid : ndarray of bool (Y, X), optional
        Template pixels that hold data (others are left out, with a margin);
        their values should still be finite (fill them with any value).
    """

    def __init__(
        self,
        template: np.ndarray,
        *,
        levels: int | None = None,
        sigma: float = SIMILARITY_DEFAULTS.sigma,
        margin: int = 4,
        max_iter: int = 30,
        tol: float = 2e-3,
        coarse_tol: float = 0.05,
        valid: np.ndarray | None = None,
    ) -> None:
        tpl = np.ascontiguousarray(template, dtype=np.float32)
        h, w = tpl.shape
        if levels is None:
            levels = 0
            while levels < 3 and min(h, w) / 2 ** (levels + 1) >= 64:
                levels += 1
        self.center = ((h - 1) / 2.0, (w - 1) / 2.0)
        self.max_iter = int(max_iter)
        self.tol = float(tol)
        self.coarse_tol = float(coarse_tol)
        self.margin = int(margin)
        self.shape = (h, w)
        pyramid = [tpl]
        masks = [None if valid is None else np.asarray(valid, dtype=bool)]
        for _ in range(levels):
            pyramid.append(cv2.pyrDown(pyramid[-1]))
            if valid is not None:
                down = cv2.pyrDown(masks[-1].astype(np.float32))
                masks.append(down > 0.999)
            else:
                masks.append(None)
        self.levels = [
            _Level(img, lv, sigma, margin, self.center, mask) for lv, (img, mask) in enumerate(zip(pyramid, masks, strict=True))
        ]
        # a step that leaves these bounds is divergence, not registration
        self._max_shift = 2.0 * max(h, w)

    def refine(self, frame: np.ndarray, matrix: np.ndarray, *, start_level: int | None = None) -> RefineResult:
        """Refine ``matrix`` (template -> frame, (row, col), full resolution).

        Parameters
        ----------
        frame : ndarray (Y, X)
            The frame, same shape as the template.
        matrix : ndarray (3, 3)
            Initial estimate.
        start_level : int, optional
            Coarsest level to use (default: all levels).
        """
        img = np.ascontiguousarray(frame, dtype=np.float32)
        if img.shape != self.shape:
            raise ValueError(f"frame shape {img.shape} differs from the template's {self.shape}.")
        top = len(self.levels) - 1 if start_level is None else min(start_level, len(self.levels) - 1)
        frames = [img]
        for _ in range(top):
            frames.append(cv2.pyrDown(frames[-1]))
        m_full = np.asarray(matrix, dtype=np.float64).copy()
        total = 0
        converged = False
        ncc, overlap = np.nan, 0.0
        for lv in range(top, -1, -1):
            level = self.levels[lv]
            src = frames[lv]
            m = _level_matrix(m_full, lv)
            converged = False
            mask = None
            move = np.inf
            for _ in range(self.max_iter):
                total += 1
                warped = self._warp(level, src, m)
                if mask is None or move > 0.5:
                    # the covered pixels (and the Hessian over them) are
                    # refreshed only while the estimate still moves a lot
                    mask = self._mask(level, m)
                    n_valid = float(mask.sum())
                    overlap = n_valid / mask.size
                    if n_valid < 64:
                        return RefineResult(_level_matrix(m, -lv), np.nan, overlap, total, False)
                    hess = (level.sd * mask) @ level.sd.T
                    try:
                        hess_inv = np.linalg.inv(hess.astype(np.float64))
                    except np.linalg.LinAlgError:
                        return RefineResult(_level_matrix(m, -lv), np.nan, overlap, total, False)
                # gain and offset of the frame against the template, over the mask
                tm = float(level.t_flat @ mask) / n_valid
                fm = float(warped @ mask) / n_valid
                tc = (level.t_flat - np.float32(tm)) * mask
                fc = (warped - np.float32(fm)) * mask
                var_t = float(tc @ tc)
                var_f = float(fc @ fc)
                cov = float(tc @ fc)
                if var_t <= 0 or var_f <= 0 or not np.isfinite(cov) or cov == 0.0:
                    return RefineResult(_level_matrix(m, -lv), np.nan, overlap, total, False)
                if lv == 0:
                    ncc = cov / np.sqrt(var_t * var_f)
                err = fc * np.float32(var_t / cov) - tc
                if lv == 0:
                    last = (warped, var_t / cov, err, mask)
                dp = hess_inv @ (level.sd @ err).astype(np.float64)
                if not np.all(np.isfinite(dp)):
                    return RefineResult(_level_matrix(m, -lv), np.nan, overlap, total, False)
                # a, b are in units of px at half the diagonal
                step = dp.copy()
                step[0] /= level.norm
                step[1] /= level.norm
                m = m @ np.linalg.inv(level.update_matrix(step))
                if not self._plausible(_level_matrix(m, -lv)):
                    return RefineResult(_level_matrix(m, -lv), np.nan, overlap, total, False)
                # displacement of the step at half the diagonal, bounded by this sum
                move = float(np.abs(dp).sum())
                if move < (self.tol if lv == 0 else max(self.tol, self.coarse_tol)):
                    converged = True
                    break
            m_full = _level_matrix(m, -lv)
        level = self.levels[0]
        warped, gain, err, mask = last
        error = predicted_error(
            level.sd,
            level.sd_blurred,
            warped.reshape(level.shape),
            gain,
            err,
            mask,
            yy=level.yy,
            xx=level.xx,
            sigma=level.sigma,
            corners=level.corners,
        )
        return RefineResult(m_full, float(ncc), float(overlap), total, converged, error)

    def _warp(self, level: _Level, src: np.ndarray, m: np.ndarray) -> np.ndarray:
        """The frame resampled onto the template grid (bicubic), then smoothed; flat."""
        h, w = level.shape
        flags = cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP
        warped = cv2.warpAffine(src, _rc_to_cv(m), (w, h), flags=flags, borderMode=cv2.BORDER_REFLECT_101)
        warped = cv2.GaussianBlur(warped, (0, 0), level.sigma, borderType=cv2.BORDER_REFLECT_101)
        return warped.reshape(-1)

    def _mask(self, level: _Level, m: np.ndarray) -> np.ndarray:
        """Flat float32 0/1 map of template pixels that the frame's interior covers."""
        h, w = level.shape
        inside = cv2.warpAffine(
            level.source_inner, _rc_to_cv(m), (w, h), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP, borderValue=0
        )
        return (inside.reshape(-1) * level.template_mask).astype(np.float32)

    def _plausible(self, m: np.ndarray) -> bool:
        scale = float(np.sqrt(abs(np.linalg.det(m[:2, :2]))))
        c = np.array(self.center)
        moved = m[:2, :2] @ c + m[:2, 2] - c
        shift = float(np.hypot(*moved))
        return bool(np.all(np.isfinite(m)) and 0.2 < scale < 5.0 and shift < self._max_shift)
