"""Steps 3 and 4 of the pairwise registration, from the measured pair matrices
(nothing is correlated here): outlier pairs, the least-squares shift solve,
the frames used, and what the user should be told.

:meth:`~napari_stackalign.core.pairwise.PairwiseResult.reevaluate` runs this
again with new outlier settings in milliseconds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...files import jsonable
from ...transforms import FrameTransforms
from ._newton import MAX_TRAVEL, refine_frames
from ._options import PairwiseOptions
from ._outliers import pair_outliers
from ._solve import solve_shifts

__all__ = ["Decision", "PairMeasurement", "bad_frame_mask", "check_bad_frames", "decide"]


@dataclass
class PairMeasurement:
    """What the correlations measured, as (T, T) matrices (see ``PairwiseResult``)."""

    dy: np.ndarray
    dx: np.ndarray
    quality: np.ndarray
    peak_ratio: np.ndarray
    fit_ok: np.ndarray
    measured: np.ndarray


@dataclass
class Decision:
    """Outliers, pairs used, per-frame transforms and warnings (see ``PairwiseResult``)."""

    outliers: np.ndarray
    scores: np.ndarray
    valid: np.ndarray
    transforms: FrameTransforms
    warnings: list[str]


def bad_frame_mask(bad_frames: Iterable[int], n: int) -> np.ndarray:
    """(T,) True for the frames the user marked bad."""
    mask = np.zeros(n, dtype=bool)
    mask[list(bad_frames)] = True
    return mask


def check_bad_frames(bad_frames: Iterable[int], n: int) -> None:
    """Bad frames inside a stack of ``n`` frames, leaving at least 2."""
    frames = list(bad_frames)
    wrong = [i for i in frames if not 0 <= i < n]
    if wrong:
        raise ValueError(f"bad_frames {wrong} are outside the stack (frames 0..{n - 1}).")
    if n - len(frames) < 2:
        raise ValueError(f"bad_frames leaves {n - len(frames)} frame(s): at least 2 are needed.")


def _frame_warnings(usable: np.ndarray, rejected: np.ndarray, ok: np.ndarray, bad: np.ndarray) -> list[str]:
    warnings: list[str] = []
    if usable.size == 2:
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
    return warnings


def _frame_reasons(
    usable: np.ndarray, rejected: np.ndarray, ok: np.ndarray, bad: np.ndarray, refused: np.ndarray, no_signal: bool
) -> np.ndarray:
    """Why each frame that is not ok failed ('' for the ok ones), first reason first."""
    reasons = np.full(usable.size, "", dtype=object)

    def add(mask: np.ndarray, text: str) -> None:
        take = mask & (reasons == "")
        reasons[take] = text

    if no_signal:
        add(np.ones(usable.size, dtype=bool), "no frequency of the stack's power spectrum is above its noise floor")
    add(bad, "marked bad")
    add(~usable, "no signal in the mask's band (constant frame?)")
    add(rejected, "agrees with fewer than half of the other frames (transitivity)")
    add(refused, f"Newton refinement found no maximum within {MAX_TRAVEL:g} px of the pairwise solve")
    add(~ok, "no consistent pair with the main group of frames")
    reasons[ok] = ""
    return reasons


def decide(
    meas: PairMeasurement,
    opts: PairwiseOptions,
    frame_shape: tuple[int, int],
    params: dict,
    *,
    precision: Any = None,
    no_signal: bool = False,
) -> Decision:
    """Outliers (``threshold``, ``maxpaths``, ``max_shift``, ``bad_frames``), the
    solve (``weights``), the Newton refinement (``maxima="newton"`` with
    ``precision`` spectra) and the frame flags with their reasons; ``params``
    is recorded in the transforms. ``no_signal`` flags every frame."""
    n = meas.dy.shape[0]
    bad = bad_frame_mask(opts.bad_frames, n)
    measured, quality = meas.measured, meas.quality
    outliers, scores, rejected = pair_outliers(meas.dy, meas.dx, measured, opts, bad)
    valid = measured & ~outliers & ~bad[:, None] & ~bad[None, :]
    np.fill_diagonal(valid, False)
    weights = quality if opts.weights == "quality" else np.ones_like(quality)
    weights = np.where(np.isfinite(weights), np.clip(weights, 1e-3, None), 0.0)
    usable = measured.any(axis=1)
    shifts, ok = solve_shifts(meas.dy, meas.dx, valid, weights, candidates=usable & ~bad, measured=measured)
    ok &= ~bad
    refused = np.zeros(n, dtype=bool)
    if opts.maxima == "newton" and precision is not None and ok.sum() >= 2 and not no_signal:
        shifts, moved, _height = refine_frames(precision, shifts, ok)
        refused = ~np.isfinite(moved) & usable & ~bad
        ok &= ~refused
    if no_signal:
        ok[:] = False
    reasons = _frame_reasons(usable, rejected, ok, bad, refused, no_signal)
    with np.errstate(invalid="ignore"):
        q = np.where(valid, quality, np.nan)
        frame_q = np.array([np.nanmedian(r) if np.isfinite(r).any() else np.nan for r in q])
    h, w = frame_shape
    transforms = FrameTransforms(
        dy=shifts[:, 0],
        dx=shifts[:, 1],
        center=((h - 1) / 2.0, (w - 1) / 2.0),
        quality=frame_q,
        ok=ok,
        reason=reasons,
        method="pairwise",
        params=jsonable(params),
    )
    warnings = _frame_warnings(usable, rejected, ok, bad)
    if refused.any():
        warnings.append(
            f"frames {np.flatnonzero(refused).tolist()}: the Newton refinement found no maximum within {MAX_TRAVEL:g} px of "
            "the pairwise solve (their pairs and the aligned stack disagree) and they were flagged."
        )
    if no_signal:
        warnings.append("no frequency of the stack's power spectrum is above its noise floor: every frame is flagged.")
    return Decision(outliers=outliers, scores=scores, valid=valid, transforms=transforms, warnings=warnings)
