"""Sub-pixel correlation peaks by Newton steps on the exact masked correlation (``maxima="newton"``).

The masked correlation of frames i and j is a finite Fourier series over the
frequencies the precision mask keeps (a sparse set ``K`` of the rfft half
plane, weights ``c_k``: 1 on the DC and Nyquist columns, else 2)::

    C(d) = sum_k c_k Re( P_k exp(i w_k . d) ),   P_k = G_j(k) conj(G_i(k)),   w_k = 2 pi (ky / Hp, kx / Wp)

so its value, gradient and Hessian at any ``d`` are exact sums over ``K``
(no interpolation, no fitted model): with ``S_ab = sum_k c_k P_k e^{i w.d}
wy**a wx**b``, ``C = Re S_00``, ``dC/dy = -Im S_10``, ``d2C/dy2 = -Re S_20``,
``d2C/dydx = -Re S_11`` and the same for x. The phase factors are separable,
``e^{i w.d} = e^{i wy dy} e^{i wx dx}``, so one evaluation costs a few
multiplications per kept frequency.

From the start (the whole-pixel peak chosen on the choice mask) up to
:data:`ITERATIONS` Newton steps climb to the maximum of ``C(d) / A(d)``,
``A`` the real-space windows' overlap (see :mod:`._peaks`), each step
clipped to :data:`MAX_STEP` px; where the Hessian is not negative definite a
gradient step is taken instead. A start that would have to move more than
:data:`MAX_TRAVEL` px is not refined (``ok`` False): the chosen peak and the
precise one disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._window import envelope_table as _envelope_table

__all__ = ["ITERATIONS", "MAX_STEP", "MAX_TRAVEL", "SparseSpectra", "newton_peaks", "sparse_indices"]

#: Newton iterations per peak
ITERATIONS = 6

#: largest step of one iteration (px)
MAX_STEP = 0.5

#: largest distance from the start (px)
MAX_TRAVEL = 1.5

#: pairs refined together (bounds the temporaries: pairs x kept frequencies)
_CHUNK_ELEMENTS = 4_000_000


@dataclass
class SparseSpectra:
    """Every frame's spectrum times ``sqrt(mask)`` on the kept frequencies.

    Attributes
    ----------
    values : ndarray complex64 (T, K)
    energy : ndarray float64 (T,)
        ``sum_k c_k |values|**2``: the zero-shift autocorrelation.
    row_index, col_index : ndarray int (K,)
        Indices into ``rows`` and ``cols``.
    rows, cols : ndarray int
        The distinct signed row frequencies and column frequencies.
    weight : ndarray float32 (K,)
        ``c_k`` (Hermitian weight).
    padded, frame_shape : (int, int)
    """

    values: np.ndarray
    energy: np.ndarray
    row_index: np.ndarray
    col_index: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    weight: np.ndarray
    padded: tuple[int, int]
    frame_shape: tuple[int, int]


def sparse_indices(mask_half: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row and column indices (rfft layout) of the kept frequencies and ``sqrt`` of their weights."""
    m = np.asarray(mask_half, dtype=np.float32)
    rows, cols = np.nonzero(m > 0)
    keep = ~((rows == 0) & (cols == 0))
    rows, cols = rows[keep], cols[keep]
    return rows, cols, np.sqrt(m[rows, cols])


def make_sparse(
    values: np.ndarray, rows: np.ndarray, cols: np.ndarray, padded: tuple[int, int], frame_shape: tuple[int, int]
) -> SparseSpectra:
    """Wrap the sampled spectra (T, K) at half-plane indices ``rows, cols``."""
    hp, wp = padded
    signed = np.where(rows <= hp // 2, rows, rows - hp)
    weight = np.where((cols == 0) | ((wp % 2 == 0) & (cols == wp // 2)), 1.0, 2.0).astype(np.float32)
    urows, row_index = np.unique(signed, return_inverse=True)
    ucols, col_index = np.unique(cols, return_inverse=True)
    energy = (np.abs(values) ** 2 * weight).sum(axis=1).astype(np.float64)
    return SparseSpectra(
        values=values,
        energy=energy,
        row_index=row_index,
        col_index=col_index,
        rows=urows,
        cols=ucols,
        weight=weight,
        padded=padded,
        frame_shape=frame_shape,
    )


def _envelope_log_gradient(length: int, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Window-overlap envelope and the derivative of its logarithm at ``pos``."""
    lags, auto = _envelope_table(int(length))
    env = np.maximum(np.interp(pos, lags, auto, left=0.0, right=0.0), 0.05)
    slope = np.gradient(auto, lags)
    der = np.interp(pos, lags, slope, left=0.0, right=0.0)
    return env, np.where(env > 0.05, der / env, 0.0)


def _sums(p: np.ndarray, sp: SparseSpectra, y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, ...]:
    """Value, gradient (gy, gx) and Hessian (hyy, hxx, hxy) of C at (y, x) for each pair of ``p``."""
    hp, wp = sp.padded
    wy = (2.0 * np.pi / hp) * sp.rows.astype(np.float64)
    wx = (2.0 * np.pi / wp) * sp.cols.astype(np.float64)
    ey = np.exp(1j * y[:, None] * wy[None, :]).astype(np.complex64)
    ex = np.exp(1j * x[:, None] * wx[None, :]).astype(np.complex64)
    q = p * ey[:, sp.row_index] * ex[:, sp.col_index]
    re, im = q.real, q.imag
    ky = wy[sp.row_index].astype(np.float32)
    kx = wx[sp.col_index].astype(np.float32)
    c = re.sum(axis=1, dtype=np.float64)
    gy = -(im @ ky).astype(np.float64)
    gx = -(im @ kx).astype(np.float64)
    hyy = -(re @ (ky * ky)).astype(np.float64)
    hxx = -(re @ (kx * kx)).astype(np.float64)
    hxy = -(re @ (ky * kx)).astype(np.float64)
    return c, gy, gx, hyy, hxx, hxy


def _newton_chunk(p: np.ndarray, sp: SparseSpectra, y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, ...]:
    h, w = sp.frame_shape
    y0, x0 = y.copy(), x.copy()
    for _ in range(ITERATIONS):
        c, gy, gx, hyy, hxx, hxy = _sums(p, sp, y, x)
        _, ly = _envelope_log_gradient(h, y)
        _, lx = _envelope_log_gradient(w, x)
        # gradient of C / A is (grad C - C grad log A) / A; the Hessian of A is neglected (it is smooth)
        gy = gy - c * ly
        gx = gx - c * lx
        det = hyy * hxx - hxy * hxy
        concave = (hyy < 0) & (det > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            sy = np.where(concave, -(hxx * gy - hxy * gx) / det, 0.0)
            sx = np.where(concave, -(hyy * gx - hxy * gy) / det, 0.0)
            scale = np.maximum(np.abs(hyy) + np.abs(hxx), 1e-30)
            sy = np.where(concave, sy, gy / scale)
            sx = np.where(concave, sx, gx / scale)
        length = np.hypot(sy, sx)
        factor = np.where(length > MAX_STEP, MAX_STEP / np.maximum(length, 1e-30), 1.0)
        factor = np.where(np.isfinite(length), factor, 0.0)
        y = y + np.nan_to_num(sy) * factor
        x = x + np.nan_to_num(sx) * factor
        if np.all(length < 1e-4):
            break
    c = _sums(p, sp, y, x)[0]
    ok = np.hypot(y - y0, x - x0) <= MAX_TRAVEL
    return np.where(ok, y, y0), np.where(ok, x, x0), c, ok


def newton_peaks(
    sp: SparseSpectra, pi: np.ndarray, pj: np.ndarray, y: np.ndarray, x: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Refine the peaks of the pairs ``(pi, pj)`` from ``(y, x)`` (see the module docstring).

    Returns ``(dy, dx, quality, ok)``: the refined positions, the peak height
    normalised by ``sqrt(E_i E_j)``, and False where the refinement moved
    more than :data:`MAX_TRAVEL` px (the start is kept there).
    """
    n = pi.size
    out_y, out_x = np.asarray(y, dtype=np.float64).copy(), np.asarray(x, dtype=np.float64).copy()
    quality = np.full(n, np.nan)
    ok = np.zeros(n, dtype=bool)
    k = max(sp.values.shape[1], 1)
    step = max(1, _CHUNK_ELEMENTS // k)
    vals = sp.values * sp.weight[None, :]
    for start in range(0, n, step):
        sl = slice(start, min(start + step, n))
        good = np.isfinite(out_y[sl]) & np.isfinite(out_x[sl])
        if not good.any():
            continue
        idx = np.flatnonzero(good) + start
        p = vals[pj[idx]] * np.conj(sp.values[pi[idx]])
        ry, rx, height, rok = _newton_chunk(p, sp, out_y[idx], out_x[idx])
        out_y[idx], out_x[idx], ok[idx] = ry, rx, rok
        with np.errstate(invalid="ignore", divide="ignore"):
            quality[idx] = height / np.sqrt(sp.energy[pi[idx]] * sp.energy[pj[idx]])
    return out_y, out_x, quality, ok
