"""Fast batched 2-D Gaussian fits of correlation peaks (the ``"gf"`` peak finder).

The model is the rigidregistration package's: a rotated elliptical Gaussian
on a constant offset, seven parameters::

    g(y, x) = B + A exp(-(a u**2 + 2 b u v + c v**2)),   u = y - y0, v = x - x0

fitted by least squares over a ``(2 r + 1)**2`` window centred on the
brightest pixel. Instead of ``scipy.optimize.curve_fit`` from a fixed guess
(one Python call per peak), all windows of a batch are fitted together:

1. a *linearised* start: ``log(z - B0)`` is a quadratic in (u, v), solved by
   weighted linear least squares over the pixels above half the peak
   (weights ``(z - B0)**2``; ``B0`` the window minimum);
2. a few damped Gauss-Newton (Levenberg-Marquardt) steps on the full
   seven-parameter model, vectorised over the batch.

A fit is rejected (``ok`` False) when it leaves the window, loses its peak
(``A <= 0`` or a non positive-definite shape) or does not converge; the
caller then keeps the brightest pixel, as the reference does.
"""

from __future__ import annotations

import numpy as np

from ._options import PAIRWISE_DEFAULTS

__all__ = ["fit_peak_gaussians"]


def _linear_start(z: np.ndarray, u: np.ndarray, v: np.ndarray, sigma_guess: float) -> np.ndarray:
    """Start parameters (N, 7) = (A, y0, x0, a, b, c, B) from a weighted
    log-quadratic fit of the pixels above half the peak."""
    n = z.shape[0]
    b0 = z.min(axis=1)
    peak = z.max(axis=1)
    h = z - b0[:, None]
    # the central peak only: above half height and near the centre (a
    # lattice correlation has neighbouring peaks inside the window)
    near = (u * u + v * v) <= max(2.0, 1.5 * sigma_guess) ** 2
    use = (h > 0.5 * (peak - b0)[:, None]) & near[None, :]
    w = np.where(use, h**2, 0.0)
    logh = np.log(np.where(use, h, 1.0))
    # log h = k0 + k1 u + k2 v + k3 u^2 + k4 u v + k5 v^2
    basis = np.stack([np.ones_like(u), u, v, u * u, u * v, v * v], axis=-1)  # (P, 6)
    lhs = np.einsum("np,pi,pj->nij", w, basis, basis)
    rhs = np.einsum("np,pi,np->ni", w, basis, logh)
    lhs += np.eye(6)[None] * 1e-9 * np.trace(lhs, axis1=1, axis2=2)[:, None, None]
    default = np.column_stack(
        [peak - b0, np.zeros(n), np.zeros(n), np.full(n, 0.5 / sigma_guess**2), np.zeros(n),
         np.full(n, 0.5 / sigma_guess**2), b0]
    )
    try:
        k = np.linalg.solve(lhs, rhs[..., None])[..., 0]
    except np.linalg.LinAlgError:
        return default
    a, b, c = -k[:, 3], -k[:, 4] / 2.0, -k[:, 5]
    det = a * c - b * b
    good = (a > 0) & (c > 0) & (det > 0) & np.all(np.isfinite(k), axis=1)
    with np.errstate(all="ignore"):
        # gradient zero: [2a 2b; 2b 2c] [y0 x0] = [k1 k2]
        y0 = (c * k[:, 1] - b * k[:, 2]) / (2 * det)
        x0 = (a * k[:, 2] - b * k[:, 1]) / (2 * det)
        amp = np.exp(k[:, 0] + a * y0**2 + 2 * b * y0 * x0 + c * x0**2)
    start = np.column_stack([amp, y0, x0, a, b, c, b0])
    good &= np.all(np.isfinite(start), axis=1)
    return np.where(good[:, None], start, default)


def _model(p: np.ndarray, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Model (N, P) and Jacobian (N, P, 7)."""
    amp, y0, x0, a, b, c, off = (p[:, k : k + 1] for k in range(7))
    du = u[None, :] - y0
    dv = v[None, :] - x0
    e = np.exp(-(a * du * du + 2 * b * du * dv + c * dv * dv))
    ae = amp * e
    jac = np.empty((p.shape[0], u.size, 7))
    jac[:, :, 0] = e
    jac[:, :, 1] = ae * (2 * a * du + 2 * b * dv)
    jac[:, :, 2] = ae * (2 * b * du + 2 * c * dv)
    jac[:, :, 3] = -ae * du * du
    jac[:, :, 4] = -ae * 2 * du * dv
    jac[:, :, 5] = -ae * dv * dv
    jac[:, :, 6] = 1.0
    return ae + off, jac


def fit_peak_gaussians(
    windows: np.ndarray, sigma_guess: float = PAIRWISE_DEFAULTS.sigma_guess, *, iterations: int = 6
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fit the Gaussian peak of each ``(2 r + 1)**2`` window.

    Parameters
    ----------
    windows : ndarray (N, 2 r + 1, 2 r + 1)
        Windows centred on each peak's brightest pixel.
    sigma_guess : float
        Peak width used when the linearised start fails.
    iterations : int
        Levenberg-Marquardt steps after the linearised start.

    Returns
    -------
    dy, dx : ndarray (N,)
        Fitted centre relative to the window centre.
    height : ndarray (N,)
        Fitted peak value ``A + B``.
    ok : ndarray of bool (N,)
    """
    z3 = np.asarray(windows, dtype=np.float64)
    n, side, _ = z3.shape
    r = side // 2
    if n == 0:
        empty = np.zeros(0)
        return empty, empty, empty, np.zeros(0, dtype=bool)
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    u = yy.ravel().astype(np.float64)
    v = xx.ravel().astype(np.float64)
    z = z3.reshape(n, -1)
    scale = np.maximum(z.max(axis=1) - z.min(axis=1), 1e-300)
    shift = z.min(axis=1)
    zn = (z - shift[:, None]) / scale[:, None]
    with np.errstate(all="ignore"):
        return _fit(zn, u, v, float(sigma_guess), int(iterations), r, scale, shift)


def _fit(zn, u, v, sigma_guess, iterations, r, scale, shift):
    n = zn.shape[0]
    p = _linear_start(zn, u, v, sigma_guess)
    model, jac = _model(p, u, v)
    cost = ((zn - model) ** 2).sum(axis=1)
    lam = np.full(n, 1e-3)
    for _ in range(max(iterations, 0)):
        resid = zn - model
        jtj = np.matmul(jac.transpose(0, 2, 1), jac)
        jtr = np.matmul(jac.transpose(0, 2, 1), resid[..., None])[..., 0]
        diag = np.diagonal(jtj, axis1=1, axis2=2)
        damped = jtj + lam[:, None, None] * (np.eye(7)[None] * (diag[:, None, :] + 1e-12))
        try:
            step = np.linalg.solve(damped, jtr[..., None])[..., 0]
        except np.linalg.LinAlgError:
            break
        trial = p + step
        t_model, t_jac = _model(trial, u, v)
        t_cost = ((zn - t_model) ** 2).sum(axis=1)
        better = np.isfinite(t_cost) & (t_cost < cost)
        p = np.where(better[:, None], trial, p)
        model = np.where(better[:, None], t_model, model)
        jac = np.where(better[:, None, None], t_jac, jac)
        cost = np.where(better, t_cost, cost)
        lam = np.where(better, lam * 0.3, lam * 10.0)
    amp, y0, x0, a, b, c, off = p.T
    ok = np.all(np.isfinite(p), axis=1) & (amp > 0) & (a > 0) & (c > 0) & (a * c - b * b > 0)
    ok &= (np.abs(y0) <= r) & (np.abs(x0) <= r)
    height = (amp + off) * scale + shift
    return y0, x0, height, ok
