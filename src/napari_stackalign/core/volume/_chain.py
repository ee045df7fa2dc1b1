"""Chained reference modes for volumes: each volume registered to what came just before it.

The 2-D chained modes (:mod:`~napari_stackalign.core.pyramid._chain`) in three
dimensions, with the same trust rules:

- ``'previous'``: volume ``t`` is registered to the last trustworthy volume
  before it (normally ``t - 1``); its shift is that volume's shift plus the
  link. Every ``keyframe_every`` volumes the link is made to the keyframe
  that many volumes back instead, when that link is trustworthy, so the
  chain's random walk has ``keyframe_every`` times fewer steps;
- ``'running'``: volume ``t`` is registered to the mean of the last
  ``running_frames`` trustworthy volumes, each resampled with its shift
  relative to the newest of them (the running template moves with the
  sample; it holds ``running_frames`` volumes in memory).

Each link is tested as it is made (the engine's flags and the correlation's
significance ``z >= MIN_Z``, :func:`~napari_stackalign.core.pyramid._chain._trusted`):
an untrustworthy link is not chained on, the next volume is registered to
the last trustworthy one across the gap, and after ``MAX_GAP`` untrustworthy
links in a row the chain is re-anchored on the newest volume, which is
flagged with its reason (its offset to the volumes before it is not
measured: it keeps the last trustworthy position). Every volume is then
judged like in the other modes, its ``quality`` the correlation with what
it was registered to. The first usable volume is the start of the chain: it
stays in place and is as trustworthy as its first trustworthy link.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from ...progress import ProgressCallback, report
from ..pyramid._chain import MAX_GAP, _trusted
from ..pyramid._engine import FLAG_UNUSABLE
from ..pyramid._options import PyramidOptions
from ._average import average_of, spline_coefficients
from ._engine import Estimate, VolumeEstimator, VolumeTemplate
from ._finish import VolumeResults
from ._levels import VolumeLevel
from ._reader import VolumeReader

__all__ = ["run_volume_chain"]


class _Anchor:
    """What the next volume is registered to: its estimator, and the shift that maps the
    template's coordinates to the chain's (engine convention)."""

    def __init__(self, template: VolumeTemplate, bound: tuple[float, ...], normalize: bool, offset: Any, frame: int):
        self.estimator = VolumeEstimator(template, bound, normalize)
        self.offset = np.asarray(offset, dtype=np.float64).copy()
        self.frame = frame


def run_volume_chain(
    read: VolumeReader,
    n: int,
    *,
    shape: tuple[int, int, int],
    levels: list[VolumeLevel],
    bound: tuple[float, ...],
    opts: PyramidOptions,
    progress: ProgressCallback | None = None,
) -> tuple[VolumeResults, list[str], dict[str, Any]]:
    """Register every volume to the one(s) before it, in order (read once each).

    Returns
    -------
    (results, notes, extra_params)
        The per-volume results (positions in the chain's coordinates, the
        first usable volume at 0), a reason to distrust each volume found
        while chaining ('' for none) and the params ``"chain_breaks"``,
        ``"gap_links"``, ``"keyframe_links"``.
    """
    running = opts.reference_mode == "running"
    every = 1 if running else opts.keyframe_every
    shifts = np.zeros((n, 3))
    quality = np.full(n, np.nan)
    flags = np.zeros(n, np.int64)
    neff = np.full(n, np.nan)
    notes = [""] * n
    window: deque = deque(maxlen=opts.running_frames)
    anchor: _Anchor | None = None
    seed: _Anchor | None = None
    seed_link: Estimate | None = None
    keyframe: _Anchor | None = None
    bridge: _Anchor | None = None
    provisional = False
    gap = gap_links = key_links = 0
    breaks: list[int] = []

    def anchor_at(t: int, volume: np.ndarray, position: np.ndarray) -> _Anchor:
        """The next volumes' reference once volume ``t`` sits at ``position``."""
        template = volume
        if running:
            window.append((t, spline_coefficients(volume), position.copy()))
            if len(window) > 1:
                items = [(f, coeffs, pos - position) for f, coeffs, pos in window]
                template = average_of(items, shape).volume
        return _Anchor(VolumeTemplate(template, levels), bound, opts.normalize, position, t)

    def start_at(t: int, volume: np.ndarray, position: np.ndarray) -> _Anchor:
        window.clear()
        return anchor_at(t, volume, position)

    def keep(t: int, est: Estimate, base: _Anchor) -> None:
        quality[t], flags[t], neff[t] = est.quality, est.flags, est.neff
        shifts[t] = base.offset + est.shift

    report(progress, 0, n, "estimate")
    for t in range(n):
        volume = read(t)
        if volume is None:
            flags[t] = FLAG_UNUSABLE
            report(progress, t + 1, n, "estimate")
            continue
        if anchor is None:
            anchor = seed = keyframe = start_at(t, volume, np.zeros(3))
            report(progress, t + 1, n, "estimate")
            continue
        steps = t - anchor.frame
        est = anchor.estimator.estimate(volume)
        if anchor is seed and not est.flags & FLAG_UNUSABLE and (seed_link is None or not _trusted(seed_link)):
            seed_link = est  # the seed is judged by its first trustworthy link (else its first link)
        base = anchor
        due = keyframe is not None and keyframe is not anchor and t - keyframe.frame >= every
        if every > 1 and not provisional and due:
            key_est = keyframe.estimator.estimate(volume)
            if _trusted(key_est):
                est, base = key_est, keyframe
                key_links += 1
        keep(t, est, base)
        if _trusted(est):
            if provisional:
                notes[anchor.frame] = (
                    f"chain re-anchored here after {MAX_GAP} untrustworthy links: its offset to the frames "
                    f"before is not measured (position of frame {bridge.frame} kept)"
                )
                breaks.append(anchor.frame)
                provisional, bridge = False, None
            if steps > 1:
                gap_links += 1
            anchor = anchor_at(t, volume, shifts[t])
            if keyframe is None or t - keyframe.frame >= every:
                keyframe = anchor
            gap = 0
        else:
            gap += 1
            if provisional and bridge is not None:
                # register across the gap: this volume against the last trustworthy anchor before it
                bridged = bridge.estimator.estimate(volume)
                if _trusted(bridged):
                    keep(t, bridged, bridge)
                    anchor = keyframe = start_at(t, volume, shifts[t])
                    provisional, bridge, gap = False, None, 0
                    gap_links += 1
                    report(progress, t + 1, n, "estimate")
                    continue
            if provisional or gap >= MAX_GAP:
                # the chain cannot get past these volumes: start again here, at the last trustworthy
                # position; until a link to this volume passes, every new volume replaces it
                if not provisional:
                    bridge = anchor
                shifts[t] = anchor.offset
                anchor = keyframe = start_at(t, volume, anchor.offset)
                provisional = True
                gap = 0
        report(progress, t + 1, n, "estimate")
    if seed is None:
        raise ValueError("no volume has any usable voxels (all constant, empty or NaN).")
    if seed_link is not None:
        quality[seed.frame], neff[seed.frame] = seed_link.quality, seed_link.neff
        flags[seed.frame] = seed_link.flags & ~FLAG_UNUSABLE
    else:
        notes[seed.frame] = "no other usable frame was registered to it"
    extra = {"chain_breaks": breaks, "gap_links": gap_links, "keyframe_links": key_links}
    return VolumeResults(shifts, quality, flags, neff), notes, extra
