"""Piecewise-rigid registration: the rigid pyramid step, then a residual shift per patch.

As suite2p's and NoRMCorre's non-rigid modes: after
:func:`~napari_stackalign.core.pyramid.register_pyramid`, every frame is cut
into overlapping patches and each patch is registered sub-pixel against the
same patch of a template (the average of the rigidly registered frames), its
shift bounded to ``max_deviation`` px around the frame's rigid shift
(:mod:`._patches`). Patches whose estimate cannot be trusted take their
neighbours' value and stay flagged (:mod:`._regularise`). Later passes
(``iterate``) build the template from the previous pass's piecewise result.

The result, :class:`~napari_stackalign.PiecewiseTransforms`, is applied by
:func:`~napari_stackalign.apply_transforms` (one ``cv2.remap`` per frame,
rigid and residual composed).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...piecewise_transforms import PiecewiseTransforms
from ...progress import ProgressCallback, report
from ...transforms import FrameTransforms
from ..apply import apply_transforms
from ..apply._remap import remap_frame
from ..checks import check_stack
from ..pyramid import PyramidOptions, register_pyramid
from ._grid import patch_grid
from ._options import PIECEWISE_DEFAULTS, PiecewiseOptions
from ._patches import FLAG_AT_BOUND, FLAG_FAILED, FLAG_NOT_SIGNIFICANT, PatchTemplates, patch_significance
from ._regularise import regularise

__all__ = ["register_piecewise"]

#: frames read at a time
CHUNK_FRAMES = 64
#: a later pass keeps every frame it registered (float32) for the template and the estimate alike,
#: when they take at most this many bytes (else each is resampled twice, once for each)
REGISTERED_CACHE_BYTES = 256 * 2**20


def register_piecewise(
    stack: Any,
    *,
    patch_size: int = PIECEWISE_DEFAULTS.patch_size,
    patch_overlap: int = PIECEWISE_DEFAULTS.patch_overlap,
    max_deviation: float = PIECEWISE_DEFAULTS.max_deviation,
    iterate: int = PIECEWISE_DEFAULTS.iterate,
    template_frames: int | None = PIECEWISE_DEFAULTS.template_frames,
    min_z: float = PIECEWISE_DEFAULTS.min_z,
    neighbour_tolerance: float = PIECEWISE_DEFAULTS.neighbour_tolerance,
    kernel: str = PIECEWISE_DEFAULTS.kernel,
    rigid: FrameTransforms | None = None,
    rigid_options: PyramidOptions | None = None,
    progress: ProgressCallback | None = None,
    options: PiecewiseOptions | None = None,
) -> PiecewiseTransforms:
    """Estimate a rigid shift and a smooth residual field per frame.

    Parameters
    ----------
    stack : array-like, shape (T, Y, X)
        Numpy array, memmap, h5py dataset or dask array; read chunk by chunk.
    patch_size : int
        Side (px) of the square patches (cut to the frame when it is smaller).
    patch_overlap : int
        Pixels neighbouring patches share; patches step by
        ``patch_size - patch_overlap`` and the last one ends on the frame's edge.
    max_deviation : float
        Largest residual shift (px, per axis) of a patch around its frame's
        rigid shift; a match on that bound is flagged.
    iterate : int
        Passes. The first compares with the average of the rigidly registered
        frames; each later one registers every frame with the previous pass's
        field, compares it with the average of the frames so registered and
        adds the patch shifts it still finds (a patch's shift is the field
        averaged over the patch, so each pass shrinks that blur of the field
        by the same factor).
    template_frames : int, optional
        Frames averaged into each template, spread evenly over the trustworthy
        ones (default: all of them).
    min_z : float
        Significance a patch's correlation peak needs (Fisher ``z``, see
        :mod:`~napari_stackalign.core.pyramid._trust`); a weaker patch
        takes its neighbours' shift and is flagged.
    neighbour_tolerance : float
        A patch whose shift differs from the median of its trustworthy
        neighbours by more than this (px) is flagged and takes their value.
    kernel : {"lagrange4", "lagrange6", "lagrange8"}
        Interpolation of the frame in the sub-pixel step.
    rigid : FrameTransforms, optional
        The rigid step's result, if it was estimated already (translations
        only, one per frame); by default ``register_pyramid`` runs first.
    rigid_options : PyramidOptions, optional
        Options of that rigid step.
    progress : callable, optional
        ``progress(done, total, stage)``: the rigid step's stages, then
        ``"template k/n"`` and ``"patches k/n"``; may raise
        :class:`~napari_stackalign.core.Cancelled`.
    options : PiecewiseOptions, optional
        All the piecewise options at once; an explicit keyword that differs
        from its default overrides it.

    Returns
    -------
    PiecewiseTransforms
        The rigid transforms (``ok``/``reason`` per frame as the pyramid
        judged them), the patch centres, the residual (dy, dx) per patch and
        frame, and per patch a flag (:data:`~napari_stackalign.piecewise_transforms.PATCH_FLAGS`,
        0 when its own estimate was used) and its significance ``z``.
        ``params`` holds the options, the rigid step's parameters and
        ``"patches_used"``, the share of patches whose own estimate was used.

    Raises
    ------
    ValueError
        For a stack that is not (T, Y, X), bad options, or a ``rigid`` that
        does not fit the stack or is not a translation.
    """
    opts = PiecewiseOptions.from_call(options, locals())
    n_frames, height, width = check_stack(stack, what="piecewise registration")
    if rigid is None:
        rigid = register_pyramid(stack, options=rigid_options, progress=_without_done(progress))
    elif not isinstance(rigid, FrameTransforms) or len(rigid) != n_frames:
        raise ValueError(
            f"rigid must be a FrameTransforms with one transform per frame ({n_frames}), got "
            f"{len(rigid) if isinstance(rigid, FrameTransforms) else type(rigid).__name__}."
        )
    if not rigid.is_translation:
        raise ValueError("the rigid step must be a translation per frame (rotation and scale are not supported).")
    grid = patch_grid((height, width), opts.patch_size, opts.patch_overlap)
    shifts = rigid.resolve_failed("interpolate")[0].shifts
    params = {**opts.to_dict(), "rigid_method": rigid.method, "rigid_params": rigid.params}
    result = PiecewiseTransforms(
        rigid, grid.rows, grid.cols, np.zeros((n_frames, *grid.shape, 2)), (height, width), params=params
    )
    for p in range(opts.iterate):
        stage = f"{p + 1}/{opts.iterate}"
        members = _template_frames(result, opts.template_frames)
        cache = _registered_frames(stack, result) if p > 0 else None
        template = _template(stack, result, members, stage, progress, cache)
        patches = PatchTemplates(template, grid, opts.max_deviation, opts.kernel)
        total = np.zeros_like(result.residual)
        flag = np.zeros(result.patch_flag.shape, np.uint8)
        ncc = np.full(result.patch_quality.shape, np.nan)
        neff = np.full(result.patch_quality.shape, np.nan)
        report(progress, 0, n_frames, f"patches {stage}")
        for start in range(0, n_frames, CHUNK_FRAMES):
            stop = min(start + CHUNK_FRAMES, n_frames)
            if cache is None:
                chunk = np.asarray(stack[start:stop], dtype=np.float32)
                chunk[~np.isfinite(chunk)] = 0.0
            for t in range(start, stop):
                if p == 0:
                    est = patches.estimate(chunk[t - start], tuple(shifts[t]))
                    total[t] = est.residual
                else:
                    # later passes measure what the current field leaves, on the frame it registers
                    # (the averaging over each patch shrinks the error by the same factor every pass)
                    if cache is None:
                        image, no_shift, valid = _registered(chunk[t - start], result, t)
                    else:
                        image, no_shift, valid = _filled(cache[t])
                    est = patches.estimate(image, no_shift, valid, search=~result.patch_ok[t])
                    total[t] = result.residual[t] + est.residual
                flag[t], ncc[t], neff[t] = est.flag, est.ncc, est.neff
            report(progress, stop, n_frames, f"patches {stage}")
        in_template = np.zeros(n_frames, bool)
        in_template[members] = True
        ncc[flag == FLAG_FAILED] = np.nan  # a lost refinement's correlation says nothing
        z = patch_significance(ncc, neff, in_template, members.size)
        flag[(flag == 0) & ~(z >= opts.min_z)] = FLAG_NOT_SIGNIFICANT
        flag[(flag == 0) & (np.abs(total).max(axis=-1) > opts.max_deviation + 0.5)] = FLAG_AT_BOUND
        residual, flag = regularise(total, flag, opts.neighbour_tolerance)
        params = {**params, "patches_used": float(np.mean(flag == 0)), "passes": p + 1}
        result = PiecewiseTransforms(rigid, grid.rows, grid.cols, residual, (height, width), flag, z, params)
    report(progress, n_frames, n_frames, "done")
    return result


def _template_frames(current: PiecewiseTransforms, count: int | None) -> np.ndarray:
    """The frames averaged into the template: the trustworthy ones (all when none is), ``count`` of them
    spread evenly when given."""
    good = np.flatnonzero(current.ok)
    if good.size == 0:
        good = np.arange(len(current))
    if count is not None and count < good.size:
        good = good[np.unique(np.linspace(0, good.size - 1, count).round().astype(int))]
    return good


def _registered_frames(stack: Any, current: PiecewiseTransforms) -> np.ndarray | None:
    """Every frame registered by ``current`` (bicubic, NaN outside the frame), as :func:`_template` and
    :func:`_registered` resample them; None when they would take more than ``REGISTERED_CACHE_BYTES``
    or the stack holds a value that is not finite (the template and the estimate treat it differently)."""
    n_frames = len(current)
    h, w = current.frame_shape
    if n_frames * h * w * 4 > REGISTERED_CACHE_BYTES:
        return None
    out = np.empty((n_frames, h, w), np.float32)
    for start in range(0, n_frames, CHUNK_FRAMES):
        stop = min(start + CHUNK_FRAMES, n_frames)
        chunk = np.asarray(stack[start:stop], dtype=np.float32)
        if not np.isfinite(chunk).all():
            return None
        apply_transforms(
            chunk, current[start:stop], order=3, border="nan", failed="apply", workers=1, out=out[start:stop]
        )
    return out


def _template(
    stack: Any,
    current: PiecewiseTransforms,
    frames: np.ndarray,
    stage: str,
    progress: ProgressCallback | None,
    registered: np.ndarray | None = None,
) -> np.ndarray:
    """The average of ``frames`` registered by ``current`` (bicubic; NaN where none covers);
    ``registered``: every frame so registered already (:func:`_registered_frames`)."""
    total = np.zeros(current.frame_shape)
    count = np.zeros(current.frame_shape)
    report(progress, 0, frames.size, f"template {stage}")
    for start in range(0, frames.size, CHUNK_FRAMES):
        idx = frames[start : start + CHUNK_FRAMES]
        if registered is not None:
            warped = registered[idx]
        else:
            chunk = np.stack([np.asarray(stack[int(t)], dtype=np.float32) for t in idx])
            part = current[idx]
            # no residual yet (the first pass): the rigid transforms alone, resampled by warpAffine (the
            # same bicubic resampling, without building a map of every pixel)
            rigid_only = not part.residual.any()
            warped = apply_transforms(
                chunk, part.rigid if rigid_only else part, order=3, border="nan", failed="apply", workers=1
            )
        valid = np.isfinite(warped)
        total += np.where(valid, warped, 0.0).sum(axis=0)
        count += valid.sum(axis=0)
        report(progress, min(start + CHUNK_FRAMES, frames.size), frames.size, f"template {stage}")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _registered(frame: np.ndarray, current: PiecewiseTransforms, t: int) -> tuple[np.ndarray, tuple, np.ndarray]:
    """Frame ``t`` registered by ``current`` (bicubic), for estimation only: the image (the pixels from
    outside the frame filled with the mean), no rigid shift left, and where it holds data."""
    map_x, map_y = current.source_maps(t)
    return _filled(remap_frame(frame, map_x, map_y, order=3, border="nan", cval=0.0, out_dtype=np.dtype(np.float32)))


def _filled(image: np.ndarray) -> tuple[np.ndarray, tuple, np.ndarray]:
    """A registered frame (NaN outside the frame; filled in place) as :func:`_registered` returns it."""
    valid = np.isfinite(image)
    image[~valid] = float(image[valid].mean()) if valid.any() else 0.0
    return image, (0.0, 0.0), valid


def _without_done(progress: ProgressCallback | None) -> ProgressCallback | None:
    if progress is None:
        return None

    def callback(done: int, total: int, stage: str) -> None:
        if stage != "done":
            report(progress, done, total, stage)

    return callback
