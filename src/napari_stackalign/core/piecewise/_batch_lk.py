"""The sub-pixel step of all patches of a frame at once.

The same inverse-compositional Gauss-Newton iterations as
:meth:`~napari_stackalign.core.pyramid._lucas_kanade.LKTemplate.refine`
(gain and offset fitted, separable Lagrange interpolation of the frame,
the same stopping rule, failure tests and step bound), but every patch of a
frame iterates together: each patch's ``(h + 2m - 1, w + 2m - 1)`` window of
the frame is interpolated by one ``cv2.sepFilter2D``, and the frame's sums
(gy.f, gx.f, t.f, sum f: one float32 matrix-vector product against the
template rows laid out in that window; sum f^2: ``cv2.norm`` over the region)
come straight from its output, with no (N, h, w) batch gathered; the
template's sums come from its summed-area tables (or, where the frame's
pixels carry weights, one weighted sum per patch). The Gauss-Newton updates
run on all patches in a few array operations. A patch leaves the batch when
it converges or fails.

Shift convention as in ``LKTemplate``: ``s`` with ``frame[p + s] ~ gain * template[p] + offset``
(patch coordinates).
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..pyramid._lucas_kanade import _COEFFS, KERNELS, LKTemplate

__all__ = ["BatchLK", "BatchResult"]


class BatchResult(NamedTuple):
    """Per patch refined (n,): shift (n, 2), ncc, converged, failed, the last update's size (px)."""

    shift: np.ndarray
    ncc: np.ndarray
    converged: np.ndarray
    failed: np.ndarray
    step: np.ndarray


class BatchLK:
    """The templates of N patches of one shape, refined together.

    Parameters
    ----------
    templates : list of LKTemplate
        One per patch, all of the same shape and kernel.
    """

    def __init__(self, templates: list[LKTemplate]) -> None:
        if not templates:
            raise ValueError("BatchLK needs at least one template.")
        self.shape = templates[0].shape
        self.kernel = templates[0].kernel
        if any(t.shape != self.shape or t.kernel != self.kernel for t in templates):
            raise ValueError("all templates of a BatchLK must have one shape and one kernel.")
        self.m = KERNELS[self.kernel]
        self._coeffs = _COEFFS[self.kernel]
        self._powers = np.arange(self._coeffs.shape[1])
        h, w = self.shape
        # rows gy, gx, t per patch, as LKTemplate's (3, h*w) matrix
        self._g = np.stack([t._g for t in templates]).reshape(len(templates), 3, h, w)
        self._sats = np.stack([t._sats for t in templates])  # (N, 10, h + 1, w + 1)
        self._templates = templates
        self._prods: np.ndarray | None = None
        self._a_pad: np.ndarray | None = None
        self._a_rows: list[np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self._templates)

    def _products(self) -> np.ndarray:
        """(N, 10, h * w): the products whose weighted sums the normal equations need (as LKTemplate's)."""
        if self._prods is None:
            h, w = self.shape
            self._prods = np.stack([np.stack(t._products()) for t in self._templates]).reshape(len(self), 10, h * w)
        return self._prods

    def _padded_rows(self) -> np.ndarray:
        """(N, 4, wy * wx) float32: gy, gx, t and ones of every patch, zero outside its interior
        ``[1, h-1) x [1, w-1)``, placed in the interpolation window (the patch at ``(m-1, m-1)``)."""
        if self._a_pad is None:
            h, w = self.shape
            m = self.m
            wy, wx = h + 2 * m - 1, w + 2 * m - 1
            a = np.zeros((len(self), 4, wy, wx), np.float32)
            a[:, :3, m - 1 : m - 1 + h, m - 1 : m - 1 + w] = self._g
            a[:, 3, m - 1 : m - 1 + h, m - 1 : m - 1 + w] = 1
            a[:, :, : m, :] = 0
            a[:, :, m - 2 + h :, :] = 0
            a[:, :, :, : m] = 0
            a[:, :, :, m - 2 + w :] = 0
            self._a_pad = a.reshape(len(self), 4, wy * wx)
        return self._a_pad

    def _padded_row_list(self) -> list[np.ndarray]:
        """:meth:`_padded_rows` as a list of (4, wy * wx) rows, one per patch (list indexing is cheaper)."""
        if self._a_rows is None:
            self._a_rows = list(self._padded_rows())
        return self._a_rows

    def refine(
        self,
        frame: np.ndarray,
        starts: np.ndarray,
        *,
        which: np.ndarray | None = None,
        weights: np.ndarray | None = None,
        weighted: np.ndarray | None = None,
        max_iter: int = 5,
        tol: float = 0.002,
        min_area: float = 0.1,
    ) -> BatchResult:
        """Gauss-Newton iterations of every patch from ``starts`` (N, 2), as ``LKTemplate.refine``
        (``fit_gain=True``).

        Parameters
        ----------
        frame : ndarray (H, W), float32
            The frame (no NaN).
        starts : ndarray (n, 2)
            Starting shift of each patch refined (its template's coordinates into the frame's).
        which : ndarray (n,) of int, optional
            The patches refined (rows of the templates; default all); the results follow its order.
        weights : ndarray (H, W) of float32, optional
            Per frame-pixel weights, already eroded by the kernel support.
        weighted : ndarray (n,) of bool, optional
            The patches that use ``weights`` (default: all when ``weights`` is given).
        max_iter, tol, min_area
            As in ``LKTemplate.refine``.
        """
        frame = np.ascontiguousarray(frame, dtype=np.float32)
        which = np.arange(len(self)) if which is None else np.asarray(which, dtype=np.int64)
        n_all = which.size
        starts = np.asarray(starts, dtype=np.float64).reshape(n_all, 2)
        if weights is None:
            weighted = np.zeros(n_all, bool)
        else:
            weighted = np.ones(n_all, bool) if weighted is None else np.asarray(weighted, bool)
        fh, fw = frame.shape
        h, w = self.shape
        m = self.m
        wy, wx = h + 2 * m - 1, w + 2 * m - 1
        pad = max(h, w) + 2 * m
        padded = cv2.copyMakeBorder(frame, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        wwindows = None
        if weighted.any():
            wwindows = sliding_window_view(np.pad(np.asarray(weights, np.float32), pad), (h, w))
        shift = starts.copy()
        ncc = np.full(n_all, np.nan)
        converged = np.zeros(n_all, bool)
        failed = np.zeros(n_all, bool)
        step = np.full(n_all, np.inf)
        active = np.arange(n_all)
        for _ in range(max_iter):
            if active.size == 0:
                break
            s = shift[active]
            ny = np.floor(s[:, 0]).astype(np.int64)
            nx = np.floor(s[:, 1]).astype(np.int64)
            r0 = np.maximum(1, m - 1 - ny)
            r1 = np.minimum(h - 1, fh - m - ny)
            c0 = np.maximum(1, m - 1 - nx)
            c1 = np.minimum(w - 1, fw - m - nx)
            small = (r1 - r0 < 4) | (c1 - c0 < 4) | ((r1 - r0) * (c1 - c0) < min_area * h * w)
            lost = active[small]
            failed[lost] = True
            ncc[lost] = np.nan
            shift[lost] = starts[lost]
            keep = ~small
            active, s, ny, nx = active[keep], s[keep], ny[keep], nx[keep]
            r0, r1, c0, c1 = r0[keep], r1[keep], c0[keep], c1[keep]
            if active.size == 0:
                break
            # the frame at p + s for every p of the patch: one separable filter over a (wy, wx) window,
            # then the five sums the normal equations need (gy.f, gx.f, t.f, sum f, sum f^2) over the
            # patch's region straight from the filter's output (no (n, h, w) batch is ever gathered)
            fy, fx = s[:, 0] - ny, s[:, 1] - nx
            taps = (np.stack([fy, fx], axis=1)[:, :, None] ** self._powers) @ self._coeffs.T
            taps = taps.astype(np.float32)
            y0 = (ny - (m - 1) + pad).tolist()
            x0 = (nx - (m - 1) + pad).tolist()
            sums = _corner_sums(self._sats, which[active], r0, r1, c0, c1)
            a_rows = self._padded_row_list()
            which_l = which[active].tolist()
            # the filter's output regions (window coordinates); only a patch whose region is not the whole
            # interior has its output cut to it, only a patch with weighted pixels takes the weighted sums
            ra, rb, ca, cb = r0 + m - 1, r1 + m - 1, c0 + m - 1, c1 + m - 1
            regions = list(zip(ra.tolist(), rb.tolist(), ca.tolist(), cb.tolist()))
            part = set(np.flatnonzero((r0 > 1) | (r1 < h - 1) | (c0 > 1) | (c1 < w - 1)).tolist())
            wsel = set(np.flatnonzero(weighted[active]).tolist())
            whole = set(np.flatnonzero((fy == 0) & (fx == 0)).tolist())  # on the pixel grid (a later pass's start)
            stats, sff = [], []
            norm, filt, l2sqr, f32 = cv2.norm, cv2.sepFilter2D, cv2.NORM_L2SQR, cv2.CV_32F
            anchor, replicate = (m - 1, m - 1), cv2.BORDER_REPLICATE
            for i, (a, b, ky, kx, (ya, yb, xa, xb), row) in enumerate(
                zip(y0, x0, taps[:, 0], taps[:, 1], regions, which_l)
            ):
                if i in whole:
                    out = np.array(padded[a : a + wy, b : b + wx])  # the taps at 0 are the identity
                else:
                    out = filt(padded[a : a + wy, b : b + wx], f32, kx, ky, None, anchor, 0, replicate)
                if i in part:
                    out[:ya] = 0
                    out[yb:] = 0
                    out[:, :xa] = 0
                    out[:, xb:] = 0
                if i in wsel:
                    wbuf = wwindows[ny[i] + pad, nx[i] + pad]
                    out[m - 1 : m - 1 + h, m - 1 : m - 1 + w] *= wbuf
                    inner = np.zeros((h, w), np.float32)
                    inner[ya - m + 1 : yb - m + 1, xa - m + 1 : xb - m + 1] = wbuf[
                        ya - m + 1 : yb - m + 1, xa - m + 1 : xb - m + 1
                    ]
                    sums[i] = self._products()[row] @ inner.ravel()
                stats.append(a_rows[row] @ out.ravel())
                sff.append(norm(out[ya:yb, xa:xb], l2sqr))
            stats = np.array(stats, dtype=np.float64)
            sff = np.array(sff)
            n, st, stt, sgy, sgx, sgyt, sgxt, hyy, hxy, hxx = sums.T
            gyf, gxf, sft, sf = stats.T
            with np.errstate(invalid="ignore", divide="ignore"):
                tvar = stt - st * st / n
                fvar = sff - sf * sf / n
                cov = sft - sf * st / n
                bad = (n < 16) | ~(tvar > 0) | ~(fvar > 0)
                r = np.where(bad, np.nan, cov / np.sqrt(np.where(bad, 1.0, tvar * fvar)))
                gain = cov / tvar
                bad_gain = ~bad & ~(gain > 1e-6 * np.sqrt(np.abs(fvar / tvar)))
                offset = (sf - gain * st) / n
                by = (gyf - offset * sgy) / gain - sgyt
                bx = (gxf - offset * sgx) / gain - sgxt
                det = hyy * hxx - hxy * hxy
                bad_det = ~bad & ~bad_gain & ~(det > 1e-12 * np.maximum(hyy * hxx, 1e-30))
                dy = -(hxx * by - hxy * bx) / det
                dx = -(-hxy * by + hyy * bx) / det
            stop = bad | bad_gain | bad_det
            lost = active[stop]
            failed[lost] = True
            ncc[lost] = r[stop]
            shift[lost] = starts[lost]
            go = ~stop
            active, dy, dx, r = active[go], dy[go], dx[go], r[go]
            size = np.hypot(dy, dx)
            scale = np.where(size > 2.0, 2.0 / np.maximum(size, 1e-300), 1.0)
            shift[active, 0] += dy * scale
            shift[active, 1] += dx * scale
            step[active] = size
            ncc[active] = r
            done = size < tol
            converged[active[done]] = True
            active = active[~done]
        return BatchResult(shift, ncc, converged, failed, step)


def _corner_sums(
    sats: np.ndarray, idx: np.ndarray, r0: np.ndarray, r1: np.ndarray, c0: np.ndarray, c1: np.ndarray
) -> np.ndarray:
    """(A, K) sums of the K products of patches ``idx`` over their rectangles, from the summed-area
    tables ``sats`` (N, K, h+1, w+1)."""
    return sats[idx, :, r1, c1] - sats[idx, :, r0, c1] - sats[idx, :, r1, c0] + sats[idx, :, r0, c0]
