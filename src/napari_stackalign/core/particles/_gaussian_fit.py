"""Fast 2-D Gaussian spot fits: many boxes at once, one click in about a millisecond.

Model (seven parameters) on a constant background::

    f(y, x) = B + A * exp(-0.5 * [dy dx] Q [dy dx]^T),   dy = y - y0, dx = x - x0

with ``Q`` the inverse covariance (a symmetric positive-definite 2x2 matrix:
a rotated, elliptical spot). Fitting ``Q`` instead of (sigma_x, sigma_y,
theta) is the same model but keeps the problem well conditioned for round
spots, where the angle is undefined and a (sigma, theta) fit stalls. Widths
and the angle are derived from ``Q`` afterwards.

The solver is a Levenberg-Marquardt least-squares fit written for *batches*:
``N`` boxes of the same size are fitted together with numpy (analytic
Jacobian, per-box damping, boxes leave the batch as they converge), so a
thousand 15x15 boxes take a fraction of a second where
``scipy.optimize.curve_fit`` needs milliseconds per box. It minimises the same
sum of squares as ``curve_fit``, so it reaches the same precision (see
``tests/benchmarks/bench_particles.py``).

Coordinates are pixel indices: the centre of pixel ``(r, c)`` is ``(r, c)``;
results are absolute image coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
from scipy import ndimage

from ..workers import default_workers, thread_pool
from ._options import DARK_VALUES, FIT_DEFAULTS, MIN_SIGMA, FitOptions, box_shape

__all__ = [
    "FIT_COLUMNS",
    "GaussianFit",
    "GaussianFits",
    "extract_boxes",
    "fit_gaussian",
    "fit_gaussians",
    "fit_gaussians_at",
]

#: Per-fit result columns (in table order).
FIT_COLUMNS = (
    "y",
    "x",
    "amplitude",
    "sigma_major",
    "sigma_minor",
    "angle",
    "background",
    "r2",
    "pos_err",
    "ok",
)

_BLOCK = 128  # boxes fitted together: the arrays stay in cache
_EDGE = 1.0  # px: a centre closer to the box edge is only half seen
_THRESHOLD = 0.5  # share of the peak used to size the initial guess


@dataclass(frozen=True)
class GaussianFit:
    """One fitted spot.

    Attributes
    ----------
    y, x : float
        Fitted centre in absolute image coordinates (pixel centre = integer).
    amplitude : float
        Peak height above the background (negative for a dark spot).
    sigma_major, sigma_minor : float
        Standard deviations (px) along the long and short axes.
    angle : float
        Direction of the long axis in degrees, counter-clockwise as displayed
        from the +x (column) axis, in (-90, 90].
    background : float
        The constant background.
    r2 : float
        Goodness of fit, ``1 - SS_res / SS_tot`` over the box.
    pos_err : float
        Standard error of the centre (px, from the fit covariance).
    ok : bool
        True when the fit converged and passed every quality gate.
    reason : str
        Why the fit was rejected (empty when ``ok``).
    dark : bool
        True when fitted as a dark spot on a bright background.
    box_origin : (int, int)
        Top-left pixel (row, col) of the fitted box.
    """

    y: float
    x: float
    amplitude: float
    sigma_major: float
    sigma_minor: float
    angle: float
    background: float
    r2: float
    pos_err: float
    ok: bool
    reason: str
    dark: bool
    box_origin: tuple[int, int] = (0, 0)

    @property
    def center(self) -> tuple[float, float]:
        """(y, x)."""
        return (self.y, self.x)

    def as_dict(self) -> dict[str, Any]:
        """The fit as a plain dictionary."""
        return {
            "y": self.y,
            "x": self.x,
            "amplitude": self.amplitude,
            "sigma_major": self.sigma_major,
            "sigma_minor": self.sigma_minor,
            "angle": self.angle,
            "background": self.background,
            "r2": self.r2,
            "pos_err": self.pos_err,
            "ok": self.ok,
            "reason": self.reason,
            "dark": self.dark,
        }


@dataclass
class GaussianFits:
    """Results of a batch of fits (arrays of length N, see :class:`GaussianFit`)."""

    y: np.ndarray
    x: np.ndarray
    amplitude: np.ndarray
    sigma_major: np.ndarray
    sigma_minor: np.ndarray
    angle: np.ndarray
    background: np.ndarray
    r2: np.ndarray
    pos_err: np.ndarray
    ok: np.ndarray
    reason: list[str]
    dark: np.ndarray
    iterations: np.ndarray
    box_origin: np.ndarray = field(
        default_factory=lambda: np.zeros((0, 2), dtype=np.int64)
    )

    def __len__(self) -> int:
        return int(self.y.size)

    def __getitem__(self, i: int) -> GaussianFit:
        return GaussianFit(
            y=float(self.y[i]),
            x=float(self.x[i]),
            amplitude=float(self.amplitude[i]),
            sigma_major=float(self.sigma_major[i]),
            sigma_minor=float(self.sigma_minor[i]),
            angle=float(self.angle[i]),
            background=float(self.background[i]),
            r2=float(self.r2[i]),
            pos_err=float(self.pos_err[i]),
            ok=bool(self.ok[i]),
            reason=self.reason[i],
            dark=bool(self.dark[i]),
            box_origin=(int(self.box_origin[i, 0]), int(self.box_origin[i, 1])),
        )

    @property
    def centers(self) -> np.ndarray:
        """(N, 2) fitted centres (y, x)."""
        return np.column_stack([self.y, self.x])


# --------------------------------------------------------------------- checks
def _polarity(dark: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(forced, value) boolean arrays from ``dark``: None, a bool, or one of
    those per box."""
    if dark is None or isinstance(dark, (bool, np.bool_)):
        return np.full(n, dark is not None), np.full(n, bool(dark))
    values = list(dark)
    if len(values) != n:
        raise ValueError(f"{DARK_VALUES}; got {len(values)} values for {n} boxes.")
    forced = np.zeros(n, dtype=bool)
    value = np.zeros(n, dtype=bool)
    for i, v in enumerate(values):
        if v is None:
            continue
        if not isinstance(v, (bool, np.bool_)):
            raise ValueError(f"{DARK_VALUES}; got {v!r}.")  # noqa: TRY004 - the house rule: bad values raise ValueError
        forced[i], value[i] = True, bool(v)
    return forced, value


# ------------------------------------------------------------------ the model
def _model_jacobian(
    p: np.ndarray, yy: np.ndarray, xx: np.ndarray, want_jac: bool = True
) -> tuple[np.ndarray, np.ndarray | None]:
    """Model values (n, P) and Jacobian (n, 7, P) for parameters ``p`` (n, 7).

    Parameter order: y0, x0, A, B, Qyy, Qyx, Qxx.
    """
    dy = yy[None, :] - p[:, 0:1]
    dx = xx[None, :] - p[:, 1:2]
    qyy, qyx, qxx = p[:, 4:5], p[:, 5:6], p[:, 6:7]
    a = p[:, 2:3]
    dy2 = dy * dy
    dx2 = dx * dx
    dydx = dy * dx
    g = np.exp(-0.5 * (qyy * dy2 + 2.0 * qyx * dydx + qxx * dx2))
    ag = a * g
    model = ag + p[:, 3:4]
    if not want_jac:
        return model, None
    jac = np.empty((p.shape[0], 7, yy.size), dtype=np.float64)
    jac[:, 0] = ag * (qyy * dy + qyx * dx)
    jac[:, 1] = ag * (qyx * dy + qxx * dx)
    jac[:, 2] = g
    jac[:, 3] = 1.0
    jac[:, 4] = -0.5 * ag * dy2
    jac[:, 5] = -ag * dydx
    jac[:, 6] = -0.5 * ag * dx2
    return model, jac


def _valid_shape(p: np.ndarray) -> np.ndarray:
    """Q positive definite and the spot not absurdly narrow (boolean per box)."""
    qyy, qyx, qxx = p[:, 4], p[:, 5], p[:, 6]
    det = qyy * qxx - qyx * qyx
    finite = np.all(np.isfinite(p), axis=1)
    # largest eigenvalue of Q below 1 / (0.2 px)^2 keeps exp() meaningful
    return finite & (qyy > 0) & (qxx > 0) & (det > 0) & (qyy + qxx < 50.0)


# ------------------------------------------------------ the batched solver
def _weighted_residuals(
    d: np.ndarray, w: np.ndarray | None, p: np.ndarray, yy: np.ndarray, xx: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted residuals (n, P), weighted Jacobian (n, 7, P) and chi-square (n,) at ``p``."""
    model, jac = _model_jacobian(p, yy, xx)
    r = d - model
    if w is not None:
        r *= w
        jac *= w[:, None, :]
    return r, jac, np.einsum("ij,ij->i", r, r)


def _damped_step(
    jac: np.ndarray, r: np.ndarray, lam: np.ndarray, eye: np.ndarray
) -> np.ndarray:
    """The Levenberg-Marquardt step (n, 7) of every box for its damping ``lam``."""
    hess = jac @ jac.transpose(0, 2, 1)
    grad = np.einsum("nkp,np->nk", jac, r)
    diag = np.diagonal(hess, axis1=1, axis2=2)
    ridge = lam[:, None] * diag + 1e-12 * (diag.mean(axis=1, keepdims=True) + 1e-300)
    system = hess + eye[None] * ridge[:, :, None]
    try:
        return np.linalg.solve(system, grad[:, :, None])[:, :, 0]
    except np.linalg.LinAlgError:
        return np.stack(
            [np.linalg.lstsq(s, g, rcond=None)[0] for s, g in zip(system, grad)]
        )


class _ActiveBoxes:
    """The boxes still being fitted, their current solution and damping.

    Boxes leave (:meth:`retire`) as they converge, so late iterations work
    on the few hard boxes only.
    """

    def __init__(
        self,
        data: np.ndarray,
        weight: np.ndarray | None,
        p0: np.ndarray,
        yy: np.ndarray,
        xx: np.ndarray,
    ) -> None:
        n = data.shape[0]
        self.act = np.arange(n)
        self.p = p0.copy()
        self.d = data
        self.w = weight
        self.r, self.jac, self.chi2 = _weighted_residuals(data, weight, self.p, yy, xx)
        self.lam = np.full(n, 1e-3)

    def take(
        self,
        trial: np.ndarray,
        t_r: np.ndarray,
        t_jac: np.ndarray,
        t_chi2: np.ndarray,
        accept: np.ndarray,
    ) -> None:
        """Keep the trial where accepted (swap buffers, copy back the rejected); adapt the damping."""
        rej = ~accept
        if np.any(rej):
            trial[rej] = self.p[rej]
            t_r[rej] = self.r[rej]
            t_jac[rej] = self.jac[rej]
            t_chi2[rej] = self.chi2[rej]
        self.p, self.r, self.jac, self.chi2 = trial, t_r, t_jac, t_chi2
        self.lam = np.where(accept, np.maximum(self.lam * 0.2, 1e-9), self.lam * 5.0)

    def retire(self, keep: np.ndarray) -> bool:
        """Keep only the boxes ``keep``; False when none is left."""
        if not np.any(keep):
            return False
        self.act = self.act[keep]
        self.p, self.r, self.jac, self.chi2, self.lam = (
            self.p[keep],
            self.r[keep],
            self.jac[keep],
            self.chi2[keep],
            self.lam[keep],
        )
        self.d = self.d[keep]
        if self.w is not None:
            self.w = self.w[keep]
        return True


def _levenberg_marquardt(
    data: np.ndarray,
    weight: np.ndarray | None,
    yy: np.ndarray,
    xx: np.ndarray,
    p0: np.ndarray,
    *,
    max_iter: int,
    xtol: float = 1e-4,
    ftol: float = 1e-9,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Batched LM. Returns params (N, 7), chi2 (N,), converged (N,), iterations
    (N,) and the Gauss-Newton Hessian J^T J (N, 7, 7) at the solution."""
    n = data.shape[0]
    params = p0.copy()
    chi2_out = np.full(n, np.inf)
    converged = np.zeros(n, dtype=bool)
    iterations = np.zeros(n, dtype=np.int64)
    hess_out = np.zeros((n, 7, 7))

    s = _ActiveBoxes(data, weight, p0, yy, xx)
    eye = np.eye(7)
    for it in range(1, max_iter + 1):
        step = _damped_step(s.jac, s.r, s.lam, eye)
        trial = s.p + step
        valid = _valid_shape(trial)
        t_r, t_jac, t_chi2 = _weighted_residuals(s.d, s.w, trial, yy, xx)
        accept = valid & np.isfinite(t_chi2) & (t_chi2 <= s.chi2)
        # convergence: an accepted step that barely moved anything, or a
        # damping so large that no step can improve the fit any more
        small_step = np.max(np.abs(step[:, :2]), axis=1) < xtol
        small_gain = (s.chi2 - t_chi2) <= ftol * np.maximum(s.chi2, 1e-300)
        done = (accept & small_step & small_gain) | (s.lam > 1e12)
        s.take(trial, t_r, t_jac, t_chi2, accept)
        iterations[s.act] = it

        if np.any(done) or it == max_iter:
            finished = done if it < max_iter else np.ones_like(done)
            idx = s.act[finished]
            params[idx] = s.p[finished]
            chi2_out[idx] = s.chi2[finished]
            converged[idx] = done[finished]
            hess_out[idx] = s.jac[finished] @ s.jac[finished].transpose(0, 2, 1)
            if not s.retire(~finished):
                break
    return params, chi2_out, converged, iterations, hess_out


# ------------------------------------------------------------- initial guess
def _smooth3(b: np.ndarray) -> np.ndarray:
    """3x3 box mean of (n, h, w) boxes, same size (edge pixels replicated)."""
    return ndimage.uniform_filter(b, size=(1, 3, 3), mode="nearest")


def _ring_background(boxes: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
    """Median of each box's outer ring (of its valid pixels; of the whole box if none)."""
    n = boxes.shape[0]
    ring = np.concatenate(
        [boxes[:, 0, :], boxes[:, -1, :], boxes[:, 1:-1, 0], boxes[:, 1:-1, -1]], axis=1
    )
    if valid is None:
        return np.median(ring, axis=1)
    ring_valid = np.concatenate(
        [valid[:, 0, :], valid[:, -1, :], valid[:, 1:-1, 0], valid[:, 1:-1, -1]], axis=1
    )
    with np.errstate(all="ignore"):
        ring_masked = np.where(ring_valid, ring, np.nan)
        bg = np.nanmedian(ring_masked, axis=1)
        fallback = np.nanmedian(np.where(valid, boxes, np.nan).reshape(n, -1), axis=1)
    return np.where(np.isfinite(bg), bg, fallback)


def _spot_polarity(
    boxes: np.ndarray,
    valid: np.ndarray | None,
    bg: np.ndarray,
    forced: np.ndarray,
    value: np.ndarray,
    yy: np.ndarray,
    xx: np.ndarray,
) -> tuple[np.ndarray, ...]:
    """Polarity (unless forced) from the centre-weighted smoothed extremes, and the spot's peak.

    Returns ``is_dark``, ``sign``, the signed smoothed box, the peak height
    and its pixel (row, col).
    """
    n, h, w = boxes.shape
    dev = boxes - bg[:, None, None]
    smooth = _smooth3(dev)
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    window = np.exp(
        -((yy - cy) ** 2 / (2 * (h / 3.0) ** 2) + (xx - cx) ** 2 / (2 * (w / 3.0) ** 2))
    )
    if valid is not None:
        window = window[None] * valid
    flat = (smooth * window).reshape(n, -1)
    bright_score = flat.max(axis=1)
    dark_score = -flat.min(axis=1)
    is_dark = np.where(forced, value, dark_score > bright_score)
    sign = np.where(is_dark, -1.0, 1.0)
    signed = sign[:, None, None] * smooth
    peak_idx = np.argmax((signed * window).reshape(n, -1), axis=1)
    py, px = np.divmod(peak_idx, w)
    peak = signed.reshape(n, -1)[np.arange(n), peak_idx]
    peak = np.maximum(peak, 1e-12)
    return is_dark, sign, signed, peak, py, px


def _centre_and_width(
    signed: np.ndarray,
    valid: np.ndarray | None,
    peak: np.ndarray,
    py: np.ndarray,
    px: np.ndarray,
    yy: np.ndarray,
    xx: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centroid (y0, x0) of the pixels above half the peak near it, and the
    isotropic ``q = 1 / sigma^2`` from their area."""
    h, w = signed.shape[1:]
    near = (np.abs(yy[None] - py[:, None, None]) <= h // 3) & (
        np.abs(xx[None] - px[:, None, None]) <= w // 3
    )
    above = np.clip(signed - _THRESHOLD * peak[:, None, None], 0.0, None) * near
    if valid is not None:
        above = above * valid
    mass = above.sum(axis=(1, 2))
    ok_mass = mass > 0
    safe = np.where(ok_mass, mass, 1.0)
    y0 = np.where(ok_mass, (above * yy).sum(axis=(1, 2)) / safe, py)
    x0 = np.where(ok_mass, (above * xx).sum(axis=(1, 2)) / safe, px)
    count = (above > 0).sum(axis=(1, 2))
    # area above a fraction f of the peak = 2 pi sigma^2 ln(1/f)
    sigma = np.sqrt(np.maximum(count, 1) / (2 * np.pi * np.log(1.0 / _THRESHOLD)))
    sigma = np.clip(sigma, 0.8, min(h, w) / 3.0)
    return y0, x0, 1.0 / sigma**2


def _amplitude_background(
    boxes: np.ndarray,
    valid: np.ndarray | None,
    g: np.ndarray,
    sign: np.ndarray,
    peak: np.ndarray,
    bg: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Amplitude and background by linear least squares for the spot shape ``g``,
    keeping the detected polarity (a wrong-signed start would fit something else)."""
    if valid is not None:
        wgt = valid.astype(np.float64)
    else:
        wgt = np.ones_like(g)
    s_w = wgt.sum(axis=(1, 2))
    s_g = (wgt * g).sum(axis=(1, 2))
    s_gg = (wgt * g * g).sum(axis=(1, 2))
    s_d = (wgt * boxes).sum(axis=(1, 2))
    s_gd = (wgt * g * boxes).sum(axis=(1, 2))
    det = s_gg * s_w - s_g * s_g
    good = np.abs(det) > 1e-12 * np.maximum(s_gg * s_w, 1e-300)
    safe_det = np.where(good, det, 1.0)
    amp = np.where(good, (s_gd * s_w - s_g * s_d) / safe_det, sign * peak)
    back = np.where(good, (s_gg * s_d - s_g * s_gd) / safe_det, bg)
    flip = np.sign(amp) != sign
    return np.where(flip, sign * peak, amp), np.where(flip, bg, back)


def _initial_guess(
    boxes: np.ndarray, valid: np.ndarray | None, forced: np.ndarray, value: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Moment-based start for every box: (N, 7) parameters and the polarity.

    * background: median of the box's outer ring (the spot is near the centre,
      so the ring is mostly background);
    * polarity (unless given): the larger of the bright and dark extremes of
      the 3x3-smoothed box relative to that background, each weighted by a
      broad window centred on the box, so a neighbour at the edge does not win
      over the clicked spot (the reference compared raw max/min with the
      median);
    * centre: centroid of the pixels above half the peak, near the extremum;
    * width: from the area above half the peak (isotropic start);
    * amplitude and background: the exact linear least-squares solution for
      that shape.
    """
    n, h, w = boxes.shape
    bg = _ring_background(boxes, valid)
    yy, xx = np.mgrid[0:h, 0:w]
    is_dark, sign, signed, peak, py, px = _spot_polarity(
        boxes, valid, bg, forced, value, yy, xx
    )
    y0, x0, q = _centre_and_width(signed, valid, peak, py, px, yy, xx)
    g = np.exp(
        -0.5
        * q[:, None, None]
        * ((yy[None] - y0[:, None, None]) ** 2 + (xx[None] - x0[:, None, None]) ** 2)
    )
    amp, back = _amplitude_background(boxes, valid, g, sign, peak, bg)
    p0 = np.column_stack([y0, x0, amp, back, q, np.zeros(n), q]).astype(np.float64)
    return p0, is_dark


# ------------------------------------------------------------------- results
def _derive(params: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Widths (major, minor) and major-axis angle from the fitted Q."""
    qyy, qyx, qxx = params[:, 4], params[:, 5], params[:, 6]
    det = qyy * qxx - qyx * qyx
    with np.errstate(all="ignore"):
        syy = qxx / det
        sxx = qyy / det
        syx = -qyx / det
        half_tr = 0.5 * (syy + sxx)
        disc = np.sqrt(np.maximum(half_tr**2 - (syy * sxx - syx * syx), 0.0))
        major = np.sqrt(np.maximum(half_tr + disc, 0.0))
        minor = np.sqrt(np.maximum(half_tr - disc, 0.0))
        # angle in (x, y-up) coordinates: the covariance term flips sign
        angle = 0.5 * np.degrees(np.arctan2(-2.0 * syx, sxx - syy))
    angle = np.where(angle <= -90.0, angle + 180.0, angle)
    return major, minor, angle


_REWEIGHT_ROUNDS = 2  # weights from the LSQ fit, then from the first weighted fit


def _noise_model(
    d: np.ndarray,
    model: np.ndarray,
    valid: np.ndarray | None,
    mean: np.ndarray,
    sc: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Per box ``var = k * signal + v0`` (raw units) fitted to the squared residuals of its pixels.

    Shot noise (photon counts: k = 1, v0 = 0), a camera gain (k), an offset or
    read noise (v0), and white noise (k = 0) all fit this line, so the weights
    follow the data without any camera setting. Each box on its own, so a
    fit does not depend on the other boxes of a batch. When ``v0`` comes out
    at 0 the weights are exactly 1 / signal (``k`` cancels): Poisson.
    """
    mu = model * sc[:, None] + mean[:, None]
    r2 = ((d - model) * sc[:, None]) ** 2
    wv = np.ones_like(mu) if valid is None else (valid > 0).astype(np.float64)
    cnt = np.maximum(wv.sum(axis=1), 1.0)
    mu_m = (wv * mu).sum(axis=1) / cnt
    r2_m = (wv * r2).sum(axis=1) / cnt
    mu_c = (mu - mu_m[:, None]) * wv
    den = (mu_c * mu_c).sum(axis=1)
    with np.errstate(all="ignore"):
        k = np.where(den > 0, (mu_c * (r2 - r2_m[:, None])).sum(axis=1) / den, 0.0)
    k = np.where(np.isfinite(k) & (k > 0), k, 0.0)
    # v0 >= 0: a negative intercept (a camera offset) is not trusted from one
    # box; without it the weights are those of shot noise on the raw values,
    # between least squares and the exact Poisson weights, never sharper
    v0 = np.maximum(r2_m - k * mu_m, 0.0)
    return k, v0


def _reweighted(
    d: np.ndarray,
    valid: np.ndarray | None,
    yy: np.ndarray,
    xx: np.ndarray,
    p: np.ndarray,
    conv: np.ndarray,
    iters: np.ndarray,
    hess: np.ndarray,
    c2: np.ndarray,
    mean: np.ndarray,
    sc: np.ndarray,
    max_iter: int,
) -> tuple[np.ndarray, ...]:
    """Refine least-squares fits by weighting each pixel with 1 / its variance (iteratively reweighted).

    The variance is the signal-dependent line of :func:`_noise_model`, so for
    shot noise the fit is the Poisson maximum likelihood (its score equation
    is the weighted least-squares one at the fitted model), which reaches the
    Cramér-Rao bound where unweighted least squares loses up to 16/9 of the
    variance. Boxes whose weighted fit fails keep their least-squares fit.
    Returns params, the weighted chi-square, converged, iterations, the
    weighted Hessian and the unweighted chi-square.
    """
    good = conv & np.all(np.isfinite(p), axis=1)
    if not np.any(good):
        return p, c2, conv, iters, hess, c2
    p, conv, iters, hess = p.copy(), conv.copy(), iters.copy(), hess.copy()
    c2w, c2 = c2.copy(), c2.copy()
    idx = np.flatnonzero(good)
    cur = p[idx]
    vsub = valid[idx] if valid is not None else None
    for _ in range(_REWEIGHT_ROUNDS):
        model, _ = _model_jacobian(cur, yy, xx, want_jac=False)
        k, v0 = _noise_model(d[idx], model, vsub, mean[idx], sc[idx])
        var = k[:, None] * (model * sc[idx, None] + mean[idx, None]) + v0[:, None]
        floor = 0.05 * np.median(var, axis=1, keepdims=True)
        var = np.maximum(var, np.maximum(floor, 1e-12 * sc[idx, None] ** 2))
        w = sc[idx, None] / np.sqrt(var)
        w /= np.sqrt(
            np.mean(w * w, axis=1, keepdims=True)
        )  # chi-square in the units of the LSQ fit
        if vsub is not None:
            w = w * vsub
        q, cw, cv, it, hs = _levenberg_marquardt(
            d[idx], w, yy, xx, cur, max_iter=max_iter
        )
        ok = cv & np.all(np.isfinite(q), axis=1)
        cur = np.where(ok[:, None], q, cur)
        p[idx[ok]] = q[ok]
        c2w[idx[ok]] = cw[ok]
        hess[idx[ok]] = hs[ok]
        iters[idx] += it
    # the R^2 gate and the reported chi-square stay unweighted
    model, _ = _model_jacobian(p[idx], yy, xx, want_jac=False)
    res = d[idx] - model
    if vsub is not None:
        res = res * vsub
    c2[idx] = np.einsum("ij,ij->i", res, res)
    return p, c2w, conv, iters, hess, c2


def _fit_block(
    boxes: np.ndarray,
    valid: np.ndarray | None,
    mean: np.ndarray,
    spread: np.ndarray,
    n_valid: np.ndarray,
    forced: np.ndarray,
    value: np.ndarray,
    max_iter: int,
    noise: str = FIT_DEFAULTS.noise,
) -> tuple[np.ndarray, ...]:
    """Fit one block of boxes: returns params, chi2, converged, iterations,
    polarity and the centre's standard error."""
    m, h, w = boxes.shape
    # normalise each box (fit in units of its own spread): conditioning
    sc = np.where(spread > 0, spread, 1.0)
    norm = (boxes - mean[:, None, None]) / sc[:, None, None]
    if valid is not None:
        norm = np.where(valid, norm, 0.0)
    p0, is_dark = _initial_guess(norm, valid, forced, value)
    yy, xx = np.mgrid[0:h, 0:w]
    wflat = valid.reshape(m, -1).astype(np.float64) if valid is not None else None
    p, c2, conv, iters, hess = _levenberg_marquardt(
        norm.reshape(m, -1),
        wflat,
        yy.ravel().astype(np.float64),
        xx.ravel().astype(np.float64),
        p0,
        max_iter=max_iter,
    )
    if noise == "poisson":
        p, c2w, conv, iters, hess, c2 = _reweighted(
            norm.reshape(m, -1),
            wflat,
            yy.ravel().astype(np.float64),
            xx.ravel().astype(np.float64),
            p,
            conv,
            iters,
            hess,
            c2,
            mean,
            sc,
            max_iter,
        )
    else:
        c2w = c2
    # covariance of the centre: s^2 (J^T J)^-1 (weighted: s^2 (J^T W J)^-1);
    # the position entries do not depend on the intensity normalisation
    s2 = c2w / np.maximum(n_valid - 7, 1)
    diag = np.diagonal(hess, axis1=1, axis2=2)
    ridged = (
        hess + np.eye(7)[None] * (1e-12 * (diag.mean(axis=1) + 1e-300))[:, None, None]
    )
    rhs = np.broadcast_to(np.eye(7)[:, :2], (m, 7, 2))
    with np.errstate(all="ignore"):
        try:
            cols = np.linalg.solve(ridged, rhs)
            var = (cols[:, 0, 0] + cols[:, 1, 1]) * s2
        except np.linalg.LinAlgError:
            var = np.full(m, np.nan)
        pos_err = np.sqrt(np.where(var > 0, var, np.nan))
    # undo the normalisation
    p[:, 2] *= sc
    p[:, 3] = p[:, 3] * sc + mean
    return p, c2 * sc**2, conv, iters, is_dark, pos_err


class _Prepared(NamedTuple):
    """Boxes ready to fit: NaN pixels zeroed (``valid`` marks them) and each box's statistics."""

    arr: np.ndarray
    valid: np.ndarray | None
    n_valid: np.ndarray
    mean: np.ndarray
    spread: np.ndarray
    ss_tot: np.ndarray
    constant: np.ndarray


def _as_boxes(boxes: Any) -> np.ndarray:
    """(N, h, w) float64 boxes from (N, h, w) or one (h, w) box."""
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"boxes must have shape (N, h, w), got {arr.shape}.")
    return arr


def _prepare(arr: np.ndarray) -> _Prepared:
    """Valid pixels, mean, spread and total sum of squares of every box."""
    n, h, w = arr.shape
    finite = np.isfinite(arr)
    any_missing = not bool(finite.all())
    valid = finite if any_missing else None
    if any_missing:
        arr = np.where(finite, arr, 0.0)
    n_valid = finite.reshape(n, h * w).sum(axis=1)
    flat = arr.reshape(n, h * w)
    with np.errstate(all="ignore"):
        mean = (flat * finite.reshape(n, h * w)).sum(axis=1) / np.maximum(n_valid, 1)
        ss_tot = (((flat - mean[:, None]) * finite.reshape(n, h * w)) ** 2).sum(axis=1)
    spread = np.sqrt(ss_tot / np.maximum(n_valid, 1))
    scale = np.maximum(np.abs(mean), 1.0)
    constant = spread <= 1e-9 * scale
    return _Prepared(arr, valid, n_valid, mean, spread, ss_tot, constant)


def _reasons_before_fitting(pre: list[str], prep: _Prepared, size: int) -> list[str]:
    """The reasons decided before fitting: given, "box outside image", "constant box"."""
    reasons = list(pre)
    for i in range(len(reasons)):
        if reasons[i]:
            continue
        if prep.n_valid[i] < 0.5 * size:
            reasons[i] = "box outside image"
        elif prep.constant[i]:
            reasons[i] = "constant box"
    return reasons


def _fit_all(
    prep: _Prepared,
    todo_idx: np.ndarray,
    forced: np.ndarray,
    value: np.ndarray,
    max_iter: int,
    workers: int | None,
    noise: str = FIT_DEFAULTS.noise,
) -> tuple[np.ndarray, ...]:
    """Fit the boxes ``todo_idx`` in blocks (in threads when there are several).

    Returns params (N, 7), chi2, converged, iterations, polarity and the
    centre's standard error (NaN / False for the boxes not fitted).
    """
    n = prep.arr.shape[0]
    out_p = np.full((n, 7), np.nan)
    chi2 = np.full(n, np.nan)
    conv = np.zeros(n, dtype=bool)
    iters = np.zeros(n, dtype=np.int64)
    is_dark = np.zeros(n, dtype=bool)
    pos_err = np.full(n, np.nan)
    blocks = [todo_idx[i : i + _BLOCK] for i in range(0, todo_idx.size, _BLOCK)]

    def run(idx: np.ndarray) -> None:
        res = _fit_block(
            prep.arr[idx],
            prep.valid[idx] if prep.valid is not None else None,
            prep.mean[idx],
            prep.spread[idx],
            prep.n_valid[idx],
            forced[idx],
            value[idx],
            max_iter,
            noise,
        )
        out_p[idx], chi2[idx], conv[idx], iters[idx], is_dark[idx], pos_err[idx] = res

    n_workers = default_workers(workers) if len(blocks) > 1 else 1
    if n_workers > 1:
        with thread_pool(min(n_workers, len(blocks))) as pool:
            list(pool.map(run, blocks))
    else:
        for idx in blocks:
            run(idx)
    return out_p, chi2, conv, iters, is_dark, pos_err


def _gate(
    reasons: list[str],
    todo_idx: np.ndarray,
    fitted: tuple[np.ndarray, ...],
    r2: np.ndarray,
    box: tuple[int, int],
    max_sigma: float,
    min_r2: float,
) -> None:
    """Write the first quality gate each fitted box fails into ``reasons``."""
    h, w = box
    out_p, conv, is_dark, major, minor = fitted
    y, x, amp = out_p[:, 0], out_p[:, 1], out_p[:, 2]
    todo = np.zeros(len(reasons), dtype=bool)
    todo[todo_idx] = True
    for i in np.flatnonzero(todo):
        if not conv[i] or not np.all(np.isfinite(out_p[i])):
            reasons[i] = "did not converge"
        elif not (_EDGE <= y[i] <= h - 1 - _EDGE and _EDGE <= x[i] <= w - 1 - _EDGE):
            reasons[i] = "centre outside box"
        elif (amp[i] < 0) != is_dark[i] or amp[i] == 0:
            reasons[i] = (
                "amplitude has the wrong sign (fitted the background, not a spot)"
            )
        elif not (minor[i] >= MIN_SIGMA and major[i] <= max_sigma):
            reasons[i] = (
                f"width out of range (sigma {minor[i]:.2f}-{major[i]:.2f} px, allowed {MIN_SIGMA}-{max_sigma:.2f})"
            )
        elif not (r2[i] >= min_r2):
            reasons[i] = f"R\u00b2 {r2[i]:.2f} below {min_r2:g}"


def _fit_boxes(
    arr: np.ndarray,
    opts: FitOptions,
    *,
    dark: Any,
    origins: Any = None,
    invalid_reason: Any = None,
    workers: int | None = None,
) -> GaussianFits:
    """:func:`fit_gaussians` on checked (N, h, w) float64 boxes, ``dark`` per box or for all."""
    n, h, w = arr.shape
    max_sigma = opts.width_limit((h, w))
    forced, value = _polarity(dark, n)
    if origins is None:
        origin = np.zeros((n, 2), dtype=np.int64)
    else:
        origin = np.asarray(origins, dtype=np.int64).reshape(n, 2)
    pre = list(invalid_reason) if invalid_reason is not None else [""] * n
    if len(pre) != n:
        raise ValueError("invalid_reason must have one entry per box.")

    prep = _prepare(arr)
    reasons = _reasons_before_fitting(pre, prep, h * w)
    todo_idx = np.flatnonzero(np.array([not r for r in reasons], dtype=bool))
    out_p, chi2, conv, iters, is_dark, pos_err = _fit_all(
        prep, todo_idx, forced, value, opts.max_iter, workers, opts.noise
    )

    major, minor, angle = _derive(out_p)
    with np.errstate(all="ignore"):
        r2 = 1.0 - chi2 / np.where(prep.ss_tot > 0, prep.ss_tot, np.nan)
    _gate(
        reasons,
        todo_idx,
        (out_p, conv, is_dark, major, minor),
        r2,
        (h, w),
        max_sigma,
        opts.min_r2,
    )
    ok = np.array([not r for r in reasons], dtype=bool)
    return GaussianFits(
        y=out_p[:, 0] + origin[:, 0],
        x=out_p[:, 1] + origin[:, 1],
        amplitude=out_p[:, 2],
        sigma_major=major,
        sigma_minor=minor,
        angle=angle,
        background=out_p[:, 3],
        r2=r2,
        pos_err=pos_err,
        ok=ok,
        reason=reasons,
        dark=is_dark,
        iterations=iters,
        box_origin=origin,
    )


def fit_gaussians(
    boxes: Any,
    *,
    origins: Any = None,
    min_r2: float = FIT_DEFAULTS.min_r2,
    max_sigma: float | None = FIT_DEFAULTS.max_sigma,
    dark: Any = FIT_DEFAULTS.dark,
    max_iter: int = FIT_DEFAULTS.max_iter,
    noise: str = FIT_DEFAULTS.noise,
    invalid_reason: Any = None,
    workers: int | None = None,
    options: FitOptions | None = None,
) -> GaussianFits:
    """Fit a rotated elliptical 2-D Gaussian in each of many boxes at once.

    Parameters
    ----------
    boxes : array_like, shape (N, h, w) or (h, w)
        Pixel boxes. NaN pixels are ignored (e.g. the empty border of a
        warped frame); a box with fewer than half its pixels valid fails.
        Their size is the fit's box (``options.box`` is not used).
    origins : array_like, shape (N, 2), optional
        Absolute (row, col) of each box's top-left pixel; the results are
        then in image coordinates (default: box coordinates).
    min_r2 : float
        Quality gate on the goodness of fit ``R^2 = 1 - SS_res / SS_tot``.
    max_sigma : float, optional
        Largest accepted width in px (default: a third of the box).
    dark : bool, None, or a sequence of those (one per box)
        None detects the polarity per box (dark spot on a bright background
        or the reverse); True / False forces dark / bright.
    max_iter : int
        Iteration limit; fits still moving after it fail with "did not
        converge".
    noise : {"poisson", "gaussian"}
        "poisson" (default): a least-squares fit, then refined with each
        pixel weighted by 1 / its variance, ``var = k * signal + v0`` fitted
        to the residuals of all the boxes (shot noise with any gain, camera
        offset or read noise; for photon counts this is the Poisson maximum
        likelihood, which reaches the Cramér-Rao bound, see
        :func:`~napari_stackalign.core.particles.position_bound`).
        "gaussian": plain least squares (equal weights, as ``curve_fit``;
        up to 16/9 of the bound's variance on shot-noise data).
    invalid_reason : sequence of str, optional
        Per-box reasons decided before fitting (e.g. "box outside image");
        such boxes are reported failed with that reason.
    workers : int, optional
        Threads for large batches (blocks of 128 boxes are fitted in
        parallel); all cores by default.
    options : FitOptions, optional
        All the fit options in one object; keywords given explicitly (not
        at their default) override it.

    Returns
    -------
    GaussianFits
        Arrays of fitted parameters, ``ok`` and the failure ``reason``.

    Notes
    -----
    Quality gates, in the order the reason reports them: "box outside image"
    (centre outside the image, or under half the box valid), "constant
    box", "did not converge", "centre outside box" (the centre must lie at
    least 1 px inside the box: a spot at the edge is only half seen),
    "amplitude has the wrong sign" (the fit went to the background, not the
    detected spot), "width out of range" (narrowest width under 0.5 px or
    widest above ``max_sigma``), "R\u00b2 ... below ``min_r2``". The solver
    works in float64 (the boxes are small; the chi-square comparisons of
    Levenberg-Marquardt need the precision).
    """
    arr = _as_boxes(boxes)
    opts = FitOptions.from_call(options, {**locals(), "box": arr.shape[1:]})
    return _fit_boxes(
        arr,
        opts,
        dark=opts.dark,
        origins=origins,
        invalid_reason=invalid_reason,
        workers=workers,
    )


def extract_boxes(
    image: Any, centers: Any, box: Any = FIT_DEFAULTS.box
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Cut boxes of size ``box`` around ``centers`` from a 2-D image.

    The box is centred on the pixel nearest each centre; near the border it is
    moved inwards so that it stays whole (the spot is then off-centre in the
    box, which the fit handles). A centre outside the image gives a box of NaN
    and the reason "box outside image".

    Returns
    -------
    boxes : ndarray, shape (N, h, w), float64
    origins : ndarray, shape (N, 2), int64
        Top-left (row, col) of each box.
    reasons : list of str
        Empty, or why the box could not be cut.
    """
    img = np.asarray(image)
    if img.ndim != 2:
        raise ValueError(
            f"image must be 2-D (Y, X), got shape {img.shape}: pass one frame."
        )
    bh, bw = box_shape(box)
    H, W = img.shape
    c = np.asarray(centers, dtype=np.float64).reshape(-1, 2)
    if H < bh or W < bw:
        raise ValueError(
            f"the image ({H}x{W}) is smaller than the box ({bh}x{bw}): use a smaller box."
        )
    finite = np.all(np.isfinite(c), axis=1)
    inside = (
        finite
        & (c[:, 0] >= -0.5)
        & (c[:, 0] <= H - 0.5)
        & (c[:, 1] >= -0.5)
        & (c[:, 1] <= W - 0.5)
    )
    safe = np.where(finite[:, None], c, 0.0)
    r0 = np.clip(np.floor(safe[:, 0] + 0.5).astype(np.int64) - bh // 2, 0, H - bh)
    c0 = np.clip(np.floor(safe[:, 1] + 0.5).astype(np.int64) - bw // 2, 0, W - bw)
    rows = r0[:, None, None] + np.arange(bh)[None, :, None]
    cols = c0[:, None, None] + np.arange(bw)[None, None, :]
    boxes = img[rows, cols].astype(np.float64)
    if not np.all(inside):
        boxes[~inside] = np.nan
    reasons = ["" if ok else "box outside image" for ok in inside]
    return boxes, np.column_stack([r0, c0]), reasons


def _fit_at(
    image: Any, centers: Any, opts: FitOptions, *, dark: Any, workers: int | None = None
) -> GaussianFits:
    """Fit spots around ``centers`` of one image with ``opts`` (``dark``: per centre or for all)."""
    boxes, origins, reasons = extract_boxes(image, centers, opts.box_shape)
    return _fit_boxes(
        boxes, opts, dark=dark, origins=origins, invalid_reason=reasons, workers=workers
    )


def fit_gaussians_at(
    image: Any,
    centers: Any,
    box: Any = FIT_DEFAULTS.box,
    *,
    min_r2: float = FIT_DEFAULTS.min_r2,
    max_sigma: float | None = FIT_DEFAULTS.max_sigma,
    dark: Any = FIT_DEFAULTS.dark,
    max_iter: int = FIT_DEFAULTS.max_iter,
    noise: str = FIT_DEFAULTS.noise,
    workers: int | None = None,
    options: FitOptions | None = None,
) -> GaussianFits:
    """Fit spots around many ``centers`` (N, 2) of one 2-D image (one batch).

    See :func:`fit_gaussians` for the options (and :class:`FitOptions`);
    results are in image coordinates.
    """
    opts = FitOptions.from_call(options, locals())
    return _fit_at(image, centers, opts, dark=opts.dark, workers=workers)


def fit_gaussian(
    image: Any,
    center: Any,
    box: Any = FIT_DEFAULTS.box,
    *,
    min_r2: float = FIT_DEFAULTS.min_r2,
    max_sigma: float | None = FIT_DEFAULTS.max_sigma,
    dark: bool | None = FIT_DEFAULTS.dark,
    max_iter: int = FIT_DEFAULTS.max_iter,
    noise: str = FIT_DEFAULTS.noise,
    options: FitOptions | None = None,
) -> GaussianFit:
    """Fit one spot near ``center`` in a 2-D image (the fit behind a click).

    Parameters
    ----------
    image : array_like, shape (Y, X)
        One frame.
    center : (float, float)
        Approximate (row, col) of the spot, e.g. where the user clicked.
    box : int or (int, int)
        Size of the fitted box in px (about 3-4 spot widths).
    min_r2 : float
        Quality gate on the goodness of fit (``R^2``).
    max_sigma : float, optional
        Largest accepted width in px (default: a third of the box).
    dark : bool or None
        None detects a dark or bright spot automatically.
    max_iter : int
        Iteration limit of the Levenberg-Marquardt fit.
    noise : {"poisson", "gaussian"}
        Pixel weights (see :func:`fit_gaussians`).
    options : FitOptions, optional
        All the fit options in one object; keywords given explicitly (not
        at their default) override it.

    Returns
    -------
    GaussianFit
        The fitted spot (absolute image coordinates), with ``ok`` and the
        ``reason`` it failed a quality gate.

    Examples
    --------
    >>> fit = fit_gaussian(frame, (120.3, 88.9), box=15)
    >>> fit.ok, fit.y, fit.x, fit.r2  # doctest: +SKIP
    """
    opts = FitOptions.from_call(options, locals())
    c = np.asarray(center, dtype=np.float64).reshape(-1)
    if c.size != 2:
        raise ValueError(f"center must be a (row, col) pair, got {center!r}.")
    return _fit_at(image, c[None], opts, dark=opts.dark)[0]
