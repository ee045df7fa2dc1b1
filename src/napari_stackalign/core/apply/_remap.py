"""Apply :class:`~napari_stackalign.PiecewiseTransforms`: one ``cv2.remap`` per frame.

The frame's rigid transform and its residual field are composed into one
map of source positions (:meth:`PiecewiseTransforms.source_maps`), so every
pixel is interpolated once. :func:`~napari_stackalign.core.apply.apply_transforms`
hands a ``PiecewiseTransforms`` over here; the options mean the same.
"""

from __future__ import annotations

import warnings
from typing import Any

import cv2
import dask.array as da
import numpy as np

from ...io import is_dask
from ...piecewise_transforms import PiecewiseTransforms
from ...progress import ProgressCallback, report
from ..workers import default_workers, thread_pool
from ._options import BORDERS, ORDERS, ApplyOptions, check_warp_options

__all__ = ["apply_piecewise", "remap_frame"]

_CV2_DTYPES = {np.dtype(t) for t in (np.uint8, np.uint16, np.int16, np.float32, np.float64)}


def remap_frame(
    frame: np.ndarray,
    map_x: np.ndarray,
    map_y: np.ndarray,
    *,
    order: int,
    border: str,
    cval: float,
    out_dtype: np.dtype,
    dst: np.ndarray | None = None,
) -> np.ndarray:
    """Resample one 2-D frame at the source positions ``(map_x, map_y)``
    (float32, the frame's shape); options as :func:`~napari_stackalign.core.apply.warp_frame`.

    Integer outputs are rounded and clipped to the dtype's range; 64-bit
    integers are resampled in float64 (exact up to 2**53).
    """
    check_warp_options(order, border)
    frame = np.asarray(frame)
    if frame.dtype.kind == "c":
        part = np.dtype(np.float32 if out_dtype.itemsize <= 8 else np.float64)
        result = np.empty(frame.shape, dtype=out_dtype) if dst is None else dst
        kwargs = {"order": order, "border": border, "out_dtype": part}
        result.real = remap_frame(frame.real, map_x, map_y, cval=cval, **kwargs)
        result.imag = remap_frame(frame.imag, map_x, map_y, cval=0.0, **kwargs)
        return result
    if frame.dtype == out_dtype and frame.dtype in _CV2_DTYPES:
        work = frame
    elif out_dtype.kind == "f" and out_dtype in _CV2_DTYPES and frame.dtype.itemsize <= 2:
        work = frame.astype(out_dtype)
    else:
        work = frame.astype(np.float64)
    result = cv2.remap(
        np.ascontiguousarray(work),
        map_x,
        map_y,
        ORDERS[order],
        borderMode=cv2.BORDER_REPLICATE if border == "nan" else BORDERS[border],
        borderValue=float(cval),
    )
    if border == "nan":
        # the pixels whose bilinear source is not entirely inside the frame
        ones = np.ones(frame.shape, np.float32)
        inside = cv2.remap(ones, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
        result = result.astype(out_dtype, copy=False)
        result[inside < 1.0 - 1e-3] = np.nan
    if result.dtype != out_dtype:
        if out_dtype.kind in "iu" and result.dtype.kind == "f":
            info = np.iinfo(out_dtype)
            result = np.clip(np.rint(result), info.min, info.max)
        result = result.astype(out_dtype)
    if dst is not None:
        dst[...] = result
        return dst
    return result


def _resolved(transforms: PiecewiseTransforms, failed: str) -> PiecewiseTransforms:
    """The transforms to apply, failed frames resolved by ``failed`` (a warning names them)."""
    from ._warp import FailedFramesWarning  # _warp imports this module

    resolved, replaced = transforms.resolve_failed(failed)
    if replaced.size and transforms.ok.any():
        what = "interpolated from the trustworthy frames" if failed == "interpolate" else "left unshifted"
        warnings.warn(
            f"{replaced.size} of {len(transforms)} frames failed and were {what} (failed={failed!r}):\n"
            + transforms.failure_summary(),
            FailedFramesWarning,
            stacklevel=4,
        )
    return resolved


def _remap_chunk(
    chunk: np.ndarray,
    transforms: PiecewiseTransforms,
    first: int,
    opts: ApplyOptions,
    out_dtype: np.dtype,
    pool: Any,
    result: np.ndarray | None = None,
) -> np.ndarray:
    """Resample a (t, [C,] Y, X) chunk whose first frame is frame ``first``."""
    if result is None:
        result = np.empty(chunk.shape, dtype=out_dtype)
    extra = chunk.shape[1:-2]

    def one(k: int) -> None:
        map_x, map_y = transforms.source_maps(first + k)
        for idx in np.ndindex(*extra):
            remap_frame(
                chunk[(k, *idx)],
                map_x,
                map_y,
                order=opts.order,
                border=opts.border,
                cval=opts.cval,
                out_dtype=out_dtype,
                dst=result[(k, *idx)],
            )

    if pool is None:
        for k in range(chunk.shape[0]):
            one(k)
    else:
        list(pool.map(one, range(chunk.shape[0])))
    return result


def apply_piecewise(
    stack: Any,
    transforms: PiecewiseTransforms,
    opts: ApplyOptions,
    out_dtype: np.dtype,
    *,
    out: Any = None,
    progress: ProgressCallback | None = None,
) -> Any:
    """:func:`~napari_stackalign.core.apply.apply_transforms` for a ``PiecewiseTransforms``."""
    n_frames = int(stack.shape[0])
    if tuple(stack.shape[-2:]) != transforms.frame_shape:
        raise ValueError(
            f"the piecewise transforms were estimated on {transforms.frame_shape[0]}x{transforms.frame_shape[1]} "
            f"frames, but this stack's frames are {stack.shape[-2]}x{stack.shape[-1]}."
        )
    resolved = _resolved(transforms, opts.failed)
    chunk_size = opts.chunk_size
    if out is None and is_dask(stack):
        frames = stack.rechunk({0: chunk_size, **{ax: -1 for ax in range(1, stack.ndim)}})

        def block(chunk: np.ndarray, block_info: dict | None = None) -> np.ndarray:
            start = block_info[0]["array-location"][0][0]
            return _remap_chunk(chunk, resolved, start, opts, out_dtype, None)

        return da.map_blocks(block, frames, dtype=out_dtype)
    if out is None:
        out = np.empty(tuple(stack.shape), dtype=out_dtype)
    elif tuple(out.shape) != tuple(stack.shape):
        raise ValueError(f"out has shape {tuple(out.shape)}, expected {tuple(stack.shape)}.")
    direct = type(out) in (np.ndarray, np.memmap) and out.dtype == out_dtype and out.flags.c_contiguous
    report(progress, 0, n_frames, "apply")
    with thread_pool(default_workers(opts.workers)) as pool:
        for start in range(0, n_frames, chunk_size):
            stop = min(start + chunk_size, n_frames)
            chunk = np.asarray(stack[start:stop])
            if direct:
                _remap_chunk(chunk, resolved, start, opts, out_dtype, pool, result=out[start:stop])
            else:
                out[start:stop] = _remap_chunk(chunk, resolved, start, opts, out_dtype, pool)
            report(progress, stop, n_frames, "apply")
    return out
