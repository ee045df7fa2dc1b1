"""Coarse-to-fine (pyramid) registration of volume time series: one (dz, dy, dx) per frame.

The 2-D pyramid's method (see ``docs/pyramid-algorithm.md``) in three
dimensions, reached through
:func:`~napari_stackalign.core.pyramid.register_pyramid` with ``axes="TZYX"``
or ``"TCZYX"``:

1. Each volume (one channel of a TCZYX stack) is read frame by frame, cropped
   to the ``roi`` (rows and columns of every plane), made float and zero-mean
   (unit variance with ``normalize``).
2. Pyramid levels are 2x2x2 block means (Z is reduced only while at least 8
   planes remain, see :mod:`._levels`).
3. The first level is searched exhaustively over ``+/- max_movement / 2`` of
   each axis, Z included (normalised correlation over the overlap); every
   level then refines by Gauss-Newton with a gain and an offset; the last is
   sub-voxel (see :mod:`._engine`).
4. The template is built from *registered* frames, as in 2-D: a seed volume
   (the usable one nearest the middle of the first ``num_frames``), up to 24
   template frames registered to it and averaged, then all template frames
   registered to that average and averaged again (template building stops
   one level short of the last, as in 2-D). Shifts are re-expressed so that
   the template frames are, on average, left in place.
5. ``iterate`` re-estimates against templates refined from the registered
   frames; the result is one translation per frame, applied once.
6. Every frame is judged as in 2-D (:func:`~napari_stackalign.core.pyramid._trust.judge`):
   no usable voxels, at the search bound, refinement lost or not converged,
   low quality, correlation not significant against its noise floor, jumps.
7. ``smooth`` applies the Savitzky-Golay filter to dz, dy and dx.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from scipy import ndimage
from scipy.signal import savgol_filter

from ..._volume_transforms import VolumeTransforms
from ...progress import ProgressCallback, report
from ...transforms import NoSignalWarning
from ..checks import check_roi
from ..pyramid._engine import FLAG_AT_EDGE, FLAG_FAILED, FLAG_NOT_CONVERGED, FLAG_UNUSABLE
from ..pyramid._lucas_kanade import DEFAULT_KERNEL
from ..pyramid._options import PyramidOptions
from ..pyramid._trust import judge
from ..smoothing import check_savgol
from ._checks import volume_layout
from ._engine import Estimate, VolumeEstimator, VolumeTemplate, _box, _ncc, _sample, prepare_volume
from ._levels import downsample, plan_levels

__all__ = ["register_volumes"]

#: frames registered to the seed in the first template pass (spread over the template frames)
SEED_PASS_FRAMES = 24


class _Reader:
    """Reads and prepares one volume at a time (a channel of TCZYX, cropped to the roi)."""

    def __init__(
        self, stack: Any, layout: Any, channel: int | None, roi: tuple[int, int, int, int] | None, normalize: bool
    ) -> None:
        self.stack = stack
        self.layout = layout
        self.channel = channel
        self.roi = roi
        self.normalize = normalize

    def crop(self, volume: np.ndarray) -> np.ndarray:
        if self.roi is None:
            return volume
        r0, r1, c0, c1 = self.roi
        return volume[:, r0:r1, c0:c1]

    def __call__(self, t: int) -> np.ndarray | None:
        return prepare_volume(self.crop(self.layout.volume(self.stack, t, self.channel)), self.normalize)


class _Average:
    """A template (``volume``: zero mean, unit variance) with the sums it was made of, so that a
    member's correlation with the template *without itself* can be measured (:meth:`without`)."""

    def __init__(self, volume: np.ndarray, total: np.ndarray, count: np.ndarray, shifts: dict[int, np.ndarray]) -> None:
        self.volume = volume
        self.total = total
        self.count = count
        #: frame -> the shift it was averaged with
        self.shifts = shifts

    def without(self, t: int, frame: np.ndarray) -> np.ndarray | None:
        """The mean of the members but ``t`` (``frame`` its prepared volume); None if ``t`` is not one."""
        s = self.shifts.get(t)
        if s is None:
            return None
        box = _box(self.total.shape, s)
        total = self.total.copy()
        count = self.count.copy()
        coeffs = ndimage.spline_filter(frame, order=3, mode="nearest", output=np.float32)
        total[box] -= _sample(coeffs, s, box)
        count[box] -= 1
        return np.where(count > 0, total / np.maximum(count, 1), 0.0).astype(np.float32)


def _average(read: _Reader, frames: list[int], shifts: np.ndarray, shape: tuple[int, ...]) -> _Average | None:
    """The mean of ``frames`` resampled at ``p + shift`` (counted where each covers), zero-mean;
    None when no frame is usable."""
    total = np.zeros(shape, np.float64)
    count = np.zeros(shape, np.int32)
    members: dict[int, np.ndarray] = {}
    for t, s in zip(frames, shifts):
        if not np.all(np.isfinite(s)):
            continue
        vol = read(t)
        if vol is None:
            continue
        box = _box(shape, s)
        if box is None:
            continue
        coeffs = ndimage.spline_filter(vol, order=3, mode="nearest", output=np.float32)
        total[box] += _sample(coeffs, s, box)
        count[box] += 1
        members[int(t)] = np.asarray(s, dtype=np.float64)
    if not count.any():
        return None
    template = np.where(count > 0, total / np.maximum(count, 1), 0.0)
    covered = count > 0
    template[covered] -= template[covered].mean()
    template[~covered] = 0.0
    std = float(template[covered].std())
    return _Average((template / std if std > 0 else template).astype(np.float32), total, count, members)


def _estimate_all(
    read: _Reader,
    frames: list[int],
    estimator: VolumeEstimator,
    *,
    n_levels: int | None,
    progress: ProgressCallback | None,
    stage: str,
    total: int,
    done: int,
    members: _Average | None = None,
) -> list[Estimate]:
    """Estimate ``frames``; with ``members`` (the template's sums), a member's ``quality`` is its
    correlation with the template without itself (leave one out, measured)."""
    out = []
    for k, t in enumerate(frames):
        vol = read(t)
        est = estimator.estimate(vol, n_levels=n_levels)
        if members is not None and est.sampled is not None and vol is not None:
            rest = members.without(t, vol)
            if rest is not None:
                level = estimator.template.levels[est.level]
                rest = downsample(rest, level.factors)
                est.quality = _ncc(est.sampled, rest[est.box])
        est.sampled = None
        out.append(est)
        report(progress, done + k + 1, total, stage)
    return out


def _seed(read: _Reader, n_template: int) -> int:
    mid = (n_template - 1) // 2
    for t in sorted(range(n_template), key=lambda i: (abs(i - mid), i)):
        if read(t) is not None:
            return t
    raise ValueError(
        "no usable volume among the template frames: every one is constant, empty or NaN (check the channel)."
    )


def register_volumes(
    stack: Any,
    *,
    axes: str,
    channel: int | None = None,
    options: PyramidOptions,
    reference: np.ndarray | None = None,
    progress: ProgressCallback | None = None,
) -> VolumeTransforms:
    """One sub-voxel translation per volume; see the module docstring.

    Parameters
    ----------
    stack : array-like, shape (T, Z, Y, X) or (T, C, Z, Y, X)
        Numpy, memmap, h5py or dask; read one volume at a time.
    axes : {"TZYX", "TCZYX"}
        The layout of ``stack``.
    channel : int, optional
        For TCZYX: the channel the transforms are estimated on (default 0);
        they apply to every channel.
    options : PyramidOptions
        As for 2-D stacks. ``roi`` crops the rows and columns of every plane;
        ``mask`` is not supported for volumes; ``downsample_rates`` must be
        powers of two; ``kernel`` (the 2-D sampler) cannot be changed (volumes
        are sampled with cubic splines); ``chunk_size`` does not apply
        (volumes are read one at a time).
    reference : ndarray, shape (Z, Y, X), optional
        A template volume to register to instead of building one.
    progress : callable, optional
        ``progress(done, total, stage)``, stages ``"reference"`` and ``"estimate"``.

    Returns
    -------
    VolumeTransforms
        ``dz, dy, dx`` per frame (the correction, ``registered[p] =
        volume[p - (dz, dy, dx)]``), with ``quality``, ``ok``, ``reason``,
        ``method "pyramid"`` and ``params`` (the options, ``"axes"``,
        ``"channel"``, ``"volume_shape"``, ``"levels_used"``,
        ``"template_frames"``, ``"reference_passes"``, ``"flags"``).

    Raises
    ------
    ValueError
        For a stack that does not match ``axes``, options volumes do not take,
        a smoothing window longer than the stack, or no usable volume.
    """
    layout = volume_layout(stack, axes, channel=channel)
    channel = (0 if channel is None else int(channel)) if layout.n_channels is not None else None
    opts = options
    n = layout.n_frames
    z, h, w = layout.volume_shape
    if opts.mask is not None:
        raise ValueError("mask is not supported for volume stacks yet: use roi (rows and columns of every plane).")
    if opts.kernel != DEFAULT_KERNEL:
        raise ValueError(
            f"kernel={opts.kernel!r} is the 2-D sampler: volumes are sampled with cubic splines (leave kernel out)."
        )
    roi = check_roi(opts.roi, (h, w), min_size=16)
    if opts.smooth:
        check_savgol(n, opts.window_length, opts.polyorder)
    shape = (z, h, w) if roi is None else (z, roi[1] - roi[0], roi[3] - roi[2])
    levels = plan_levels(opts.downsample_rates, shape)
    bound = tuple(opts.max_movement * size / 2.0 for size in shape)
    read = _Reader(stack, layout, channel, roi, opts.normalize)
    n_template = min(opts.num_frames, n)
    template_frames = list(range(n_template))
    passes = 0
    anchor = np.zeros(3)
    total_ref = 0
    members: _Average | None = None
    if reference is not None:
        ref = np.asarray(reference)
        if ref.shape != (z, h, w):
            raise ValueError(f"reference has shape {ref.shape}, expected one volume {(z, h, w)} (Z, Y, X).")
        prepared = prepare_volume(read.crop(ref), opts.normalize)
        if prepared is None:
            raise ValueError("the reference volume is constant, empty or NaN: it cannot be registered to.")
        template = VolumeTemplate(prepared, levels)
    else:
        seed = _seed(read, n_template)
        first_frames = sorted(
            {round(float(v)) for v in np.linspace(0, n_template - 1, min(SEED_PASS_FRAMES, n_template))}
        )
        total_ref = len(first_frames) + n_template
        seed_template = VolumeTemplate(read(seed), levels)
        coarse = max(len(levels) - 1, 1)
        first = _estimate_all(
            read,
            first_frames,
            VolumeEstimator(seed_template, bound, opts.normalize),
            n_levels=coarse,
            progress=progress,
            stage="reference",
            total=total_ref,
            done=0,
        )
        avg = _average(read, first_frames, np.array([e.shift for e in first]), shape)
        template = VolumeTemplate(avg.volume, levels)
        second = _estimate_all(
            read,
            template_frames,
            VolumeEstimator(template, bound, opts.normalize),
            n_levels=coarse,
            progress=progress,
            stage="reference",
            total=total_ref,
            done=len(first_frames),
        )
        built = np.array([e.shift for e in second])
        avg = _average(read, template_frames, built, shape)
        template = VolumeTemplate(avg.volume, levels)
        members = avg
        good = np.all(np.isfinite(built), axis=1)
        anchor = built[good].mean(axis=0)
        passes = 2
    estimates: list[Estimate] = []
    for k in range(opts.iterate):
        if k:
            built = np.array([e.shift for e in estimates[:n_template]])
            refined = _average(read, template_frames, built, shape)
            if refined is None:
                break
            template = VolumeTemplate(refined.volume, levels)
            members = refined
            good = np.all(np.isfinite(built), axis=1)
            anchor = built[good].mean(axis=0) if reference is None else np.zeros(3)
            passes += 1
        estimator = VolumeEstimator(template, bound, opts.normalize)
        stage = "estimate" if opts.iterate == 1 else f"estimate {k + 1}/{opts.iterate}"
        estimates = _estimate_all(
            read,
            list(range(n)),
            estimator,
            n_levels=None,
            progress=progress,
            stage=stage,
            total=n,
            done=0,
            members=members,
        )
    return _finish(
        estimates, opts, layout, roi, reference is not None, n_template, anchor, bound, levels, passes, channel
    )


def _finish(
    estimates: list[Estimate],
    opts: PyramidOptions,
    layout: Any,
    roi: Any,
    user_reference: bool,
    n_template: int,
    anchor: np.ndarray,
    bound: tuple[float, ...],
    levels: list,
    passes: int,
    channel: int | None,
) -> VolumeTransforms:
    """Judge, anchor, interpolate the unusable frames, smooth: the result."""
    n = len(estimates)
    shifts = np.array([e.shift for e in estimates], dtype=np.float64)
    quality = np.array([e.quality for e in estimates], dtype=np.float64)
    flags = np.array([e.flags for e in estimates], dtype=np.int64)
    neff = np.array([e.neff for e in estimates], dtype=np.float64)
    usable = (flags & FLAG_UNUSABLE) == 0
    if not usable.any():
        raise ValueError("no volume has any usable voxels (all constant, empty or NaN).")
    known = usable & np.all(np.isfinite(shifts), axis=1)
    if not known.all() and known.any():
        index = np.arange(n)
        shifts = np.stack([np.interp(index, index[known], shifts[known, a]) for a in range(3)], axis=1)
    # the template frames' quality is already their correlation with the template without
    # themselves (measured, see _estimate_all), so judge makes no leave-one-out correction
    ok, reason = judge(
        shifts,
        quality,
        flags,
        neff,
        in_template=np.zeros(n, bool),
        usable_template=1,
        bound=bound,
    )
    if not ok.any():
        warnings.warn(
            f"volume registration: none of the {n} volumes has a trustworthy shift, so the stack has no usable "
            "signal for this method (nothing should be corrected with these estimates).",
            NoSignalWarning,
            stacklevel=3,
        )
    corrections = -(shifts - anchor)
    z, h, w = layout.volume_shape
    params: dict[str, Any] = {name: value for name, value in opts if name not in ("chunk_size", "kernel")}
    params["reference"] = "user" if user_reference else "registered average of the first num_frames frames"
    params["downsample_rates"] = list(opts.downsample_rates)
    params["roi"] = None if roi is None else list(roi)
    params["mask"] = False
    params["template_frames"] = n_template
    params["axes"] = layout.axes
    params["channel"] = channel
    params["volume_shape"] = [z, h, w]
    params["levels_used"] = [lv.rate for lv in levels]
    params["reference_passes"] = passes
    params["flags"] = {
        "unusable": int(np.sum((flags & FLAG_UNUSABLE) > 0)),
        "at_search_edge": int(np.sum((flags & FLAG_AT_EDGE) > 0)),
        "refinement_failed": int(np.sum((flags & FLAG_FAILED) > 0)),
        "not_converged": int(np.sum((flags & FLAG_NOT_CONVERGED) > 0)),
    }
    if opts.smooth:
        kw = {"window_length": int(opts.window_length), "polyorder": int(opts.polyorder), "mode": "interp"}
        corrections = np.stack([savgol_filter(corrections[:, a], **kw) for a in range(3)], axis=1)
        params["smoothing"] = {"method": "savgol", "window_length": kw["window_length"], "polyorder": kw["polyorder"]}
    return VolumeTransforms.from_shifts(
        corrections,
        center=((h - 1) / 2.0, (w - 1) / 2.0),
        quality=quality,
        ok=ok,
        reason=reason,
        method="pyramid",
        params=params,
    )
