"""All-pairs Fourier-masked registration and averaging (low-dose, atomic resolution).

The method of the rigidregistration package (Savitzky et al., "Image
registration of low signal-to-noise cryo-STEM data", Ultramicroscopy 2018),
rebuilt to be fast, to work for any frame size and any stack of 2 or more
frames, and never to hang:

1. every frame's spectrum is computed once: mean-subtracted, real-space Hann
   window, real FFT, weighted by a Fourier mask
   (:func:`~napari_stackalign.core.pairwise._masks.fourier_mask`) and kept on
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

import math
from concurrent.futures import as_completed
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from scipy import fft as sfft
from threadpoolctl import threadpool_limits

from ...progress import ProgressCallback, report
from ...transforms import FrameTransforms
from ..workers import default_workers, thread_pool
from ._average import AVERAGES, fourier_average, shift_crop, warp_average
from ._masks import MASK_KINDS, centered_mask, fourier_mask
from ._outliers import pair_outliers
from ._peaks import MAXIMA, PeakSettings, coarse_grid, find_pair_peaks
from ._solve import solve_shifts
from ._spectra import CORRELATIONS, BandSpectra, compute_band_spectra

__all__ = ["WEIGHTS", "PairwiseResult", "pairwise_spectra_for", "register_pairwise"]

#: weighting of the least-squares shift solve
WEIGHTS = ("quality", "equal")

_KEEP: Any = object()


def _jsonable_matrix(m: np.ndarray) -> list:
    out = []
    for row in np.asarray(m, dtype=np.float64):
        out.append([None if not np.isfinite(v) else float(v) for v in row])
    return out


@dataclass
class PairwiseResult:
    """Everything :func:`register_pairwise` measured and decided.

    Attributes
    ----------
    dy, dx : ndarray (T, T)
        Raw pair shifts (see the module docstring for the convention);
        NaN where a pair was not measured (a frame without signal).
    quality : ndarray (T, T)
        Peak height as a correlation coefficient of the filtered frames
        (symmetric; NaN on the diagonal).
    peak_ratio : ndarray (T, T)
        Height of the second-best distinct peak over the best (close to 1:
        ambiguous, e.g. a possible unit-cell hop).
    fit_ok : ndarray of bool (T, T)
        For ``maxima="gf"``: the Gaussian fit of the chosen peak succeeded.
    measured : ndarray of bool (T, T)
        Pairs with a measurement.
    outliers : ndarray of bool (T, T)
        Measured pairs rejected by transitivity or smoothness.
    scores : ndarray (T, T)
        Transitivity scores in px (NaN when not computed).
    valid : ndarray of bool (T, T)
        Pairs used in the shift solve (measured, not outliers, no bad frame).
    transforms : FrameTransforms
        Per-frame corrections to the mean position; ``ok`` False for frames
        outside the consistent group or marked bad; ``quality`` the median
        pair quality of the frame.
    mask : ndarray (Hp, Wp // 2 + 1)
        The Fourier mask used, on the padded FFT grid (rfft layout).
    padded_shape, frame_shape : (int, int)
        FFT grid and frame shapes.
    params : dict
        Every parameter (JSON-serialisable).
    average : ndarray or None
        The averaged image, cropped to ``crop`` (float32).
    average_full : ndarray or None
        The uncropped average (its border holds wrapped or missing data).
    crop : (int, int, int, int) or None
        ``(row_start, row_stop, col_start, col_stop)`` of ``average`` in the
        frame.
    registered : ndarray or None
        The registered stack (T, Y, X) float32, when asked for.
    warnings : list of str
        Things the user should know (frames left out, no consistent group).
    """

    dy: np.ndarray
    dx: np.ndarray
    quality: np.ndarray
    peak_ratio: np.ndarray
    fit_ok: np.ndarray
    measured: np.ndarray
    outliers: np.ndarray
    scores: np.ndarray
    valid: np.ndarray
    transforms: FrameTransforms
    mask: np.ndarray
    padded_shape: tuple[int, int]
    frame_shape: tuple[int, int]
    params: dict
    average: np.ndarray | None = None
    average_full: np.ndarray | None = None
    crop: tuple[int, int, int, int] | None = None
    registered: np.ndarray | None = None
    warnings: list[str] = field(default_factory=list)

    # ------------------------------------------------------------- views
    @property
    def n_frames(self) -> int:
        """Number of frames."""
        return int(self.dy.shape[0])

    @property
    def shifts(self) -> np.ndarray:
        """(T, 2) corrections (dy, dx)."""
        return self.transforms.shifts

    @property
    def frame_ok(self) -> np.ndarray:
        """(T,) frames used in the average."""
        return self.transforms.ok

    @property
    def bad_frames(self) -> tuple[int, ...]:
        """Frames the user marked bad."""
        return tuple(int(i) for i in self.params.get("bad_frames", ()))

    def implied(self) -> tuple[np.ndarray, np.ndarray]:
        """The matrices the solved shifts imply: ``c_i - c_j``."""
        c = self.shifts
        return c[:, None, 0] - c[None, :, 0], c[:, None, 1] - c[None, :, 1]

    @property
    def corrected_dy(self) -> np.ndarray:
        """Raw ``dy`` where valid, else the value the solved shifts imply."""
        return np.where(self.valid, self.dy, self.implied()[0])

    @property
    def corrected_dx(self) -> np.ndarray:
        """Raw ``dx`` where valid, else the value the solved shifts imply."""
        return np.where(self.valid, self.dx, self.implied()[1])

    def residuals(self) -> np.ndarray:
        """(T, T) distance in px between each measured pair and the solution."""
        iy, ix = self.implied()
        with np.errstate(invalid="ignore"):
            return np.where(self.measured, np.hypot(self.dy - iy, self.dx - ix), np.nan)

    def reference_matrices(self) -> tuple[np.ndarray, np.ndarray]:
        """``(X_ij, Y_ij)`` in the rigidregistration package's naming (X = rows).

        Identical to ``(dy, dx)``: the package's ``X_ij`` is the row shift of
        image j relative to image i.
        """
        return self.dy.copy(), self.dx.copy()

    def mask_centered(self) -> np.ndarray:
        """The mask on the full padded plane, DC at the centre (for display)."""
        return centered_mask(self.mask, self.padded_shape)

    def summary(self) -> str:
        """One line for logs and status bars."""
        n_pairs = int(np.triu(self.measured, 1).sum())
        n_out = int(np.triu(self.outliers, 1).sum())
        n_ok = int(self.frame_ok.sum())
        return (
            f"{self.n_frames} frames, {n_pairs} pairs, {n_out} outlier pairs, "
            f"{n_ok} frames averaged"
        )

    # ------------------------------------------------------- re-evaluate
    def reevaluate(
        self,
        *,
        threshold: Any = _KEEP,
        maxpaths: Any = _KEEP,
        max_shift: Any = _KEEP,
        bad_frames: Any = _KEEP,
        weights: Any = _KEEP,
    ) -> PairwiseResult:
        """New outliers, shifts and frame flags from the stored correlations.

        Nothing is correlated again; this takes milliseconds. Arguments left
        out keep their current value (``None`` turns a check off). The
        average is not recomputed (it is None in the result): call
        :meth:`with_average` with the stack.
        """
        params = dict(self.params)
        for key, value in (
            ("threshold", threshold),
            ("maxpaths", maxpaths),
            ("max_shift", max_shift),
            ("bad_frames", bad_frames),
            ("weights", weights),
        ):
            if value is not _KEEP:
                params[key] = value
        checked = _check_outlier_params(
            params["threshold"], params["maxpaths"], params["max_shift"], params["bad_frames"], params["weights"],
            self.n_frames,
        )
        params.update(checked)
        return _decide(
            self.dy, self.dx, self.quality, self.peak_ratio, self.fit_ok, self.measured, self.mask,
            self.padded_shape, self.frame_shape, params,
        )

    def with_average(
        self,
        stack: Any,
        *,
        average: str | None = None,
        registered: bool = False,
        workers: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> PairwiseResult:
        """A copy with the average (and optionally the registered stack).

        Parameters
        ----------
        stack : array-like (T, Y, X)
            The same stack the result was measured on.
        average : {"fourier", "warp"}, optional
            Default: the method in ``params``.
        registered : bool
            Also return every frame registered (float32).
        workers, progress
            Threads and progress callback.
        """
        method = self.params.get("average", "fourier") if average is None else average
        if method not in AVERAGES:
            raise ValueError(f"average must be one of {AVERAGES}, got {method!r}.")
        _check_stack(stack)
        if tuple(stack.shape) != (self.n_frames, *self.frame_shape):
            raise ValueError(
                f"the stack has shape {tuple(stack.shape)} but the result was measured on "
                f"{(self.n_frames, *self.frame_shape)}."
            )
        frames = np.flatnonzero(self.frame_ok)
        warnings = list(self.warnings)
        if frames.size == 0:
            frames = np.flatnonzero(self.measured.any(axis=1) & ~_bad_mask(self.bad_frames, self.n_frames))
            if frames.size == 0:
                frames = np.arange(self.n_frames)
        nthreads = default_workers(workers)
        if method == "fourier":
            full, reg = fourier_average(
                stack, self.shifts, frames, registered=registered, workers=nthreads, progress=progress
            )
            crop = shift_crop(self.shifts[frames], self.frame_shape)
        else:
            full, reg, crop = warp_average(
                stack, self.transforms, frames, registered=registered, workers=nthreads, progress=progress
            )
        r0, r1, c0, c1 = crop
        if r1 <= r0 or c1 <= c0:
            warnings.append("the frames share no common area (shifts larger than the frame): the average is empty.")
        params = dict(self.params)
        params["average"] = method
        return replace(
            self,
            average=np.ascontiguousarray(full[r0:r1, c0:c1]),
            average_full=full,
            crop=tuple(int(v) for v in crop),
            registered=reg,
            params=params,
            warnings=warnings,
        )

    # --------------------------------------------------------------- JSON
    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable record: matrices, masks, shifts, crop, parameters."""
        return {
            "format": "napari-stackalign pairwise",
            "version": 1,
            "convention": (
                "dy[i][j], dx[i][j] = displacement of frame j relative to frame i (rows, cols) = "
                "rigidregistration X_ij, Y_ij; transforms dy, dx = correction moving each frame onto the mean position"
            ),
            "params": _jsonable(self.params),
            "frame_shape": list(self.frame_shape),
            "padded_shape": list(self.padded_shape),
            "dy": _jsonable_matrix(self.dy),
            "dx": _jsonable_matrix(self.dx),
            "quality": _jsonable_matrix(self.quality),
            "peak_ratio": _jsonable_matrix(self.peak_ratio),
            "scores": _jsonable_matrix(self.scores),
            "measured": self.measured.astype(int).tolist(),
            "outliers": self.outliers.astype(int).tolist(),
            "valid": self.valid.astype(int).tolist(),
            "transforms": self.transforms.to_dict(),
            "crop": None if self.crop is None else list(self.crop),
            "warnings": list(self.warnings),
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# ------------------------------------------------------------ validation
def _check_stack(stack: Any) -> tuple[int, int, int]:
    shape = getattr(stack, "shape", None)
    if shape is None:
        raise ValueError("stack must be an array-like with a shape, e.g. a numpy array (T, Y, X).")
    if len(shape) == 2:
        raise ValueError("a single 2-D image was given: pairwise averaging needs a stack of frames (T, Y, X).")
    if len(shape) != 3:
        raise ValueError(
            f"stack has {len(shape)} dimensions {tuple(shape)}: give a (T, Y, X) stack (pick one channel first)."
        )
    t, h, w = (int(s) for s in shape)
    if t < 2:
        raise ValueError(f"the stack has {t} frame(s): pairwise averaging needs at least 2 (3+ to check outliers).")
    if h < 8 or w < 8:
        raise ValueError(f"frames of {h} x {w} px are too small: at least 8 x 8 px are needed.")
    return t, h, w


def _bad_mask(bad_frames: Any, n: int) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    mask[list(bad_frames)] = True
    return mask


def _check_int(value: Any, name: str, lo: int, hi: int, hint: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer, float, np.floating)):
        raise ValueError(f"{name} must be an integer in [{lo}, {hi}]{hint}, got {value!r}.")  # noqa: TRY004 - house rule: bad values raise ValueError
    if float(value) != int(value) or not (lo <= int(value) <= hi):
        raise ValueError(f"{name} must be an integer in [{lo}, {hi}]{hint}, got {value!r}.")
    return int(value)


def _check_float(value: Any, name: str, lo: float, hi: float, hint: str = "", allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a number in ({lo}, {hi}]{hint}, got {value!r}.") from exc
    if not (math.isfinite(v) and lo < v <= hi):
        raise ValueError(f"{name} must be a number in ({lo}, {hi}]{hint}, got {value!r}.")
    return v


def _check_outlier_params(
    threshold: Any, maxpaths: Any, max_shift: Any, bad_frames: Any, weights: Any, n: int
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "threshold": _check_float(threshold, "threshold", 0.0, 1e6, " px (None turns the transitivity check off)", True),
        "maxpaths": _check_int(maxpaths, "maxpaths", 1, 1000),
        "max_shift": _check_float(max_shift, "max_shift", 0.0, 1e6, " px (None turns the smoothness check off)", True),
    }
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {WEIGHTS}, got {weights!r}.")
    out["weights"] = weights
    try:
        frames = sorted({int(i) for i in (bad_frames or ())})
    except (TypeError, ValueError) as exc:
        raise ValueError(f"bad_frames must be a list of frame indices, got {bad_frames!r}.") from exc
    wrong = [i for i in frames if not 0 <= i < n]
    if wrong:
        raise ValueError(f"bad_frames {wrong} are outside the stack (frames 0..{n - 1}).")
    if n - len(frames) < 2:
        raise ValueError(f"bad_frames leaves {n - len(frames)} frame(s): at least 2 are needed.")
    out["bad_frames"] = frames
    return out


# -------------------------------------------------------------- deciding
def _decide(
    dy: np.ndarray,
    dx: np.ndarray,
    quality: np.ndarray,
    peak_ratio: np.ndarray,
    fit_ok: np.ndarray,
    measured: np.ndarray,
    mask: np.ndarray,
    padded: tuple[int, int],
    frame_shape: tuple[int, int],
    params: dict,
) -> PairwiseResult:
    """Outliers, solve and flags from the measured matrices (no correlation)."""
    n = dy.shape[0]
    bad = _bad_mask(params["bad_frames"], n)
    warnings: list[str] = []
    outliers, scores, rejected = pair_outliers(
        dy, dx, measured,
        threshold=params["threshold"], maxpaths=params["maxpaths"], max_shift=params["max_shift"], bad_frames=bad,
    )
    valid = measured & ~outliers & ~bad[:, None] & ~bad[None, :]
    np.fill_diagonal(valid, False)
    weights = quality if params["weights"] == "quality" else np.ones_like(quality)
    weights = np.where(np.isfinite(weights), np.clip(weights, 1e-3, None), 0.0)
    usable = measured.any(axis=1)
    shifts, ok = solve_shifts(dy, dx, valid, weights, candidates=usable & ~bad, measured=measured)
    ok &= ~bad
    with np.errstate(invalid="ignore"):
        q = np.where(valid, quality, np.nan)
        frame_q = np.array([np.nanmedian(r) if np.isfinite(r).any() else np.nan for r in q])
    if n == 2:
        warnings.append("only 2 frames: outliers cannot be checked (transitivity needs 3 or more).")
    silent = np.flatnonzero(~usable)
    if silent.size:
        warnings.append(
            f"frames {silent.tolist()} carry no signal in the mask's band (constant?) and were left out."
        )
    if rejected.any():
        warnings.append(
            f"frames {np.flatnonzero(rejected).tolist()} agree with fewer than half of the other frames "
            "(noise, a different area, or a unit-cell hop?) and were rejected."
        )
    dropped = np.flatnonzero(~ok & usable & ~bad & ~rejected)
    if ok.sum() == 0:
        warnings.append(
            "no consistent group of frames: every pair is an outlier. All usable frames are averaged; "
            "raise the threshold, change the mask, or mark bad frames."
        )
    elif dropped.size:
        warnings.append(
            f"frames {dropped.tolist()} have no consistent pair with the others and were left out of the average."
        )
    h, w = frame_shape
    transforms = FrameTransforms(
        dy=shifts[:, 0],
        dx=shifts[:, 1],
        center=((h - 1) / 2.0, (w - 1) / 2.0),
        quality=frame_q,
        ok=ok,
        method="pairwise",
        params=_jsonable(params),
    )
    return PairwiseResult(
        dy=dy, dx=dx, quality=quality, peak_ratio=peak_ratio, fit_ok=fit_ok, measured=measured,
        outliers=outliers, scores=scores, valid=valid, transforms=transforms, mask=mask, padded_shape=padded,
        frame_shape=frame_shape, params=params, warnings=warnings,
    )


# -------------------------------------------------------------- measuring
def _mask_for(
    mask: Any, n: float, n2: Any, theta: float, frame_shape: tuple[int, int]
) -> tuple[np.ndarray, tuple[int, int], dict[str, Any]]:
    """The mask on the padded grid, the padded shape, and its parameters."""
    if isinstance(mask, str):
        kind = mask
        if kind == "user":
            raise ValueError("for a user mask pass the (centred) mask array itself as mask=...")
        padded = (sfft.next_fast_len(frame_shape[0]), sfft.next_fast_len(frame_shape[1], real=True))
        half = fourier_mask(padded, kind, n, n2=n2, theta=theta)
        info = {"mask": kind, "n": float(n), "n2": None if n2 is None else float(n2), "theta": float(theta)}
        return half, padded, info
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise ValueError(f"mask must be one of {MASK_KINDS[:-1]} or a centred 2-D array, got {type(mask).__name__}.")
    half = fourier_mask(frame_shape, "user", user_mask=arr)
    return half, frame_shape, {"mask": "user", "n": None, "n2": None, "theta": None}


def pairwise_spectra_for(
    stack: Any,
    *,
    mask: Any = "hann",
    n: float = 4,
    n2: float | None = None,
    theta: float = 0.0,
    correlation: str = "cc",
    workers: int | None = None,
    progress: ProgressCallback | None = None,
) -> tuple[BandSpectra, np.ndarray, dict[str, Any]]:
    """Band spectra of every frame of ``stack`` (the first step of
    :func:`register_pairwise`, also used by the preview).

    Returns ``(spectra, mask_half, mask_info)``.
    """
    _, h, w = _check_stack(stack)
    if correlation not in CORRELATIONS:
        raise ValueError(f"correlation must be one of {tuple(CORRELATIONS)}, got {correlation!r}.")
    half, padded, info = _mask_for(mask, n, n2, theta, (h, w))
    spec = compute_band_spectra(
        stack, half, padded, correlation=correlation, workers=default_workers(workers), progress=progress
    )
    return spec, half, info


def _measure(
    spec: BandSpectra,
    settings: PeakSettings,
    workers: int,
    progress: ProgressCallback | None,
) -> dict[str, np.ndarray]:
    n = spec.spectra.shape[0]
    grid = coarse_grid(spec, settings.oversample)
    hp, wp = spec.padded
    if grid[0] * grid[1] > 0.45 * hp * wp:
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
    out = {k: np.full(total, np.nan) for k in ("dy", "dx", "quality", "second")}
    out["fit_ok"] = np.zeros(total, dtype=bool)
    report(progress, 0, total, "pairs")
    starts = list(range(0, total, batch))

    def work(start: int) -> tuple[int, Any]:
        sl = slice(start, start + batch)
        return start, find_pair_peaks(spec, pi_all[sl], pj_all[sl], settings, grid, chunk=chunk)

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
    mats: dict[str, np.ndarray] = {}
    for key, fill, diag in (("dy", np.nan, 0.0), ("dx", np.nan, 0.0), ("quality", np.nan, np.nan), ("second", np.nan, np.nan)):
        m = np.full((n, n), fill)
        sign = -1.0 if key in ("dy", "dx") else 1.0
        m[pi_all, pj_all] = out[key]
        m[pj_all, pi_all] = sign * out[key]
        np.fill_diagonal(m, diag)
        mats[key] = m
    fit = np.zeros((n, n), dtype=bool)
    fit[pi_all, pj_all] = out["fit_ok"]
    fit[pj_all, pi_all] = out["fit_ok"]
    measured = np.zeros((n, n), dtype=bool)
    finite = np.isfinite(out["dy"]) & np.isfinite(out["dx"])
    measured[pi_all[finite], pj_all[finite]] = True
    measured[pj_all[finite], pi_all[finite]] = True
    mats["fit_ok"] = fit
    mats["measured"] = measured
    mats["grid"] = np.array(grid)
    return mats


def register_pairwise(
    stack: Any,
    *,
    mask: Any = "hann",
    n: float = 4,
    n2: float | None = None,
    theta: float = 0.0,
    correlation: str = "cc",
    maxima: str = "gf",
    num_peaks: int = 3,
    sigma_guess: float = 2.0,
    window_radius: int = 6,
    upsample: int = 20,
    threshold: float | None = 2.0,
    maxpaths: int = 5,
    max_shift: float | None = None,
    bad_frames: Any = (),
    weights: str = "quality",
    average: str | None = "fourier",
    registered: bool = False,
    workers: int | None = None,
    progress: ProgressCallback | None = None,
) -> PairwiseResult:
    """Register every pair of frames, reject outliers, solve shifts, average.

    Parameters
    ----------
    stack : array-like, shape (T, Y, X)
        At least 2 frames (3 or more to check outliers) of at least 8 x 8 px;
        numpy, memmap, h5py or dask (read in chunks). Any size, odd or even,
        square or not.
    mask : str or 2-D array
        Fourier mask kind (see :func:`~napari_stackalign.core.pairwise._masks.fourier_mask`:
        ``"bandpass", "lowpass", "hann", "hamming", "blackman", "gaussian",
        "none", "elliptical"``) or a centred, non-negative user mask of the
        frame shape.
    n : float
        Mask cutoff: features smaller than about ``n`` px are ignored (>= 1).
    n2, theta : float
        Second axis size (px) and angle (degrees) of the ``"elliptical"`` mask.
    correlation : {"cc", "mc", "pc"}
        Plain cross-correlation, mutual correlation (spectra divided by
        ``sqrt(|F_i||F_j|)``) or phase correlation (divided by
        ``|F_i||F_j|``; the reference divides by ``|F_j|**2``, which is not
        symmetric in i and j).
    maxima : {"pixel", "gf", "dft"}
        Peak location: brightest pixel, Gaussian fit around the brightest
        distinct peaks, or upsampled DFT (see
        :mod:`~napari_stackalign.core.pairwise._peaks`).
    num_peaks : int
        Distinct peaks compared per pair (1-20; the guard against unit-cell
        hops on lattices).
    sigma_guess : float
        Expected peak width in px (starting value of the fit; also the
        smallest distance between distinct peaks).
    window_radius : int
        Gaussian fit window ``(2 r + 1)**2``; exclude neighbouring lattice
        peaks (2-50).
    upsample : int
        ``maxima="dft"`` resolution: 1/upsample px (1-1000).
    threshold : float or None
        Transitivity threshold in px (median path discrepancy); None turns
        the check off.
    maxpaths : int
        Intermediate frames per pair for transitivity.
    max_shift : float or None
        Nearest-neighbour smoothness threshold in px; None (default) turns
        the check off.
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
    t, h, w = _check_stack(stack)
    if correlation not in CORRELATIONS:
        raise ValueError(f"correlation must be one of {tuple(CORRELATIONS)}, got {correlation!r}.")
    if maxima not in MAXIMA:
        raise ValueError(f"maxima must be one of {MAXIMA}, got {maxima!r}.")
    if average is not None and average not in AVERAGES:
        raise ValueError(f"average must be one of {AVERAGES} or None, got {average!r}.")
    settings = PeakSettings(
        maxima=maxima,
        num_peaks=_check_int(num_peaks, "num_peaks", 1, 20),
        sigma_guess=float(_check_float(sigma_guess, "sigma_guess", 0.0, 100.0, " px")),
        window_radius=_check_int(window_radius, "window_radius", 2, 50, " px"),
        upsample=_check_int(upsample, "upsample", 1, 1000),
    )
    if maxima == "gf" and 2 * settings.window_radius + 1 > min(h, w):
        raise ValueError(
            f"window_radius {settings.window_radius} needs frames of at least {2 * settings.window_radius + 1} px."
        )
    checked = _check_outlier_params(threshold, maxpaths, max_shift, bad_frames, weights, t)
    nthreads = default_workers(workers)
    spec, half, info = pairwise_spectra_for(
        stack, mask=mask, n=n, n2=n2, theta=theta, correlation=correlation, workers=nthreads, progress=progress
    )
    if int(spec.usable.sum()) < 2:
        raise ValueError(
            "fewer than 2 frames carry signal in the mask's band (constant or empty frames?): nothing to register."
        )
    mats = _measure(spec, settings, nthreads, progress)
    params: dict[str, Any] = {
        **info,
        "correlation": correlation,
        "maxima": maxima,
        "num_peaks": settings.num_peaks,
        "sigma_guess": settings.sigma_guess,
        "window_radius": settings.window_radius,
        "upsample": settings.upsample,
        **checked,
        "average": average,
        "n_frames": t,
        "frame_shape": [h, w],
        "padded_shape": list(spec.padded),
        "coarse_grid": [int(v) for v in mats["grid"]],
    }
    result = _decide(
        mats["dy"], mats["dx"], mats["quality"], mats["second"], mats["fit_ok"], mats["measured"], half,
        spec.padded, (h, w), params,
    )
    if average is not None:
        result = result.with_average(stack, average=average, registered=registered, workers=nthreads, progress=progress)
    return result
