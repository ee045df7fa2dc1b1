"""Sub-pixel translation by inverse-compositional Gauss-Newton (Lucas-Kanade).

The template's gradients, their products and the sums the normal equations
need are computed once per template (summed-area tables give them for any
overlap rectangle in O(1)). Per iteration the frame is sampled at the
current sub-pixel shift by one separable 4- to 8-tap Lagrange interpolation filter
(two ``cv2.filter2D`` passes; the whole-pixel part is array slicing), and the update
needs one (3, N) matrix-vector product. A gain and an offset are fitted at
every iteration, so slow intensity changes do not bias the result.

Shift convention: ``s`` such that ``frame[p + s] ~ gain * template[p] + offset``.
"""

from __future__ import annotations

import math
import threading
from typing import NamedTuple

import cv2
import numpy as np

from ._rigid_refine import refine_turned

__all__ = ["DEFAULT_KERNEL", "KERNELS", "LKResult", "LKTemplate", "shift_kernel"]

#: interpolation kernels for the fractional shift: name -> half support m
#: (taps at offsets -(m-1)..m). Lagrange kernels interpolate polynomials of
#: degree 2m-1 exactly, so their phase error (which becomes a bias towards
#: whole pixels) is tiny at low and mid frequencies: at 0.2 cycles/px the
#: worst-case error is 0.008 px (4 taps), 0.002 px (6), 0.0007 px (8);
#: Keys' cubic convolution (a = -0.5) gives 0.03 px.
KERNELS = {"lagrange4": 2, "lagrange6": 3, "lagrange8": 4}
#: the kernel used unless another is asked for
DEFAULT_KERNEL = "lagrange6"


def _lagrange_coefficients(m: int) -> np.ndarray:
    """Matrix ``C`` with ``taps(frac) = C @ [1, frac, frac**2, ...]``."""
    offsets = np.arange(-(m - 1), m + 1, dtype=np.float64)
    coeffs = np.zeros((offsets.size, offsets.size))
    for i, k in enumerate(offsets):
        poly = np.poly1d([1.0])
        for j in offsets:
            if j != k:
                poly *= np.poly1d([1.0, -j]) / (k - j)
        coeffs[i, : poly.order + 1] = poly.coeffs[::-1]
    return coeffs


_COEFFS = {name: _lagrange_coefficients(m) for name, m in KERNELS.items()}


def shift_kernel(frac: float, kernel: str = DEFAULT_KERNEL) -> np.ndarray:
    """Taps that sample a signal at ``x + frac`` (``0 <= frac < 1``) from its
    samples at ``x - (m-1) .. x + m`` (Lagrange interpolation)."""
    coeffs = _COEFFS[kernel]
    powers = frac ** np.arange(coeffs.shape[1])
    return (coeffs @ powers).astype(np.float32)


def _kernel_pair(frac_y: float, frac_x: float, kernel: str) -> np.ndarray:
    """``shift_kernel`` for two fractions at once (rows: y, x), in one product."""
    coeffs = _COEFFS[kernel]
    powers = np.array(((frac_y,), (frac_x,))) ** np.arange(coeffs.shape[1])
    return (powers @ coeffs.T).astype(np.float32)


def valid_region(
    shift_int: tuple[int, int], frame_shape: tuple[int, int], out_shape: tuple[int, int], m: int, border: int = 0
) -> tuple[int, int, int, int]:
    """Output rectangle ``[r0, r1) x [c0, c1)`` whose samples at ``p + n``
    (with the kernel's support ``-(m-1) .. m``) lie inside the frame, keeping
    ``border`` pixels away from the output's edges."""
    ny, nx = shift_int
    fh, fw = frame_shape
    h, w = out_shape
    return (
        max(border, m - 1 - ny),
        min(h - border, fh - m - ny),
        max(border, m - 1 - nx),
        min(w - border, fw - m - nx),
    )


def sample_shifted(
    frame: np.ndarray, shift: tuple[float, float], region: tuple[int, int, int, int], kernel: str
) -> np.ndarray:
    """``frame[p + shift]`` for ``p`` in ``region`` (from :func:`valid_region`
    with the whole-pixel part of ``shift``), by separable Lagrange
    interpolation. Returns a float32 array of the region's size."""
    m = KERNELS[kernel]
    fy, fx = math.floor(shift[0]), math.floor(shift[1])
    ny, nx = fy, fx
    r0, r1, c0, c1 = region
    src = frame[r0 + ny - (m - 1) : r1 + ny + m, c0 + nx - (m - 1) : c1 + nx + m]
    taps = _kernel_pair(shift[0] - fy, shift[1] - fx, kernel)
    ky, kx = taps[0], taps[1]
    # two 1-D passes with cv2.filter2D: the same sums as cv2.sepFilter2D
    # (to float32 rounding) in 0.65x the time from 128x128 up (517x517:
    # 143 us against 227 us on the benchmark machine)
    rows = cv2.filter2D(src, cv2.CV_32F, kx[None, :], anchor=(m - 1, 0), borderType=cv2.BORDER_REPLICATE)
    out = cv2.filter2D(rows, cv2.CV_32F, ky[:, None], anchor=(0, m - 1), borderType=cv2.BORDER_REPLICATE)
    return out[m - 1 : m - 1 + (r1 - r0), m - 1 : m - 1 + (c1 - c0)]


class LKResult(NamedTuple):
    shift: tuple[float, float]
    ncc: float
    converged: bool
    failed: bool
    step: float
    #: with ``rotation``: what moves ``shift`` to the translation of the template's centre when the frame
    #: also turns about it (``(0, 0)`` otherwise, or where the turn is beyond the linearisation)
    centre: tuple[float, float] = (0.0, 0.0)
    #: with ``rotation``: the frame's turn against the template (radians; NaN when not measured)
    turn: float = float("nan")
    #: with ``rotation``: how far ``shift`` may be from the translation of the template's centre (level px)
    #: when the turn is significant but beyond ``MAX_TURN_PX`` and translation and turn iterated together
    #: (:func:`._rigid_refine.refine_turned`) did not converge (0 otherwise): the translation-only fit is
    #: the displacement where the template's detail sits, not at its centre
    uncorrected: float = 0.0


#: a frame's turn is corrected for (:attr:`LKResult.centre`) while it moves the template's farthest pixel
#: by at most this much (px): beyond, the linearisation of the turn no longer holds
MAX_TURN_PX = 4.0
#: ... and while the turn exceeds this many of its standard errors (the residual taken as white noise).
#: The standard error is optimistic: on stacks that do not turn, the turn over its standard error spread
#: by 1.3-1.5 (camera content), 2.4-3.0 (beads: sparse, their noise is not white after the template's);
#: on the anchors stack camera-256x100-medium-rot (turning up to 1 degree) its median was 83
MIN_TURN_Z = 12.0
#: central-difference derivative filters by half support r (orders 2, 4 and 6; 3, 5 and 7 taps)
DERIVATIVE_TAPS = {
    1: np.array([-1.0, 0.0, 1.0], np.float32) / np.float32(2.0),
    2: np.array([1.0, -8.0, 0.0, 8.0, -1.0], np.float32) / np.float32(12.0),
    3: np.array([-1.0, 9.0, -45.0, 0.0, 45.0, -9.0, 1.0], np.float32) / np.float32(60.0),
}
#: the gain of the derivative filters (radius 1 and 3) at 0.2, 0.25 and 1/3 cycles/px: 0.76, 0.64, 0.41
#: (two-point differences) and 0.98, 0.93, 0.75 (sixth order). A Gauss-Newton step overshoots by the
#: inverse of that gain: with two-point differences, content near 1/3 cycles/px (a 6 px lattice at the
#: 1/2 level) made the iteration diverge (an overshoot beyond 2) and frames lost the match. The fixed
#: point (the estimate) does not depend on the filter; two-point differences damp a noisy template's
#: power near the Nyquist frequency, so they stay the default


def _gradients(t: np.ndarray, valid: np.ndarray | None = None, radius: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(d/dy, d/dx) of ``t``: at each pixel by the widest of :data:`DERIVATIVE_TAPS` (up to ``radius``)
    whose square neighbourhood lies inside the image and within ``valid`` (0 where none does)."""
    h, w = t.shape
    inside = np.ones((h, w), np.uint8) if valid is None else np.asarray(valid, dtype=np.uint8)
    one = np.ones(1, np.float32)
    gy = np.zeros_like(t)
    gx = np.zeros_like(t)
    for r in range(1, radius + 1):  # narrow to wide: the wider overwrite where their support is valid
        taps = DERIVATIVE_TAPS[r]
        ok = cv2.erode(inside, np.ones((2 * r + 1, 2 * r + 1), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0)
        ok = ok.astype(bool)
        if not ok.any():
            break
        # OpenCV correlates: out[x] = sum(taps[i] * t[x + i - r])
        gy[ok] = cv2.sepFilter2D(t, cv2.CV_32F, one, taps, borderType=cv2.BORDER_CONSTANT)[ok]
        gx[ok] = cv2.sepFilter2D(t, cv2.CV_32F, taps, one, borderType=cv2.BORDER_CONSTANT)[ok]
    return gy, gx


class LKTemplate:
    """Pre-computed template data for sub-pixel refinement at one level.

    Parameters
    ----------
    template : ndarray, shape (H, W)
        Template (zero-mean where valid).
    valid : ndarray of bool, shape (H, W), optional
        Pixels of the template that hold information (False: no frame covered
        them). Gradients next to invalid pixels are set to 0.
    kernel : {"lagrange4", "lagrange6", "lagrange8"}
        Interpolation kernel for the fractional shift of the frame.
    derivative_radius : {1, 2, 3}
        Half support of the template's derivative filter (two-point, fourth-
        or sixth-order central differences, :data:`DERIVATIVE_TAPS`); near
        invalid pixels and the border the widest filter that fits is used.
        3 for content above 0.2 cycles/px (a fine lattice), where two-point
        differences make Gauss-Newton overshoot.
    rotation : bool
        Also measure, at the converged shift, the frame's turn about the
        template's centre, and the correction that makes the shift the
        centre's translation (:attr:`LKResult.centre`). The least-squares
        translation of a turned frame is the displacement at the centroid of
        the template's gradient energy, which need not be the centre (a
        camera image whose detail sits on one side; the region the frames
        have in common after a drift): the shift is then off by the turn
        times that offset.
    """

    def __init__(
        self,
        template: np.ndarray,
        valid: np.ndarray | None = None,
        *,
        kernel: str = DEFAULT_KERNEL,
        derivative_radius: int = 1,
        rotation: bool = False,
    ) -> None:
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {sorted(KERNELS)}, got {kernel!r}.")
        t = np.ascontiguousarray(template, dtype=np.float32)
        #: the template's informative pixels (None: all)
        self.valid = valid
        h, w = t.shape
        self.shape = (h, w)
        self.kernel = kernel
        self.m = KERNELS[kernel]
        if derivative_radius not in DERIVATIVE_TAPS:
            raise ValueError(f"derivative_radius must be one of {sorted(DERIVATIVE_TAPS)}, got {derivative_radius!r}.")
        #: half support of the derivative filter of the gradients (:data:`DERIVATIVE_TAPS`)
        self.derivative_radius = int(derivative_radius)
        gy, gx = _gradients(t, valid, self.derivative_radius)
        self.template = t
        self._gy, self._gx = gy, gx
        # rows: gy, gx, t -> one matrix-vector product per iteration
        self._g = np.stack([gy.ravel(), gx.ravel(), t.ravel()])
        prods = self._products()
        self._sats = np.empty((len(prods), h + 1, w + 1), np.float64)
        for k, p in enumerate(prods):
            # written in place: no large temporaries
            cv2.integral(np.ascontiguousarray(p), self._sats[k], sdepth=cv2.CV_64F)
        self._prods_flat: np.ndarray | None = None
        self._local = threading.local()
        #: the rotation column (d/dtheta of the template turned about its centre), its sums' tables
        self._turn: np.ndarray | None = None
        self._rigid: np.ndarray | None = None
        if rotation:
            yy = (np.arange(h, dtype=np.float32) - np.float32((h - 1) / 2))[:, None]
            xx = (np.arange(w, dtype=np.float32) - np.float32((w - 1) / 2))[None, :]
            # the template turned by theta about its centre moves p by theta * (x, -y) (rows, cols)
            jr = gy * xx - gx * yy
            self._turn = jr
            self._turn_prods = [jr, jr * t, jr * gy, jr * gx, jr * jr]
            self._turn_sats = np.empty((5, h + 1, w + 1), np.float64)
            for k, p in enumerate(self._turn_prods):
                cv2.integral(np.ascontiguousarray(p), self._turn_sats[k], sdepth=cv2.CV_64F)
            #: the largest distance of a template pixel from the centre (px)
            self._radius = float(np.hypot((h - 1) / 2, (w - 1) / 2))

    @property
    def rigid_columns(self) -> np.ndarray:
        """(3, N) float32: the template's gradients (rows, columns) and its turn column about the centre,
        flattened: the Jacobian :func:`._rigid_refine.refine_turned` solves with (``rotation=True`` only)."""
        if self._turn is None:
            raise ValueError("the turn column is built with rotation=True.")
        if self._rigid is None:
            self._rigid = np.stack([self._gy.ravel(), self._gx.ravel(), self._turn.ravel()])
        return self._rigid

    def _products(self) -> list[np.ndarray]:
        t, gy, gx = self.template, self._gy, self._gx
        return [np.ones_like(t), t, t * t, gy, gx, gy * t, gx * t, gy * gy, gx * gy, gx * gx]

    def _weighted_sums(self, weights: np.ndarray) -> np.ndarray:
        if self._prods_flat is None:
            self._prods_flat = np.stack([p.ravel() for p in self._products()])
        return self._prods_flat @ weights.ravel()

    # ------------------------------------------------------------------

    def _buffer(self, name: str, region: tuple[int, int, int, int]) -> np.ndarray:
        """A per-thread (H, W) float32 buffer that is zero outside ``region``
        (the caller fills the inside)."""
        local = self._local
        buf = getattr(local, name, None)
        if buf is None:
            buf = np.zeros(self.shape, np.float32)
            setattr(local, name, buf)
            setattr(local, name + "_region", region)
            return buf
        old = getattr(local, name + "_region")
        if old != region:
            # zero the strips of the old rectangle that the new one leaves out
            a0, a1, b0, b1 = old
            r0, r1, c0, c1 = region
            if r0 > a0:
                buf[a0 : min(r0, a1), b0:b1] = 0
            if r1 < a1:
                buf[max(r1, a0) : a1, b0:b1] = 0
            if c0 > b0:
                buf[a0:a1, b0 : min(c0, b1)] = 0
            if c1 < b1:
                buf[a0:a1, max(c1, b0) : b1] = 0
            setattr(local, name + "_region", region)
        return buf

    def refine(
        self,
        frame: np.ndarray,
        shift: tuple[float, float],
        *,
        weights: np.ndarray | None = None,
        max_iter: int = 5,
        tol: float = 0.002,
        fit_gain: bool = True,
        min_area: float = 0.1,
    ) -> LKResult:
        """Gauss-Newton iterations from ``shift``.

        Each iteration samples the frame at the current shift and solves the
        linearised least-squares problem for an update. Iterations stop when
        the update is below ``tol``; that last update is added without
        sampling again (its own linearisation error is of order
        ``tol**2``).

        Parameters
        ----------
        frame : ndarray (H', W'), float32
            The frame at this level.
        shift : (float, float)
            Starting shift ``s`` (``frame[p + s] ~ template[p]``).
        weights : ndarray of float32 (H', W'), optional
            Per frame-pixel weights (0 = ignore), already eroded by the kernel
            support.
        max_iter, tol
            At most ``max_iter`` updates; stop when an update is below ``tol``.
        fit_gain : bool
            Fit a gain as well as an offset.
        min_area : float
            Fail when the overlap is below this fraction of the template.

        Returns
        -------
        LKResult
            ``shift``, normalised correlation of the last sample, whether the
            last update was below ``tol``, and whether the refinement failed
            (overlap too small, no correlation, singular system); on failure
            ``shift`` is the starting shift.
        """
        sy, sx = float(shift[0]), float(shift[1])
        start = (sy, sx)
        ncc = float("nan")
        converged = False
        step = float("inf")
        gauss_newton = self._gauss_newton
        centre, turn, left_out = (0.0, 0.0), float("nan"), (0.0, 0.0)
        for k in range(max_iter):
            dy, dx, ncc = gauss_newton(frame, sy, sx, weights, fit_gain, min_area)
            if dy is None:
                return LKResult(start, ncc, False, True, step)
            # a Gauss-Newton step larger than ~2 px leaves its region of validity
            step = (dy * dy + dx * dx) ** 0.5
            if self._turn is not None and (step < tol or k == max_iter - 1):
                # the last iteration: the turn from the same sample (still in the buffer)
                centre, turn, left_out = self._centre(weights, (dy, dx))
            if step > 2.0:
                dy, dx = 2.0 * dy / step, 2.0 * dx / step
            sy += dy
            sx += dx
            if step < tol:
                converged = True
                break
        uncorrected = math.hypot(*left_out)
        if uncorrected > 0:
            # the turn is too large for the linearised correction: iterate translation and turn together.
            # Not for the turns it corrects: iterating those too (grid, 28 seeds) made 36 cases more than
            # 10 % less accurate and 10 more accurate (seed 101, case 16, beads: 0.008 -> 0.030 px, the
            # bicubic warp's bias; seed 61, case 19: 0.18 -> 1.89 px)
            rigid = refine_turned(self, frame, (sy + left_out[0], sx + left_out[1]), turn, weights, fit_gain, tol)
            if rigid is not None:
                # converged jointly: the translation-only fit's own convergence no longer matters
                (ry, rx), turn, step = rigid
                centre, uncorrected, converged = (ry - sy, rx - sx), 0.0, True
        return LKResult((sy, sx), float(ncc), converged, False, step, centre, turn, uncorrected)

    def _gauss_newton(
        self,
        frame: np.ndarray,
        sy: float,
        sx: float,
        weights: np.ndarray | None,
        fit_gain: bool,
        min_area: float,
    ) -> tuple[float | None, float, float]:
        """One Gauss-Newton update ``(dy, dx, ncc)`` from the shift ``(sy, sx)``:
        sample the frame there and solve the linearised least-squares problem.
        ``dy`` is None when the refinement fails (overlap too small, no
        correlation, singular system); ``ncc`` is then NaN or the correlation
        of the sample."""
        fh, fw = frame.shape
        h, w = self.shape
        ny, nx = math.floor(sy), math.floor(sx)
        r0, r1, c0, c1 = region = valid_region((ny, nx), (fh, fw), (h, w), self.m, border=1)
        if r1 - r0 < 4 or c1 - c0 < 4 or (r1 - r0) * (c1 - c0) < min_area * h * w:
            return None, float("nan"), float("nan")
        sampled = sample_shifted(frame, (sy, sx), region, self.kernel)
        buf = self._buffer("buf", region)
        buf[r0:r1, c0:c1] = sampled
        if weights is None:
            sat = self._sats
            sums = sat[:, r1, c1] - sat[:, r0, c1] - sat[:, r1, c0] + sat[:, r0, c0]
        else:
            wbuf = self._buffer("wbuf", region)
            wbuf[r0:r1, c0:c1] = weights[r0 + ny : r1 + ny, c0 + nx : c1 + nx]
            buf *= wbuf
            sums = self._weighted_sums(wbuf)
        n, st, stt, sgy, sgx, sgyt, sgxt, hyy, hxy, hxx = sums.tolist()
        if n < 16:
            return None, float("nan"), float("nan")
        flat = buf.ravel()
        gyf, gxf, sft = (self._g @ flat).tolist()
        sf = cv2.sumElems(buf)[0]
        sff = float(np.dot(flat, flat))
        tvar = stt - st * st / n
        fvar = sff - sf * sf / n
        cov = sft - sf * st / n
        if tvar <= 0 or fvar <= 0:
            return None, float("nan"), float("nan")
        ncc = cov / (tvar * fvar) ** 0.5
        if fit_gain:
            gain = cov / tvar
            if not gain > 1e-6 * (fvar / tvar) ** 0.5:
                return None, float("nan"), float(ncc)
        else:
            gain = 1.0
        offset = (sf - gain * st) / n
        by = (gyf - offset * sgy) / gain - sgyt
        bx = (gxf - offset * sgx) / gain - sgxt
        det = hyy * hxx - hxy * hxy
        if not det > 1e-12 * max(hyy * hxx, 1e-30):
            return None, float("nan"), float(ncc)
        dy = -(hxx * by - hxy * bx) / det
        dx = -(-hxy * by + hyy * bx) / det
        if self._turn is not None:
            # what the turn of this sample needs (:meth:`_centre`): the residual's variance per pixel in
            # template units (its standard error scales with it), the fit and the normal equations
            noise = max(fvar - cov * cov / tvar, 0.0) / (gain * gain * n)
            self._local.last = (region, flat, gain, offset, hyy, hxy, hxx, by, bx, noise)
        return dy, dx, ncc

    def _centre(
        self, weights: np.ndarray | None, step: tuple[float, float]
    ) -> tuple[tuple[float, float], float, tuple[float, float]]:
        """(correction, turn, left out) of the last sample (:meth:`_gauss_newton`): the Gauss-Newton step of
        translation and turn about the centre, solved together, less the translation-only ``step``.

        The correction is (0, 0) unless the turn is significant (``MIN_TURN_Z`` standard errors, from the
        residual's variance: a frame that does not turn keeps the translation-only estimate, which is less
        noisy) and moves the template's farthest pixel by at most ``MAX_TURN_PX`` (the linearisation
        holds); and when the system is singular. ``left out`` is the correction not made because the turn,
        significant, is beyond ``MAX_TURN_PX`` ((0, 0) otherwise): where :func:`._rigid_refine.refine_turned`
        starts (the linearised turn underestimates a large one, so this correction does too).
        """
        assert self._turn is not None
        region, flat, gain, offset, hyy, hxy, hxx, by, bx, noise = self._local.last
        if weights is None:
            r0, r1, c0, c1 = region
            sat = self._turn_sats
            sj, sjt, sjy, sjx, sjj = (sat[:, r1, c1] - sat[:, r0, c1] - sat[:, r1, c0] + sat[:, r0, c0]).tolist()
        else:
            wflat = self._local.wbuf.ravel()
            sj, sjt, sjy, sjx, sjj = (float(np.dot(p.ravel(), wflat)) for p in self._turn_prods)
        bj = (float(np.dot(self._turn.ravel(), flat)) - offset * sj) / gain - sjt
        # the symmetric 3x3 system [[hyy, hxy, sjy], [hxy, hxx, sjx], [sjy, sjx, sjj]] by its cofactors
        c00, c01, c02 = hxx * sjj - sjx * sjx, sjx * sjy - hxy * sjj, hxy * sjx - hxx * sjy
        c11, c12, c22 = hyy * sjj - sjy * sjy, hxy * sjy - hyy * sjx, hyy * hxx - hxy * hxy
        det = hyy * c00 + hxy * c01 + sjy * c02
        if not abs(det) > 1e-12 * abs(hyy * hxx * sjj):
            return (0.0, 0.0), float("nan"), (0.0, 0.0)
        d_y = -(c00 * by + c01 * bx + c02 * bj) / det
        d_x = -(c01 * by + c11 * bx + c12 * bj) / det
        turn = -(c02 * by + c12 * bx + c22 * bj) / det
        stderr = math.sqrt(max(noise * c22 / det, 0.0))
        if not math.isfinite(turn) or not abs(turn) > MIN_TURN_Z * stderr:
            return (0.0, 0.0), turn, (0.0, 0.0)
        correction = (d_y - step[0], d_x - step[1])
        if abs(turn) * self._radius > MAX_TURN_PX:
            return (0.0, 0.0), turn, correction
        return correction, turn, (0.0, 0.0)
