"""Follow picked particles frame by frame with Gaussian fits.

Each particle's box is recentred on its last good fit, shifted by the motion
the other particles have shown since (and by the current velocity), so a
drift much larger than the box is followed as long as each frame-to-frame
step stays within about half a box. All particles of a frame are fitted in
one batch (:func:`~napari_stackalign.core.particles._gaussian_fit.fit_gaussians`), while
a background thread reads the next chunk of frames.

Per frame, three attempts, each only for the particles still failing:

1. fit at the predicted positions;
2. if some particles were found, move the boxes of the others by the median
   offset the found ones showed from their predictions, and fit again;
3. if *no* particle was found (a sudden jump of the whole field), search for
   each particle's previous appearance by normalised cross-correlation in a
   window ``search`` px around its prediction, take the median displacement
   over the particles, and fit again there.

A fit that fails every attempt is kept in the table with ``ok=False`` and its
reason; it is never used downstream.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import cv2
import numpy as np

from ...progress import ProgressCallback, report
from ._gaussian_fit import GaussianFits, _check_box, fit_gaussians_at
from ._picks import as_picks
from ._tracks import ParticleTracks

__all__ = ["track_particles"]

_FIELDS = ("y", "x", "amplitude", "sigma_major", "sigma_minor", "angle", "background", "r2", "pos_err")


def _frames(stack: Any, order: list[int], chunk_size: int) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (t, frame) in ``order`` (ascending or descending runs), reading
    chunks of frames in a background thread one chunk ahead."""
    if not order:
        return
    step = 1 if len(order) < 2 or order[1] > order[0] else -1
    chunks: list[tuple[int, int]] = []
    for k in range(0, len(order), chunk_size):
        part = order[k : k + chunk_size]
        lo, hi = min(part), max(part) + 1
        chunks.append((lo, hi))

    def read(bounds: tuple[int, int]) -> np.ndarray:
        lo, hi = bounds
        return np.asarray(stack[lo:hi])

    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(read, chunks[0])
        for k, bounds in enumerate(chunks):
            data = future.result()
            if k + 1 < len(chunks):
                future = pool.submit(read, chunks[k + 1])
            lo, hi = bounds
            ts = range(lo, hi) if step > 0 else range(hi - 1, lo - 1, -1)
            for t in ts:
                yield t, data[t - lo]


class _Sweep:
    """State of one tracking direction (forward or backward in time)."""

    def __init__(self, n: int) -> None:
        self.last_pos = np.full((n, 2), np.nan)
        self.last_frame = np.full(n, -1, dtype=np.int64)
        self.entered_frame = np.full(n, -1, dtype=np.int64)
        self.have = np.zeros(n, dtype=bool)
        self.motion: dict[int, np.ndarray] = {}  # cumulative global motion per frame
        self.prev: int | None = None
        self.order: list[int] = []  # frames processed so far
        self.prev_image: np.ndarray | None = None
        # per particle, where it would be in the current frame without this
        # frame's motion (to measure the frame's global step)
        self.step_from: dict[int, np.ndarray] = {}

    def motion_at(self, t: int) -> np.ndarray:
        return self.motion.get(t, np.zeros(2))

    def velocity(self) -> np.ndarray:
        """Expected step to the next frame: the median of the last three
        steps (a steady drift is followed; a single jump is not repeated;
        with only two steps, the smaller one)."""
        if len(self.order) < 2:
            return np.zeros(2)
        recent = self.order[-4:]
        steps = np.array([self.motion_at(b) - self.motion_at(a) for a, b in zip(recent[:-1], recent[1:])])
        if steps.shape[0] < 3:  # too few for a median: the smaller step
            return steps[int(np.argmin(np.hypot(steps[:, 0], steps[:, 1])))]
        return np.median(steps, axis=0)

    def predict(self, idx: np.ndarray) -> np.ndarray:
        """Predicted positions of particles ``idx`` in the current frame."""
        base = self.motion_at(self.prev) if self.prev is not None else np.zeros(2)
        since = np.array([base - self.motion_at(int(f)) for f in self.last_frame[idx]]).reshape(-1, 2)
        return self.last_pos[idx] + since + self.velocity()


def _ncc_consensus(
    prev_image: np.ndarray,
    image: np.ndarray,
    centers_prev: np.ndarray,
    predicted: np.ndarray,
    box: tuple[int, int],
    search: int,
) -> np.ndarray | None:
    """The common displacement (from the predictions) of all particles'
    previous appearances in ``image``, by normalised cross-correlation.

    Each particle's box from the previous frame is correlated over a window
    ``search`` px around its prediction; the correlation maps are averaged
    over the particles (all move together), so a neighbouring look-alike
    spot that fools one particle's map does not win. Returns None when no
    clear common peak exists.
    """
    h, w = image.shape
    bh, bw = box
    size = 2 * search + 1
    total = np.zeros((size, size))
    count = np.zeros((size, size))
    prev32 = np.asarray(prev_image, dtype=np.float32)
    img32 = np.asarray(image, dtype=np.float32)
    for (py, px), (qy, qx) in zip(centers_prev, predicted):
        ty0, tx0 = int(round(py)) - bh // 2, int(round(px)) - bw // 2
        if ty0 < 0 or tx0 < 0 or ty0 + bh > h or tx0 + bw > w:
            continue  # the template is cut by the frame border
        templ = prev32[ty0 : ty0 + bh, tx0 : tx0 + bw]
        if float(templ.std()) == 0.0:
            continue
        # window of all template positions within +/- search of the prediction
        wy0 = int(round(qy)) - bh // 2 - search
        wx0 = int(round(qx)) - bw // 2 - search
        cy0, cx0 = max(wy0, 0), max(wx0, 0)
        cy1, cx1 = min(wy0 + size - 1 + bh, h), min(wx0 + size - 1 + bw, w)
        if cy1 - cy0 < bh or cx1 - cx0 < bw:
            continue
        score = cv2.matchTemplate(img32[cy0:cy1, cx0:cx1], templ, cv2.TM_CCOEFF_NORMED)
        oy, ox = cy0 - wy0, cx0 - wx0
        total[oy : oy + score.shape[0], ox : ox + score.shape[1]] += np.nan_to_num(score)
        count[oy : oy + score.shape[0], ox : ox + score.shape[1]] += 1
    if not count.any():
        return None
    need = max(1.0, 0.5 * count.max())
    mean = np.where(count >= need, total / np.maximum(count, 1), -np.inf)
    a, b = np.unravel_index(int(np.argmax(mean)), mean.shape)
    if mean[a, b] < 0.5:
        return None
    return np.array([a - search, b - search], dtype=np.float64)


def track_particles(
    stack: Any,
    picks: Any,
    *,
    box: Any = 15,
    frame0: int = 0,
    min_r2: float = 0.5,
    max_sigma: float | None = None,
    dark: bool | None = None,
    search: int | None = None,
    max_jump: float | None = None,
    chunk_size: int = 64,
    workers: int | None = None,
    progress: ProgressCallback | None = None,
) -> ParticleTracks:
    """Track picked particles through a stack with 2-D Gaussian fits.

    Parameters
    ----------
    stack : array-like, shape (T, Y, X)
        numpy array, memmap, h5py dataset or dask array; read chunk by chunk.
    picks : array_like, shape (N, 2) or (N, 3)
        (y, x) positions in ``frame0``, or (frame, y, x) rows (a napari
        Points layer's data on the stack). Each particle is followed forward
        and backward in time from its own pick frame.
    box : int or (int, int)
        Fit box in px (about 3-4 spot widths).
    frame0 : int
        Frame of (N, 2) picks.
    min_r2 : float
        Goodness-of-fit gate (see :func:`~napari_stackalign.fit_gaussian`).
    max_sigma : float, optional
        Largest accepted spot width (default: a third of the box).
    dark : bool or None
        Spot polarity; None detects it at each particle's pick and keeps it.
    search : int, optional
        Radius (px) of the cross-correlation search used when every particle
        is lost in a frame (default: twice the box); 0 disables it.
    max_jump : float, optional
        With three or more particles found in a frame, a fit whose step from
        the previous frame differs from the median step by more than this
        (px; default a third of the box) is rejected as a mis-lock on a
        neighbour.
    chunk_size : int
        Frames read at a time.
    workers : int, optional
        Threads for the fits of large batches (many particles).
    progress : callable, optional
        ``progress(done, total, stage)``; may raise
        :class:`~napari_stackalign.core.Cancelled` to stop.

    Returns
    -------
    ParticleTracks
        One row per (frame, particle) with the fit, ``ok`` and the reason a
        fit was rejected.
    """
    shape = tuple(stack.shape)
    if len(shape) != 3:
        raise ValueError(
            f"track_particles needs a (T, Y, X) stack, got shape {shape}: "
            "for a single image use fit_gaussian; for channels pick one channel first."
        )
    n_frames, height, width = (int(v) for v in shape)
    if n_frames < 1:
        raise ValueError("the stack has no frames.")
    bh, bw = _check_box(box)
    if height < bh or width < bw:
        raise ValueError(f"frames ({height}x{width}) are smaller than the box ({bh}x{bw}): use a smaller box.")
    if not 0 <= int(frame0) < n_frames:
        raise ValueError(f"frame0 must be in 0..{n_frames - 1}, got {frame0}.")
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1.")
    if search is None:
        search = 2 * max(bh, bw)
    if max_jump is None:
        max_jump = max(bh, bw) / 3.0
    if not max_jump > 0:
        raise ValueError(f"max_jump must be a positive distance in px, got {max_jump}.")
    if search < 0:
        raise ValueError(f"search must be >= 0 px (0 disables the search), got {search}.")
    picks_arr = as_picks(picks, frame0=int(frame0))
    starts = picks_arr[:, 0].astype(np.int64)
    if starts.min() < 0 or starts.max() >= n_frames:
        raise ValueError(f"picks lie in frames {sorted(set(starts.tolist()))}, but the stack has {n_frames} frames.")
    yx = picks_arr[:, 1:]
    outside = (yx[:, 0] < -0.5) | (yx[:, 0] > height - 0.5) | (yx[:, 1] < -0.5) | (yx[:, 1] > width - 0.5)
    if np.any(outside):
        bad = np.flatnonzero(outside).tolist()
        raise ValueError(f"picks {bad} lie outside the {height}x{width} frame: remove them or check the layer scale.")
    n = picks_arr.shape[0]
    fit_kw = dict(min_r2=min_r2, max_sigma=max_sigma, workers=workers)
    # validate the gates once, up front (a bad value fails before reading frames)
    fit_gaussians_at(np.zeros((bh, bw)), np.zeros((1, 2)), (bh, bw), dark=dark, **fit_kw)

    values = {name: np.full((n_frames, n), np.nan) for name in _FIELDS}
    ok = np.zeros((n_frames, n), dtype=bool)
    reason = np.full((n_frames, n), "not fitted", dtype=object)
    polarity: list[bool | None] = [dark] * n

    total = n_frames
    done = 0
    last_report = time.perf_counter()
    report(progress, 0, total, "track")

    def store(t: int, idx: np.ndarray, fits: GaussianFits, sel: np.ndarray) -> None:
        rows = idx[sel]
        for name in _FIELDS:
            values[name][t, rows] = getattr(fits, name)[sel]
        ok[t, rows] = fits.ok[sel]
        for k, j in zip(np.flatnonzero(sel), rows):
            reason[t, j] = fits.reason[k]

    def run_sweep(order: list[int], forward: bool) -> None:
        nonlocal done, last_report
        sweep = _Sweep(n)
        for t, frame in _frames(stack, order, chunk_size):
            frame = np.asarray(frame)
            entering = np.flatnonzero(starts == t)
            behind = (starts < t) if forward else (starts > t)
            tracked = np.flatnonzero(behind & (sweep.entered_frame >= 0))
            # particles entering here: fit at the pick (forward) or take the
            # forward fit at their pick frame (backward)
            if entering.size:
                if forward:
                    fits = fit_gaussians_at(frame, yx[entering], (bh, bw), dark=[polarity[i] for i in entering], **fit_kw)
                    store(t, entering, fits, np.ones(entering.size, dtype=bool))
                    for k, i in enumerate(entering):
                        if fits.ok[k] and polarity[i] is None:
                            polarity[i] = bool(fits.dark[k])
                sweep.entered_frame[entering] = t
                good = ok[t, entering]
                sweep.last_pos[entering] = np.where(
                    good[:, None], np.column_stack([values["y"][t, entering], values["x"][t, entering]]), yx[entering]
                )
                sweep.last_frame[entering] = t
                sweep.have[entering] = good
            if tracked.size:
                _track_frame(sweep, t, frame, tracked, (bh, bw), search, polarity, fit_kw, store)
                _reject_jumps(sweep, t, tracked, ok, reason, values, max_jump)
                for i in tracked:
                    if ok[t, i]:
                        if polarity[i] is None:
                            polarity[i] = bool(values["amplitude"][t, i] < 0)
                        sweep.last_pos[i] = (values["y"][t, i], values["x"][t, i])
                        sweep.last_frame[i] = t
                        sweep.have[i] = True
            # global motion: median displacement of the particles found here
            _update_motion(sweep, t, tracked, ok, values)
            sweep.prev = t
            sweep.order.append(t)
            sweep.prev_image = frame
            done += 1
            now = time.perf_counter()
            if now - last_report > 0.1 or done == total:
                report(progress, done, total, "track")
                last_report = now

    first, last = int(starts.min()), int(starts.max())
    run_sweep(list(range(first, n_frames)), True)
    if last > 0:
        run_sweep(list(range(last, -1, -1)), False)
    # frames never reached by either sweep do not exist: forward covers
    # t >= min(start), backward covers t < max(start)
    report(progress, total, total, "track")
    reason[ok] = ""
    params = {
        "box": [bh, bw],
        "min_r2": float(min_r2),
        "max_sigma": None if max_sigma is None else float(max_sigma),
        "dark": dark,
        "search": int(search),
        "max_jump": float(max_jump),
        "polarity": ["dark" if p else "bright" if p is not None else "unknown" for p in polarity],
    }
    return ParticleTracks(
        **values, ok=ok, reason=reason, shape=(height, width), picks=picks_arr, params=params
    )


def _reject_jumps(
    sweep: _Sweep, t: int, tracked: np.ndarray, ok: np.ndarray, reason: np.ndarray, values: dict, max_jump: float
) -> None:
    """With at least 3 particles found, reject fits whose step in this frame
    differs from the median step by more than ``max_jump`` px (a box that
    caught a neighbour or a blend of two spots)."""
    found = tracked[ok[t, tracked]]
    if found.size < 3:
        return
    steps = np.array(
        [[values["y"][t, i], values["x"][t, i]] - sweep.step_from[int(i)] for i in found]
    )
    dev = np.hypot(*(steps - np.median(steps, axis=0)).T)
    for i, d in zip(found, dev):
        if d > max_jump:
            ok[t, i] = False
            reason[t, i] = f"jumped {d:.1f} px away from the other particles' motion"


def _update_motion(sweep: _Sweep, t: int, tracked: np.ndarray, ok: np.ndarray, values: dict) -> None:
    """Cumulative global motion at frame ``t`` from the particles found."""
    base = sweep.motion_at(sweep.prev) if sweep.prev is not None else np.zeros(2)
    if tracked.size:
        found = tracked[ok[t, tracked] & (sweep.last_frame[tracked] == t)]
    else:
        found = tracked
    steps = []
    for i in found:
        before = sweep.step_from.get(int(i))
        if before is not None:
            steps.append(np.array([values["y"][t, i], values["x"][t, i]]) - before)
    if steps:
        sweep.motion[t] = base + np.median(np.array(steps), axis=0)
    else:
        sweep.motion[t] = base + sweep.velocity()


def _track_frame(
    sweep: _Sweep,
    t: int,
    frame: np.ndarray,
    idx: np.ndarray,
    box: tuple[int, int],
    search: int,
    polarity: list,
    fit_kw: dict,
    store: Any,
) -> None:
    """Fit particles ``idx`` in frame ``t`` with the three attempts."""
    pred = sweep.predict(idx)
    # where each particle "would be" without this frame's motion: used to
    # measure this frame's global step
    base = sweep.motion_at(sweep.prev) if sweep.prev is not None else np.zeros(2)
    no_step = sweep.last_pos[idx] + np.array([base - sweep.motion_at(int(f)) for f in sweep.last_frame[idx]]).reshape(-1, 2)
    sweep.step_from = {int(i): no_step[k] for k, i in enumerate(idx)}
    dark = [polarity[i] for i in idx]
    fits = fit_gaussians_at(frame, pred, box, dark=dark, **fit_kw)
    store(t, idx, fits, np.ones(idx.size, dtype=bool))
    found = fits.ok.copy()
    if found.all():
        return
    offset = None
    if found.any():
        # attempt 2: the others' offset from their predictions
        offset = np.median(fits.centers[found] - pred[found], axis=0)
        if np.hypot(*offset) < 1.0:
            offset = None
    elif search > 0 and sweep.prev_image is not None:
        # attempt 3: every particle lost; search by cross-correlation
        recent = sweep.have[idx] & (sweep.last_frame[idx] == sweep.prev)
        if np.any(recent):
            rounded = np.round(pred[recent])
            common = _ncc_consensus(sweep.prev_image, frame, sweep.last_pos[idx][recent], rounded, box, search)
            if common is not None:
                offset = common + np.median(rounded - pred[recent], axis=0)
    if offset is None:
        return
    retry = ~found
    fits2 = fit_gaussians_at(
        frame, pred[retry] + offset, box, dark=[d for d, r in zip(dark, retry) if r], **fit_kw
    )
    sel = fits2.ok
    if np.any(sel):
        store(t, idx[retry], fits2, sel)
