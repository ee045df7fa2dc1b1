"""Matplotlib figures for particle drift: trajectories and validation.

Figures are built on :class:`matplotlib.figure.Figure` directly (no pyplot,
no GUI backend), so the same code serves the dock widgets (in a Qt canvas)
and the command line (``fig.savefig("plot.png")``).
"""

from __future__ import annotations

import textwrap
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ._bound import RigidBound
from ._options import DRIFT_DEFAULTS, DriftOptions
from ._tracks import ParticleTracks
from ._trajectories import displacements, drift_summary
from ._validation import ParticleValidation

__all__ = ["particle_color", "plot_trajectories", "plot_validation"]


def particle_color(i: int) -> tuple[float, float, float, float]:
    """The colour of particle ``i`` in every plot (tab10 without its grey,
    which marks excluded particles)."""
    palette = [k for k in range(10) if k != 7]
    return colormaps["tab10"](palette[int(i) % len(palette)])


def _new_figure(fig: Figure | None, size: tuple[float, float]) -> Figure:
    if fig is None:
        return Figure(figsize=size, layout="constrained")
    fig.clear()
    return fig


def _chosen_sets(
    n: int, particles: Any, outliers: Any, holdout: Any
) -> tuple[set[int], np.ndarray, set[int]]:
    """The chosen particles, the outlier flags and the held-out particles as sets / arrays."""
    chosen = set(range(n)) if particles is None else {int(i) for i in np.asarray(particles).reshape(-1)}
    flags = np.zeros(n, dtype=bool) if outliers is None else np.asarray(outliers, dtype=bool).reshape(n)
    held = set() if holdout is None else {int(i) for i in np.asarray(holdout).reshape(-1)}
    return chosen, flags, held


def _draw_particle(
    axes: tuple[Any, Any, Any], tracks: ParticleTracks, disp: np.ndarray, i: int, role: tuple[bool, bool, bool]
) -> None:
    """Particle ``i``'s displacement curves and path; ``role`` is (used, held out, outlier)."""
    ax_dy, ax_dx, ax_path = axes
    use, held, flagged = role
    kept = held and not use
    frames = np.arange(tracks.n_frames)
    color = particle_color(i) if (use or kept) else (0.6, 0.6, 0.6, 1.0)
    style = {"color": color, "lw": 1.2 if use else 0.9, "ls": "-" if use else "--", "marker": "." if use else ""}
    suffix = "" if use else " (held out)" if kept else " (excluded)"
    label = f"{i}{' (outlier)' if flagged else ''}{suffix}"
    ax_dy.plot(frames, disp[:, i, 0], label=label, **style)
    ax_dx.plot(frames, disp[:, i, 1], **style)
    pos = tracks.positions()[:, i]
    ax_path.plot(pos[:, 1], pos[:, 0], **style)
    good = np.flatnonzero(np.all(np.isfinite(pos), axis=1))
    if good.size:
        t0 = good[0]
        ax_path.annotate(
            str(i), (pos[t0, 1], pos[t0, 0]), color="red" if flagged else color, fontsize=9,
            xytext=(3, 3), textcoords="offset points",
        )
    failed = np.flatnonzero(~tracks.ok[:, i])
    if failed.size and use:
        # failed fits: a cross on the time axis (never part of the curves)
        ax_dy.plot(failed, np.zeros(failed.size), "x", color=color, ms=5)


def _draw_drift(axes: tuple[Any, Any], tracks: ParticleTracks, chosen: set[int], opts: DriftOptions) -> None:
    """The drift over the chosen particles (black) with its spread (grey band)."""
    frames = np.arange(tracks.n_frames)
    summ = drift_summary(tracks, particles=sorted(chosen), options=opts)
    for ax, k in zip(axes, (0, 1)):
        ax.plot(frames, summ.drift[:, k], color="black", lw=2.2, label=f"drift ({opts.statistic})" if k == 0 else None)
        lo = summ.drift[:, k] - summ.spread[:, k]
        hi = summ.drift[:, k] + summ.spread[:, k]
        ax.fill_between(frames, lo, hi, color="black", alpha=0.15, lw=0)


def _label_trajectory_axes(ax_dy: Any, ax_dx: Any, ax_path: Any, reference_frame: int) -> None:
    ax_dy.set_ylabel("dy (px, +down)")
    ax_dx.set_ylabel("dx (px, +right)")
    ax_dx.set_xlabel("frame")
    ax_dy.set_title(f"displacement from frame {reference_frame} (sample drift)", fontsize=9)
    ax_dy.legend(fontsize=7, ncol=2, loc="best")
    ax_path.set_title("paths", fontsize=9)
    ax_path.set_xlabel("x (px)")
    ax_path.set_ylabel("y (px)")
    ax_path.invert_yaxis()
    ax_path.set_aspect("equal", adjustable="datalim")
    for ax in (ax_dy, ax_dx, ax_path):
        ax.grid(True, alpha=0.3)
    ax_dx.xaxis.set_major_locator(MaxNLocator(integer=True))


def plot_trajectories(
    tracks: ParticleTracks,
    *,
    particles: Any = None,
    outliers: Any = None,
    holdout: Any = None,
    statistic: str = DRIFT_DEFAULTS.statistic,
    reference_frame: int = DRIFT_DEFAULTS.reference_frame,
    fig: Figure | None = None,
    options: DriftOptions | None = None,
) -> Figure:
    """Each particle's displacement over time (dy, dx), its path, and the
    drift over the chosen particles with its spread.

    Parameters
    ----------
    tracks : ParticleTracks
    particles : sequence of int, optional
        Chosen particles (solid lines); the others are drawn grey and dashed.
        Default: all.
    outliers : array_like of bool, shape (N,), optional
        Particles to mark as outliers (red label).
    holdout : sequence of int, optional
        Particles held out for validation (dashed, in their colour).
    statistic : {"median", "mean"}
        Drift statistic over the chosen particles.
    reference_frame : int
        Displacements are measured from this frame.
    fig : Figure, optional
        Draw into this figure (cleared first).
    options : DriftOptions, optional
        ``statistic`` and ``reference_frame`` in one object; keywords given
        explicitly (not at their default) override it.

    Returns
    -------
    matplotlib.figure.Figure
    """
    opts = DriftOptions.from_call(options, locals())
    fig = _new_figure(fig, (9.0, 6.0))
    n = tracks.n_particles
    chosen, flags, held = _chosen_sets(n, particles, outliers, holdout)
    disp = displacements(tracks, reference_frame=opts.reference_frame)
    grid = fig.add_gridspec(2, 2, width_ratios=(1.4, 1.0))
    ax_dy = fig.add_subplot(grid[0, 0])
    ax_dx = fig.add_subplot(grid[1, 0], sharex=ax_dy)
    ax_path = fig.add_subplot(grid[:, 1])
    for i in range(n):
        _draw_particle((ax_dy, ax_dx, ax_path), tracks, disp, i, (i in chosen, i in held, bool(flags[i])))
    if chosen:
        _draw_drift((ax_dy, ax_dx), tracks, chosen, opts)
    _label_trajectory_axes(ax_dy, ax_dx, ax_path, opts.reference_frame)
    return fig


def _particle_bounds(validation: ParticleValidation) -> np.ndarray:
    """Per particle of the validation, the RMS over frames of its fit's Cramér-Rao bound (NaN: not bounded)."""
    out = np.full(len(validation.particles), np.nan)
    bound = validation.bound
    if bound is None:
        return out
    where = {p: i for i, p in enumerate(validation.particles)}
    for col, particle in enumerate(bound.particles):
        v = bound.position[:, col]
        v = v[np.isfinite(v)]
        if particle in where and v.size:
            out[where[particle]] = float(np.sqrt(np.mean(v**2)))
    return out


def _draw_bound(ax_bar: Any, validation: ParticleValidation) -> float:
    """Mark each bounded particle's Cramér-Rao bound on the RMS bars; return the smallest (NaN: none)."""
    per_particle = _particle_bounds(validation)
    shown = np.isfinite(per_particle)
    if not shown.any():
        return float("nan")
    x = np.arange(len(per_particle))
    ax_bar.scatter(x[shown], per_particle[shown], marker="_", s=260, linewidths=2.0, color="black", zorder=3,
                   label="Cramér-Rao bound of the fit")
    return float(np.min(per_particle[shown]))


def _bound_line(bound: RigidBound) -> str:
    """One title line: the correction's bounds and, when known, how close the fits came."""
    parts = []
    if np.isfinite(bound.rotation_rms):
        parts.append(f"rotation {bound.rotation_rms:.2g} deg")
    parts.append(f"translation {bound.translation_rms:.2g} px")
    text = "Cramér-Rao bound of the correction: " + ", ".join(parts)
    if np.isfinite(bound.scatter_ratio):
        text += f"; achieved ~{bound.scatter_ratio:.2f}x the bound"
    return text


def _wrapped(lines: list[str], fig: Figure, fontsize: float) -> str:
    """``lines`` folded to the figure's width (a docked plot is narrow), one after the other."""
    chars = max(30, int(fig.get_figwidth() * 72 / (0.66 * fontsize)))
    return "\n".join(textwrap.fill(line, chars) for line in lines)


def plot_validation(validation: ParticleValidation, *, fig: Figure | None = None) -> Figure:
    """Residual motion after the correction, per particle and per frame.

    Top: distance of each particle from its mean position on the aligned
    stack, per frame (held-out particles dashed, excluded ones dotted grey).
    Bottom: RMS per particle before and after (log scale), with the
    leave-one-out RMS of the used particles; a black mark on each used
    particle is the Cramér-Rao bound of its fit (RMS over the frames), the
    floor its "after" bar can reach. The pooled numbers per role, and the
    bound of the correction's rotation and translation with how close the
    fits came, are in the title.
    """
    fig = _new_figure(fig, (7.0, 6.5))
    ax_a, ax_bar = fig.subplots(2, 1, height_ratios=(1.0, 1.1))
    n = len(validation.particles)
    frames = np.arange(validation.after.shape[0])
    for i in range(n):
        role = validation.role[i]
        if role == "excluded":
            color, ls = (0.6, 0.6, 0.6, 1.0), ":"
        else:
            color, ls = particle_color(i), "--" if role == "held out" else "-"
        dev = validation.after
        ax_a.plot(frames, np.hypot(dev[:, i, 0], dev[:, i, 1]), color=color, ls=ls, marker=".", lw=1.0,
                  label=f"{i} ({role})")
    ax_a.set_ylabel("after: |deviation| (px)")
    ax_a.set_xlabel("frame")
    ax_a.legend(fontsize=7, ncol=3, loc="upper left")
    top = np.nanmax(np.hypot(validation.after[..., 0], validation.after[..., 1])) if np.isfinite(validation.after).any() else 1.0
    ax_a.set_ylim(0, top * 1.6 if np.isfinite(top) and top > 0 else 1.0)  # room for the legend
    x = np.arange(n)
    colors = [particle_color(i) if validation.role[i] != "excluded" else (0.6, 0.6, 0.6, 1.0) for i in range(n)]
    ax_bar.bar(x - 0.27, validation.rms_before, width=0.27, color=colors, alpha=0.45, label="before")
    bars = ax_bar.bar(x, validation.rms_after, width=0.27, color=colors, label="after")
    for i, b in enumerate(bars):
        if validation.role[i] == "held out":
            b.set_hatch("//")
    ax_bar.bar(x + 0.27, np.nan_to_num(validation.rms_loo, nan=0.0), width=0.27, color="black", alpha=0.6,
               label="leave-one-out")
    floor = _draw_bound(ax_bar, validation)
    ax_bar.set_yscale("log")
    tallest = np.nanmax(np.concatenate([validation.rms_before, validation.rms_after, [1e-3]]))
    shortest = np.concatenate([validation.rms_after, validation.rms_loo, [floor]])
    shortest = shortest[np.isfinite(shortest) & (shortest > 0)]
    if shortest.size:
        ax_bar.set_ylim(bottom=float(shortest.min()) / 3)  # the after bars and the bound marks stay readable
    ax_bar.set_ylim(top=tallest * 8)  # room for the legend above the bars
    ax_bar.set_xticks(x, [f"{i}\n{validation.role[i][:4]}" for i in range(n)], fontsize=7)
    ax_bar.set_ylabel("RMS residual motion (px)")
    ax_bar.legend(fontsize=7, loc="upper center", ncol=3)
    lines = []
    for role, s in validation.summary.items():
        lines.append(f"{role}: RMS {s['rms_before']:.3g} \u2192 {s['rms_after']:.3g} px")
    parts = ["residual motion (distance from mean position)", "; ".join(lines)]
    if validation.bound is not None:
        parts.append(_bound_line(validation.bound))
    fig.suptitle(_wrapped(parts, fig, fontsize=9), fontsize=9)
    for ax in (ax_a, ax_bar):
        ax.grid(True, alpha=0.3)
    ax_a.xaxis.set_major_locator(MaxNLocator(integer=True))
    return fig
