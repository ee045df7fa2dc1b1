"""Rigid (rotation + translation) correction from particle tracks.

For every frame, the least-squares rotation and translation (2-D Kabsch /
Umeyama without scale, so never a reflection) that maps the chosen
particles' positions in that frame onto their reference positions. The
rotation is estimated and expressed about the *same* point: the matrices are
built in absolute pixel coordinates and only then written as a
:class:`~napari_stackalign.FrameTransforms` about the frame centre, which is
what :func:`~napari_stackalign.apply_transforms` applies.

The reference positions are refined by generalised Procrustes analysis: the
mean of every frame's aligned positions (the reference frame's own fit noise
would otherwise enter every frame's estimate), then the result is
re-expressed so that ``reference_frame`` is left unchanged. Particles whose
fit failed in the reference frame still count (their reference position
comes from the frames where they were found).

Frames with too few good fits get a transform interpolated from their
neighbours and ``ok=False``: they are corrected, never left unaligned in
silence.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from scipy.interpolate import CubicSpline

from ...transforms import FrameTransforms
from ._options import INTERPOLATIONS, RIGID_DEFAULTS, RigidOptions
from ._tracks import ParticleTracks

__all__ = ["INTERPOLATIONS", "ONE_PARTICLE_NOTE", "fit_rigid_frames", "rigid_from_tracks"]

ONE_PARTICLE_NOTE = (
    "one particle: translation only (rotation needs at least 2 particles); "
    "any rotation of the field is not corrected"
)


def fit_rigid_frames(
    src: np.ndarray,
    dst: np.ndarray,
    weights: np.ndarray,
    *,
    allow_rotation: bool = RIGID_DEFAULTS.allow_rotation,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame weighted least-squares rigid maps ``src[t] -> dst``.

    Parameters
    ----------
    src : ndarray, shape (T, N, 2)
        Positions (row, col) in each frame (NaN where missing).
    dst : ndarray, shape (N, 2) or (T, N, 2)
        Target positions.
    weights : ndarray, shape (T, N)
        Non-negative weights; 0 (or a NaN position) leaves a point out.
    allow_rotation : bool
        False fits a translation only.

    Returns
    -------
    matrices : ndarray, shape (T, 3, 3)
        (row, col) homogeneous matrices (identity where nothing was fitted).
    counts : ndarray, shape (T,)
        Points used per frame.
    rms : ndarray, shape (T,)
        Weighted RMS residual (px) per frame (NaN with fewer than 1 point).
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.broadcast_to(np.asarray(dst, dtype=np.float64), src.shape)
    w = np.asarray(weights, dtype=np.float64) * np.all(np.isfinite(src), axis=2) * np.all(np.isfinite(dst), axis=2)
    a_src = np.where(np.isfinite(src), src, 0.0)
    a_dst = np.where(np.isfinite(dst), dst, 0.0)
    counts = (w > 0).sum(axis=1)
    wsum = w.sum(axis=1)
    safe = np.where(wsum > 0, wsum, 1.0)
    p_bar = (w[..., None] * a_src).sum(axis=1) / safe[:, None]
    q_bar = (w[..., None] * a_dst).sum(axis=1) / safe[:, None]
    a = a_src - p_bar[:, None, :]
    b = a_dst - q_bar[:, None, :]
    if allow_rotation:
        s = (w * (b[..., 1] * a[..., 0] - b[..., 0] * a[..., 1])).sum(axis=1)
        c = (w * (a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1])).sum(axis=1)
        theta = np.where(counts >= 2, np.arctan2(s, c), 0.0)
    else:
        theta = np.zeros(src.shape[0])
    cos, sin = np.cos(theta), np.sin(theta)
    rot = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)  # (T, 2, 2)
    d = q_bar - np.einsum("tij,tj->ti", rot, p_bar)
    mats = np.tile(np.eye(3), (src.shape[0], 1, 1))
    mats[:, :2, :2] = rot
    mats[:, :2, 2] = d
    mats[counts == 0] = np.eye(3)
    mapped = np.einsum("tij,tnj->tni", rot, a_src) + d[:, None, :]
    res2 = ((mapped - a_dst) ** 2).sum(axis=2)
    with np.errstate(all="ignore"):
        rms = np.sqrt((w * res2).sum(axis=1) / wsum)
    rms = np.where(counts > 0, rms, np.nan)
    return mats, counts, rms


def _apply(mats: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Map (T, N, 2) points with (T, 3, 3) matrices."""
    return np.einsum("tij,tnj->tni", mats[:, :2, :2], pts) + mats[:, None, :2, 2]


def _particle_weights(tracks: ParticleTracks, sel: np.ndarray, weighted: bool) -> np.ndarray:
    """One weight per chosen particle: 1 / (its median centre error)^2."""
    if not weighted:
        return np.ones(sel.size)
    err = np.where(tracks.ok[:, sel], tracks.pos_err[:, sel], np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        med = np.nanmedian(err, axis=0)
    finite = np.isfinite(med) & (med > 0)
    if not np.any(finite):
        return np.ones(sel.size)
    floor = max(float(np.nanmedian(med[finite])) * 0.25, 1e-3)
    med = np.where(finite, np.maximum(med, floor), np.nanmax(med[finite]))
    w = 1.0 / med**2
    return w / w.mean()


def _interpolate(values: np.ndarray, good: np.ndarray, kind: str) -> np.ndarray:
    """Fill the frames where ``good`` is False from the others (held constant
    beyond the first / last good frame)."""
    t = np.arange(values.size)
    tg = t[good]
    if kind == "spline" and tg.size >= 4:
        spline = CubicSpline(tg, values[good])
        inside = (t >= tg[0]) & (t <= tg[-1])
        out = np.interp(t, tg, values[good])  # constant beyond the ends
        out[inside] = spline(t[inside])
        out[good] = values[good]
        return out
    return np.interp(t, tg, values[good])


def _chosen(tracks: ParticleTracks, particles: Any) -> np.ndarray:
    """The chosen particle indices (all by default), sorted and checked."""
    n_all = tracks.n_particles
    sel = np.arange(n_all) if particles is None else np.unique(np.asarray(particles, dtype=np.int64).reshape(-1))
    if sel.size == 0:
        raise ValueError("no particles chosen: tick at least one particle.")
    if sel.min() < 0 or sel.max() >= n_all:
        raise ValueError(f"particle indices must be in 0..{n_all - 1}, got {sel.tolist()}.")
    return sel


def _model(n_chosen: int, opts: RigidOptions) -> tuple[bool, int, list[str]]:
    """Whether rotation is estimated, the particles a frame needs, and notes for the user."""
    notes = []
    rotation = bool(opts.allow_rotation)
    need = int(opts.min_particles)
    if n_chosen == 1:
        rotation = False
        need = 1
        notes.append(ONE_PARTICLE_NOTE)
        warnings.warn(ONE_PARTICLE_NOTE, UserWarning, stacklevel=3)
    elif rotation and need < 2:
        need = 2
    return rotation, need, notes


def _starting_target(pos: np.ndarray, good: np.ndarray, usable: np.ndarray, ref: int, need: int) -> np.ndarray:
    """Initial reference positions: the reference frame's fits (particles missing
    there get theirs after the first pass), else the usable frame with the most particles."""
    target = pos[ref].copy()
    have_target = np.all(np.isfinite(target), axis=1)
    if have_target.sum() < need:
        best = int(np.argmax(np.where(usable, good.sum(axis=1), -1)))
        target = pos[best].copy()
    return target


def _procrustes(
    pos: np.ndarray, good: np.ndarray, weights: np.ndarray, target: np.ndarray, need: int, rotation: bool, iterations: int
) -> tuple[np.ndarray, ...]:
    """Per-frame rigid fits onto reference positions refined by generalised Procrustes.

    Returns the matrices, points used and RMS residual per frame, and the
    frames with enough particles (``usable``).
    """
    have_target = np.all(np.isfinite(target), axis=1)
    for it in range(iterations + 1):
        w = weights * have_target[None, :]
        usable = (w > 0).sum(axis=1) >= need
        if not np.any(usable):
            raise ValueError(
                f"no frame shares {need} good fits with the reference positions: pick particles visible "
                "in more frames."
            )
        mats, counts, rms = fit_rigid_frames(pos, target, w, allow_rotation=rotation)
        if it == iterations:
            break
        # generalised Procrustes: new reference = mean aligned position
        aligned = _apply(mats, pos)
        aligned = np.where((good & usable[:, None])[..., None], aligned, np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            target = np.nanmean(aligned, axis=0)
        have_target = np.all(np.isfinite(target), axis=1)
    return mats, counts, rms, usable


def _filled_and_anchored(
    mats: np.ndarray, usable: np.ndarray, center: tuple[float, float], ref: int, interpolation: str
) -> FrameTransforms:
    """The corrections about the frame centre, frames without enough particles
    interpolated (angle and shift about the centre interpolate meaningfully),
    re-anchored so that frame ``ref`` is the identity."""
    est = FrameTransforms.from_matrices(mats, center=center)
    dy, dx, angle = est.dy.copy(), est.dx.copy(), est.angle.copy()
    if not np.all(usable):
        for arr in (dy, dx, angle):
            arr[:] = _interpolate(arr, usable, interpolation)
    filled = FrameTransforms(dy=dy, dx=dx, angle=angle, center=center)
    return filled.relative_to(ref)


def _warn_interpolated(interpolated: list[int], need: int) -> None:
    if interpolated:
        warnings.warn(
            f"{len(interpolated)} frame(s) had fewer than {need} good particle fits and were interpolated "
            f"from their neighbours (flagged ok=False): {interpolated[:20]}{' ...' if len(interpolated) > 20 else ''}",
            UserWarning,
            stacklevel=3,
        )


def rigid_from_tracks(
    tracks: ParticleTracks,
    *,
    particles: Any = None,
    allow_rotation: bool = RIGID_DEFAULTS.allow_rotation,
    min_particles: int = RIGID_DEFAULTS.min_particles,
    reference_frame: int = RIGID_DEFAULTS.reference_frame,
    interpolation: str = RIGID_DEFAULTS.interpolation,
    weighted: bool = RIGID_DEFAULTS.weighted,
    iterations: int = RIGID_DEFAULTS.iterations,
    options: RigidOptions | None = None,
) -> FrameTransforms:
    """Per-frame rigid correction from the chosen particles' tracks.

    Parameters
    ----------
    tracks : ParticleTracks
        Output of :func:`~napari_stackalign.track_particles`.
    particles : sequence of int, optional
        Particles to use (default: all). Leave out particles that moved on
        their own (see :func:`~napari_stackalign.core.particles.flag_outliers`)
        and any you keep for a held-out validation.
    allow_rotation : bool
        Estimate rotation + translation (True) or translation only.
    min_particles : int
        Frames with fewer good fits among the chosen particles are
        interpolated from their neighbours and flagged ``ok=False``. With
        rotation at least 2 are needed; with a single chosen particle the
        correction is translation only (and says so in ``params["note"]``
        and a warning).
    reference_frame : int
        The frame left unchanged (its transform is the identity).
    interpolation : {"linear", "spline"}
        How flagged frames are filled (cubic spline needs 4 good frames,
        else linear); values beyond the first/last good frame are held.
    weighted : bool
        Weight particles by the inverse square of their median fit error
        (precise particles count more).
    iterations : int
        Generalised-Procrustes refinements of the reference positions.
    options : RigidOptions, optional
        All the options above in one object; keywords given explicitly (not
        at their default) override it.

    Returns
    -------
    FrameTransforms
        Corrections mapping each frame onto the reference, about the frame
        centre; ``quality`` is the RMS residual (px) of the particles after
        the fit, ``ok`` False for interpolated frames; ``params`` records
        the particles, per-frame counts, interpolated frames and any note.
    """
    opts = RigidOptions.from_call(options, locals())
    if not isinstance(tracks, ParticleTracks):
        raise ValueError("tracks must be a ParticleTracks table (from track_particles or ParticleTracks.from_csv).")  # noqa: TRY004 - the house rule: bad values raise ValueError
    if not opts.reference_frame < tracks.n_frames:
        raise ValueError(f"reference_frame must be in 0..{tracks.n_frames - 1}, got {opts.reference_frame}.")
    sel = _chosen(tracks, particles)
    rotation, need, notes = _model(sel.size, opts)

    pos = tracks.positions()[:, sel]  # (T, n, 2), NaN where failed
    good = np.all(np.isfinite(pos), axis=2)
    weights = good * _particle_weights(tracks, sel, opts.weighted)[None, :]
    usable = good.sum(axis=1) >= need
    if not np.any(usable):
        raise ValueError(
            f"no frame has {need} good fits among particles {sel.tolist()}: pick more particles, "
            "lower min_particles, or check the fits (box size, R\u00b2 gate)."
        )
    ref = opts.reference_frame
    target = _starting_target(pos, good, usable, ref, need)
    mats, counts, rms, usable = _procrustes(pos, good, weights, target, need, rotation, opts.iterations)
    center = tracks.frame_center
    anchored = _filled_and_anchored(mats, usable, center, ref, opts.interpolation)
    interpolated = np.flatnonzero(~usable).tolist()
    _warn_interpolated(interpolated, need)
    params = {
        "particles": sel.tolist(),
        "allow_rotation": bool(opts.allow_rotation),
        "rotation_estimated": rotation,
        "min_particles": need,
        "reference_frame": ref,
        "interpolation": opts.interpolation,
        "weighted": bool(opts.weighted),
        "n_used": counts.astype(int).tolist(),
        "interpolated_frames": interpolated,
        "quality": "RMS residual of the particle positions after the rigid fit (px); NaN where interpolated",
        "box": tracks.params.get("box"),
    }
    if notes:
        params["note"] = "; ".join(notes)
    return FrameTransforms(
        dy=anchored.dy,
        dx=anchored.dx,
        angle=anchored.angle,
        center=center,
        quality=np.where(usable, rms, np.nan),
        ok=usable,
        method="particles",
        params=params,
    )
