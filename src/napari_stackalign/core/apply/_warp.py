"""Apply :class:`~napari_stackalign.FrameTransforms` to any frame-indexable stack.

One resampling per frame with ``cv2.warpAffine`` (whatever was composed), in a
thread pool (OpenCV releases the GIL), chunk by chunk so memory stays flat.
Inputs may be numpy arrays, memmaps, h5py datasets or dask arrays; dask input
gives a lazy dask output unless ``out`` is given.
"""

from __future__ import annotations

import warnings
from typing import Any

import cv2
import dask.array as da
import numpy as np

from ..._volume_transforms import VolumeTransforms
from ...io import is_dask
from ...piecewise_transforms import PiecewiseTransforms
from ...progress import ProgressCallback, report
from ...transforms import FrameTransforms
from ..checks import CHANNEL_STACK_AXES, STACK_AXES
from ..workers import default_workers, thread_pool
from ._options import APPLY_DEFAULTS, BORDERS, ORDERS, ApplyOptions, check_warp_options
from ._remap import apply_piecewise

__all__ = [
    "FailedFramesWarning",
    "applicable_matrices",
    "apply_transforms",
    "coverage_mask",
    "frames_shape",
    "is_dask",
    "result_dtype",
    "warp_chunk",
    "warp_frame",
]

# dtypes cv2.warpAffine handles natively
_CV2_DTYPES = {
    np.dtype(t) for t in (np.uint8, np.uint16, np.int16, np.float32, np.float64)
}


def result_dtype(in_dtype: np.dtype, border: str, output_dtype: Any) -> np.dtype:
    if output_dtype is not None:
        dtype = np.dtype(output_dtype)
    else:
        dtype = np.dtype(in_dtype)
    if np.dtype(in_dtype).kind == "c" and dtype.kind != "c":
        raise ValueError(
            f"output_dtype {dtype} would drop the imaginary part of the complex stack: use a complex "
            "output_dtype (or None), or take the real part or magnitude (np.abs) first."
        )
    if border == "nan" and dtype.kind not in "fc":
        # NaN marks pixels outside the frame; an integer type cannot hold it.
        dtype = np.dtype(np.float32)
    if dtype == np.bool_:
        raise ValueError(
            "boolean stacks cannot be resampled; convert them to uint8 first."
        )
    return dtype


def warp_frame(
    frame: np.ndarray,
    matrix_xy: np.ndarray,
    *,
    order: int = APPLY_DEFAULTS.order,
    border: str = APPLY_DEFAULTS.border,
    cval: float = APPLY_DEFAULTS.cval,
    output_dtype: Any = APPLY_DEFAULTS.output_dtype,
    dst: np.ndarray | None = None,
) -> np.ndarray:
    """Resample one 2-D frame with a forward 2x3 matrix in OpenCV (x, y) order.

    See :func:`apply_transforms` for the options. Integer outputs are rounded
    and clipped to the dtype's range. ``dst`` (a C-contiguous array of the
    frame's shape and the output type) receives the result, which saves a
    copy when OpenCV can write there directly.
    """
    check_warp_options(order, border)
    frame = np.asarray(frame)
    out_dtype = result_dtype(frame.dtype, border, output_dtype)
    if frame.dtype.kind == "c":
        # OpenCV has no complex type: the real and imaginary parts are warped
        # alike (the interpolation is linear in the values, so this is exact)
        part = np.float32 if out_dtype.itemsize <= 8 else np.float64
        kwargs = {"order": order, "border": border, "output_dtype": part}
        result = np.empty(frame.shape, dtype=out_dtype) if dst is None else dst
        result.real = warp_frame(frame.real, matrix_xy, cval=cval, **kwargs)
        result.imag = warp_frame(frame.imag, matrix_xy, cval=0.0, **kwargs)
        return result
    # the working type: the input itself when OpenCV handles it and it is the
    # output type (OpenCV rounds and saturates), else float
    # 64-bit integers beyond float64's exact range (2**53) are warped as their
    # differences from the frame's minimum, added back in integer arithmetic
    offset = _integer_offset(frame)
    if offset:
        work = (frame.astype(np.uint64, copy=False) - np.uint64(offset % 2**64)).astype(np.float64)
        cval = float(cval) - offset
    elif frame.dtype == out_dtype and frame.dtype in _CV2_DTYPES:
        work = frame
    elif (
        out_dtype.kind == "f" and out_dtype in _CV2_DTYPES and frame.dtype.itemsize <= 2
    ):
        work = frame.astype(out_dtype)
    else:
        work = frame.astype(np.float64)
    h, w = frame.shape
    matrix_xy = np.asarray(matrix_xy, dtype=np.float64)
    # NaN borders: OpenCV would spread NaN into the last row/column through
    # zero-weight neighbours, so resample with replicated edges and mark the
    # pixels whose source is not fully inside the frame afterwards.
    direct = (
        dst is not None
        and work.dtype == out_dtype
        and dst.dtype == out_dtype
        and dst.shape == (h, w)
        and dst.flags.c_contiguous
    )
    result = cv2.warpAffine(
        np.ascontiguousarray(work),
        matrix_xy,
        (w, h),
        dst=dst if direct else None,
        flags=ORDERS[order],
        borderMode=cv2.BORDER_REPLICATE if border == "nan" else BORDERS[border],
        borderValue=float(cval),
    )
    if border == "nan":
        result[~_footprint((h, w), matrix_xy)] = np.nan
    if offset:
        result = _add_offset(result, offset, out_dtype)
    if result.dtype != out_dtype:
        if out_dtype.kind in "iu" and result.dtype.kind == "f":
            info = np.iinfo(out_dtype)
            result = np.clip(np.rint(result), info.min, info.max)
        result = result.astype(out_dtype)
    if dst is not None and not direct:
        dst[...] = result
        return dst
    return result


def _integer_offset(frame: np.ndarray) -> int:
    """The minimum of a 64-bit integer frame whose values float64 cannot hold
    exactly (above 2**53 in magnitude), else 0."""
    if frame.dtype.kind not in "iu" or frame.dtype.itemsize < 8 or frame.size == 0:
        return 0
    lo, hi = int(frame.min()), int(frame.max())
    return lo if max(abs(lo), abs(hi)) > 2**53 else 0


def _add_offset(result: np.ndarray, offset: int, out_dtype: np.dtype) -> np.ndarray:
    """``result + offset`` in ``out_dtype``: exact for integer outputs (rounded,
    clipped to the type's range), in float64 for float outputs."""
    if out_dtype.kind not in "iu":
        return result.astype(np.float64) + float(offset)
    info = np.iinfo(out_dtype)
    rel = np.clip(np.rint(result), float(int(info.min) - offset), float(int(info.max) - offset))
    rel = np.clip(rel, -(2.0**63), 2.0**63 - 1024).astype(np.int64)
    total = rel.view(np.uint64) + np.uint64(offset % 2**64)  # modulo 2**64: exact
    return total.view(np.int64).astype(out_dtype) if out_dtype.itemsize == 8 else total.astype(out_dtype)


def frames_shape(stack: Any) -> tuple[int, tuple[int, ...], tuple[int, int]]:
    shape = tuple(stack.shape)
    if len(shape) not in (3, 4):
        raise ValueError(
            f"expected a {STACK_AXES} or {CHANNEL_STACK_AXES} stack, got shape {shape}."
        )
    return shape[0], shape[1:-2], shape[-2:]


def warp_chunk(
    chunk: np.ndarray,
    mats: np.ndarray,
    *,
    order: int,
    border: str,
    cval: float,
    out_dtype: np.dtype,
    pool: Any,
    result: np.ndarray | None = None,
) -> np.ndarray:
    """Warp a (t, [C,] Y, X) chunk with matching (t, 2, 3) matrices into
    ``result`` (a new array by default; a numpy array of the chunk's shape
    and ``out_dtype`` is written frame by frame, without a copy)."""
    if result is None:
        result = np.empty(chunk.shape, dtype=out_dtype)
    extra = chunk.shape[1:-2]

    def one(t: int) -> None:
        for idx in np.ndindex(*extra):
            warp_frame(
                chunk[(t, *idx)],
                mats[t],
                order=order,
                border=border,
                cval=cval,
                output_dtype=out_dtype,
                dst=result[(t, *idx)],
            )

    if pool is None:
        for t in range(chunk.shape[0]):
            one(t)
    else:
        list(pool.map(one, range(chunk.shape[0])))
    return result


def apply_transforms(
    stack: Any,
    transforms: FrameTransforms | PiecewiseTransforms,
    *,
    order: int = APPLY_DEFAULTS.order,
    border: str = APPLY_DEFAULTS.border,
    cval: float = APPLY_DEFAULTS.cval,
    output_dtype: Any = APPLY_DEFAULTS.output_dtype,
    failed: str = APPLY_DEFAULTS.failed,
    out: Any = None,
    chunk_size: int = APPLY_DEFAULTS.chunk_size,
    workers: int | None = APPLY_DEFAULTS.workers,
    progress: ProgressCallback | None = None,
    options: ApplyOptions | None = None,
) -> Any:
    """Resample every frame of ``stack`` onto the reference.

    Parameters
    ----------
    stack : array-like, shape (T, Y, X) or (T, C, Y, X)
        Numpy array, memmap, h5py dataset or dask array. With a channel axis
        every channel of frame ``t`` gets transform ``t``. With
        :class:`~napari_stackalign.VolumeTransforms`: (T, Z, Y, X) or
        (T, C, Z, Y, X), each volume shifted once by (dz, dy, dx) with
        :func:`scipy.ndimage.shift` (order 3: cubic B-splines).
    transforms : FrameTransforms, VolumeTransforms or PiecewiseTransforms
        One transform per frame (``len(transforms) == T``). A
        :class:`~napari_stackalign.PiecewiseTransforms` (rigid plus residual
        field) is applied with one ``cv2.remap`` per frame instead.
    order : {0, 1, 3}
        Interpolation: nearest, bilinear (default) or bicubic.
    border : {"constant", "nan", "edge", "reflect"}
        What fills pixels that come from outside the frame: ``cval``, NaN
        (the output becomes float32 if it was an integer type), the nearest
        edge pixel, or a mirror image.
    cval : float
        Fill value for ``border="constant"``.
    output_dtype : dtype, optional
        Output type; by default the input's. Integer outputs are rounded and
        clipped to their range.
    failed : {"interpolate", "identity", "apply"}
        What becomes of a failed frame (``transforms.ok`` False): by default
        its transform is interpolated from the trustworthy frames (see
        :meth:`FrameTransforms.resolve_failed`); ``"identity"`` leaves it
        unshifted; ``"apply"`` applies its estimate anyway. A
        :class:`FailedFramesWarning` names the frames replaced; when no frame
        is trustworthy nothing is corrected and a
        :class:`~napari_stackalign.NoSignalWarning` says so.
    out : array-like, optional
        Where to write (numpy array, memmap, h5py or zarr dataset of the
        right shape). Written chunk by chunk.
    chunk_size : int
        Frames read, warped and written at a time.
    workers : int, optional
        Threads; all cores by default.
    progress : callable, optional
        ``progress(done, total, stage)``; may raise
        :class:`~napari_stackalign.core.Cancelled` to stop.
    options : ApplyOptions, optional
        All of ``order`` ... ``workers`` at once; an explicit keyword that
        differs from its default replaces the option.

    Returns
    -------
    array-like
        ``out`` if given; a lazy dask array for dask input; else a numpy array.
    """
    opts = ApplyOptions.from_call(options, locals())
    if isinstance(transforms, VolumeTransforms):
        from ..volume._apply import apply_volume_transforms

        return apply_volume_transforms(stack, transforms, opts=opts, out=out, progress=progress)
    n_frames, _, _ = frames_shape(stack)
    if len(transforms) != n_frames:
        raise ValueError(
            f"the stack has {n_frames} frames but there are {len(transforms)} transforms: "
            "use transforms estimated on a stack with the same number of frames."
        )
    out_dtype = result_dtype(np.dtype(stack.dtype), opts.border, opts.output_dtype)
    if isinstance(transforms, PiecewiseTransforms):
        return apply_piecewise(stack, transforms, opts, out_dtype, out=out, progress=progress)
    mats = applicable_matrices(transforms, tuple(stack.shape[-2:]), opts.failed)
    kwargs = {
        "order": opts.order,
        "border": opts.border,
        "cval": opts.cval,
        "out_dtype": out_dtype,
    }
    chunk_size = opts.chunk_size

    if out is None and is_dask(stack):
        frames = stack.rechunk(
            {0: chunk_size, **{ax: -1 for ax in range(1, stack.ndim)}}
        )

        def block(chunk: np.ndarray, block_info: dict | None = None) -> np.ndarray:
            start = block_info[0]["array-location"][0][0]
            return warp_chunk(
                chunk, mats[start : start + chunk.shape[0]], pool=None, **kwargs
            )

        return da.map_blocks(block, frames, dtype=out_dtype)

    if out is None:
        out = np.empty(tuple(stack.shape), dtype=out_dtype)
    elif tuple(out.shape) != tuple(stack.shape):
        raise ValueError(
            f"out has shape {tuple(out.shape)}, expected {tuple(stack.shape)}."
        )
    direct = (
        type(out) in (np.ndarray, np.memmap)
        and out.dtype == out_dtype
        and out.flags.c_contiguous
    )
    report(progress, 0, n_frames, "apply")
    with thread_pool(default_workers(opts.workers)) as pool:
        for start in range(0, n_frames, chunk_size):
            stop = min(start + chunk_size, n_frames)
            chunk = np.asarray(stack[start:stop])
            if direct:
                # numpy output: OpenCV writes each frame in place
                warp_chunk(
                    chunk, mats[start:stop], pool=pool, result=out[start:stop], **kwargs
                )
            else:
                out[start:stop] = warp_chunk(
                    chunk, mats[start:stop], pool=pool, **kwargs
                )
            report(progress, stop, n_frames, "apply")
    return out


class FailedFramesWarning(UserWarning):
    """Some frames' estimates were not applied as estimated (they failed)."""


def applicable_matrices(
    transforms: FrameTransforms, frame_shape: tuple[int, int], failed: str
) -> np.ndarray:
    """The (T, 2, 3) OpenCV matrices to warp with: failed frames resolved by
    ``failed`` (a warning names them), every matrix finite and moving the
    frame by less than its own size.

    Raises
    ------
    ValueError
        When a transform would move a frame entirely out of view (it cannot
        belong to this stack), or a NaN estimate is to be applied.
    """
    resolved, replaced = transforms.resolve_failed(failed)
    if replaced.size and transforms.ok.any():
        what = (
            "interpolated from the trustworthy frames"
            if failed == "interpolate"
            else "left unshifted"
        )
        warnings.warn(
            f"{replaced.size} of {len(transforms)} frames failed and were {what} (failed={failed!r}):\n"
            + transforms.failure_summary(),
            FailedFramesWarning,
            stacklevel=3,
        )
    mats = resolved.to_cv2_matrices()
    height, width = (int(n) for n in frame_shape)
    centre = np.array([(width - 1) / 2.0, (height - 1) / 2.0, 1.0])
    moved = mats @ centre - centre[:2]  # where the frame centre goes, (x, y)
    outside = (np.abs(moved[:, 0]) >= width) | (np.abs(moved[:, 1]) >= height)
    if outside.any():
        frames = np.flatnonzero(outside)
        t = int(frames[0])
        raise ValueError(
            f"the transform of frame {t} moves it by ({moved[t, 1]:.4g}, {moved[t, 0]:.4g}) px, more than the frame "
            f"itself ({height}x{width}); {frames.size} frame(s) in all. These transforms do not fit this stack."
        )
    return mats


def coverage_mask(
    shape: tuple[int, int], transforms: FrameTransforms, frame: int
) -> np.ndarray:
    """Boolean map of the registered pixels that frame ``frame`` fully covers.

    A pixel counts as covered when its bilinear sample comes entirely from
    inside the input frame (so interpolated borders are not counted).
    """
    return _footprint(tuple(shape), transforms[frame].to_cv2_matrices()[0])


def _footprint(shape: tuple[int, int], matrix_xy: np.ndarray) -> np.ndarray:
    """Pixels whose bilinear source lies entirely inside a frame of ``shape``."""
    ones = np.ones(shape, dtype=np.float32)
    warped = cv2.warpAffine(
        ones,
        matrix_xy,
        (shape[1], shape[0]),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0.0,
    )
    return warped >= 1.0 - 1e-3
