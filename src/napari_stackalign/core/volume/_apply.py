"""Applying :class:`~napari_stackalign.VolumeTransforms`: one resampling per volume, every channel.

Reached through :func:`~napari_stackalign.apply_transforms` and
:func:`~napari_stackalign.average_frames` when they are given volume
transforms. Each volume is shifted once with :func:`scipy.ndimage.shift`
(order 0, 1 or 3; B-splines for 3), whatever was composed.
"""

from __future__ import annotations

import warnings
from typing import Any

import dask.array as da
import numpy as np
from scipy import ndimage

from ..._volume_transforms import VolumeTransforms
from ...io import is_dask
from ...progress import ProgressCallback, report
from ..workers import default_workers, thread_pool
from ._mean import VolumeMean

__all__ = [
    "apply_volume_transforms",
    "applicable_shifts",
    "average_volumes",
    "mean_contribution",
    "shift_frame",
    "volume_footprint",
    "volume_stack_shape",
]

#: the package's border names -> scipy.ndimage modes ("nan" is resampled with edges, then marked)
_MODES = {"constant": "grid-constant", "nan": "nearest", "edge": "nearest", "reflect": "mirror"}


def volume_stack_shape(stack: Any) -> tuple[int, tuple[int, ...], tuple[int, int, int]]:
    """(T, channel dims, (Z, Y, X)) of a (T, Z, Y, X) or (T, C, Z, Y, X) stack."""
    shape = tuple(int(n) for n in stack.shape)
    if len(shape) not in (4, 5):
        raise ValueError(
            f"volume transforms (dz, dy, dx) apply to (T, Z, Y, X) or (T, C, Z, Y, X) stacks, got shape {shape}; "
            "2-D stacks take 2-D transforms."
        )
    return shape[0], shape[1:-3], shape[-3:]  # type: ignore[return-value]


def volume_footprint(shape: tuple[int, int, int], shift: np.ndarray) -> tuple[slice, ...]:
    """The box of registered voxels ``p`` whose source ``p - shift`` lies inside the volume."""
    box = []
    for n, d in zip(shape, shift):
        lo = max(0, int(np.ceil(d - 1e-9)))
        hi = min(n, int(np.floor(n - 1 + d + 1e-9)) + 1)
        box.append(slice(lo, max(lo, hi)))
    return tuple(box)


def _shift_volume(
    volume: np.ndarray, shift: np.ndarray, order: int, border: str, cval: float, out_dtype: np.dtype
) -> np.ndarray:
    work = volume.astype(
        np.float64
        if volume.dtype.itemsize > 4 or volume.dtype.kind in "iu" and volume.dtype.itemsize >= 4
        else np.float32,
        copy=False,
    )
    moved = ndimage.shift(work, shift, order=order, mode=_MODES[border], cval=float(cval))
    if border == "nan":
        keep = np.zeros(volume.shape, bool)
        keep[volume_footprint(volume.shape, shift)] = True
        moved[~keep] = np.nan
    if out_dtype.kind in "iu":
        info = np.iinfo(out_dtype)
        moved = np.clip(np.rint(moved), info.min, info.max)
    return moved.astype(out_dtype, copy=False)


def shift_frame(frame: np.ndarray, shift: np.ndarray, extra: tuple[int, ...], **kwargs: Any) -> np.ndarray:
    out = np.empty(frame.shape, dtype=kwargs["out_dtype"])
    for idx in np.ndindex(*extra):
        out[idx] = _shift_volume(frame[idx], shift, **kwargs)
    return out


def applicable_shifts(transforms: VolumeTransforms, volume_shape: tuple[int, int, int], failed: str) -> np.ndarray:
    """(T, 3) shifts to apply: failed frames resolved by ``failed`` (a warning names them), each
    moving the volume by less than its own size.

    Raises
    ------
    ValueError
        When a shift would move a volume entirely out of view.
    """
    from ..apply._warp import FailedFramesWarning

    resolved, replaced = transforms.resolve_failed(failed)
    if replaced.size and transforms.ok.any():
        what = "interpolated from the trustworthy frames" if failed == "interpolate" else "left unshifted"
        warnings.warn(
            f"{replaced.size} of {len(transforms)} volumes failed and were {what} (failed={failed!r}):\n"
            + transforms.failure_summary(),
            FailedFramesWarning,
            stacklevel=4,
        )
    shifts = resolved.shifts_zyx
    outside = np.any(np.abs(shifts) >= np.asarray(volume_shape, float), axis=1)
    if outside.any():
        t = int(np.flatnonzero(outside)[0])
        raise ValueError(
            f"the transform of frame {t} moves it by {tuple(round(float(v), 4) for v in shifts[t])} voxels "
            f"(z, y, x), more than the volume itself {tuple(volume_shape)}; {int(outside.sum())} frame(s) in all. "
            "These transforms do not fit this stack."
        )
    return shifts


def apply_volume_transforms(
    stack: Any, transforms: VolumeTransforms, *, opts: Any, out: Any = None, progress: ProgressCallback | None = None
) -> Any:
    """:func:`~napari_stackalign.apply_transforms` for volume transforms (``opts`` its ApplyOptions)."""
    from ..apply._warp import result_dtype

    n_frames, extra, zyx = volume_stack_shape(stack)
    if len(transforms) != n_frames:
        raise ValueError(
            f"the stack has {n_frames} frames but there are {len(transforms)} transforms: "
            "use transforms estimated on a stack with the same number of frames."
        )
    if np.dtype(stack.dtype).kind == "c":
        raise ValueError("complex volume stacks cannot be resampled; take the real part or magnitude first.")
    out_dtype = result_dtype(np.dtype(stack.dtype), opts.border, opts.output_dtype)
    shifts = applicable_shifts(transforms, zyx, opts.failed)
    kwargs = {"order": opts.order, "border": opts.border, "cval": opts.cval, "out_dtype": out_dtype}
    if out is None and is_dask(stack):
        frames = stack.rechunk({0: 1, **{ax: -1 for ax in range(1, stack.ndim)}})

        def block(chunk: np.ndarray, block_info: dict | None = None) -> np.ndarray:
            t = block_info[0]["array-location"][0][0]
            return shift_frame(chunk[0], shifts[t], extra, **kwargs)[None]

        return da.map_blocks(block, frames, dtype=out_dtype)
    if out is None:
        out = np.empty(tuple(stack.shape), dtype=out_dtype)
    elif tuple(out.shape) != tuple(stack.shape):
        raise ValueError(f"out has shape {tuple(out.shape)}, expected {tuple(stack.shape)}.")
    report(progress, 0, n_frames, "apply")
    chunk_size = opts.chunk_size
    with thread_pool(default_workers(opts.workers)) as pool:
        for start in range(0, n_frames, chunk_size):
            stop = min(start + chunk_size, n_frames)
            chunk = np.asarray(stack[start:stop])

            def one(k: int, chunk: np.ndarray = chunk, start: int = start) -> np.ndarray:
                return shift_frame(chunk[k], shifts[start + k], extra, **kwargs)

            moved = list(pool.map(one, range(stop - start)))
            out[start:stop] = np.stack(moved)
            report(progress, stop, n_frames, "apply")
    return out


def average_volumes(
    stack: Any,
    transforms: VolumeTransforms,
    selected: np.ndarray,
    *,
    mode: str,
    order: int,
    progress: ProgressCallback | None = None,
) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """(mean ([C,] Z, Y, X) float32, coverage (Z, Y, X) int32, common box (z0, z1, y0, y1, x0, x1))
    of the ``selected`` volumes registered by ``transforms`` (failed ones interpolated); with
    ``mode="crop"`` the mean and coverage are cut to the box every volume covers."""
    n_frames, extra, zyx = volume_stack_shape(stack)
    if len(transforms) != n_frames:
        raise ValueError(f"the stack has {n_frames} frames but there are {len(transforms)} transforms.")
    resolved, _ = transforms.resolve_failed("interpolate")
    shifts = resolved.shifts_zyx
    mean = VolumeMean(extra, zyx)
    report(progress, 0, selected.size, "average")
    for k, t in enumerate(selected):
        frame = np.asarray(stack[int(t)])
        mean.add(mean_contribution(frame, shifts[t], extra, order), volume_footprint(zyx, shifts[t]))
        report(progress, k + 1, selected.size, "average")
    return mean.result(mode)


def mean_contribution(frame: np.ndarray, shift: np.ndarray, extra: tuple[int, ...], order: int) -> np.ndarray:
    """Volume ``frame`` ([C,] Z, Y, X) registered for a mean: float32, NaN outside its footprint."""
    return shift_frame(frame, shift, extra, order=order, border="nan", cval=0.0, out_dtype=np.dtype(np.float32))
