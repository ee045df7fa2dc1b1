"""How precise the data allow a particle correction to be: Cramér-Rao lower bounds.

Position of one spot
    The fitted model (see :mod:`._gaussian_fit`) is the expected signal of
    each pixel of the fit box,
    ``mu_k = B + A exp(-0.5 d_k^T Q d_k)`` (counts), with the seven fitted
    parameters (centre, amplitude, background, the three entries of ``Q``)
    all unknown. Pixel values are converted to photons with
    ``photons_per_count`` (``(value - offset) * photons_per_count``; default
    1 and 0: the values *are* photon counts, as in
    :func:`~napari_stackalign.synthetic.make_stack` with Poisson noise;
    for a camera give its conversion factor, e.g. 0.5 e-/ADU, and its
    baseline). The noise is Poisson shot noise, plus an optional Gaussian
    read noise ``read_noise`` (photo-electrons RMS), taken as Poisson of
    mean ``mu + read_noise**2`` (the usual sCMOS approximation; exact for
    ``read_noise = 0``). The Fisher information is summed numerically over
    the pixels of the box::

        I_ij = sum_k (d mu_k / d p_i)(d mu_k / d p_j) / (mu_k + read_noise^2)    (photons)

    and the bound on the centre is the (y, x) block of ``I^-1``. This is
    the pixelated bound for the fitted box (the spot's sub-pixel position,
    the box size and the other unknowns included). For a round spot of
    ``N = A 2 pi sigma^2`` photons on a background of ``b`` photons per
    pixel it agrees with Mortensen et al. (Nat. Methods 2010) to a few
    percent: ``var = sigma^2 / N (1 + 4 tau + sqrt(2 tau / (1 + 4 tau)))``,
    ``tau = 2 pi sigma^2 b / N`` (``sigma`` the fitted width, which already
    includes the pixel's ``1/12``); with no background, ``sigma^2 / N``.
    An unweighted least-squares fit cannot reach it (Mortensen: 16/9 of the
    variance with no background); the Poisson-weighted fit
    (``FitOptions.noise="poisson"``, the default) does.

Rigid correction of one frame
    Each frame's rotation ``theta`` and translation ``t`` map the reference
    layout onto the particles' positions; linearised at the estimate, the
    position of particle ``i`` moves by ``H_i [theta, ty, tx]`` with
    ``H_i = [[-(x_i - cx), 1, 0], [y_i - cy, 0, 1]]``. With the per-particle
    position covariances ``C_i`` the bound on the three parameters is
    ``(sum_i H_i^T C_i^-1 H_i)^-1`` (the covariance of the best weighted
    least-squares fit, the exact linearised one). For equal, isotropic
    ``C_i = s^2 I`` it is ``var(theta) = s^2 / sum_i r_i^2`` (``r_i`` the
    distance to the layout's centroid: the moment of inertia) and, at the
    centroid, ``var(t_y) = var(t_x) = s^2 / N``: the rotation bound falls as
    ``1 / (sqrt(N) * radius)``. The bound is on each frame's error about the
    stack's common reference (what :func:`~napari_stackalign.synthetic.alignment_error`
    measures); against one particular frame both frames' errors add.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._gaussian_fit import _model_jacobian
from ._options import BOUND_DEFAULTS, BoundOptions
from ._tracks import ParticleTracks

__all__ = ["RigidBound", "position_bound", "rigid_bound", "spot_photons"]


def spot_photons(
    amplitude: Any,
    sigma_major: Any,
    sigma_minor: Any,
    *,
    photons_per_count: float = 1.0,
) -> np.ndarray:
    """Photons in a fitted spot: ``|amplitude| * 2 pi sigma_major sigma_minor * photons_per_count``."""
    a = np.abs(np.asarray(amplitude, dtype=np.float64))
    return (
        a
        * 2.0
        * np.pi
        * np.asarray(sigma_major, dtype=np.float64)
        * np.asarray(sigma_minor, dtype=np.float64)
        * photons_per_count
    )


def _inverse_width(
    sigma_major: np.ndarray, sigma_minor: np.ndarray, angle: np.ndarray
) -> np.ndarray:
    """(n, 3) Q entries (yy, yx, xx) of spots with these widths and major-axis angle (degrees, CCW as displayed)."""
    a = np.deg2rad(angle)
    uy, ux = -np.sin(a), np.cos(a)  # the major axis in (row, col)
    vy, vx = ux, -uy
    qa, qb = 1.0 / sigma_major**2, 1.0 / sigma_minor**2
    return np.column_stack(
        [
            qa * uy * uy + qb * vy * vy,
            qa * uy * ux + qb * vy * vx,
            qa * ux * ux + qb * vx * vx,
        ]
    )


def position_bound(
    amplitude: Any,
    sigma_major: Any,
    sigma_minor: Any | None = None,
    background: Any = 0.0,
    *,
    angle: Any = 0.0,
    offset_yx: Any = (0.0, 0.0),
    box: Any = BOUND_DEFAULTS.box,
    photons_per_count: float = BOUND_DEFAULTS.photons_per_count,
    offset: float = BOUND_DEFAULTS.offset,
    read_noise: float = BOUND_DEFAULTS.read_noise,
    options: BoundOptions | None = None,
) -> np.ndarray:
    """Cramér-Rao bound on the fitted centre of Gaussian spots (covariance, px²).

    Parameters
    ----------
    amplitude, sigma_major, sigma_minor, background : array_like
        The fit's parameters (counts, px, px, counts per pixel), broadcast
        together; ``sigma_minor`` defaults to ``sigma_major`` (round spot).
        A dark spot (negative amplitude) works the same way.
    angle : array_like
        Major-axis direction (degrees), as the fit reports it.
    offset_yx : array_like, shape (..., 2)
        The spot's centre relative to the box's central pixel (px).
    box : int or (int, int)
        The fit box (pixels over which the information is summed).
    photons_per_count, offset, read_noise : float
        Camera: photons = (value - offset) * photons_per_count; read noise
        RMS in photo-electrons. The defaults mean "the values are photons".
    options : BoundOptions, optional
        The camera options and box in one object.

    Returns
    -------
    ndarray, shape (..., 2, 2)
        Covariance of (y, x) in px² (NaN where the parameters are not finite
        or the information is singular). ``sqrt(trace)`` is the 2-D RMS bound.
    """
    opts = BoundOptions.from_call(options, locals())
    h, w = opts.box_shape
    minor = sigma_major if sigma_minor is None else sigma_minor
    arrays = np.broadcast_arrays(
        *(
            np.asarray(v, dtype=np.float64)
            for v in (amplitude, sigma_major, minor, background, angle)
        )
    )
    shape = arrays[0].shape
    amp, smaj, smin, bg, ang = (a.reshape(-1) for a in arrays)
    off = np.broadcast_to(np.asarray(offset_yx, dtype=np.float64), (*shape, 2)).reshape(
        -1, 2
    )
    n = amp.size
    cy, cx = (h - 1) // 2, (w - 1) // 2
    ok = (
        np.all(np.isfinite(np.column_stack([amp, smaj, smin, bg, ang, off])), axis=1)
        & (smaj > 0)
        & (smin > 0)
    )
    safe = lambda v, d: np.where(ok, v, d)
    p = np.column_stack(
        [
            cy + safe(off[:, 0], 0.0),
            cx + safe(off[:, 1], 0.0),
            safe(amp, 1.0),
            safe(bg, 1.0),
        ]
        + list(_inverse_width(safe(smaj, 1.0), safe(smin, 1.0), safe(ang, 0.0)).T)
    )
    yy, xx = np.mgrid[0:h, 0:w]
    model, jac = _model_jacobian(
        p, yy.ravel().astype(np.float64), xx.ravel().astype(np.float64)
    )
    g = float(opts.photons_per_count)
    var = np.maximum((model - opts.offset) * g, 0.0) + float(opts.read_noise) ** 2
    var = np.maximum(var, 1e-9)
    fisher = np.einsum("nip,njp->nij", jac * (g * g / var)[:, None, :], jac)
    out = np.full((n, 2, 2), np.nan)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in np.flatnonzero(ok):
            try:
                cov = np.linalg.inv(fisher[i])
            except np.linalg.LinAlgError:
                continue
            c = cov[:2, :2]
            if np.all(np.isfinite(c)) and c[0, 0] > 0 and c[1, 1] > 0:
                out[i] = c
    return out.reshape(*shape, 2, 2)


def _track_bounds(
    tracks: ParticleTracks, sel: np.ndarray, opts: BoundOptions
) -> np.ndarray:
    """(T, n, 2, 2) position bounds of the chosen particles in every frame (NaN where the fit failed)."""
    box = opts.box if opts.box is not None else tracks.params.get("box", 15)
    box = tuple(box) if isinstance(box, list) else box
    fields = [
        getattr(tracks, f)[:, sel]
        for f in ("amplitude", "sigma_major", "sigma_minor", "background", "angle")
    ]
    frac = np.stack([tracks.y[:, sel], tracks.x[:, sel]], axis=-1)
    frac = frac - np.floor(frac + 0.5)
    cov = position_bound(
        *fields[:4], angle=fields[4], offset_yx=frac, options=opts.replace(box=box)
    )
    cov[~tracks.ok[:, sel]] = np.nan
    return cov


def _frame_fisher(
    pos: np.ndarray, cov: np.ndarray, center: np.ndarray, rotation: bool
) -> np.ndarray:
    """(T, 3, 3) Fisher information of (theta, ty, tx) from (T, n, 2) positions and their (T, n, 2, 2) bounds."""
    t, n = pos.shape[:2]
    good = np.all(np.isfinite(pos), axis=2) & np.all(np.isfinite(cov), axis=(2, 3))
    d = np.where(good[..., None], pos - center, 0.0)
    h = np.zeros((t, n, 2, 3))
    if rotation:
        h[..., 0, 0] = -d[..., 1]
        h[..., 1, 0] = d[..., 0]
    h[..., 0, 1] = 1.0
    h[..., 1, 2] = 1.0
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        safe = np.where(good[..., None, None], cov, np.eye(2))
        inv = np.linalg.inv(safe) * good[..., None, None]
    return np.einsum("tnai,tnab,tnbj->tij", h, inv, h)


@dataclass
class RigidBound:
    """Cramér-Rao bounds of a particle correction, per frame, and how close the data came.

    Attributes
    ----------
    particles : list of int
        The particles the bound is for (those of the correction).
    position : ndarray, shape (T, n)
        2-D RMS position bound of every chosen particle in every frame (px,
        ``sqrt(trace)`` of its covariance; NaN where the fit failed).
    photons : ndarray, shape (T, n)
        Photons in each spot (``amplitude * 2 pi sigma_major sigma_minor``).
    rotation : ndarray, shape (T,)
        Standard deviation bound of each frame's rotation (degrees; NaN
        without rotation or with under 2 particles).
    translation : ndarray, shape (T,)
        2-D RMS bound of each frame's translation at the frame centre (px),
        the point where :class:`~napari_stackalign.FrameTransforms` reports it.
    translation_centroid : ndarray, shape (T,)
        The same at the particles' centroid (the best-determined point).
    scatter_ratio : float
        How far the particles scatter about the per-frame rigid fits,
        relative to what their bounds predict: ``sqrt(chi^2 / dof)``. About 1
        means the fits are at the bound; more means the fits, or the sample
        (particles that move on their own), lose precision. The achieved
        precision is about this times the bound. NaN when it cannot be
        estimated (fewer than 2 particles with rotation).
    radius : float
        RMS distance of the particles from their centroid (px).
    params : dict
        The camera options used.
    """

    particles: list[int]
    position: np.ndarray
    photons: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    translation_centroid: np.ndarray
    scatter_ratio: float
    radius: float
    params: dict = field(default_factory=dict)

    def _typical(self, values: np.ndarray) -> float:
        v = np.asarray(values, dtype=np.float64)
        v = v[np.isfinite(v)]
        return float(np.sqrt(np.mean(v**2))) if v.size else float("nan")

    @property
    def rotation_rms(self) -> float:
        """RMS over the frames of the rotation bound (degrees)."""
        return self._typical(self.rotation)

    @property
    def translation_rms(self) -> float:
        """RMS over the frames of the translation bound at the frame centre (px)."""
        return self._typical(self.translation)

    @property
    def position_median(self) -> float:
        """Median position bound of one particle fit (px)."""
        v = self.position[np.isfinite(self.position)]
        return float(np.median(v)) if v.size else float("nan")

    def compare(
        self, rotation: float | None = None, translation: float | None = None
    ) -> dict[str, float]:
        """Achieved / bound ratios for measured RMS errors (degrees, px); NaN when not given."""
        out = {}
        for name, achieved, bound in (
            ("rotation", rotation, self.rotation_rms),
            ("translation", translation, self.translation_rms),
        ):
            out[name] = (
                float(achieved / bound)
                if achieved is not None and bound > 0
                else float("nan")
            )
        return out

    def summary_text(self) -> str:
        """A few lines: the bounds, how close the fits come, and whether more particles would help."""
        n = len(self.particles)
        head = (
            f"precision bound (Cramér-Rao, {n} particle{'s' if n != 1 else ''}, median "
            f"{np.nanmedian(self.photons):.0f} photons, position bound {self.position_median:.3f} px per fit):"
        )
        lines = [head]
        parts = []
        if np.isfinite(self.rotation_rms):
            parts.append(f"rotation {self.rotation_rms:.3g} deg")
        parts.append(f"translation {self.translation_rms:.3g} px")
        r = self.scatter_ratio
        line = "  bound " + ", ".join(parts)
        if np.isfinite(r):
            achieved = []
            if np.isfinite(self.rotation_rms):
                achieved.append(f"rotation ~{r * self.rotation_rms:.3g} deg")
            achieved.append(f"translation ~{r * self.translation_rms:.3g} px")
            line += f"; achieved {', '.join(achieved)} ({r:.2f}x, from the particles' scatter)"
        lines.append(line)
        lines.append("  " + self.advice())
        return "\n".join(lines)

    def advice(self) -> str:
        """What would improve the correction: better fits, or more (or brighter, or farther-apart) particles."""
        r = self.scatter_ratio
        if np.isfinite(r) and r > 1.5:
            return (
                f"the particles scatter {r:.1f}x their bound: the fits lose precision (box, background, "
                "neighbours) or some particles move on their own (see flag_outliers)"
            )
        return (
            "the fits are near the bound: only more particles (4x the particles halve the bound), brighter "
            "ones, or particles farther apart (rotation) would help"
        )

    def as_dict(self) -> dict[str, Any]:
        """The summary numbers (JSON-friendly)."""
        return {
            "particles": list(self.particles),
            "rotation_bound_deg": self.rotation_rms,
            "translation_bound_px": self.translation_rms,
            "position_bound_px": self.position_median,
            "median_photons": float(np.nanmedian(self.photons))
            if np.any(np.isfinite(self.photons))
            else float("nan"),
            "scatter_ratio": self.scatter_ratio,
            "radius_px": self.radius,
            **self.params,
        }


def _scatter_ratio(pos: np.ndarray, cov: np.ndarray, rotation: bool) -> float:
    """``sqrt(chi^2 / dof)`` of the per-frame rigid fits onto the mean layout, weighted by the bounds."""
    from ._rigid import fit_rigid_frames

    good = np.all(np.isfinite(pos), axis=2) & np.all(np.isfinite(cov), axis=(2, 3))
    need = 2 if rotation else 1
    n_par = 3 if rotation else 2
    w = np.where(
        good,
        1.0
        / np.maximum(
            0.5 * np.trace(np.where(good[..., None, None], cov, 1.0), axis1=2, axis2=3),
            1e-12,
        ),
        0.0,
    )
    target = pos[np.argmax(good.sum(axis=1))]
    for _ in range(3):  # generalised Procrustes onto the mean layout
        mats, counts, _ = fit_rigid_frames(pos, target, w, allow_rotation=rotation)
        mapped = np.einsum("tij,tnj->tni", mats[:, :2, :2], pos) + mats[:, None, :2, 2]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            target = np.nanmean(np.where(good[..., None], mapped, np.nan), axis=0)
    res = np.where(good[..., None], mapped - target, 0.0)
    frames = counts >= need + 1
    if not np.any(frames):
        return float("nan")
    chi2 = (w * (res**2).sum(axis=2))[frames].sum()
    n_frames = int(frames.sum())
    n_good = good.any(axis=0).sum()
    # dof: 2 per point, minus the per-frame fit, minus the reference layout
    dof = 2 * counts[frames].sum() - n_par * n_frames - 2 * n_good + n_par
    return float(np.sqrt(chi2 / dof)) if dof > 0 else float("nan")


def rigid_bound(
    tracks: ParticleTracks,
    *,
    particles: Any = None,
    allow_rotation: bool = True,
    box: Any = BOUND_DEFAULTS.box,
    photons_per_count: float = BOUND_DEFAULTS.photons_per_count,
    offset: float = BOUND_DEFAULTS.offset,
    read_noise: float = BOUND_DEFAULTS.read_noise,
    options: BoundOptions | None = None,
) -> RigidBound:
    """Cramér-Rao bounds of the per-frame rotation and translation for the picked layout.

    Parameters
    ----------
    tracks : ParticleTracks
        The tracks (their fitted amplitude, widths and background set each
        particle's position bound).
    particles : sequence of int, optional
        The particles of the correction (default: all).
    allow_rotation : bool
        Whether the correction estimates a rotation (else translation only).
    box : int or (int, int), optional
        The fit box (default: the tracking's).
    photons_per_count, offset, read_noise : float
        The camera (see :func:`position_bound`); the defaults mean the pixel
        values are photon counts.
    options : BoundOptions, optional
        These options in one object.

    Returns
    -------
    RigidBound
    """
    opts = BoundOptions.from_call(options, locals())
    sel = (
        np.arange(tracks.n_particles)
        if particles is None
        else np.unique(np.asarray(particles, dtype=np.int64).reshape(-1))
    )
    if sel.size == 0:
        raise ValueError("no particles chosen: the bound needs at least one particle.")
    rotation = bool(allow_rotation) and sel.size >= 2
    cov = _track_bounds(tracks, sel, opts)
    pos = tracks.positions()[:, sel]
    pos = np.where(tracks.ok[:, sel][..., None], pos, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        layout = np.nanmean(pos, axis=0)
    have = np.all(np.isfinite(layout), axis=1)
    centroid = layout[have].mean(axis=0) if np.any(have) else np.zeros(2)
    radius = (
        float(np.sqrt(np.mean(np.sum((layout[have] - centroid) ** 2, axis=1))))
        if np.any(have)
        else float("nan")
    )
    # the linearised fit about the layout (the positions' own noise barely moves the lever arms)
    lever = np.broadcast_to(layout, pos.shape)
    fisher = _frame_fisher(lever, cov, centroid, rotation)
    frame_center = np.array([(tracks.shape[0] - 1) / 2.0, (tracks.shape[1] - 1) / 2.0])
    t = tracks.n_frames
    rot = np.full(t, np.nan)
    trans = np.full(t, np.nan)
    trans_c = np.full(t, np.nan)
    k = slice(None) if rotation else slice(1, 3)
    for i in range(t):
        f = fisher[i][k, k]
        with np.errstate(all="ignore"):
            if np.linalg.matrix_rank(f) < f.shape[0]:
                continue
            c = np.linalg.inv(f)
        if rotation:
            # translation at the frame centre: t + theta * J (centre - centroid)
            d = frame_center - centroid
            g = np.array([[-d[1], 1.0, 0.0], [d[0], 0.0, 1.0]])
            trans[i] = float(np.sqrt(np.trace(g @ c @ g.T)))
            trans_c[i] = float(np.sqrt(c[1, 1] + c[2, 2]))
            rot[i] = float(np.degrees(np.sqrt(c[0, 0])))
        else:
            trans[i] = trans_c[i] = float(np.sqrt(np.trace(c)))
    photons = spot_photons(
        tracks.amplitude[:, sel],
        tracks.sigma_major[:, sel],
        tracks.sigma_minor[:, sel],
        photons_per_count=opts.photons_per_count,
    )
    photons = np.where(tracks.ok[:, sel], photons, np.nan)
    return RigidBound(
        particles=sel.tolist(),
        position=np.sqrt(np.trace(cov, axis1=2, axis2=3)),
        photons=photons,
        rotation=rot,
        translation=trans,
        translation_centroid=trans_c,
        scatter_ratio=_scatter_ratio(pos, cov, rotation),
        radius=radius,
        params={
            "photons_per_count": float(opts.photons_per_count),
            "offset": float(opts.offset),
            "read_noise": float(opts.read_noise),
        },
    )
