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
   the template frames are, on average, left in place. ``reference_mode``
   ``'frames'`` builds it from ``reference_frames`` instead, ``'image'``
   registers to the user's (Z, Y, X) ``reference`` volume, and the chained
   modes ``'previous'`` and ``'running'`` register each volume to the ones
   before it, each link tested (see :mod:`._chain`).
5. ``iterate`` re-estimates against templates refined from the registered
   frames; the result is one translation per frame, applied once.
6. Every frame is judged as in 2-D (:func:`~napari_stackalign.core.pyramid._trust.judge`):
   no usable voxels, at the search bound, refinement lost or not converged,
   low quality, correlation not significant against its noise floor, jumps.
7. ``smooth`` applies the Savitzky-Golay filter to dz, dy and dx.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..._volume_transforms import VolumeTransforms
from ...progress import ProgressCallback, report
from ..checks import check_roi
from ..pyramid._lucas_kanade import DEFAULT_KERNEL
from ..pyramid._options import CHAINED_MODES, PyramidOptions
from ..smoothing import check_savgol
from ._average import Average, average_of, spline_coefficients
from ._chain import run_volume_chain
from ._checks import volume_layout
from ._engine import Estimate, VolumeEstimator, VolumeTemplate, _ncc, prepare_volume
from ._finish import VolumeResults, finish_volumes
from ._levels import downsample, plan_levels
from ._reader import VolumeReader
from ._threads import VolumeThreads, volume_threads

__all__ = ["register_volumes"]

#: frames registered to the seed in the first template pass (spread over the template frames)
SEED_PASS_FRAMES = 24


def _average(
    read: VolumeReader, frames: list[int], shifts: np.ndarray, shape: tuple[int, ...], threads: VolumeThreads
) -> Average | None:
    """The mean of ``frames`` resampled at ``p + shift`` (counted where each covers), zero-mean;
    None when no frame is usable. The volumes are read and prefiltered on ``threads`` and summed
    here in frame order (the same sum as on one thread)."""

    def item(pair: tuple[int, np.ndarray]) -> tuple[int, np.ndarray | None, np.ndarray]:
        t, s = pair
        vol = read(t) if np.all(np.isfinite(s)) else None
        return t, None if vol is None else spline_coefficients(vol), s

    return average_of(threads.map(item, list(zip(frames, shifts))), shape)


def _estimate_all(
    read: VolumeReader,
    frames: list[int],
    estimator: VolumeEstimator,
    *,
    n_levels: int | None,
    progress: ProgressCallback | None,
    stage: str,
    total: int,
    done: int,
    threads: VolumeThreads,
    members: Average | None = None,
) -> list[Estimate]:
    """Estimate ``frames`` on ``threads`` (at most ``threads.in_flight`` volumes held at once);
    with ``members`` (the template's sums), a member's ``quality`` is its correlation with the
    template without itself (leave one out, measured)."""

    def one(t: int) -> Estimate:
        vol = read(t)
        est = estimator.estimate(vol, n_levels=n_levels)
        if members is not None and est.sampled is not None and vol is not None:
            rest = members.without(t, vol)
            if rest is not None:
                level = estimator.template.levels[est.level]
                rest = downsample(rest, level.factors)
                est.quality = _ncc(est.sampled, rest[est.box])
        est.sampled = None
        return est

    out = []
    for k, est in enumerate(threads.map(one, frames)):
        out.append(est)
        report(progress, done + k + 1, total, stage)
    return out


def _seed(read: VolumeReader, frames: list[int]) -> int:
    """The usable volume nearest the middle of ``frames``."""
    mid = frames[(len(frames) - 1) // 2]
    for t in sorted(frames, key=lambda i: (abs(i - mid), i)):
        if read(t) is not None:
            return t
    raise ValueError(
        "no usable volume among the template frames: every one is constant, empty or NaN (check the channel)."
    )


def _template_range(opts: PyramidOptions, n: int) -> tuple[int, int]:
    """The frames ``start:stop`` whose registered mean is the template (``reference_frames`` in mode
    ``'frames'``, else the first ``num_frames``; with a user image, those refine it when iterating)."""
    if opts.reference_mode == "frames":
        assert opts.reference_frames is not None
        start, stop = opts.reference_frames
        if stop > n:
            raise ValueError(f"reference_frames {start}:{stop} reach beyond the stack's {n} frames (0:{n} at most).")
        return start, stop
    return 0, min(opts.num_frames, n)


def _template_and_estimates(
    read: VolumeReader,
    n: int,
    shape: tuple[int, int, int],
    levels: list,
    bound: tuple[float, ...],
    opts: PyramidOptions,
    threads: VolumeThreads,
    progress: ProgressCallback | None,
) -> tuple[tuple[int, int], np.ndarray, int, list[Estimate]]:
    """The template (built from registered frames, or the user's volume), then every volume
    estimated against it (``iterate`` times): (template range, anchor, passes, estimates)."""
    z, h, w = read.layout.volume_shape
    start, stop = _template_range(opts, n)
    template_frames = list(range(start, stop))
    passes = 0
    anchor = np.zeros(3)
    total_ref = 0
    members: Average | None = None
    user = opts.reference_mode == "image"
    if user:
        ref = np.asarray(opts.reference)
        if ref.shape != (z, h, w):
            raise ValueError(f"reference has shape {ref.shape}, expected one volume {(z, h, w)} (Z, Y, X).")
        prepared = prepare_volume(read.crop(ref), opts.normalize)
        if prepared is None:
            raise ValueError("the reference volume is constant, empty or NaN: it cannot be registered to.")
        template = VolumeTemplate(prepared, levels)
    else:
        seed = _seed(read, template_frames)
        first_frames = sorted(
            {template_frames[round(float(v))] for v in np.linspace(0, stop - start - 1, min(SEED_PASS_FRAMES, stop - start))}
        )
        total_ref = len(first_frames) + len(template_frames)
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
            threads=threads,
        )
        del seed_template  # memory: each template holds about 5 volumes (its pyramid and gradients)
        avg = _average(read, first_frames, np.array([e.shift for e in first]), shape, threads)
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
            threads=threads,
        )
        built = np.array([e.shift for e in second])
        template = avg = None  # released before the next is built
        avg = _average(read, template_frames, built, shape, threads)
        template = VolumeTemplate(avg.volume, levels)
        members = avg
        good = np.all(np.isfinite(built), axis=1)
        anchor = built[good].mean(axis=0)
        passes = 2
    estimates: list[Estimate] = []
    for k in range(opts.iterate):
        if k:
            built = np.array([estimates[t].shift for t in template_frames])
            template = members = estimator = None  # released before the next is built
            refined = _average(read, template_frames, built, shape, threads)
            if refined is None:
                break
            template = VolumeTemplate(refined.volume, levels)
            members = refined
            good = np.all(np.isfinite(built), axis=1)
            anchor = built[good].mean(axis=0) if not user else np.zeros(3)
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
            threads=threads,
            members=members,
        )
    return ((start, stop) if not user else (0, 0)), anchor, passes, estimates


def register_volumes(
    stack: Any,
    *,
    axes: str,
    channel: int | None = None,
    options: PyramidOptions,
    reference: np.ndarray | None = None,
    workers: int | None = None,
    progress: ProgressCallback | None = None,
) -> VolumeTransforms:
    """One sub-voxel translation per volume; see the module docstring.

    Parameters
    ----------
    stack : array-like, shape (T, Z, Y, X) or (T, C, Z, Y, X)
        Numpy, memmap, h5py or dask; read one volume at a time (a lazily
        opened file is never loaded whole).
    axes : {"TZYX", "TCZYX"}
        The layout of ``stack``.
    channel : int, optional
        For TCZYX: the channel the transforms are estimated on (default 0);
        they apply to every channel.
    options : PyramidOptions
        As for 2-D stacks, every ``reference_mode`` included (``'template'``,
        ``'frames'``, ``'previous'``, ``'running'``, ``'image'``: a (Z, Y, X)
        ``reference`` volume). ``roi`` crops the rows and columns of every
        plane; ``mask`` is not supported for volumes; ``downsample_rates``
        must be powers of two; ``kernel`` (the 2-D sampler) cannot be changed
        (volumes are sampled with cubic splines); ``chunk_size`` is the most
        volumes read and held at once by the estimating threads (memory).
    reference : ndarray, shape (Z, Y, X), optional
        A template volume to register to instead of building one (the same
        as ``options.reference``).
    workers : int, optional
        Threads that estimate volumes at once (default 1). ``min(workers,
        chunk_size)`` volumes are in flight; each holds a few float32 copies
        of one volume. The chained modes register each volume to the ones
        before it, so there a second thread reads and prepares the next
        volume while this one is estimated. The results do not depend on it.
    progress : callable, optional
        ``progress(done, total, stage)``, stages ``"reference"`` and ``"estimate"``.

    Returns
    -------
    VolumeTransforms
        ``dz, dy, dx`` per frame (the correction, ``registered[p] =
        volume[p - (dz, dy, dx)]``), with ``quality``, ``ok``, ``reason``,
        ``method "pyramid"`` and ``params`` (the options, ``"axes"``,
        ``"channel"``, ``"volume_shape"``, ``"levels_used"``,
        ``"template_frames"``, ``"reference_passes"``, ``"flags"``; the
        chained modes add ``"chain_breaks"``, ``"gap_links"`` and
        ``"keyframe_links"``).

    Raises
    ------
    ValueError
        For a stack that does not match ``axes``, options volumes do not take,
        a smoothing window longer than the stack, reference frames beyond
        the stack, a reference volume of another shape, or no usable volume.
    """
    layout = volume_layout(stack, axes, channel=channel)
    channel = (0 if channel is None else int(channel)) if layout.n_channels is not None else None
    opts = options
    if reference is not None and opts.reference is None:
        opts = opts.replace(reference=np.asarray(reference), reference_mode="image")
    n = layout.n_frames
    z, h, w = layout.volume_shape
    if opts.mask is not None:
        raise ValueError(
            "mask is not supported for volume stacks: use roi (rows and columns of every plane), or register "
            "a cropped sub-volume and apply its transforms to the whole stack."
        )
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
    read = VolumeReader(stack, layout, channel, roi, opts.normalize)
    finish = {"roi": roi, "bound": bound, "levels": levels, "channel": channel}
    threads = volume_threads(workers, opts.chunk_size)
    if opts.reference_mode in CHAINED_MODES:
        with threads:
            results, notes, extra = run_volume_chain(
                read.ahead(threads.pool) if threads.pool is not None else read,
                n, shape=shape, levels=levels, bound=bound, opts=opts, progress=progress,
            )
        report(progress, n, n, "done")
        return finish_volumes(
            results, opts, layout, template_range=(0, 0), anchor=np.zeros(3), passes=0, notes=notes,
            extra_params=extra, **finish,
        )
    with threads:
        template_range, anchor, passes, estimates = _template_and_estimates(
            read, n, shape, levels, bound, opts, threads, progress
        )
    report(progress, n, n, "done")
    return finish_volumes(
        VolumeResults.from_estimates(estimates),
        opts,
        layout,
        template_range=template_range,
        anchor=anchor,
        passes=passes,
        **finish,
    )
