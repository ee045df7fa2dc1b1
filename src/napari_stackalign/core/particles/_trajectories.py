"""Choosing trajectories: per-particle displacement, the resulting drift and
its spread, and particles that moved on their own.

Displacements here are the *sample's* motion as seen by each particle
(position in frame ``t`` minus its position in the reference frame); the
correction :func:`~napari_stackalign.rigid_from_tracks` returns is its
negative (plus any rotation).
"""

from __future__ import annotations

import csv
import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...files import atomic_write_text
from ._options import (
    DRIFT_DEFAULTS,
    OUTLIER_DEFAULTS,
    STATISTICS,
    DriftOptions,
    OutlierOptions,
)
from ._rigid import fit_rigid_frames
from ._tracks import ParticleTracks

__all__ = ["STATISTICS", "DriftSummary", "OutlierReport", "displacements", "drift_summary", "flag_outliers"]


def _selection(tracks: ParticleTracks, particles: Any) -> np.ndarray:
    if particles is None:
        return np.arange(tracks.n_particles)
    sel = np.unique(np.asarray(particles, dtype=np.int64).reshape(-1))
    if sel.size and (sel.min() < 0 or sel.max() >= tracks.n_particles):
        raise ValueError(f"particle indices must be in 0..{tracks.n_particles - 1}, got {sel.tolist()}.")
    return sel


def displacements(tracks: ParticleTracks, *, reference_frame: int = DRIFT_DEFAULTS.reference_frame) -> np.ndarray:
    """(T, N, 2) displacement (dy, dx) of every particle from its position in
    ``reference_frame``; NaN where its fit failed.

    A particle whose fit failed in the reference frame is referred to its
    first good frame, offset by the median displacement of the other
    particles in that frame (so all curves share one origin).
    """
    if not 0 <= int(reference_frame) < tracks.n_frames:
        raise ValueError(f"reference_frame must be in 0..{tracks.n_frames - 1}, got {reference_frame}.")
    pos = tracks.positions()
    ref = pos[int(reference_frame)]
    disp = pos - ref[None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for i in np.flatnonzero(~np.all(np.isfinite(ref), axis=1)):
            good = np.flatnonzero(np.all(np.isfinite(pos[:, i]), axis=1))
            if good.size == 0:
                continue
            t0 = int(good[0])
            others = np.nanmedian(disp[t0], axis=0)
            if not np.all(np.isfinite(others)):
                others = np.zeros(2)
            disp[:, i] = pos[:, i] - pos[t0, i] + others
    return disp


@dataclass
class DriftSummary:
    """The drift (sample displacement) averaged over the chosen particles.

    Attributes
    ----------
    drift : ndarray, shape (T, 2)
        Mean or median displacement (dy, dx) per frame (NaN where no chosen
        particle was found).
    spread : ndarray, shape (T, 2)
        Its spread across particles: standard deviation (mean) or
        1.4826 x median absolute deviation (median), per axis.
    n_used : ndarray, shape (T,)
        Particles with a good fit per frame.
    statistic : str
    particles : list of int
    """

    drift: np.ndarray
    spread: np.ndarray
    n_used: np.ndarray
    statistic: str
    particles: list[int]

    def to_csv(self, path: str | Path | None = None) -> str:
        """Per-frame table (frame, drift_dy, drift_dx, spread_dy, spread_dx,
        n_used) as CSV; returns the text and writes it to ``path`` if given."""
        buf = io.StringIO()
        buf.write(f"# sample drift ({self.statistic} over particles {self.particles}); the correction is its negative\n")
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["frame", "drift_dy", "drift_dx", "spread_dy", "spread_dx", "n_used"])
        for t in range(self.drift.shape[0]):
            writer.writerow(
                [t, *(repr(float(v)) for v in (*self.drift[t], *self.spread[t])), int(self.n_used[t])]
            )
        text = buf.getvalue()
        if path is not None:
            atomic_write_text(Path(path), text)
        return text


def drift_summary(
    tracks: ParticleTracks,
    *,
    particles: Any = None,
    statistic: str = DRIFT_DEFAULTS.statistic,
    reference_frame: int = DRIFT_DEFAULTS.reference_frame,
    options: DriftOptions | None = None,
) -> DriftSummary:
    """Drift over the chosen particles, with its spread.

    Parameters
    ----------
    tracks : ParticleTracks
    particles : sequence of int, optional
        The chosen particles (default all).
    statistic : {"median", "mean"}
        Median (spread: 1.4826 x MAD) or mean (spread: standard deviation)
        over the particles.
    reference_frame : int
        Displacements are measured from this frame.
    options : DriftOptions, optional
        ``statistic`` and ``reference_frame`` in one object; keywords given
        explicitly (not at their default) override it.

    Returns
    -------
    DriftSummary
    """
    opts = DriftOptions.from_call(options, locals())
    statistic = opts.statistic
    sel = _selection(tracks, particles)
    disp = displacements(tracks, reference_frame=opts.reference_frame)[:, sel]
    good = np.all(np.isfinite(disp), axis=2)
    n_used = good.sum(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if statistic == "mean":
            drift = np.nanmean(disp, axis=1)
            spread = np.nanstd(disp, axis=1)
        else:
            drift = np.nanmedian(disp, axis=1)
            spread = 1.4826 * np.nanmedian(np.abs(disp - drift[:, None]), axis=1)
    spread = np.where(n_used[:, None] >= 2, spread, np.nan)
    return DriftSummary(drift=drift, spread=spread, n_used=n_used, statistic=statistic, particles=sel.tolist())


@dataclass
class OutlierReport:
    """Which particles moved on their own.

    Attributes
    ----------
    score : ndarray, shape (N,)
        Per particle: RMS over frames (px) of its leave-one-out residual,
        i.e. how far it strays from where the *other* chosen particles'
        rigid motion puts it (NaN if it could not be scored).
    outlier : ndarray of bool, shape (N,)
        ``score > threshold``.
    threshold : float
        ``max(min_px, median(score) + k * 1.4826 * MAD(score))`` over the
        particles not flagged (NaN when nothing could be scored).
    particles : list of int
        The particles considered.
    """

    score: np.ndarray
    outlier: np.ndarray
    threshold: float
    particles: list[int]


def _loo_score(pos: np.ndarray, i: int, others: np.ndarray, allow_rotation: bool, need: int) -> float:
    """RMS scatter (px) of particle ``i`` mapped by the others' rigid motion."""
    sub = pos[:, others]
    good = np.all(np.isfinite(sub), axis=2)
    t_best = int(np.argmax(good.sum(axis=1)))
    target = sub[t_best]
    w = good.astype(float) * np.all(np.isfinite(target), axis=1)[None, :]
    mats, counts, _ = fit_rigid_frames(sub, target, w, allow_rotation=allow_rotation)
    mine = pos[:, i]
    ok = (counts >= need) & np.all(np.isfinite(mine), axis=1)
    if ok.sum() < 2:
        return float("nan")
    mapped = np.einsum("tij,tj->ti", mats[ok, :2, :2], mine[ok]) + mats[ok, :2, 2]
    dev = mapped - mapped.mean(axis=0)
    return float(np.sqrt(np.mean((dev**2).sum(axis=1))))


def flag_outliers(
    tracks: ParticleTracks,
    *,
    particles: Any = None,
    allow_rotation: bool = OUTLIER_DEFAULTS.allow_rotation,
    k: float = OUTLIER_DEFAULTS.k,
    min_px: float = OUTLIER_DEFAULTS.min_px,
    options: OutlierOptions | None = None,
) -> OutlierReport:
    """Flag particles that moved on their own, with a robust rule.

    For each particle, the rigid motion (rotation + translation, or
    translation only) of the *other* chosen particles is fitted frame by
    frame and used to map this particle's positions back to a common frame;
    the particle's score is the RMS (px) of the scatter of those mapped
    positions around their mean. A particle riding on the sample scores at
    its fit noise; one that moved on its own scores its own motion. It is
    flagged when its score exceeds ``max(min_px, median + k * 1.4826 * MAD)``
    of the scores (a robust z-score above ``k``, never below ``min_px``).
    The rule is applied repeatedly: the worst particle above the threshold
    is removed from the "others" and every score and the threshold are
    computed again, so one outlier does not inflate the scores of the rest.

    Parameters
    ----------
    tracks : ParticleTracks
    particles : sequence of int, optional
        Particles to consider (default all). At least 3 (2 without rotation)
        are needed; with fewer, nothing is flagged and every score is NaN.
    allow_rotation : bool
        Model the others' motion as rotation + translation or translation only.
    k : float
        Robust z-score limit.
    min_px : float
        Scores below this (px) are never flagged.
    options : OutlierOptions, optional
        The three options above in one object; keywords given explicitly
        (not at their default) override it.

    Returns
    -------
    OutlierReport
        Scores and flags for *all* particles of ``tracks`` (NaN / False for
        those not considered).
    """
    opts = OutlierOptions.from_call(options, locals())
    allow_rotation, k, min_px = opts.allow_rotation, opts.k, opts.min_px
    sel = _selection(tracks, particles)
    n = tracks.n_particles
    score = np.full(n, np.nan)
    need_others = 2 if allow_rotation else 1
    pos = tracks.positions()
    if sel.size < need_others + 1:
        return OutlierReport(score=score, outlier=np.zeros(n, dtype=bool), threshold=float("nan"), particles=sel.tolist())
    inliers = sel.copy()
    outlier = np.zeros(n, dtype=bool)
    threshold = float("nan")
    # remove the worst particle while it is above the threshold, then score
    # again without it (one outlier would otherwise pollute the others' scores)
    while True:
        for i in sel:
            score[i] = _loo_score(pos, i, inliers[inliers != i], allow_rotation, need_others)
        scored = score[inliers][np.isfinite(score[inliers])]
        if scored.size == 0:
            break
        med = float(np.median(scored))
        mad = float(np.median(np.abs(scored - med)))
        threshold = max(float(min_px), med + k * 1.4826 * mad)
        cand = np.where(np.isfinite(score[inliers]), score[inliers], -np.inf)
        worst = int(inliers[int(np.argmax(cand))])
        if score[worst] <= threshold or inliers.size <= need_others + 1:
            break
        outlier[worst] = True
        inliers = inliers[inliers != worst]
    # final flags against the final threshold (inlier scores are final)
    if np.isfinite(threshold):
        outlier[sel] = np.nan_to_num(score[sel], nan=0.0) > threshold
    return OutlierReport(score=score, outlier=outlier, threshold=threshold, particles=sel.tolist())
