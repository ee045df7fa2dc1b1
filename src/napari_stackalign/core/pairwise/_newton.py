"""Every frame's shift refined by Newton steps on the exact masked correlation (``maxima="newton"``).

The pairwise solve gives corrections ``c_t`` good to a pixel or so (the pair
peaks are whole pixels of the choice mask's correlation). The precise
answer maximises the sum of all pair correlations under the precision mask,
each at the pair's shift ``c_i - c_t``; for frame t that sum is its
correlation with the *template* ``R_t = sum_{s != t} V_s exp(-i w . c_s)``
(all the trustworthy frames, aligned, itself left out)::

    g_t(c) = sum_k c_k Re( conj(R_t(k)) V_t(k) exp(-i w_k . c) ),   w_k = 2 pi (ky / Hp, kx / Wp)

``V`` being each frame's spectrum times ``sqrt(mask)`` on the sparse set of
frequencies the precision mask keeps and ``c_k`` the Hermitian weights (1 on
the DC and Nyquist columns, else 2). Its gradient and Hessian are exact sums
over those frequencies (no interpolation, no fitted model, no upsampling),
and the phase factors are separable (``e^{-i wy cy} e^{-i wx cx}``), so one
Newton step for *all* frames costs a few operations per frame and frequency:
O(T K), where refining every pair would be O(T**2 K).

All frames step together (Jacobi) for up to :data:`ITERATIONS` rounds, each
step clipped to :data:`MAX_STEP` px, the corrections kept mean-zero over the
template frames. The real-space windows weaken each pair by their overlap
``A(c_s - c_t)`` (:mod:`._window`), which would pull the shifts towards each
other; the gradient of ``sum_s C_ts / A`` is climbed instead (each pair's
share of ``g_t`` taken as equal). A frame whose peak is not a maximum, or
which would move more than :data:`MAX_TRAVEL` px from the pairwise solve,
keeps its start and is reported (its pairs and its template disagree).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._window import envelope_table as _envelope_table

__all__ = ["ITERATIONS", "MAX_STEP", "MAX_TRAVEL", "SparseSpectra", "make_sparse", "refine_frames", "sparse_indices"]

#: Newton rounds (all frames step together)
ITERATIONS = 8

#: largest step of one iteration (px)
MAX_STEP = 0.5

#: largest distance from the start (px)
MAX_TRAVEL = 2.0

#: a step shorter than this (px) ends the iterations
TOLERANCE = 1e-3


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


def _phases(sp: SparseSpectra, shifts: np.ndarray) -> np.ndarray:
    """``exp(-i w . c_t)`` (T, K) for the corrections ``shifts`` (T, 2): separable, one product per sample."""
    hp, wp = sp.padded
    wy = (2.0 * np.pi / hp) * sp.rows.astype(np.float64)
    wx = (2.0 * np.pi / wp) * sp.cols.astype(np.float64)
    ey = np.exp(-1j * shifts[:, 0:1] * wy[None, :]).astype(np.complex64)
    ex = np.exp(-1j * shifts[:, 1:2] * wx[None, :]).astype(np.complex64)
    return ey[:, sp.row_index] * ex[:, sp.col_index]


def _envelope_pull(sp: SparseSpectra, shifts: np.ndarray, use: np.ndarray) -> np.ndarray:
    """``sum_s d log A(c_s - c_t) / d c_t`` over the template frames s != t (T, 2), A the window overlap."""
    h, w = sp.frame_shape
    d = shifts[None, :, :] - shifts[:, None, :]  # d[t, s] = c_s - c_t: the pair (t, s) peak
    _, ly = _envelope_log_gradient(h, d[..., 0])
    _, lx = _envelope_log_gradient(w, d[..., 1])
    keep = use[None, :] & ~np.eye(shifts.shape[0], dtype=bool)
    # d/dc_t log A(c_s - c_t) = -(log A)'(c_s - c_t)
    return -np.stack([(ly * keep).sum(axis=1), (lx * keep).sum(axis=1)], axis=1)


def refine_frames(
    sp: SparseSpectra, shifts: np.ndarray, use: np.ndarray, max_travel: float = MAX_TRAVEL
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every frame's correction refined against all the frames in ``use`` (see the module docstring).

    Parameters
    ----------
    sp : SparseSpectra
        The frames' spectra on the precision mask.
    shifts : ndarray (T, 2)
        Start corrections (the pairwise solve).
    use : ndarray of bool (T,)
        Frames that make the templates (the trustworthy ones); every frame is refined.
    max_travel : float
        The farthest a frame may move (px).

    Returns
    -------
    shifts : ndarray (T, 2)
        Refined corrections (mean zero over ``use``); a frame that would move
        more than :data:`MAX_TRAVEL` px, or whose peak is not a maximum, keeps its start.
    moved : ndarray (T,)
        How far each frame moved (px; NaN where refused).
    height : ndarray (T,)
        The frame's correlation with its template, normalised by both energies.
    """
    start = np.asarray(shifts, dtype=np.float64).copy()
    use = np.asarray(use, dtype=bool)
    n = start.shape[0]
    if use.sum() < 2:
        return start, np.full(n, np.nan), np.full(n, np.nan)
    hp, wp = sp.padded
    ky = ((2.0 * np.pi / hp) * sp.rows.astype(np.float64))[sp.row_index].astype(np.float32)
    kx = ((2.0 * np.pi / wp) * sp.cols.astype(np.float64))[sp.col_index].astype(np.float32)
    vals = sp.values * sp.weight[None, :]
    cur = start.copy()
    ok = np.ones(n, dtype=bool)
    for _ in range(ITERATIONS):
        aligned = sp.values * _phases(sp, cur)
        total = aligned[use].sum(axis=0)
        templates = total[None, :] - np.where(use[:, None], aligned, 0)
        q = np.conj(templates) * vals * _phases(sp, cur)
        re, im = q.real, q.imag
        c = re.sum(axis=1, dtype=np.float64)
        # g(c_t) = Re sum q e^{-i w . delta}: gradient Im sum q w, Hessian -Re sum q w w
        gy = (im @ ky).astype(np.float64)
        gx = (im @ kx).astype(np.float64)
        hyy = -(re @ (ky * ky)).astype(np.float64)
        hxx = -(re @ (kx * kx)).astype(np.float64)
        hxy = -(re @ (ky * kx)).astype(np.float64)
        # the windows' overlap weakens every pair by A(c_s - c_t): climb sum C / A, not sum C
        share = c / max(int(use.sum()) - 1, 1)
        pull = _envelope_pull(sp, cur, use)
        gy = gy - share * pull[:, 0]
        gx = gx - share * pull[:, 1]
        det = hyy * hxx - hxy * hxy
        concave = (hyy < 0) & (det > 0)
        ok &= concave
        with np.errstate(divide="ignore", invalid="ignore"):
            sy = np.where(concave, -(hxx * gy - hxy * gx) / det, 0.0)
            sx = np.where(concave, -(hyy * gx - hxy * gy) / det, 0.0)
        length = np.hypot(sy, sx)
        factor = np.where(length > MAX_STEP, MAX_STEP / np.maximum(length, 1e-30), 1.0)
        step = np.nan_to_num(np.stack([sy, sx], axis=1)) * np.nan_to_num(factor)[:, None]
        cur = cur + step
        cur -= cur[use].mean(axis=0)
        if np.all(np.nan_to_num(length) < TOLERANCE):
            break
    moved_vec = cur - start
    moved_vec -= moved_vec[use].mean(axis=0)
    moved = np.hypot(moved_vec[:, 0], moved_vec[:, 1])
    ok &= moved <= max_travel
    out = np.where(ok[:, None], cur, start)
    aligned = sp.values * _phases(sp, out)
    total = aligned[use].sum(axis=0)
    templates = total[None, :] - np.where(use[:, None], aligned, 0)
    energy_t = (np.abs(templates) ** 2 * sp.weight[None, :]).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        height = (np.conj(templates) * aligned * sp.weight[None, :]).real.sum(axis=1) / np.sqrt(energy_t * sp.energy)
    return out, np.where(ok, moved, np.nan), height
