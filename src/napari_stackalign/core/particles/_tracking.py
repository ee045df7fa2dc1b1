"""Follow picked particles frame by frame with Gaussian fits.

Each particle's box is recentred on its last good fit, shifted by the motion
the other particles have shown since (and by the current velocity), so a
drift much larger than the box is followed as long as each frame-to-frame
step stays within about half a box. All particles of a frame are fitted in
one batch (:func:`~napari_stackalign.core.particles.fit_gaussians`), while
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

import itertools
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import cv2
import numpy as np

from ...progress import ProgressCallback, report
from ..checks import check_stack
from ._gaussian_fit import FIT_COLUMNS, GaussianFits, _fit_at
from ._options import BOX_LIMITS, TRACK_DEFAULTS, TrackOptions
from ._picks import as_picks
from ._tracks import ParticleTracks

__all__ = ["track_particles"]

#: the per-frame values a track keeps: every fit column but ``ok``
_FIELDS = tuple(c for c in FIT_COLUMNS if c != "ok")


def _frames(
    stack: Any, order: list[int], chunk_size: int
) -> Iterator[tuple[int, np.ndarray]]:
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
        steps = np.array(
            [
                self.motion_at(b) - self.motion_at(a)
                for a, b in itertools.pairwise(recent)
            ]
        )
        if steps.shape[0] < 3:  # too few for a median: the smaller step
            return steps[int(np.argmin(np.hypot(steps[:, 0], steps[:, 1])))]
        return np.median(steps, axis=0)

    def predict(self, idx: np.ndarray) -> np.ndarray:
        """Predicted positions of particles ``idx`` in the current frame."""
        base = self.motion_at(self.prev) if self.prev is not None else np.zeros(2)
        since = np.array(
            [base - self.motion_at(int(f)) for f in self.last_frame[idx]]
        ).reshape(-1, 2)
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
        ty0, tx0 = int(round(py)) - bh // 2, int(round(px)) - bw // 2  # noqa: RUF046 - an int whatever the coordinates dtype
        if ty0 < 0 or tx0 < 0 or ty0 + bh > h or tx0 + bw > w:
            continue  # the template is cut by the frame border
        templ = prev32[ty0 : ty0 + bh, tx0 : tx0 + bw]
        if float(templ.std()) == 0.0:
            continue
        # window of all template positions within +/- search of the prediction
        wy0 = int(round(qy)) - bh // 2 - search  # noqa: RUF046 - an int whatever the coordinates dtype
        wx0 = int(round(qx)) - bw // 2 - search  # noqa: RUF046
        cy0, cx0 = max(wy0, 0), max(wx0, 0)
        cy1, cx1 = min(wy0 + size - 1 + bh, h), min(wx0 + size - 1 + bw, w)
        if cy1 - cy0 < bh or cx1 - cx0 < bw:
            continue
        score = cv2.matchTemplate(img32[cy0:cy1, cx0:cx1], templ, cv2.TM_CCOEFF_NORMED)
        oy, ox = cy0 - wy0, cx0 - wx0
        total[oy : oy + score.shape[0], ox : ox + score.shape[1]] += np.nan_to_num(
            score
        )
        count[oy : oy + score.shape[0], ox : ox + score.shape[1]] += 1
    if not count.any():
        return None
    need = max(1.0, 0.5 * count.max())
    mean = np.where(count >= need, total / np.maximum(count, 1), -np.inf)
    a, b = np.unravel_index(int(np.argmax(mean)), mean.shape)
    if mean[a, b] < 0.5:
        return None
    return np.array([a - search, b - search], dtype=np.float64)


def _check_input(stack: Any, picks: Any, frame0: int, opts: TrackOptions) -> np.ndarray:
    """The (N, 3) picks (frame, y, x), checked against the stack and the box."""
    n_frames, height, width = check_stack(stack, what="particle tracking", min_size=BOX_LIMITS[0])
    bh, bw = opts.box_shape
    if height < bh or width < bw:
        raise ValueError(
            f"frames ({height}x{width}) are smaller than the box ({bh}x{bw}): use a smaller box "
            f"(at least {BOX_LIMITS[0]} px, at most {min(height, width)} px here)."
        )
    if not 0 <= int(frame0) < n_frames:
        raise ValueError(f"frame0 must be in 0..{n_frames - 1}, got {frame0}.")
    picks_arr = as_picks(picks, frame0=int(frame0))
    starts = picks_arr[:, 0].astype(np.int64)
    if starts.min() < 0 or starts.max() >= n_frames:
        raise ValueError(
            f"picks lie in frames {sorted(set(starts.tolist()))}, but the stack has {n_frames} frames."
        )
    yx = picks_arr[:, 1:]
    outside = (
        (yx[:, 0] < -0.5)
        | (yx[:, 0] > height - 0.5)
        | (yx[:, 1] < -0.5)
        | (yx[:, 1] > width - 0.5)
    )
    if np.any(outside):
        bad = np.flatnonzero(outside).tolist()
        raise ValueError(
            f"picks {bad} lie outside the {height}x{width} frame: remove them or check the layer scale."
        )
    return picks_arr


class _Tracker:
    """The table being filled, and the forward and backward sweeps that fill it."""

    def __init__(
        self,
        stack: Any,
        picks: np.ndarray,
        opts: TrackOptions,
        workers: int | None,
        progress: ProgressCallback | None,
    ) -> None:
        self.stack = stack
        self.picks = picks
        self.opts = opts
        self.workers = workers
        self.progress = progress
        n_frames, n = int(stack.shape[0]), picks.shape[0]
        self.n = n
        self.starts = picks[:, 0].astype(np.int64)
        self.yx = picks[:, 1:]
        self.box = opts.box_shape
        self.values = {name: np.full((n_frames, n), np.nan) for name in _FIELDS}
        self.ok = np.zeros((n_frames, n), dtype=bool)
        self.reason = np.full((n_frames, n), "not fitted", dtype=object)
        self.polarity: list[bool | None] = [opts.dark] * n
        self.total = n_frames
        self.done = 0
        self.last_report = time.perf_counter()

    # ----------------------------------------------------------- the table
    def fit(
        self, frame: np.ndarray, centers: np.ndarray, particles: Any
    ) -> GaussianFits:
        """Fit ``particles`` (indices) around ``centers`` with their polarity."""
        return _fit_at(
            frame,
            centers,
            self.opts,
            dark=[self.polarity[i] for i in particles],
            workers=self.workers,
        )

    def store(
        self, t: int, idx: np.ndarray, fits: GaussianFits, sel: np.ndarray
    ) -> None:
        """Write the fits ``sel`` of particles ``idx`` into frame ``t`` of the table."""
        rows = idx[sel]
        for name in _FIELDS:
            self.values[name][t, rows] = getattr(fits, name)[sel]
        self.ok[t, rows] = fits.ok[sel]
        for k, j in zip(np.flatnonzero(sel), rows):
            self.reason[t, j] = fits.reason[k]

    # ---------------------------------------------------------- the sweeps
    def run(self) -> ParticleTracks:
        """Both sweeps, then the table."""
        report(self.progress, 0, self.total, "track")
        first, last = int(self.starts.min()), int(self.starts.max())
        self.sweep(list(range(first, self.total)), True)
        if last > 0:
            self.sweep(list(range(last, -1, -1)), False)
        # frames never reached by either sweep do not exist: forward covers
        # t >= min(start), backward covers t < max(start)
        report(self.progress, self.total, self.total, "track")
        self.reason[self.ok] = ""
        return ParticleTracks(
            **self.values,
            ok=self.ok,
            reason=self.reason,
            shape=tuple(self.stack.shape[1:]),
            picks=self.picks,
            params=self.params(),
        )

    def sweep(self, order: list[int], forward: bool) -> None:
        """Follow the particles through the frames ``order`` (one direction in time)."""
        sweep = _Sweep(self.n)
        for t, frame in _frames(self.stack, order, self.opts.chunk_size):
            frame = np.asarray(frame)
            entering = np.flatnonzero(self.starts == t)
            behind = (self.starts < t) if forward else (self.starts > t)
            tracked = np.flatnonzero(behind & (sweep.entered_frame >= 0))
            if entering.size:
                self.enter(sweep, t, frame, entering, forward)
            if tracked.size:
                self.follow(sweep, t, frame, tracked)
            # global motion: median displacement of the particles found here
            _update_motion(sweep, t, tracked, self.ok, self.values)
            sweep.prev = t
            sweep.order.append(t)
            sweep.prev_image = frame
            self.tick()

    def enter(
        self,
        sweep: _Sweep,
        t: int,
        frame: np.ndarray,
        entering: np.ndarray,
        forward: bool,
    ) -> None:
        """Particles picked in frame ``t``: fit at the pick (forward) or take the
        forward fit at their pick frame (backward)."""
        values = self.values
        if forward:
            fits = self.fit(frame, self.yx[entering], entering)
            self.store(t, entering, fits, np.ones(entering.size, dtype=bool))
            for k, i in enumerate(entering):
                if fits.ok[k] and self.polarity[i] is None:
                    self.polarity[i] = bool(fits.dark[k])
        sweep.entered_frame[entering] = t
        good = self.ok[t, entering]
        sweep.last_pos[entering] = np.where(
            good[:, None],
            np.column_stack([values["y"][t, entering], values["x"][t, entering]]),
            self.yx[entering],
        )
        sweep.last_frame[entering] = t
        sweep.have[entering] = good

    def follow(
        self, sweep: _Sweep, t: int, frame: np.ndarray, tracked: np.ndarray
    ) -> None:
        """Fit the particles ``tracked`` in frame ``t``, reject mis-locks, move the good ones on."""
        values = self.values
        self.fit_three_ways(sweep, t, frame, tracked)
        _reject_jumps(
            sweep, t, tracked, self.ok, self.reason, values, self.opts.jump_limit
        )
        for i in tracked:
            if self.ok[t, i]:
                if self.polarity[i] is None:
                    self.polarity[i] = bool(values["amplitude"][t, i] < 0)
                sweep.last_pos[i] = (values["y"][t, i], values["x"][t, i])
                sweep.last_frame[i] = t
                sweep.have[i] = True

    def fit_three_ways(
        self, sweep: _Sweep, t: int, frame: np.ndarray, idx: np.ndarray
    ) -> None:
        """Fit particles ``idx`` in frame ``t`` with the three attempts."""
        pred = sweep.predict(idx)
        # where each particle "would be" without this frame's motion: used to
        # measure this frame's global step
        base = sweep.motion_at(sweep.prev) if sweep.prev is not None else np.zeros(2)
        no_step = sweep.last_pos[idx] + np.array(
            [base - sweep.motion_at(int(f)) for f in sweep.last_frame[idx]]
        ).reshape(-1, 2)
        sweep.step_from = {int(i): no_step[k] for k, i in enumerate(idx)}
        fits = self.fit(frame, pred, idx)
        self.store(t, idx, fits, np.ones(idx.size, dtype=bool))
        found = fits.ok.copy()
        if found.all():
            return
        offset = self.retry_offset(sweep, frame, idx, pred, fits, found)
        if offset is None:
            return
        retry = ~found
        fits2 = self.fit(frame, pred[retry] + offset, idx[retry])
        sel = fits2.ok
        if np.any(sel):
            self.store(t, idx[retry], fits2, sel)

    def retry_offset(
        self,
        sweep: _Sweep,
        frame: np.ndarray,
        idx: np.ndarray,
        pred: np.ndarray,
        fits: GaussianFits,
        found: np.ndarray,
    ) -> np.ndarray | None:
        """Where to fit the lost particles again, as an offset from their predictions (None: nowhere)."""
        offset = None
        search = self.opts.search_radius
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
                common = _ncc_consensus(
                    sweep.prev_image,
                    frame,
                    sweep.last_pos[idx][recent],
                    rounded,
                    self.box,
                    search,
                )
                if common is not None:
                    offset = common + np.median(rounded - pred[recent], axis=0)
        return offset

    def tick(self) -> None:
        """One more frame done: report (at most every 0.1 s, and at the end)."""
        self.done += 1
        now = time.perf_counter()
        if now - self.last_report > 0.1 or self.done == self.total:
            report(self.progress, self.done, self.total, "track")
            self.last_report = now

    def params(self) -> dict[str, Any]:
        """The tracking parameters, for provenance (and for the re-fits of a validation)."""
        opts = self.opts
        return {
            "box": list(self.box),
            "min_r2": float(opts.min_r2),
            "max_sigma": None if opts.max_sigma is None else float(opts.max_sigma),
            "dark": opts.dark,
            "search": opts.search_radius,
            "max_jump": opts.jump_limit,
            "polarity": [
                "dark" if p else "bright" if p is not None else "unknown"
                for p in self.polarity
            ],
        }


def track_particles(
    stack: Any,
    picks: Any,
    *,
    box: Any = TRACK_DEFAULTS.box,
    frame0: int = 0,
    min_r2: float = TRACK_DEFAULTS.min_r2,
    max_sigma: float | None = TRACK_DEFAULTS.max_sigma,
    dark: bool | None = TRACK_DEFAULTS.dark,
    max_iter: int = TRACK_DEFAULTS.max_iter,
    noise: str = TRACK_DEFAULTS.noise,
    search: int | None = TRACK_DEFAULTS.search,
    max_jump: float | None = TRACK_DEFAULTS.max_jump,
    chunk_size: int = TRACK_DEFAULTS.chunk_size,
    workers: int | None = None,
    progress: ProgressCallback | None = None,
    options: TrackOptions | None = None,
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
    max_iter : int
        Iteration limit of each Gaussian fit.
    noise : {"poisson", "gaussian"}
        Pixel weights of the fits (see :func:`~napari_stackalign.fit_gaussians`):
        "poisson" reaches the Cramér-Rao bound on shot-noise data.
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
    options : TrackOptions, optional
        All the tracking options in one object; keywords given explicitly
        (not at their default) override it.

    Returns
    -------
    ParticleTracks
        One row per (frame, particle) with the fit, ``ok`` and the reason a
        fit was rejected.
    """
    opts = TrackOptions.from_call(options, locals())
    picks_arr = _check_input(stack, picks, frame0, opts)
    return _Tracker(stack, picks_arr, opts, workers, progress).run()


def _reject_jumps(
    sweep: _Sweep,
    t: int,
    tracked: np.ndarray,
    ok: np.ndarray,
    reason: np.ndarray,
    values: dict,
    max_jump: float,
) -> None:
    """With at least 3 particles found, reject fits whose step in this frame
    differs from the median step by more than ``max_jump`` px (a box that
    caught a neighbour or a blend of two spots)."""
    found = tracked[ok[t, tracked]]
    if found.size < 3:
        return
    steps = np.array(
        [
            [values["y"][t, i], values["x"][t, i]] - sweep.step_from[int(i)]
            for i in found
        ]
    )
    dev = np.hypot(*(steps - np.median(steps, axis=0)).T)
    for i, d in zip(found, dev):
        if d > max_jump:
            ok[t, i] = False
            reason[t, i] = f"jumped {d:.1f} px away from the other particles' motion"


def _update_motion(
    sweep: _Sweep, t: int, tracked: np.ndarray, ok: np.ndarray, values: dict
) -> None:
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
