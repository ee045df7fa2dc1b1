"""The result of a pairwise registration, and its cheap re-evaluations.

:class:`PairwiseResult` holds the measured pair matrices, the outliers, the
per-frame transforms and the average; :meth:`~PairwiseResult.reevaluate`
changes the outlier settings without correlating again and
:meth:`~PairwiseResult.with_average` (re)computes the average. See
:mod:`~napari_stackalign.core.pairwise._register` for the conventions.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ...files import jsonable
from ...progress import ProgressCallback
from ...transforms import FrameTransforms
from ..apply import ApplyOptions
from ..checks import check_stack
from ..workers import default_workers
from ._average import fourier_average, shift_crop, warp_average
from ._decide import PairMeasurement, bad_frame_mask, check_bad_frames, decide
from ._masks import centered_mask
from ._options import OUTLIER_OPTIONS, PAIRWISE_DEFAULTS, PairwiseOptions

__all__ = ["PairwiseResult", "check_pairwise_stack", "make_result", "outlier_record"]

_KEEP: Any = object()

#: the options a result made by hand (without ``options``) takes from its ``params``
_RECORDED = (*OUTLIER_OPTIONS, "average")


def check_pairwise_stack(stack: Any) -> tuple[int, int, int]:
    """The shape (T, Y, X) of a stack pairwise averaging can use (2+ frames of 8 x 8 px or more)."""
    return check_stack(stack, what="pairwise averaging", min_frames=2, min_size=8)


def outlier_record(opts: PairwiseOptions) -> dict[str, Any]:
    """The outlier settings as ``params`` records them."""
    return {
        "threshold": opts.threshold,
        "maxpaths": opts.maxpaths,
        "max_shift": opts.max_shift,
        "weights": opts.weights,
        "bad_frames": list(opts.bad_frames),
    }


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
    options : PairwiseOptions or None
        The options the result was made with (``reevaluate`` and
        ``with_average`` start from them).
    precision : SparseSpectra or None
        ``maxima="newton"``: the frames' spectra on the precision mask, so
        that ``reevaluate`` refines its new solve too (not saved).
    no_signal : bool
        The ``"auto"`` mask found no frequency above the noise: every frame is flagged.
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
    options: PairwiseOptions | None = None
    precision: Any = field(default=None, repr=False)
    no_signal: bool = False

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

    def settings(self) -> PairwiseOptions:
        """The options of this result (for a result made by hand: the defaults
        with the outlier settings and the average of ``params``)."""
        if self.options is not None:
            return self.options
        return PAIRWISE_DEFAULTS.replace(**{k: self.params[k] for k in _RECORDED if k in self.params})

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
        given = locals()
        changes = {name: given[name] for name in OUTLIER_OPTIONS if given[name] is not _KEEP}
        opts = self.settings().replace(**changes)
        check_bad_frames(opts.bad_frames, self.n_frames)
        params = {**self.params, **outlier_record(opts)}
        meas = PairMeasurement(self.dy, self.dx, self.quality, self.peak_ratio, self.fit_ok, self.measured)
        return make_result(
            meas, opts, self.mask, self.padded_shape, self.frame_shape, params, precision=self.precision,
            no_signal=self.no_signal,
        )

    def with_average(
        self,
        stack: Any,
        *,
        average: str | None = None,
        registered: bool = PAIRWISE_DEFAULTS.registered,
        failed: str = ApplyOptions.default("failed"),
        workers: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> PairwiseResult:
        """A copy with the average (and optionally the registered stack).

        Failed frames (``ok`` False) are left out of the average and get,
        in the registered stack, the shift ``failed`` says
        (:meth:`~napari_stackalign.FrameTransforms.resolve_failed`):
        ``"interpolate"`` from the trustworthy frames, ``"identity"`` none,
        ``"apply"`` their estimate (and then they are averaged too). With no
        trustworthy frame, ``"interpolate"`` and ``"identity"`` average every
        usable frame unshifted (the registration warned already).

        Parameters
        ----------
        stack : array-like (T, Y, X)
            The same stack the result was measured on.
        average : {"fourier", "warp"}, optional
            Default: the method in ``params``.
        registered : bool
            Also return every frame registered (float32).
        failed : {"interpolate", "identity", "apply"}
            What becomes of the failed frames (see above).
        workers, progress
            Threads and progress callback.
        """
        failed = ApplyOptions.specs()["failed"].validate("failed", failed)
        opts = self.settings() if average is None else self.settings().replace(average=average)
        if opts.average is None:
            raise ValueError("average=None measures and solves only: choose 'fourier' or 'warp' to average.")
        method = opts.average
        check_pairwise_stack(stack)
        if tuple(stack.shape) != (self.n_frames, *self.frame_shape):
            raise ValueError(
                f"the stack has shape {tuple(stack.shape)} but the result was measured on "
                f"{(self.n_frames, *self.frame_shape)}."
            )
        usable = self.measured.any(axis=1) & ~bad_frame_mask(self.bad_frames, self.n_frames)
        frames = np.flatnonzero(self.frame_ok | (usable if failed == "apply" else False))
        warnings = list(self.warnings)
        transforms = self.transforms
        if frames.size == 0 or failed == "identity":
            # failed frames unshifted (nothing trustworthy: every usable frame, as acquired)
            keep = transforms.ok if frames.size else np.zeros(self.n_frames, dtype=bool)
            transforms = transforms.copy()
            transforms.dy = np.where(keep, transforms.dy, 0.0)
            transforms.dx = np.where(keep, transforms.dx, 0.0)
        elif failed == "interpolate":
            transforms = transforms.resolve_failed("interpolate")[0]
        if frames.size == 0:
            frames = np.flatnonzero(usable)
            if frames.size == 0:
                frames = np.arange(self.n_frames)
        shifts = transforms.shifts
        nthreads = default_workers(workers)
        if method == "fourier":
            full, reg = fourier_average(stack, shifts, frames, registered=registered, workers=nthreads, progress=progress)
            crop = shift_crop(shifts[frames], self.frame_shape)
        else:
            # the policy is applied already: warp every frame with the shift it got
            applied = FrameTransforms(dy=transforms.dy, dx=transforms.dx, center=transforms.center)
            full, reg, crop = warp_average(
                stack, applied, frames, registered=registered, workers=nthreads, progress=progress
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
            options=opts,
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
            "params": jsonable(self.params),
            "frame_shape": list(self.frame_shape),
            "padded_shape": list(self.padded_shape),
            "dy": _matrix(self.dy),
            "dx": _matrix(self.dx),
            "quality": _matrix(self.quality),
            "peak_ratio": _matrix(self.peak_ratio),
            "scores": _matrix(self.scores),
            "measured": self.measured.astype(int).tolist(),
            "outliers": self.outliers.astype(int).tolist(),
            "valid": self.valid.astype(int).tolist(),
            "transforms": self.transforms.to_dict(),
            "crop": None if self.crop is None else list(self.crop),
            "warnings": list(self.warnings),
        }



def _matrix(m: np.ndarray) -> list:
    """A (T, T) matrix as nested lists, None where not finite."""
    return jsonable(np.asarray(m, dtype=np.float64))


def make_result(
    meas: PairMeasurement,
    opts: PairwiseOptions,
    mask: np.ndarray,
    padded: tuple[int, int],
    frame_shape: tuple[int, int],
    params: dict,
    *,
    precision: Any = None,
    no_signal: bool = False,
) -> PairwiseResult:
    """Outliers, solve and flags of the measured matrices (no correlation), as a result without average.

    ``precision`` (the frames' spectra on the precision mask) lets ``maxima="newton"``
    refine the shifts; ``no_signal`` flags every frame (the spectrum held no signal)."""
    dec = decide(meas, opts, frame_shape, params, precision=precision, no_signal=no_signal)
    return PairwiseResult(
        dy=meas.dy, dx=meas.dx, quality=meas.quality, peak_ratio=meas.peak_ratio, fit_ok=meas.fit_ok,
        measured=meas.measured, outliers=dec.outliers, scores=dec.scores, valid=dec.valid,
        transforms=dec.transforms, mask=mask, padded_shape=padded, frame_shape=frame_shape, params=params,
        warnings=dec.warnings, options=opts, precision=precision, no_signal=no_signal,
    )
