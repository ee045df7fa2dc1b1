"""Chained reference modes: each frame registered to what came just before it.

For samples without a fixed structure (colloids that diffuse and flow, cells
that move and change), a template made of the first frames resembles the
later frames less and less. The chained modes compare each frame with its
recent past instead:

- ``'previous'``: frame ``t`` is registered to the last trustworthy frame
  before it (normally ``t - 1``) and its shift is that frame's shift plus the
  link (the shifts are chained, as ``pystackreg``'s ``reference='previous'``).
  Every ``keyframe_every`` frames a frame is registered to the keyframe that
  many frames back instead, when that link is trustworthy: the keyframes
  form a chain of ``keyframe_every`` times fewer links, so the random walk
  of the chain's error grows about ``sqrt(keyframe_every)`` times slower
  (measured in ``tests/benchmarks/bench_reference_modes.py``);
- ``'running'``: frame ``t`` is registered to the mean of the last
  ``running_frames`` trustworthy frames, each resampled with its shift
  relative to the newest of them (so the running template moves with the
  sample and keeps the whole field of view, and its noise averages over
  those frames; the links are to the newest frame's position).

Chaining accumulates the links' errors (a random walk), and one wrong link
would move every later frame. So each link is tested as it is made, with
the tests of :mod:`._trust` (the engine's flags, the correlation peak's
significance ``z``): an untrustworthy link is not chained on. The next frame
is registered to the last trustworthy frame (across the gap), and after
``MAX_GAP`` untrustworthy links in a row the chain is re-anchored on the
newest frame, which is flagged (its offset to the frames before it is not
measured: it keeps the last trustworthy position). Every frame then goes
through :func:`._trust.judge` like in the other modes (its ``quality`` is
the correlation with what it was registered to), so the reasons of the
flagged frames are in ``FrameTransforms.reason``.

The first usable frame is the start of the chain: it stays in place, and it
is trusted as far as its link with the frame registered to it is.
"""

from __future__ import annotations

import warnings
from collections import deque
from typing import Any, NamedTuple

import numpy as np

from ...progress import ProgressCallback, report
from ...transforms import FrameTransforms
from ._chain_check import gradient_power, link_sigma, tolerance
from ._chain_lattice import chain_lattice, lattice_warning
from ._engine import FLAG_UNUSABLE, Estimate, FrameResults, PreparedFrame, Template, TemplateAccumulator
from ._trust import MIN_Z, significance

__all__ = ["HISTORY", "MAX_GAP", "run_chain"]

#: untrustworthy links in a row after which the chain is re-anchored on the newest frame
MAX_GAP = 5
#: trustworthy anchors kept: the newest, and the earlier ones a second and a third link are made to
HISTORY = 3


def _trusted(est: Estimate) -> bool:
    """Whether a link passes the engine's flags and the significance test."""
    if est.flags or not np.isfinite(est.quality):
        return False
    z = significance(np.array([est.quality]), np.array([est.neff]), np.zeros(1, bool), 0)[0]
    return bool(z >= MIN_Z)


class _Anchor:
    """What the next frame is registered to: a template, the shift that maps
    its coordinates to the chain's (engine convention), and its estimator."""

    def __init__(self, job: Any, template: Template, offset: tuple[float, float], frame: int) -> None:
        self.estimator = job.estimator(template)
        self.template = template
        self.offset = np.asarray(offset, dtype=np.float64)
        self.frame = frame
        #: whether this frame's own position was confirmed by a second path (the start of a chain is)
        self.verified = True
        self._gradient: np.ndarray | None = None

    @property
    def gradient(self) -> np.ndarray:
        """The template's mean squared gradient per axis (:func:`._chain_check.gradient_power`)."""
        if self._gradient is None:
            self._gradient = gradient_power(self.template)
        return self._gradient


def _link(anchor: _Anchor, t: int, prepared: PreparedFrame, prior: np.ndarray) -> Estimate:
    """Frame ``t`` registered to ``anchor``; ``prior`` is the expected link (decides between
    equally good matches of periodic content)."""
    return anchor.estimator.estimate(prepared, prior=(float(prior[0]), float(prior[1])))


class _Path(NamedTuple):
    """Frame ``t``'s position through one link."""

    anchor: _Anchor
    est: Estimate

    @property
    def position(self) -> np.ndarray:
        return self.anchor.offset + np.asarray(self.est.shift)

    @property
    def sigma(self) -> float:
        return link_sigma(self.est, self.anchor.gradient)


def _fmt(p: np.ndarray) -> str:
    return f"({p[0]:+.2f}, {p[1]:+.2f})"


def _cross_check(
    t: int, prepared: PreparedFrame, first: _Path, others: list[_Path], older: list[_Anchor], last_link: np.ndarray
) -> tuple[_Path | None, str, str, int]:
    """Check the path ``first`` to frame ``t`` against a second one.

    ``others`` are trustworthy paths already measured (the keyframe's);
    ``older`` the anchors a second and a third link may be made to, in the
    order they are tried. Returns ``(path, outcome, note, links)``: the
    path to chain on (None when the paths disagree and no third link
    decides, then ``note`` says why); ``outcome`` is ``'unchecked'`` (no
    second trustworthy path), ``'agree'``, ``'resolved'`` (a third link
    agreed with ``first``), ``'corrected'`` (it agreed with the second path,
    which is returned) or ``'disagree'``; and how many links were made.
    """
    links = 0
    pool = list(others)

    def next_path(used: set[int]) -> _Path | None:
        nonlocal links
        for path in pool:
            if id(path.anchor) not in used:
                return path
        for a in older:
            if id(a) in used:
                continue
            est = _link(a, t, prepared, last_link * (t - a.frame))
            links += 1
            path = _Path(a, est)
            if _trusted(est):
                pool.append(path)
                return path
            used.add(id(a))
        return None

    used = {id(first.anchor)}
    second = next_path(used)
    if second is None:
        return first, "unchecked", "", links
    d12 = float(np.linalg.norm(first.position - second.position))
    tol12 = tolerance(first.sigma, second.sigma)
    if d12 <= tol12:
        return first, "agree", "", links
    used.add(id(second.anchor))
    third = next_path(used)
    text = (
        f"chain links disagree by {d12:.1f} px (limit {tol12:.2g} px): through frame {first.anchor.frame} at "
        f"{_fmt(first.position)}, through frame {second.anchor.frame} at {_fmt(second.position)}"
    )
    if third is None:
        return None, "disagree", f"{text}; no third link to decide", links
    agree = [
        float(np.linalg.norm(path.position - third.position)) <= tolerance(path.sigma, third.sigma)
        for path in (first, second)
    ]
    if agree[0] != agree[1]:
        return (first, "resolved", "", links) if agree[0] else (second, "corrected", "", links)
    return None, "disagree", f"{text}; the link through frame {third.anchor.frame} at {_fmt(third.position)} does not decide", links


def _frames(stack: Any, n: int, chunk_size: int):
    """``(t, raw frame)`` for every frame, read ``chunk_size`` frames at a time."""
    for c0 in range(0, n, chunk_size):
        chunk = np.asarray(stack[c0 : min(c0 + chunk_size, n)])
        for j, raw in enumerate(chunk):
            yield c0 + j, raw


def run_chain(
    stack: Any, job: Any, *, progress: ProgressCallback | None = None
) -> tuple[FrameTransforms, FrameTransforms]:
    """Register every frame to the previous frame(s), in order.

    Parameters
    ----------
    stack : array-like (T, Y, X)
        Frames (read ``chunk_size`` at a time, in order: memory stays flat).
    job : PyramidJob
        From :func:`._stages.plan_pyramid`, with ``reference_mode``
        ``'previous'`` or ``'running'``.
    progress : callable, optional
        ``progress(done, total, "estimate")``.

    Returns
    -------
    (raw, final) : FrameTransforms
        As :func:`._stages.finish` returns them; ``params`` add
        ``"chain_breaks"`` (the frames the chain was re-anchored on),
        ``"gap_links"`` (frames registered across untrustworthy frames),
        ``"keyframe_links"`` (frames registered to their keyframe),
        ``"check_links"`` (links made only to check a frame's position),
        ``"links_resolved"`` (frames whose two paths disagreed and a third
        link decided, ``"links_corrected"`` of them when it decided against
        the link to the newest frame) and ``"links_disagree"`` (frames
        flagged because their paths disagree).
    """
    from ._stages import TemplateState, finish  # the stages import this module lazily

    opts = job.options
    n = job.n_frames
    running = opts.reference_mode == "running"
    preparer = job.preparer()
    shifts = np.zeros((n, 2))
    quality = np.full(n, np.nan)
    flags = np.zeros(n, np.int64)
    neff = np.full(n, np.nan)
    notes = [""] * n
    window: deque = deque(maxlen=opts.running_frames)
    #: the last trustworthy anchors, newest last (the second and third links are made to them)
    history: deque[_Anchor] = deque(maxlen=HISTORY)
    anchor: _Anchor | None = None
    seed: _Anchor | None = None
    seed_link: Estimate | None = None
    last_link = np.zeros(2)
    gap = 0
    breaks: list[int] = []
    gap_links = 0
    counts = {"check_links": 0, "links_resolved": 0, "links_corrected": 0, "links_disagree": 0}
    #: the anchor is a frame the chain was re-anchored on that no link has confirmed yet
    provisional = False
    #: the last trustworthy anchor before the chain was re-anchored
    bridge: _Anchor | None = None
    #: 'previous': every `every` frames a link to `keyframe`, that many frames back
    every = 1 if running else opts.keyframe_every
    keyframe: _Anchor | None = None
    key_links = 0

    def anchor_at(t: int, prepared: PreparedFrame, position: np.ndarray) -> _Anchor:
        """The next frames' reference once frame ``t`` sits at ``position``."""
        if running:
            window.append((prepared, position.copy(), t))
            if len(window) > 1:
                made = _Anchor(job, _window_template(window, position, job, opts), position, t)
                history.append(made)
                return made
        made = _Anchor(job, Template.from_prepared(prepared, opts.normalize), position, t)
        history.append(made)
        return made

    def start_at(t: int, prepared: PreparedFrame, position: np.ndarray) -> _Anchor:
        window.clear()
        history.clear()
        return anchor_at(t, prepared, position)

    report(progress, 0, n, "estimate")
    for t, raw in _frames(stack, n, job.chunk_size):
        prepared = preparer(raw)
        img = prepared.image
        if not (prepared.usable and float(img.max()) > float(img.min())):
            flags[t] = FLAG_UNUSABLE
            report(progress, t + 1, n, "estimate")
            continue
        if anchor is None:
            anchor = seed = keyframe = start_at(t, prepared, np.zeros(2))
            report(progress, t + 1, n, "estimate")
            continue
        steps = t - anchor.frame
        est = _link(anchor, t, prepared, last_link * steps)
        if anchor is seed and not est.flags & FLAG_UNUSABLE and (seed_link is None or not _trusted(seed_link)):
            # the seed is judged by its first trustworthy link (else its first link)
            seed_link = est
        path = _Path(anchor, est)
        measured: list[_Path] = []
        due = keyframe is not None and keyframe is not anchor and t - keyframe.frame >= every
        if every > 1 and not provisional and due:
            # the keyframe link: one link for `every` frames, so the chain's
            # random walk takes `every` times fewer steps
            key_est = _link(keyframe, t, prepared, last_link * (t - keyframe.frame))
            if _trusted(key_est):
                if _trusted(est):
                    measured.append(path)  # the second path, measured already
                path = _Path(keyframe, key_est)
                key_links += 1
        trusted = _trusted(path.est)
        verified = False
        if trusted and not provisional:
            # a second path to this frame (a third when they disagree)
            older = [a for a in reversed(history) if a is not path.anchor and a.frame < t]
            checked, outcome, note, made = _cross_check(t, prepared, path, measured, older, last_link)
            counts["check_links"] += made
            verified = outcome in ("agree", "resolved", "corrected")
            if checked is None:
                notes[t] = note
                counts["links_disagree"] += 1
                trusted = False
                if not path.anchor.verified and len(history) > 1 and path.anchor is history[-1]:
                    # the newest anchor's own link was never confirmed: it may
                    # be the wrong one, so the chain does not go on from it
                    dropped = history.pop()
                    if window and window[-1][2] == dropped.frame:
                        window.pop()
                    notes[dropped.frame] = (
                        f"its link was not confirmed: the next frame's {note[0].lower()}{note[1:]}"
                    )
                    anchor = history[-1]
                    if keyframe is dropped:
                        keyframe = anchor
            elif outcome in ("resolved", "corrected"):
                counts["links_resolved"] += 1
                counts["links_corrected"] += outcome == "corrected"
                path = checked
        est = path.est
        quality[t], flags[t], neff[t] = est.quality, est.flags, est.neff
        position = path.position
        shifts[t] = position
        if trusted:
            if provisional:
                notes[anchor.frame] = (
                    f"chain re-anchored here after {MAX_GAP} untrustworthy links: its offset to the frames "
                    f"before is not measured (position of frame {bridge.frame} kept)"
                )
                breaks.append(anchor.frame)
                provisional, bridge = False, None
            if steps > 1:
                gap_links += 1
            last_link = (position - anchor.offset) / steps
            anchor = anchor_at(t, prepared, position)
            anchor.verified = verified
            if keyframe is None or t - keyframe.frame >= every:
                keyframe = anchor
            gap = 0
        else:
            gap += 1
            if provisional and bridge is not None:
                # register across the gap: this frame against the last
                # trustworthy anchor before it
                est = _link(bridge, t, prepared, last_link * (t - bridge.frame))
                if _trusted(est):
                    quality[t], flags[t], neff[t] = est.quality, est.flags, est.neff
                    shifts[t] = bridge.offset + np.asarray(est.shift)
                    anchor = keyframe = start_at(t, prepared, shifts[t])
                    provisional, bridge, gap = False, None, 0
                    gap_links += 1
                    report(progress, t + 1, n, "estimate")
                    continue
            if provisional or gap >= MAX_GAP:
                # the chain cannot get past these frames: start again here, at
                # the last trustworthy position; until a link to this frame
                # passes, every new frame replaces it (it may be noise too)
                if not provisional:
                    bridge = anchor
                held = anchor.offset.copy()
                shifts[t] = held
                anchor = keyframe = start_at(t, prepared, held)
                provisional = True
                gap = 0
        report(progress, t + 1, n, "estimate")
    if seed is None:
        raise ValueError("no frame has any usable pixels (all constant, empty, NaN or masked out).")
    if seed_link is not None:
        # the seed is as trustworthy as its link with the frame registered to it
        quality[seed.frame], neff[seed.frame] = seed_link.quality, seed_link.neff
        flags[seed.frame] = seed_link.flags & ~FLAG_UNUSABLE
    else:
        notes[seed.frame] = "no other usable frame was registered to it"
    results = FrameResults(shifts, quality, flags, neff)
    state = TemplateState(seed.template, None, -1, 0, None)
    extra = {"chain_breaks": breaks, "gap_links": gap_links, "keyframe_links": key_links, **counts}
    lattice = chain_lattice(stack, shifts, (flags & FLAG_UNUSABLE) == 0, job)
    if lattice is not None:
        extra["lattice"] = {"vectors": lattice.vectors.round(3).tolist(), "contrast": round(lattice.contrast, 3)}
        warnings.warn(lattice_warning(opts.reference_mode, lattice), UserWarning, stacklevel=4)
    return finish(job, state, results, levels_used=seed.estimator.active_rates, notes=notes, extra_params=extra)


def _window_template(window: deque, position: np.ndarray, job: Any, opts: Any) -> Template:
    """The mean of the frames in ``window`` (``(prepared, shift, frame)``),
    each resampled onto the grid of the frame at ``position`` (the newest):
    the running template moves with the sample, so it keeps the whole field
    of view however far the stack drifts."""
    acc = TemplateAccumulator(job.crop_shape, opts.normalize, opts.kernel)
    for prepared, shift, _ in window:
        rel = shift - position
        acc.add(acc.register(prepared, (float(rel[0]), float(rel[1]))))
    return acc.template()
