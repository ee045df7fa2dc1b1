"""All-pairs Fourier-masked registration and averaging (low-dose, atomic resolution).

The method of the rigidregistration package (Savitzky et al., "Image
registration of low signal-to-noise cryo-STEM data", Ultramicroscopy 2018),
rebuilt to be fast, to work for any frame size and any stack of 2 or more
frames, and never to hang:

1. every frame's spectrum is computed once: mean-subtracted, real-space Hann
   window, real FFT, weighted by a Fourier mask
   (:func:`~napari_stackalign.core.pairwise.fourier_mask`) and kept on
   the band of frequencies the mask does not zero
   (:mod:`~napari_stackalign.core.pairwise._spectra`);
2. every pair i < j is correlated (plain, mutual or phase correlation) and its
   peak located by brightest pixel, Gaussian fit of the brightest distinct
   peaks, or upsampled DFT (:mod:`~napari_stackalign.core.pairwise._peaks`),
   in vectorised batches on a thread pool;
3. outlier pairs are found by transitivity and/or matrix smoothness, and
   whole frames can be marked bad (:mod:`~napari_stackalign.core.pairwise._outliers`);
4. per-frame shifts solve a weighted least-squares problem over the valid
   pairs, aligned to the mean position (:mod:`~napari_stackalign.core.pairwise._solve`);
5. the frames are averaged with Fourier shifts or the shared warp and cropped
   to the area every frame covers (:mod:`~napari_stackalign.core.pairwise._average`).

Shift matrices and sign conventions
-----------------------------------
``dy[i, j], dx[i, j]`` (rows, columns) is the peak of the correlation of
frames i and j: the displacement of frame j's content relative to frame i,
``p_j - p_i``. Equivalently it is the correction that moves frame i onto
frame j (``skimage.registration.phase_cross_correlation(frame_j, frame_i)``).
The matrices are skew-symmetric (``dy[j, i] = -dy[i, j]``) and consistent
data satisfy ``dy[i, k] + dy[k, j] = dy[i, j]``.

This is exactly the rigidregistration package's ``X_ij`` (its axis 0, rows)
and ``Y_ij`` (axis 1, columns): ``X_ij == dy`` and ``Y_ij == dx``
(:meth:`PairwiseResult.reference_matrices`). Its final ``shifts_x, shifts_y``
(row means of the corrected matrices) correspond to ``transforms.dy,
transforms.dx``.

The per-frame result is a :class:`~napari_stackalign.FrameTransforms` in the
package's convention: ``dy, dx`` is the correction that moves frame t onto
the reference, here the mean position of the frames that are ``ok``
(``dy_t = c_t`` with ``dy[i, j] = c_i - c_j``).
"""

from __future__ import annotations

import warnings
from concurrent.futures import as_completed
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import fft as sfft
from threadpoolctl import threadpool_limits

from ...progress import ProgressCallback, report
from ...transforms import NoSignalWarning
from ..workers import default_workers, thread_pool
from ._automask import auto_masks
from ._decide import PairMeasurement, check_bad_frames
from ._masks import fourier_mask
from ._options import PAIRWISE_DEFAULTS, PairwiseOptions, canonical_mask_kind
from ._peaks import OVERSAMPLE, coarse_grid, find_pair_peaks
from ._result import PairwiseResult, check_pairwise_stack, make_result, outlier_record
from ._spectra import BandSpectra, band_sparse, compute_band_spectra, windowed_spectra

__all__ = ["PairwiseResult", "pairwise_spectra_for", "register_pairwise"]

#: ``mask="auto"`` on a stack without signal in any frequency: the band measured (every frame is then flagged)
AUTO_FALLBACK_N = 4.0

#: ``mask="auto"``: every frame's spectrum is kept (made once) when they fit in this many bytes
KEEP_SPECTRA_BYTES = 256 * 2**20

#: ``maxima="newton"`` on the ``"auto"`` choice mask (one dominant peak, no Bragg peaks): the coarse map
#: samples the band at about its Nyquist rate (a lattice's many near-equal peaks need the finer default)
CHOICE_OVERSAMPLE = 1.0

#: a full-size map is made instead of the coarse one when the coarse grid holds more of the padded grid
_FULL_MAP_SHARE = 0.45


# -------------------------------------------------------------- spectra
def _mask_for(
    opts: PairwiseOptions, stack: Any, frame_shape: tuple[int, int], workers: int = 1
) -> tuple[np.ndarray, np.ndarray | None, tuple[int, int], dict[str, Any], np.ndarray | None]:
    """The mask the peaks are found on, the precision mask of ``maxima="newton"``
    (None otherwise), the padded shape, the masks' parameters, and the frames'
    spectra when the ``"auto"`` mask made them (so they are not made twice).

    ``"auto"`` with ``"newton"``: the choice mask, then the precision mask;
    with the other peak finders: the precision mask alone. A fixed mask is
    both."""
    newton = opts.maxima == "newton"
    if isinstance(opts.mask, str):
        padded = (sfft.next_fast_len(frame_shape[0]), sfft.next_fast_len(frame_shape[1], real=True))
        if canonical_mask_kind(opts.mask) == "auto":
            size = int(stack.shape[0]) * padded[0] * (padded[1] // 2 + 1) * 8
            full = windowed_spectra(stack, padded, workers=workers) if size <= KEEP_SPECTRA_BYTES else None
            auto = auto_masks(stack, padded, full)
            info = {"mask": "auto", "n": None, "n2": None, "theta": None, "auto": auto.info}
            if auto.info["signal"] <= 0:
                # no frequency carries signal: measure on the fixed default band, flag every frame later
                half = fourier_mask(padded, "hann", AUTO_FALLBACK_N)
                return half, (half if newton else None), padded, info, full
            if newton:
                return auto.choice, auto.precision, padded, info, full
            return auto.precision, None, padded, info, full
        half = fourier_mask(padded, opts.mask, opts.n, n2=opts.n2, theta=opts.theta)
        n2 = None if opts.n2 is None else float(opts.n2)
        info = {"mask": opts.mask, "n": float(opts.n), "n2": n2, "theta": float(opts.theta)}
        return half, (half if newton else None), padded, info, None
    half = fourier_mask(frame_shape, "user", user_mask=np.asarray(opts.mask))
    info = {"mask": "user", "n": None, "n2": None, "theta": None}
    return half, (half if newton else None), frame_shape, info, None


def _bragg_in_choice(auto: dict[str, Any]) -> bool:
    """Whether the ``"auto"`` choice mask holds some of the Bragg peaks found."""
    if not auto.get("periodic"):
        return False
    cutoff = auto.get("choice_cutoff")
    radii = [float(np.hypot(fy, fx)) for fy, fx in auto.get("bragg", [])]
    return cutoff is None or any(r <= cutoff for r in radii)


def pairwise_spectra_for(
    stack: Any,
    options: PairwiseOptions,
    *,
    workers: int | None = None,
    progress: ProgressCallback | None = None,
) -> tuple[BandSpectra, np.ndarray, dict[str, Any]]:
    """Band spectra of every frame of ``stack`` (the first step of
    :func:`register_pairwise`, also used by the preview), with the mask and
    the correlation of ``options``.

    Returns ``(spectra, mask_half, mask_info)``; for the ``"auto"`` mask
    ``mask_half`` is the choice mask.
    """
    _, h, w = check_pairwise_stack(stack)
    nthreads = default_workers(workers)
    half, precision, padded, info, full = _mask_for(options, stack, (h, w), nthreads)
    spec = compute_band_spectra(
        stack, half, padded, correlation=options.correlation, precision_half=precision, full_spectra=full,
        workers=nthreads, progress=progress,
    )
    # the auto choice mask has one dominant peak unless Bragg peaks lie inside it
    auto = info.get("auto")
    spec.single_peak = auto is not None and auto["signal"] > 0 and not _bragg_in_choice(auto)
    if spec.precision is not None and auto is not None and _bragg_in_choice(auto):
        # the choice band holds Bragg peaks: its pairs are already guarded and sub-pixel, and the
        # precision mask's many near peaks (several atoms per cell) would pull a frame onto the wrong one
        spec.precision = band_sparse(spec)
    return spec, half, info


# ------------------------------------------------------------ measuring
@dataclass(frozen=True)
class _PairPlan:
    """The pairs to correlate and how they are batched."""

    pi: np.ndarray
    pj: np.ndarray
    grid: tuple[int, int]
    chunk: int
    batch: int


def _plan_pairs(spec: BandSpectra, workers: int, oversample: float = OVERSAMPLE) -> _PairPlan:
    n = spec.spectra.shape[0]
    grid = coarse_grid(spec, oversample)
    hp, wp = spec.padded
    if grid[0] * grid[1] > _FULL_MAP_SHARE * hp * wp:
        grid = (hp, wp)
    pi_all, pj_all = np.triu_indices(n, 1)
    use = spec.usable[pi_all] & spec.usable[pj_all]
    pi_all, pj_all = pi_all[use], pj_all[use]
    total = pi_all.size
    # maps are made `chunk` pairs at a time (about 64 MB per thread); a task
    # holds up to 128 pairs so that their peak fits run in large batches
    per_map = grid[0] * grid[1] * 12
    chunk = int(np.clip(64e6 / max(per_map, 1), 2, 64))
    batch = int(min(128, max(chunk, -(-total // (4 * workers)))))
    return _PairPlan(pi=pi_all, pj=pj_all, grid=grid, chunk=chunk, batch=batch)


def _peaks_on_threads(
    spec: BandSpectra, opts: PairwiseOptions, plan: _PairPlan, workers: int, progress: ProgressCallback | None
) -> dict[str, np.ndarray]:
    """Every planned pair's peak (flat arrays in plan order), batches on a thread pool."""
    total = plan.pi.size
    batch = plan.batch
    out = {k: np.full(total, np.nan) for k in ("dy", "dx", "quality", "second")}
    out["fit_ok"] = np.zeros(total, dtype=bool)
    report(progress, 0, total, "pairs")
    starts = list(range(0, total, batch))

    def work(start: int) -> tuple[int, Any]:
        sl = slice(start, start + batch)
        return start, find_pair_peaks(spec, plan.pi[sl], plan.pj[sl], opts, plan.grid, chunk=plan.chunk)

    done = 0
    pool = thread_pool(workers)
    # the pairs run in parallel threads; multi-threaded BLAS inside each of
    # their many small matrix products only adds synchronisation (5-20x slower)
    with threadpool_limits(limits=1, user_api="blas"):
        try:
            futures = [pool.submit(work, s) for s in starts]
            for fut in as_completed(futures):
                start, res = fut.result()
                sl = slice(start, start + res.dy.size)
                out["dy"][sl], out["dx"][sl] = res.dy, res.dx
                out["quality"][sl], out["second"][sl] = res.quality, res.second
                out["fit_ok"][sl] = res.fit_ok
                done += res.dy.size
                report(progress, done, total, "pairs")
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
    return out


def _pair_matrices(n: int, pi: np.ndarray, pj: np.ndarray, out: dict[str, np.ndarray]) -> PairMeasurement:
    """The flat per-pair results as (T, T) matrices (skew-symmetric shifts, symmetric rest)."""
    mats: dict[str, np.ndarray] = {}
    for key, fill, diag in (("dy", np.nan, 0.0), ("dx", np.nan, 0.0), ("quality", np.nan, np.nan), ("second", np.nan, np.nan)):
        m = np.full((n, n), fill)
        sign = -1.0 if key in ("dy", "dx") else 1.0
        m[pi, pj] = out[key]
        m[pj, pi] = sign * out[key]
        np.fill_diagonal(m, diag)
        mats[key] = m
    fit = np.zeros((n, n), dtype=bool)
    fit[pi, pj] = out["fit_ok"]
    fit[pj, pi] = out["fit_ok"]
    measured = np.zeros((n, n), dtype=bool)
    finite = np.isfinite(out["dy"]) & np.isfinite(out["dx"])
    measured[pi[finite], pj[finite]] = True
    measured[pj[finite], pi[finite]] = True
    return PairMeasurement(
        dy=mats["dy"], dx=mats["dx"], quality=mats["quality"], peak_ratio=mats["second"], fit_ok=fit, measured=measured
    )


def _measure(
    spec: BandSpectra, opts: PairwiseOptions, workers: int, progress: ProgressCallback | None
) -> tuple[PairMeasurement, tuple[int, int]]:
    """Every usable pair correlated; returns the matrices and the coarse grid used."""
    # "newton" on the auto choice mask picks one dominant peak to a pixel (refined later)
    oversample = CHOICE_OVERSAMPLE if opts.maxima == "newton" and spec.single_peak else OVERSAMPLE
    plan = _plan_pairs(spec, workers, oversample)
    out = _peaks_on_threads(spec, opts, plan, workers, progress)
    return _pair_matrices(spec.spectra.shape[0], plan.pi, plan.pj, out), plan.grid


# ------------------------------------------------------------ the entry
def _check_for_stack(opts: PairwiseOptions, t: int, h: int, w: int) -> None:
    """The checks of the options that need the stack's shape."""
    if opts.maxima == "gf" and 2 * opts.window_radius + 1 > min(h, w):
        raise ValueError(
            f"window_radius {opts.window_radius} needs frames of at least {2 * opts.window_radius + 1} px."
        )
    check_bad_frames(opts.bad_frames, t)


def _params_record(
    opts: PairwiseOptions, mask_info: dict[str, Any], spec: BandSpectra, grid: tuple[int, int], t: int
) -> dict[str, Any]:
    """Every parameter of a run (JSON-serialisable), as ``PairwiseResult.params`` holds them."""
    h, w = spec.frame_shape
    return {
        **mask_info,
        "correlation": opts.correlation,
        "maxima": opts.maxima,
        "num_peaks": opts.num_peaks,
        "sigma_guess": opts.sigma_guess,
        "window_radius": opts.window_radius,
        "upsample": opts.upsample,
        **outlier_record(opts),
        "average": opts.average,
        "n_frames": t,
        "frame_shape": [h, w],
        "padded_shape": list(spec.padded),
        "coarse_grid": [int(v) for v in grid],
    }


def register_pairwise(
    stack: Any,
    *,
    mask: Any = PAIRWISE_DEFAULTS.mask,
    n: float = PAIRWISE_DEFAULTS.n,
    n2: float | None = PAIRWISE_DEFAULTS.n2,
    theta: float = PAIRWISE_DEFAULTS.theta,
    correlation: str = PAIRWISE_DEFAULTS.correlation,
    maxima: str = PAIRWISE_DEFAULTS.maxima,
    num_peaks: int = PAIRWISE_DEFAULTS.num_peaks,
    sigma_guess: float = PAIRWISE_DEFAULTS.sigma_guess,
    window_radius: int = PAIRWISE_DEFAULTS.window_radius,
    upsample: int = PAIRWISE_DEFAULTS.upsample,
    threshold: float | None = PAIRWISE_DEFAULTS.threshold,
    maxpaths: int = PAIRWISE_DEFAULTS.maxpaths,
    max_shift: float | None = PAIRWISE_DEFAULTS.max_shift,
    bad_frames: Any = PAIRWISE_DEFAULTS.bad_frames,
    weights: str = PAIRWISE_DEFAULTS.weights,
    average: str | None = PAIRWISE_DEFAULTS.average,
    registered: bool = PAIRWISE_DEFAULTS.registered,
    workers: int | None = None,
    progress: ProgressCallback | None = None,
    options: PairwiseOptions | None = None,
) -> PairwiseResult:
    """Register every pair of frames, reject outliers, solve shifts, average.

    Every option's default and allowed values are those of
    :class:`~napari_stackalign.core.pairwise.PairwiseOptions`
    (``PairwiseOptions.help(name)``).

    Parameters
    ----------
    stack : array-like, shape (T, Y, X)
        At least 2 frames (3 or more to check outliers) of at least 8 x 8 px;
        numpy, memmap, h5py or dask (read in chunks). Any size, odd or even,
        square or not.
    mask : str or 2-D array
        ``"auto"`` (default): weights chosen from the stack's mean power
        spectrum, Bragg peaks of periodic content found
        (:mod:`~napari_stackalign.core.pairwise._automask`); a fixed kind
        (see :func:`~napari_stackalign.core.pairwise.fourier_mask`:
        ``"bandpass", "lowpass", "hann", "hamming", "blackman", "gaussian",
        "none", "elliptical"``); or a centred, non-negative user mask of the
        frame shape.
    n : float
        Mask cutoff of the fixed kinds: features smaller than about ``n`` px
        are ignored (not used by ``"auto"``).
    n2, theta : float
        Second axis size (px) and angle (degrees) of the ``"elliptical"`` mask.
    correlation : {"cc", "mc", "pc"}
        Plain cross-correlation, mutual correlation (spectra divided by
        ``sqrt(|F_i||F_j|)``) or phase correlation (divided by
        ``|F_i||F_j|``; the reference divides by ``|F_j|**2``, which is not
        symmetric in i and j).
    maxima : {"newton", "pixel", "gf", "dft"}
        Peak location: ``"newton"`` (default) each pair's peak to a pixel,
        then every frame's shift refined by Newton steps on the exact masked
        correlation with all the others
        (:mod:`~napari_stackalign.core.pairwise._newton`); brightest pixel,
        Gaussian fit around the brightest distinct peaks, or upsampled DFT
        (see :mod:`~napari_stackalign.core.pairwise._peaks`).
    num_peaks : int
        Distinct peaks compared per pair (the guard against unit-cell hops
        on lattices).
    sigma_guess : float
        Expected peak width in px (starting value of the fit; also the
        smallest distance between distinct peaks).
    window_radius : int
        Gaussian fit window ``(2 r + 1)**2``; exclude neighbouring lattice
        peaks.
    upsample : int
        ``maxima="dft"`` resolution: 1/upsample px.
    threshold : float or None
        Transitivity threshold in px (median path discrepancy); None turns
        the check off.
    maxpaths : int
        Intermediate frames per pair for transitivity.
    max_shift : float or None
        Nearest-neighbour smoothness threshold in px; None turns the check
        off.
    bad_frames : sequence of int
        Frames to leave out entirely.
    weights : {"quality", "equal"}
        Least-squares weights: the pair's peak quality, or all equal
        (then a complete matrix gives the reference's row mean).
    average : {"fourier", "warp"} or None
        How to average (None: measure and solve only).
    registered : bool
        Also return the registered stack.
    workers : int, optional
        Threads (default: all cores).
    progress : callable, optional
        ``progress(done, total, stage)``; may raise
        :class:`~napari_stackalign.core.Cancelled`.
    options : PairwiseOptions, optional
        All the options above (``mask`` to ``registered``) in one object;
        keywords given as well replace its values.

    Returns
    -------
    PairwiseResult
        Matrices, outliers, transforms, average, crop and parameters; its
        :meth:`~PairwiseResult.reevaluate` changes the outlier settings
        without correlating again.

    Raises
    ------
    ValueError
        For a bad stack (2-D, too few or too small frames, NaN) or a bad
        parameter (the message names the allowed values).
    """
    opts = PairwiseOptions.from_call(options, locals())
    t, h, w = check_pairwise_stack(stack)
    _check_for_stack(opts, t, h, w)
    nthreads = default_workers(workers)
    spec, half, info = pairwise_spectra_for(stack, opts, workers=nthreads, progress=progress)
    if int(spec.usable.sum()) < 2:
        raise ValueError(
            "fewer than 2 frames carry signal in the mask's band (constant or empty frames?): nothing to register."
        )
    meas, grid = _measure(spec, opts, nthreads, progress)
    params = _params_record(opts, info, spec, grid, t)
    no_signal = info.get("auto", {}).get("signal", 1.0) <= 0
    result = make_result(meas, opts, half, spec.padded, (h, w), params, precision=spec.precision, no_signal=no_signal)
    if not result.frame_ok.any():
        warnings.warn(
            f"pairwise registration: none of the {t} frames has a trustworthy shift, so the stack has no usable "
            "signal for this method (nothing should be corrected with these estimates). "
            + result.transforms.failure_summary(),
            NoSignalWarning,
            stacklevel=2,
        )
    if opts.average is not None:
        result = result.with_average(stack, registered=opts.registered, workers=nthreads, progress=progress)
    return result
