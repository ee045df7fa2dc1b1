"""Validate a particle-based correction: residual motion before and after.

Three measurements, from the least to the most independent:

``after``
    The particles are fitted again on the *aligned* images (the warp that
    was really applied, so a rotation applied about the wrong centre shows
    up). For the particles that drove the correction this is partly
    circular: the least-squares fit made them agree.
``loo`` (leave one out)
    For each particle used in the correction, the correction is recomputed
    *without* it and its tracked positions are mapped through that: how well
    the others predict it. Not circular, needs no particle to be set aside.
``held out``
    Particles named as held out were not used in the correction at all;
    their ``after`` residual is an independent check.

Residual motion of a particle = its position in each frame minus its mean
position over the frames where it was found; reported as RMS and max of the
distance (px), per particle and pooled per role.
"""

from __future__ import annotations

import csv
import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...files import atomic_write_text
from ...progress import ProgressCallback
from ...transforms import FrameTransforms
from ..apply import apply_transforms
from ..checks import check_stack
from ._bound import RigidBound, rigid_bound
from ._options import (
    RIGID_DEFAULTS,
    TRACK_DEFAULTS,
    VALIDATION_DEFAULTS,
    RigidOptions,
    TrackOptions,
    ValidationOptions,
)
from ._rigid import rigid_from_tracks
from ._tracking import track_particles
from ._tracks import ParticleTracks

__all__ = [
    "VALIDATION_COLUMNS",
    "ParticleValidation",
    "residual_motion",
    "validate_alignment",
]

VALIDATION_COLUMNS = (
    "particle",
    "role",
    "frames_before",
    "frames_after",
    "rms_before",
    "max_before",
    "rms_after",
    "max_after",
    "reduction_pct",
    "rms_loo",
)
ROLES = ("used", "held out", "excluded")


def residual_motion(positions: np.ndarray) -> np.ndarray:
    """(T, N, 2) deviation of each particle from its mean position over the
    frames where it is finite (NaN elsewhere)."""
    pos = np.asarray(positions, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return pos - np.nanmean(pos, axis=0, keepdims=True)


def _stats(dev: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per particle RMS and max of |dev| and the number of frames used."""
    norm = np.hypot(dev[..., 0], dev[..., 1])
    finite = np.isfinite(norm)
    count = finite.sum(axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        rms = np.sqrt(np.nanmean(norm**2, axis=0))
        mx = np.nanmax(np.where(finite, norm, -np.inf), axis=0)
    rms = np.where(count >= 2, rms, np.nan)
    mx = np.where(count >= 2, mx, np.nan)
    return rms, mx, count


def _pooled(dev: np.ndarray) -> tuple[float, float]:
    norm = np.hypot(dev[..., 0], dev[..., 1]).ravel()
    norm = norm[np.isfinite(norm)]
    if norm.size == 0:
        return float("nan"), float("nan")
    return float(np.sqrt(np.mean(norm**2))), float(norm.max())


class _WarpedStack:
    """The stack warped by the transforms, computed chunk by chunk on access
    (what :func:`track_particles` reads); outside pixels are NaN."""

    def __init__(
        self, stack: Any, transforms: FrameTransforms, workers: int | None
    ) -> None:
        self.stack = stack
        self.transforms = transforms
        self.workers = workers
        self.shape = tuple(stack.shape)
        self.dtype = np.dtype(np.float32)
        self.ndim = len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        if not isinstance(key, slice):
            raise TypeError("_WarpedStack supports frame slices only.")
        lo, hi, _ = key.indices(self.shape[0])
        chunk = np.asarray(self.stack[lo:hi])
        return apply_transforms(
            chunk,
            self.transforms[lo:hi],
            border="nan",
            output_dtype=np.float32,
            workers=self.workers,
        )


@dataclass
class ParticleValidation:
    """Residual motion of every particle before and after the correction.

    Attributes
    ----------
    particles : list of int
        Particle indices (all particles of the tracks).
    role : list of str
        "used" (drove the correction), "held out" (validation only) or
        "excluded" (neither, e.g. an outlier).
    before, after : ndarray, shape (T, N, 2)
        Deviation (dy, dx) from the particle's mean position, on the input
        stack (tracked) and on the aligned stack (re-fitted); NaN where the
        fit failed.
    rms_before, max_before, rms_after, max_after : ndarray, shape (N,)
        Per particle RMS and max of the deviation distance (px).
    frames_before, frames_after : ndarray, shape (N,)
        Frames with a good fit.
    rms_loo : ndarray, shape (N,)
        For used particles: RMS residual when the correction is computed
        without that particle (NaN otherwise or when too few remain).
    summary : dict
        Per role: pooled ``rms_before``, ``rms_after``, ``max_before``,
        ``max_after``, ``n_particles`` (and ``rms_loo`` for "used").
    refit : ParticleTracks
        The fits on the aligned stack.
    bound : RigidBound, optional
        The Cramér-Rao bounds of the correction for the used particles (the
        values taken as photon counts), and how close the particles' scatter
        comes to them: whether more particles would help (see
        :func:`~napari_stackalign.core.particles.rigid_bound`).
    """

    particles: list[int]
    role: list[str]
    before: np.ndarray
    after: np.ndarray
    rms_before: np.ndarray
    max_before: np.ndarray
    rms_after: np.ndarray
    max_after: np.ndarray
    frames_before: np.ndarray
    frames_after: np.ndarray
    rms_loo: np.ndarray
    summary: dict
    refit: ParticleTracks | None = None
    params: dict = field(default_factory=dict)
    bound: RigidBound | None = None

    @property
    def reduction_pct(self) -> np.ndarray:
        """Per particle ``100 * (1 - rms_after / rms_before)``."""
        with np.errstate(all="ignore"):
            return 100.0 * (1.0 - self.rms_after / self.rms_before)

    def to_table(self) -> dict[str, Any]:
        """Column name -> values (one row per particle)."""
        return {
            "particle": list(self.particles),
            "role": list(self.role),
            "frames_before": self.frames_before,
            "frames_after": self.frames_after,
            "rms_before": self.rms_before,
            "max_before": self.max_before,
            "rms_after": self.rms_after,
            "max_after": self.max_after,
            "reduction_pct": self.reduction_pct,
            "rms_loo": self.rms_loo,
        }

    def to_csv(self, path: str | Path | None = None) -> str:
        """Per-particle table as CSV; the pooled summary per role is in ``#``
        header lines. Returns the text."""
        buf = io.StringIO()
        buf.write("# napari-stackalign particle validation (residual motion in px)\n")
        for role, values in self.summary.items():
            items = ", ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                for k, v in values.items()
            )
            buf.write(f"# {role}: {items}\n")
        if self.bound is not None:
            items = ", ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                for k, v in self.bound.as_dict().items()
                if k != "particles"
            )
            buf.write(f"# bound: {items}\n")
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(VALIDATION_COLUMNS)
        table = self.to_table()
        for i in range(len(self.particles)):
            row = []
            for col in VALIDATION_COLUMNS:
                v = table[col][i]
                if col in ("particle", "frames_before", "frames_after"):
                    row.append(int(v))
                elif col == "role":
                    row.append(v)
                else:
                    row.append(repr(float(v)))
            writer.writerow(row)
        text = buf.getvalue()
        if path is not None:
            atomic_write_text(Path(path), text)
        return text

    def summary_text(self) -> str:
        """A few lines for a status label or a terminal."""
        lines = []
        for role, s in self.summary.items():
            line = (
                f"{role} ({s['n_particles']}): RMS {s['rms_before']:.3f} -> {s['rms_after']:.3f} px, "
                f"max {s['max_before']:.3f} -> {s['max_after']:.3f} px"
            )
            if "rms_loo" in s and np.isfinite(s["rms_loo"]):
                line += f"; leave-one-out RMS {s['rms_loo']:.3f} px"
            lines.append(line)
        if self.bound is not None:
            lines.append(self.bound.summary_text())
        return "\n".join(lines)


def _renamed(progress: ProgressCallback | None, stage: str) -> ProgressCallback | None:
    """Forward progress reports under another stage name."""
    if progress is None:
        return None

    def callback(done: int, total: int, _stage: str) -> None:
        progress(done, total, stage)

    return callback


def _start_picks(
    tracks: ParticleTracks, transforms: FrameTransforms
) -> tuple[np.ndarray, np.ndarray]:
    """(frame, y, x) on the aligned stack for every particle found at least
    once (its first good fit mapped through that frame's correction)."""
    mats = transforms.to_matrices()
    rows, found = [], []
    for i in range(tracks.n_particles):
        good = np.flatnonzero(tracks.ok[:, i])
        if good.size == 0:
            continue
        t = int(good[0])
        p = np.array([tracks.y[t, i], tracks.x[t, i], 1.0])
        q = mats[t] @ p
        rows.append((t, q[0], q[1]))
        found.append(i)
    return np.array(rows, dtype=np.float64).reshape(-1, 3), np.array(
        found, dtype=np.int64
    )


def _loo_options(
    params: dict[str, Any], rotation: bool, need: int, n_others: int
) -> RigidOptions:
    """The correction's options (recorded in its ``params``) for a fit without one particle."""
    return RigidOptions(
        allow_rotation=rotation,
        min_particles=max(int(params.get("min_particles", need)), need)
        if n_others > 1
        else 1,
        reference_frame=int(
            params.get("reference_frame", RIGID_DEFAULTS.reference_frame)
        ),
        interpolation=str(params.get("interpolation", RIGID_DEFAULTS.interpolation)),
        weighted=bool(params.get("weighted", RIGID_DEFAULTS.weighted)),
    )


def _loo(
    tracks: ParticleTracks, used: np.ndarray, transforms: FrameTransforms
) -> np.ndarray:
    """Leave-one-out RMS residual of each used particle (NaN where not possible)."""
    params = transforms.params
    rotation = bool(
        params.get(
            "rotation_estimated",
            params.get("allow_rotation", RIGID_DEFAULTS.allow_rotation),
        )
    )
    need = 2 if rotation else 1
    out = np.full(tracks.n_particles, np.nan)
    if used.size < need + 1:
        return out
    pos = tracks.positions()
    for i in used:
        others = used[used != i]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est = rigid_from_tracks(
                    tracks,
                    particles=others,
                    options=_loo_options(params, rotation, need, others.size),
                )
        except ValueError:
            continue
        mats = est.to_matrices()
        mine = pos[:, i]
        keep = np.all(np.isfinite(mine), axis=1) & est.ok
        if keep.sum() < 2:
            continue
        mapped = (
            np.einsum("tij,tj->ti", mats[keep, :2, :2], mine[keep]) + mats[keep, :2, 2]
        )
        dev = mapped - mapped.mean(axis=0)
        out[i] = float(np.sqrt(np.mean((dev**2).sum(axis=1))))
    return out


def _check_same_stack(
    stack: Any, transforms: FrameTransforms, tracks: ParticleTracks, aligned: Any
) -> tuple[int, ...]:
    """The stack's shape, checked against the transforms, the tracks and the aligned stack."""
    shape = check_stack(stack, what="validation")
    if len(transforms) != shape[0] or tracks.n_frames != shape[0]:
        raise ValueError(
            f"the stack has {shape[0]} frames, the transforms {len(transforms)} and the tracks "
            f"{tracks.n_frames}: they must come from the same stack."
        )
    if tuple(shape[1:]) != tuple(tracks.shape):
        raise ValueError(
            f"the tracks were measured on {tracks.shape} frames, the stack has {shape[1:]}."
        )
    if aligned is not None and tuple(aligned.shape) != shape:
        raise ValueError(f"aligned has shape {tuple(aligned.shape)}, expected {shape}.")
    return shape


def _roles(
    tracks: ParticleTracks, transforms: FrameTransforms, particles: Any, holdout: Any
) -> tuple[np.ndarray, ...]:
    """The used and held-out particles (checked: never both) and every particle's role."""
    n = tracks.n_particles
    held = np.unique(
        np.asarray([] if holdout is None else holdout, dtype=np.int64).reshape(-1)
    )
    if particles is None:
        used = np.asarray(
            transforms.params.get("particles", np.setdiff1d(np.arange(n), held)),
            dtype=np.int64,
        )
    else:
        used = np.asarray(particles, dtype=np.int64).reshape(-1)
    used = np.unique(used)
    for name, arr in (("particles", used), ("holdout", held)):
        if arr.size and (arr.min() < 0 or arr.max() >= n):
            raise ValueError(
                f"{name} must be particle indices in 0..{n - 1}, got {arr.tolist()}."
            )
    both = np.intersect1d(used, held)
    if both.size:
        raise ValueError(
            f"particles {both.tolist()} are both used for the correction and held out: a held-out check "
            "must use particles the correction never saw."
        )
    role = [
        "used" if i in used else "held out" if i in held else "excluded"
        for i in range(n)
    ]
    return used, held, role


def _refit_options(tracks: ParticleTracks, opts: ValidationOptions) -> TrackOptions:
    """The tracking's own options (recorded in its ``params``) for the re-fits; ``min_r2`` as asked."""
    box = tracks.params.get("box", TRACK_DEFAULTS.box)
    return TrackOptions(
        box=tuple(box) if isinstance(box, list) else box,
        min_r2=tracks.params.get("min_r2", TRACK_DEFAULTS.min_r2)
        if opts.min_r2 is None
        else opts.min_r2,
        max_sigma=tracks.params.get("max_sigma"),
    )


def _summary(
    before: np.ndarray, after: np.ndarray, loo: np.ndarray, role: list[str]
) -> dict[str, dict[str, Any]]:
    """Pooled numbers per role (see :attr:`ParticleValidation.summary`)."""
    summary: dict[str, dict[str, Any]] = {}
    for r in ROLES:
        idx = np.array([i for i in range(len(role)) if role[i] == r], dtype=np.int64)
        if idx.size == 0:
            continue
        rb, mb = _pooled(before[:, idx])
        ra, ma = _pooled(after[:, idx])
        entry: dict[str, Any] = {
            "n_particles": int(idx.size),
            "rms_before": rb,
            "rms_after": ra,
            "max_before": mb,
            "max_after": ma,
        }
        if r == "used":
            vals = loo[idx]
            vals = vals[np.isfinite(vals)]
            entry["rms_loo"] = (
                float(np.sqrt(np.mean(vals**2))) if vals.size else float("nan")
            )
        summary[r] = entry
    return summary


def _bound_or_none(
    tracks: ParticleTracks, used: np.ndarray, transforms: FrameTransforms
) -> RigidBound | None:
    """The Cramér-Rao bounds of the correction's particles (None when there is nothing to bound)."""
    if used.size == 0 or not np.any(tracks.ok[:, used]):
        return None
    params = transforms.params
    rotation = bool(
        params.get(
            "rotation_estimated",
            params.get("allow_rotation", RIGID_DEFAULTS.allow_rotation),
        )
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return rigid_bound(tracks, particles=used, allow_rotation=rotation)


def validate_alignment(
    stack: Any,
    transforms: FrameTransforms,
    tracks: ParticleTracks,
    *,
    particles: Any = None,
    holdout: Any = None,
    aligned: Any = None,
    min_r2: float | None = VALIDATION_DEFAULTS.min_r2,
    workers: int | None = None,
    progress: ProgressCallback | None = None,
    options: ValidationOptions | None = None,
) -> ParticleValidation:
    """Residual particle motion before and after a correction.

    Parameters
    ----------
    stack : array-like, shape (T, Y, X)
        The input stack (the one ``tracks`` were measured on).
    transforms : FrameTransforms
        The correction (e.g. from :func:`~napari_stackalign.rigid_from_tracks`).
    tracks : ParticleTracks
        Tracks on the input stack.
    particles : sequence of int, optional
        The particles used for the correction (default:
        ``transforms.params["particles"]``, else all but the held-out ones).
    holdout : sequence of int, optional
        Particles kept out of the correction to validate it independently.
        Using a particle both ways raises ``ValueError`` (that would be the
        circular check this function exists to avoid).
    aligned : array-like, optional
        The aligned stack, if already computed; otherwise the stack is
        warped chunk by chunk on the fly (outside pixels NaN).
    min_r2 : float, optional
        Goodness-of-fit gate for the re-fits (default: the tracking's).
    workers : int, optional
        Threads for warping and fitting.
    progress : callable, optional
        ``progress(done, total, stage)``.
    options : ValidationOptions, optional
        ``min_r2`` in an options object; the keyword, given explicitly,
        overrides it.

    Returns
    -------
    ParticleValidation
    """
    opts = ValidationOptions.from_call(options, locals())
    _check_same_stack(stack, transforms, tracks, aligned)
    used, held, role = _roles(tracks, transforms, particles, holdout)
    picks, found = _start_picks(tracks, transforms)
    after_pos = np.full((tracks.n_frames, tracks.n_particles, 2), np.nan)
    refit = None
    if found.size:
        data = (
            aligned if aligned is not None else _WarpedStack(stack, transforms, workers)
        )
        refit = track_particles(
            data,
            picks,
            workers=workers,
            progress=_renamed(progress, "validate"),
            options=_refit_options(tracks, opts),
        )
        after_pos[:, found] = refit.positions()
    before = residual_motion(tracks.positions())
    after = residual_motion(after_pos)
    rms_b, max_b, cnt_b = _stats(before)
    rms_a, max_a, cnt_a = _stats(after)
    loo = _loo(tracks, used, transforms)
    return ParticleValidation(
        bound=_bound_or_none(tracks, used, transforms),
        particles=list(range(tracks.n_particles)),
        role=role,
        before=before,
        after=after,
        rms_before=rms_b,
        max_before=max_b,
        rms_after=rms_a,
        max_after=max_a,
        frames_before=cnt_b,
        frames_after=cnt_a,
        rms_loo=loo,
        summary=_summary(before, after, loo, role),
        refit=refit,
        params={"used": used.tolist(), "holdout": held.tolist()},
    )
