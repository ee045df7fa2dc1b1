"""How well is a stack aligned? Figures for before/after comparisons.

Three measures, each computed chunk by chunk on any frame-indexable stack
(numpy, memmap, h5py, dask), so they work on stacks larger than memory:

- :func:`sharpness` of the mean image. Averaging a drifting stack blurs it;
  averaging a well registered one does not. The measure is the *normalised
  gradient energy*: the mean squared difference between neighbouring
  pixels (after a 1 px Gaussian smoothing that keeps pixel noise out of
  it) divided by the squared mean intensity (1/px²). Registration
  moves intensity around without changing the mean, so a sharper mean
  image scores higher; multiplying the intensities by a constant does not
  change the score.
- :func:`frame_correlations`: each frame's Pearson correlation with a
  reference (by default the mean image). Registered frames agree with their
  mean; drifting frames do not.
- :func:`residual_motion`: each frame's remaining shift against the
  reference, measured by phase correlation with sub-pixel refinement.

:func:`quality_report` computes all of them at once (the Compare widget and
``stackalign demo`` use it). Core code: never imports napari or Qt.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage as ndi
from scipy.signal import windows
from skimage.registration import phase_cross_correlation

from ...progress import ProgressCallback, report
from ..apply import coverage_mask
from ..average import common_rectangle
from ..checks import check_chunk_size, check_mask, check_roi, check_stack
from ..frames import CHUNK_FRAMES

__all__ = [
    "common_region",
    "frame_correlations",
    "mean_image",
    "quality_report",
    "region_mask",
    "residual_motion",
    "sharpness",
]


# --------------------------------------------------------------------- helpers
def region_mask(
    shape: tuple[int, int],
    *,
    roi: Any = None,
    mask: Any = None,
) -> tuple[tuple[slice, slice], np.ndarray | None]:
    """Combine an optional rectangle and an optional mask.

    Parameters
    ----------
    shape : (int, int)
        Frame shape (rows, cols).
    roi : (row_start, row_stop, col_start, col_stop), optional
        Rectangle to keep.
    mask : array_like of bool, shape ``shape``, optional
        True where pixels are compared.

    Returns
    -------
    window : (slice, slice)
        The bounding rectangle to read from each frame.
    inside : ndarray of bool or None
        The mask cropped to ``window`` (None when every pixel in it counts).

    Raises
    ------
    ValueError
        If the ROI does not fit, the mask has the wrong shape or selects
        fewer than 4 pixels.
    """
    h, w = int(shape[0]), int(shape[1])
    r0, r1, c0, c1 = (0, h, 0, w) if roi is None else check_roi(roi, (h, w))
    window = (slice(r0, r1), slice(c0, c1))
    inside = None
    if mask is not None:
        inside = check_mask(mask, (h, w), min_pixels=0)[window]
        if inside.all():
            inside = None
    count = (r1 - r0) * (c1 - c0) if inside is None else int(inside.sum())
    if count < 4:
        raise ValueError(
            f"the ROI and mask select {count} pixel(s): select at least 4 pixels (True in the mask = compared)."
        )
    return window, inside


def common_region(shape: tuple[int, int], transforms: Any) -> tuple[int, int, int, int]:
    """The largest rectangle that every registered frame fully covers.

    Registration leaves an empty margin where a frame was moved away from
    the edge; comparing on this rectangle keeps that margin from counting
    against the registered stack (and compares the unregistered stack on
    the same pixels).

    Parameters
    ----------
    shape : (int, int)
        Frame shape (rows, cols).
    transforms : FrameTransforms
        The transforms that were applied.

    Returns
    -------
    (row_start, row_stop, col_start, col_stop)

    Raises
    ------
    ValueError
        If no pixel is covered by every frame (the motion is larger than the
        frame).
    """
    h, w = int(shape[0]), int(shape[1])
    count = np.zeros((h, w), dtype=np.int32)
    for t in range(len(transforms)):
        count += coverage_mask((h, w), transforms, t)
    r0, r1, c0, c1 = common_rectangle(count, len(transforms))
    if r1 - r0 < 2 or c1 - c0 < 2:
        raise ValueError(
            "no area is covered by every registered frame (the motion is as large as the frame): "
            "compare on the whole frame instead."
        )
    return int(r0), int(r1), int(c0), int(c1)


def _chunks(n: int, chunk_size: int):
    chunk_size = check_chunk_size(chunk_size)
    for start in range(0, n, chunk_size):
        yield start, min(start + chunk_size, n)


# ------------------------------------------------------------------ sharpness
SHARPNESS_NORMALIZATIONS = ("mean", "variance")


def sharpness(image: Any, *, mask: Any = None, normalize: str = "mean", sigma: float = 1.0) -> float:
    """Normalised gradient energy of a 2-D image (higher is sharper).

    The image is first smoothed with a Gaussian of ``sigma`` px, then the
    mean squared forward difference along rows and columns,
    ``G = mean((I[y+1,x]-I[y,x])²) + mean((I[y,x+1]-I[y,x])²)``, divided by
    the image's squared mean intensity (``normalize="mean"``, default) or by
    its variance (``normalize="variance"``). Units: 1/px².

    Parameters
    ----------
    image : array_like, shape (Y, X)
        Typically the mean image of a stack.
    mask : array_like of bool, shape (Y, X), optional
        Only pixels where the mask is True (and both ends of a difference)
        count. NaN pixels (for example outside a registered mean image) are
        always left out.
    normalize : {"mean", "variance"}
        ``"mean"``: divide by ``mean(I)²``. Registration moves intensity
        around but keeps the mean, so the mean image of a registered stack
        always scores higher than the blurred mean of the same stack
        unregistered, whatever its content (a blurred periodic lattice
        included). Needs a positive mean (counts, intensities).
        ``"variance"``: divide by ``var(I)``; also ignores an intensity
        offset and works for zero-mean data, but a blur that only lowers
        the contrast of a single spatial frequency (a lattice) goes unseen.
    sigma : float
        Gaussian smoothing (px) before the differences; 0 for none. Pixel
        noise dominates the finest differences of a noisy mean image, and
        any sub-pixel resampling (registration itself) smooths that noise a
        little; without this smoothing a registered low-SNR stack could
        score *lower* than the blurred original. ``sigma=1`` measures
        structure from about 2 px up and keeps the comparison fair (tested
        down to SNR 0.3).

    Returns
    -------
    float
        The sharpness; 0.0 for a constant image. It does not change when
        the intensities are multiplied by a constant. Noise raises it, so
        compare mean images of the same data (before and after
        registration), not unrelated images.

    Raises
    ------
    ValueError
        If the image is not 2-D, has fewer than 2x2 finite pixels, if
        ``normalize`` is unknown, ``sigma`` is negative, or if ``normalize="mean"`` and the mean is
        not positive (use ``normalize="variance"`` then).

    Notes
    -----
    Known values (``sigma=0``): a ramp ``I = a * col`` over ``W`` columns scores
    ``4 / (W - 1)²`` with ``"mean"`` and ``12 / (W² - 1)`` with
    ``"variance"``; white noise of standard deviation ``s`` and mean ``m``
    scores ``4 s² / m²`` and ``4``.
    """
    if normalize not in SHARPNESS_NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {SHARPNESS_NORMALIZATIONS}, got {normalize!r}.")
    if not np.isfinite(sigma) or sigma < 0:
        raise ValueError(f"sigma must be 0 (no smoothing) or a positive number of pixels, got {sigma!r}.")
    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 2:
        raise ValueError(f"sharpness needs a 2-D image, got shape {img.shape}: pass the mean image of a stack.")
    valid = np.isfinite(img)
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        if m.shape != img.shape:
            raise ValueError(f"mask has shape {m.shape} but the image is {img.shape}.")
        valid &= m
    if img.shape[0] < 2 or img.shape[1] < 2 or valid.sum() < 4:
        raise ValueError("sharpness needs an image with at least 2x2 finite pixels.")
    values = img[valid]
    scale = float(np.abs(values).max())
    var = float(values.var())
    if var <= (1e-12 * scale) ** 2:
        return 0.0
    if normalize == "mean":
        mean = float(values.mean())
        if mean <= 1e-6 * scale:
            raise ValueError(
                f"the image's mean intensity is {mean:.3g}, not positive: use normalize='variance' for "
                "zero-mean or background-subtracted data."
            )
        denom = mean * mean
    else:
        denom = var
    filled = np.where(valid, img, 0.0)
    if sigma > 0:
        weight = valid.astype(np.float64)
        num = ndi.gaussian_filter(filled, float(sigma), mode="nearest")
        den = ndi.gaussian_filter(weight, float(sigma), mode="nearest")
        filled = np.where(valid, num / np.maximum(den, 1e-12), 0.0)
    gy = np.diff(filled, axis=0)
    vy = valid[1:, :] & valid[:-1, :]
    gx = np.diff(filled, axis=1)
    vx = valid[:, 1:] & valid[:, :-1]
    energy = 0.0
    if vy.any():
        energy += float(np.mean(gy[vy] ** 2))
    if vx.any():
        energy += float(np.mean(gx[vx] ** 2))
    return energy / denom


# ----------------------------------------------------------------- mean image
def mean_image(
    stack: Any,
    *,
    roi: Any = None,
    chunk_size: int = CHUNK_FRAMES,
    progress: ProgressCallback | None = None,
) -> np.ndarray:
    """Pixel mean of every frame (float32), read chunk by chunk.

    NaN pixels are skipped; a pixel that is NaN in every frame stays NaN.

    Parameters
    ----------
    stack : array-like, shape (T, Y, X)
        Numpy array, memmap, h5py dataset or dask array.
    roi : (row_start, row_stop, col_start, col_stop), optional
        Only average this rectangle (the result has its shape).
    chunk_size : int
        Frames read at a time.
    progress : callable, optional
        ``progress(done, total, stage)``.

    Returns
    -------
    ndarray of float32, shape (Y, X) or the ROI's shape
    """
    n, h, w = check_stack(stack, what="mean_image")
    window, _ = region_mask((h, w), roi=roi)
    total = None
    count = None
    report(progress, 0, n, "mean image")
    for start, stop in _chunks(n, chunk_size):
        chunk = np.asarray(stack[start:stop, window[0], window[1]], dtype=np.float64)
        finite = np.isfinite(chunk)
        if finite.all():
            part, cnt = chunk.sum(axis=0), None
        else:
            part, cnt = np.where(finite, chunk, 0.0).sum(axis=0), finite.sum(axis=0)
        if total is None:
            total = part
            count = np.full(part.shape, 0, dtype=np.int64)
        else:
            total += part
        count += (stop - start) if cnt is None else cnt
        report(progress, stop, n, "mean image")
    with np.errstate(invalid="ignore", divide="ignore"):
        result = total / count
    result[count == 0] = np.nan
    return result.astype(np.float32)


def _reference_image(stack: Any, reference: Any, window: tuple[slice, slice], shape, chunk_size, progress):
    """The reference cropped to ``window``: the mean image, a frame index or an array."""
    if reference is None:
        r = window
        return mean_image(
            stack, roi=(r[0].start, r[0].stop, r[1].start, r[1].stop), chunk_size=chunk_size, progress=progress
        ).astype(np.float64)
    if isinstance(reference, (int, np.integer)):
        n = int(stack.shape[0])
        if not -n <= int(reference) < n:
            raise ValueError(f"reference frame {int(reference)} does not exist: the stack has {n} frames.")
        return np.asarray(stack[int(reference)], dtype=np.float64)[window]
    ref = np.asarray(reference, dtype=np.float64)
    if ref.shape != tuple(shape):
        raise ValueError(
            f"reference has shape {ref.shape} but frames are {tuple(shape)}: pass a full-frame image or a frame index."
        )
    return ref[window]


# --------------------------------------------------------------- correlation
def frame_correlations(
    stack: Any,
    reference: Any = None,
    *,
    roi: Any = None,
    mask: Any = None,
    chunk_size: int = CHUNK_FRAMES,
    progress: ProgressCallback | None = None,
) -> np.ndarray:
    """Pearson correlation of every frame with a reference image.

    Parameters
    ----------
    stack : array-like, shape (T, Y, X)
        Numpy array, memmap, h5py dataset or dask array.
    reference : None, int or array_like (Y, X)
        None (default): the stack's mean image (an extra pass over the
        stack); an int: that frame; an array: that image.
    roi : (row_start, row_stop, col_start, col_stop), optional
        Only compare this rectangle.
    mask : array_like of bool (Y, X), optional
        Only compare pixels where it is True.
    chunk_size : int
        Frames read at a time.
    progress : callable, optional
        ``progress(done, total, stage)``.

    Returns
    -------
    ndarray of float64, shape (T,)
        Correlations in [-1, 1]. Pixels that are NaN in the frame or the
        reference are left out; a frame (or reference) that is constant over
        the compared pixels has no defined correlation and gets NaN.
    """
    n, h, w = check_stack(stack, what="frame_correlations")
    window, inside = region_mask((h, w), roi=roi, mask=mask)
    ref = _reference_image(stack, reference, window, (h, w), chunk_size, progress)
    base = np.isfinite(ref)
    if inside is not None:
        base &= inside
    if base.sum() < 4:
        raise ValueError("the reference has fewer than 4 finite pixels in the compared region.")
    ref_vals = ref[base]
    result = np.full(n, np.nan, dtype=np.float64)
    report(progress, 0, n, "correlation")
    for start, stop in _chunks(n, chunk_size):
        chunk = np.asarray(stack[start:stop, window[0], window[1]], dtype=np.float32)
        flat = chunk[:, base].astype(np.float64)
        finite = np.isfinite(flat)
        if finite.all():
            f = flat - flat.mean(axis=1, keepdims=True)
            r = ref_vals - ref_vals.mean()
            num = f @ r
            den = np.sqrt(np.einsum("ij,ij->i", f, f) * float(r @ r))
            with np.errstate(invalid="ignore", divide="ignore"):
                corr = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
            result[start:stop] = corr
        else:
            for k in range(stop - start):
                ok = finite[k]
                if ok.sum() < 4:
                    continue
                a = flat[k, ok] - flat[k, ok].mean()
                b = ref_vals[ok] - ref_vals[ok].mean()
                den = np.sqrt(float(a @ a) * float(b @ b))
                if den > 0:
                    result[start + k] = float(a @ b) / den
        report(progress, stop, n, "correlation")
    return np.clip(result, -1.0, 1.0)


# ----------------------------------------------------------- residual motion
def residual_motion(
    stack: Any,
    reference: Any = None,
    *,
    roi: Any = None,
    upsample_factor: int = 20,
    chunk_size: int = CHUNK_FRAMES,
    progress: ProgressCallback | None = None,
) -> np.ndarray:
    """Each frame's remaining (dy, dx) shift against a reference.

    Measured with :func:`skimage.registration.phase_cross_correlation`
    (sub-pixel to ``1 / upsample_factor`` px) on Hann-windowed images with
    plain (not phase-normalised) cross-correlation, which is not pulled to
    zero by the edges of a cropped region; the reference's spectrum is
    computed once. The sign is the package's: the correction that would move
    the frame onto the reference.

    Parameters
    ----------
    stack : array-like, shape (T, Y, X)
        Numpy array, memmap, h5py dataset or dask array.
    reference : None, int or array_like (Y, X)
        None (default): the mean image; an int: that frame; an array.
        The mean of a stack that drifts further than its features are wide
        is blurred and pulls every measured shift towards zero; pass a frame
        index to measure such a stack's raw motion.
    roi : (row_start, row_stop, col_start, col_stop), optional
        Only compare this rectangle (for example to leave out a static
        label or the empty margin of a registered stack).
    upsample_factor : int
        Sub-pixel precision (at least 1).
    chunk_size : int
        Frames read at a time.
    progress : callable, optional
        ``progress(done, total, stage)``.

    Returns
    -------
    ndarray of float64, shape (T, 2)
        NaN rows for frames that are constant or not finite.
    """
    n, h, w = check_stack(stack, what="residual_motion")
    if int(upsample_factor) < 1:
        raise ValueError(f"upsample_factor must be at least 1, got {upsample_factor!r}.")
    window, _ = region_mask((h, w), roi=roi)
    ref = _reference_image(stack, reference, window, (h, w), chunk_size, progress)
    ref = np.where(np.isfinite(ref), ref, np.nanmean(ref) if np.isfinite(ref).any() else 0.0)
    ref = ref - ref.mean()
    shifts = np.full((n, 2), np.nan, dtype=np.float64)
    if not np.any(ref):
        return shifts
    window2d = np.outer(windows.hann(ref.shape[0], sym=False), windows.hann(ref.shape[1], sym=False))
    ref_f = np.fft.fft2(ref * window2d)
    report(progress, 0, n, "residual motion")
    for start, stop in _chunks(n, chunk_size):
        chunk = np.asarray(stack[start:stop, window[0], window[1]], dtype=np.float64)
        for k in range(stop - start):
            frame = chunk[k]
            finite = np.isfinite(frame)
            if not finite.any():
                continue
            frame = np.where(finite, frame, frame[finite].mean())
            frame = frame - frame.mean()
            if not np.any(frame):
                continue
            shift, _, _ = phase_cross_correlation(
                ref_f,
                np.fft.fft2(frame * window2d),
                upsample_factor=int(upsample_factor),
                space="fourier",
                normalization=None,
            )
            shifts[start + k] = shift
        report(progress, stop, n, "residual motion")
    return shifts


# ------------------------------------------------------------------- report
def quality_report(
    stack: Any,
    *,
    roi: Any = None,
    mask: Any = None,
    motion: bool = False,
    motion_reference: int | None = None,
    normalize: str | None = None,
    chunk_size: int = CHUNK_FRAMES,
    progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """Sharpness of the mean image and frame-to-mean correlations, in one go.

    Parameters
    ----------
    stack : array-like, shape (T, Y, X)
        Numpy array, memmap, h5py dataset or dask array.
    roi : (row_start, row_stop, col_start, col_stop), optional
        Only measure this rectangle.
    mask : array_like of bool (Y, X), optional
        Only measure where it is True.
    motion : bool
        Also measure each frame's residual shift (:func:`residual_motion`;
        one FFT per frame).
    motion_reference : int, optional
        Frame to measure the residual shifts against; by default the mean
        image (which hides the motion of a stack that drifts further than
        its features are wide: see :func:`residual_motion`).
    normalize : {"mean", "variance"}, optional
        Sharpness normalisation (see :func:`sharpness`); by default
        ``"mean"`` when the mean image's mean is positive, else
        ``"variance"``.
    chunk_size : int
        Frames read at a time.
    progress : callable, optional
        ``progress(done, total, stage)``.

    Returns
    -------
    dict
        ``n_frames``, ``frame_shape``, ``roi``, ``mean_image`` (float32, the
        ROI's shape), ``sharpness`` (of the mean image, see
        :func:`sharpness`), ``sharpness_normalization``,
        ``correlations`` (T,), ``correlation_mean``, ``correlation_median``,
        ``correlation_min``; with ``motion`` also ``residual_shifts`` (T, 2)
        and ``residual_rms_px`` (RMS length of the shifts after removing
        their median, i.e. a constant offset).
    """
    n, h, w = check_stack(stack, what="quality_report")
    window, inside = region_mask((h, w), roi=roi, mask=mask)
    r = (window[0].start, window[0].stop, window[1].start, window[1].stop)
    mean = mean_image(stack, roi=r, chunk_size=chunk_size, progress=progress)
    full_ref = np.full((h, w), np.nan, dtype=np.float64)
    full_ref[window] = mean
    corr = frame_correlations(stack, full_ref, roi=r, mask=mask, chunk_size=chunk_size, progress=progress)
    finite = corr[np.isfinite(corr)]
    if normalize is None:
        vals = mean[np.isfinite(mean) if inside is None else (np.isfinite(mean) & inside)]
        positive = vals.size > 0 and float(vals.mean()) > 1e-6 * float(np.abs(vals).max() or 1.0)
        normalize = "mean" if positive else "variance"
    result: dict[str, Any] = {
        "n_frames": n,
        "frame_shape": (h, w),
        "roi": r,
        "mean_image": mean,
        "sharpness": sharpness(mean, mask=inside, normalize=normalize),
        "sharpness_normalization": normalize,
        "correlations": corr,
        "correlation_mean": float(finite.mean()) if finite.size else float("nan"),
        "correlation_median": float(np.median(finite)) if finite.size else float("nan"),
        "correlation_min": float(finite.min()) if finite.size else float("nan"),
    }
    if motion:
        ref = full_ref if motion_reference is None else int(motion_reference)
        shifts = residual_motion(stack, ref, roi=r, chunk_size=chunk_size, progress=progress)
        ok = np.all(np.isfinite(shifts), axis=1)
        if ok.any():
            centred = shifts[ok] - np.median(shifts[ok], axis=0)
            rms = float(np.sqrt(np.mean(np.sum(centred**2, axis=1))))
        else:
            rms = float("nan")
        result["residual_shifts"] = shifts
        result["residual_rms_px"] = rms
    return result
