"""The stack-wide steps of volume registration once every frame is estimated: judge, anchor, smooth."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.signal import savgol_filter

from ..._volume_transforms import VolumeTransforms
from ...transforms import NoSignalWarning
from ..pyramid._engine import FLAG_AT_EDGE, FLAG_FAILED, FLAG_NOT_CONVERGED, FLAG_UNUSABLE
from ..pyramid._options import PyramidOptions
from ..pyramid._trust import judge
from ._checks import VolumeLayout
from ._levels import VolumeLevel

__all__ = ["REFERENCE_TEXT", "VolumeResults", "finish_volumes"]

#: ``params["reference"]`` per reference mode (as the 2-D result names them)
REFERENCE_TEXT = {
    "template": "registered average of the first num_frames frames",
    "frames": "registered average of the frames reference_frames",
    "previous": "the previous frame (shifts chained)",
    "running": "running average of the last running_frames registered frames",
    "image": "user",
}


class VolumeResults:
    """Per frame: ``shifts`` (T, 3) in the engine's convention (``frame[p + s] ~ reference[p]``),
    ``quality``, ``flags``, ``neff``."""

    def __init__(self, shifts: np.ndarray, quality: np.ndarray, flags: np.ndarray, neff: np.ndarray) -> None:
        self.shifts = np.asarray(shifts, dtype=np.float64)
        self.quality = np.asarray(quality, dtype=np.float64)
        self.flags = np.asarray(flags, dtype=np.int64)
        self.neff = np.asarray(neff, dtype=np.float64)

    @classmethod
    def from_estimates(cls, estimates: Sequence[Any]) -> VolumeResults:
        """From :class:`._engine.Estimate` objects, in frame order."""
        return cls(
            np.array([e.shift for e in estimates], dtype=np.float64).reshape(-1, 3),
            np.array([e.quality for e in estimates], dtype=np.float64),
            np.array([e.flags for e in estimates], dtype=np.int64),
            np.array([e.neff for e in estimates], dtype=np.float64),
        )


def finish_volumes(
    results: VolumeResults,
    opts: PyramidOptions,
    layout: VolumeLayout,
    *,
    roi: tuple[int, int, int, int] | None,
    template_range: tuple[int, int],
    anchor: np.ndarray,
    bound: tuple[float, ...],
    levels: list[VolumeLevel],
    passes: int,
    channel: int | None,
    notes: Sequence[str] | None = None,
    extra_params: dict[str, Any] | None = None,
) -> VolumeTransforms:
    """Judge every frame, interpolate the unusable ones, re-anchor, smooth: the result.

    ``notes`` are per-frame reasons to distrust a frame found by the caller
    (the chained modes' broken links), added to those of the trust tests.
    The template frames' quality must already be their correlation with the
    template without themselves (measured), so no leave-one-out correction
    is made here.
    """
    n = len(results.shifts)
    shifts, quality, flags, neff = results.shifts, results.quality, results.flags, results.neff
    usable = (flags & FLAG_UNUSABLE) == 0
    if not usable.any():
        raise ValueError("no volume has any usable voxels (all constant, empty or NaN).")
    known = usable & np.all(np.isfinite(shifts), axis=1)
    if not known.all() and known.any():
        index = np.arange(n)
        shifts = np.stack([np.interp(index, index[known], shifts[known, a]) for a in range(3)], axis=1)
    ok, reason = judge(
        shifts, quality, flags, neff, in_template=np.zeros(n, bool), usable_template=1, bound=bound,
        notes=None if notes is None else list(notes),
    )
    if not ok.any():
        warnings.warn(
            f"volume registration: none of the {n} volumes has a trustworthy shift, so the stack has no usable "
            "signal for this method (nothing should be corrected with these estimates).",
            NoSignalWarning,
            stacklevel=4,
        )
    corrections = -(shifts - anchor)
    z, h, w = layout.volume_shape
    params: dict[str, Any] = {name: value for name, value in opts if name not in ("chunk_size", "kernel", "reference")}
    params["reference"] = REFERENCE_TEXT[opts.reference_mode]
    params["downsample_rates"] = list(opts.downsample_rates)
    params["roi"] = None if roi is None else list(roi)
    params["reference_frames"] = None if opts.reference_frames is None else list(opts.reference_frames)
    params["mask"] = False
    params["template_frames"] = int(template_range[1] - template_range[0])
    params["axes"] = layout.axes
    params["channel"] = channel
    params["volume_shape"] = [z, h, w]
    params["levels_used"] = [lv.rate for lv in levels]
    params["reference_passes"] = passes
    params["flags"] = {
        "unusable": int(np.sum((flags & FLAG_UNUSABLE) > 0)),
        "at_search_edge": int(np.sum((flags & FLAG_AT_EDGE) > 0)),
        "refinement_failed": int(np.sum((flags & FLAG_FAILED) > 0)),
        "not_converged": int(np.sum((flags & FLAG_NOT_CONVERGED) > 0)),
    }
    params.update(extra_params or {})
    if opts.smooth:
        kw = {"window_length": int(opts.window_length), "polyorder": int(opts.polyorder), "mode": "interp"}
        corrections = np.stack([savgol_filter(corrections[:, a], **kw) for a in range(3)], axis=1)
        params["smoothing"] = {"method": "savgol", "window_length": kw["window_length"], "polyorder": kw["polyorder"]}
    return VolumeTransforms.from_shifts(
        corrections,
        center=((h - 1) / 2.0, (w - 1) / 2.0),
        quality=quality,
        ok=ok,
        reason=reason,
        method="pyramid",
        params=params,
    )
