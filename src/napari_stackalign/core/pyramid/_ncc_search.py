"""Exhaustive, overlap-normalised cross-correlation search for a translation.

Used at the coarsest pyramid level. For every integer shift ``s`` within
``+/-max_shift`` it computes the normalised correlation coefficient (the score
OpenCV calls ``TM_CCOEFF_NORMED``) between the template and the frame *over
their overlap only*: one zero-padded FFT cross-correlation (OpenCV's real DFT) gives the products,
summed-area tables give the overlap means and variances. Nothing wraps around
and no window is needed. Shifts whose overlap is smaller than
``min_overlap`` of the frame are never chosen (small overlaps win on noise).
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

from ..fourier import fast_shape, parabolic_peak

__all__ = ["NCCSearch", "SearchResult"]


class SearchResult(NamedTuple):
    """A shift ``s`` (``frame[p + s] ~ template[p]``, level pixels, sub-pixel
    by a parabola fit), its correlation, and whether it lies on the edge of
    the search range."""

    shift: tuple[float, float]
    score: float
    at_edge: bool


def _axis_bounds(n: int, r: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Overlap bounds for shifts -r..r along an axis of length n.

    Template rows [t0, t1) overlap frame rows [f0, f1) = [t0 + s, t1 + s).
    """
    s = np.arange(-r, r + 1)
    t0 = np.maximum(0, -s)
    t1 = np.minimum(n, n - s)
    return t0, t1, t0 + s, t1 + s


def _rect_sums(sat: np.ndarray, r0: np.ndarray, r1: np.ndarray, c0: np.ndarray, c1: np.ndarray) -> np.ndarray:
    """Sums over the rectangles [r0_i, r1_i) x [c0_j, c1_j) for all i, j."""
    return (
        sat[np.ix_(r1, c1)] - sat[np.ix_(r0, c1)] - sat[np.ix_(r1, c0)] + sat[np.ix_(r0, c0)]
    )


class NCCSearch:
    """Overlap-normalised correlation of frames against one template.

    Parameters
    ----------
    template : ndarray, shape (H, W), float32
        The template at this pyramid level (zero-mean; pixels without
        information set to 0).
    max_shift : (int, int)
        Largest shift per axis (level pixels).
    min_overlap : float
        Smallest overlap, as a fraction of the frame area, a shift may have.
    bound : (int, int), optional
        Largest shift per axis that may be chosen (level pixels, at most
        ``max_shift``; default ``max_shift``). The surface is computed over
        ``max_shift`` (its noise floor needs room) but peaks beyond the bound
        are never chosen; a peak on the bound is ``at_edge``.
    """

    def __init__(
        self,
        template: np.ndarray,
        max_shift: tuple[int, int],
        *,
        min_overlap: float = 0.2,
        bound: tuple[int, int] | None = None,
    ) -> None:
        template = np.ascontiguousarray(template, dtype=np.float32)
        h, w = template.shape
        ry = int(min(max(max_shift[0], 0), h - 1))
        rx = int(min(max(max_shift[1], 0), w - 1))
        self.shape = (h, w)
        self.max_shift = (ry, rx)
        if bound is None:
            bound = (ry, rx)
        by = int(min(max(bound[0], 0), ry))
        bx = int(min(max(bound[1], 0), rx))
        self.bound = (by, bx)
        oy = np.abs(np.arange(-ry, ry + 1)) > by
        ox = np.abs(np.arange(-rx, rx + 1)) > bx
        #: shifts beyond the bound (never chosen)
        self._outside = oy[:, None] | ox[None, :]
        self._fft_shape = fast_shape((h, w), (ry, rx))
        fy, fx = self._fft_shape
        self._pad = (fy - h, fx - w)
        # OpenCV's real DFT (packed spectrum) is about 1.4x faster than
        # scipy.fft at these sizes and has no Python-level dispatch
        self._tspec = cv2.dft(self._padded(template))
        t0y, t1y, f0y, f1y = _axis_bounds(h, ry)
        t0x, t1x, f0x, f1x = _axis_bounds(w, rx)
        # flat indices of the four summed-area-table corners of every overlap
        stride = w + 1
        self._corners = tuple(
            (ys[:, None] * stride + xs[None, :]).ravel() for ys, xs in ((f1y, f1x), (f0y, f1x), (f1y, f0x), (f0y, f0x))
        )
        sat, sqsat = cv2.integral2(template, sdepth=cv2.CV_64F, sqdepth=cv2.CV_64F)
        self._n = np.outer(t1y - t0y, t1x - t0x).astype(np.float64)
        st = _rect_sums(sat, t0y, t1y, t0x, t1x)
        stt = _rect_sums(sqsat, t0y, t1y, t0x, t1x)
        self._st = st
        self._tvar = np.maximum(stt - st * st / self._n, 0.0)
        self._allowed = self._n >= min_overlap * h * w
        self._root_frac = np.sqrt(self._n / (h * w))
        ny, nx = fast_shape((h, w), (ry, rx))
        self._rows = np.r_[ny - ry : ny, 0 : ry + 1]
        self._cols = np.r_[nx - rx : nx, 0 : rx + 1]
        self._rc = np.ix_(self._rows, self._cols)
        self._invalid_template = ~self._allowed | ~(self._tvar > 0)

    def _padded(self, image: np.ndarray) -> np.ndarray:
        """``image`` zero-padded to the FFT shape (bottom and right)."""
        py, px = self._pad
        if not (py or px):
            return image
        return cv2.copyMakeBorder(image, 0, py, 0, px, cv2.BORDER_CONSTANT, value=0.0)

    def scores(self, frame: np.ndarray) -> np.ndarray:
        """NCC for every shift, shape (2 ry + 1, 2 rx + 1); index ``(ry + sy, rx + sx)``.

        Disallowed or undefined shifts score ``-inf``.
        """
        frame = np.ascontiguousarray(frame, dtype=np.float32)
        if frame.shape != self.shape:
            raise ValueError(f"frame shape {frame.shape} does not match the template {self.shape}.")
        spec = cv2.mulSpectrums(cv2.dft(self._padded(frame)), self._tspec, 0, conjB=True)
        corr = cv2.idft(spec, flags=cv2.DFT_REAL_OUTPUT | cv2.DFT_SCALE)
        num = corr[self._rc].astype(np.float64)
        sat, sqsat = cv2.integral2(frame, sdepth=cv2.CV_64F, sqdepth=cv2.CV_64F)
        a, b, c, d = self._corners
        flat, sqflat = sat.ravel(), sqsat.ravel()
        shape = num.shape
        sf = (flat.take(a) - flat.take(b) - flat.take(c) + flat.take(d)).reshape(shape)
        sff = (sqflat.take(a) - sqflat.take(b) - sqflat.take(c) + sqflat.take(d)).reshape(shape)
        fvar = sff - sf * sf / self._n
        den = np.sqrt(np.maximum(fvar, 0.0) * self._tvar)
        ncc = np.full(shape, -np.inf)
        np.divide(num - sf * self._st / self._n, den, out=ncc, where=den > 0)
        ncc[self._invalid_template | ~(fvar > 1e-9 * (sff + 1e-30))] = -np.inf
        return ncc

    def overlap_fraction(self) -> np.ndarray:
        """The overlap of frame and template at every shift of :meth:`scores`, as a fraction of the frame."""
        h, w = self.shape
        return self._n / (h * w)

    def significance(self, ncc: np.ndarray | float, shift: tuple[float, float] | None = None) -> np.ndarray | float:
        """``ncc * sqrt(overlap / frame area)``: the correlation in units of
        its noise level (up to a constant), which does not favour small
        overlaps the way the raw coefficient does (its noise grows as the
        overlap shrinks)."""
        if shift is None:
            return ncc * self._root_frac
        h, w = self.shape
        frac = max(h - abs(shift[0]), 0.0) * max(w - abs(shift[1]), 0.0) / (h * w)
        return ncc * np.sqrt(frac)

    def candidates(
        self, frame: np.ndarray, *, within: float = 0.35, limit: int = 6, prior: tuple[float, float] = (0.0, 0.0)
    ) -> list[SearchResult]:
        """The most significant local maximum, then (at most ``limit - 1``)
        other local maxima whose significance is within ``within`` (relative)
        of it, nearest ``prior`` (a shift) first; each sub-pixel by a parabola
        fit.

        Significance is the correlation coefficient weighted by the square
        root of the overlap (see :meth:`significance`). More than one
        candidate means the match is ambiguous at this level (periodic
        content, or noise); the caller refines them and decides.
        """
        ncc = self.scores(frame)
        ry, rx = self.max_shift
        # scores are finite or -inf, and the overlap factor is positive
        z = ncc * self._root_frac
        if self._outside.any():
            z = np.where(self._outside, -np.inf, z)
        flat = int(np.argmax(z))
        iy, ix = divmod(flat, z.shape[1])
        best = float(z[iy, ix])
        if not np.isfinite(best):
            return []
        local = np.fmax(z, -1.0).astype(np.float32)
        spots = [(iy, ix)]
        if best > 0 and within > 0:
            peaks = (local >= cv2.dilate(local, np.ones((3, 3), np.uint8))) & (local >= (1 - within) * best)
            py, px = np.nonzero(peaks)
            if py.size > 1:
                # the best one, then the ones nearest the prior
                d2 = (py - ry - prior[0]) ** 2 + (px - rx - prior[1]) ** 2
                d2[(py == iy) & (px == ix)] = np.inf
                k = min(limit - 1, d2.size - 1)
                near = np.argpartition(d2, k - 1)[:k] if k > 0 else np.empty(0, int)
                near = near[np.argsort(d2[near], kind="stable")]
                spots += [(int(py[j]), int(px[j])) for j in near]
        out = []
        nloc = np.fmax(ncc, -1.0)
        by, bx = self.bound
        for cy, cx in spots:
            at_edge = (by > 0 and abs(cy - ry) == by) or (bx > 0 and abs(cx - rx) == bx)
            fy, fx = parabolic_peak(nloc, (cy, cx))
            out.append(SearchResult((fy - ry, fx - rx), float(ncc[cy, cx]), bool(at_edge)))
        return out

    def search(self, frame: np.ndarray) -> SearchResult:
        """The most significant shift (sub-pixel by a parabola fit), its
        correlation, and whether it lies on the edge of the search range."""
        found = self.candidates(frame, within=0.0)
        return found[0] if found else SearchResult((0.0, 0.0), float("nan"), False)
