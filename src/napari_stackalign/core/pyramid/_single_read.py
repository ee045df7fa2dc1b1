"""File to file registration that reads each chunk of the input once.

Once the template is built (from the template frames only), every frame's
raw estimate depends on the frame and the template alone, and the anchor
that :func:`~napari_stackalign.core.pyramid._stages.finish` subtracts is known
(:class:`~napari_stackalign.core.pyramid._stages.TemplateState`). So each
chunk is read once, estimated, warped and written, then dropped.

What is only known at the end are the stack-wide verdicts (``ok``: the
median quality, the typical jump between neighbours) that decide which
frames the default ``failed="interpolate"`` replaces, and the smoothing and
interpolation of a frame need a few frames after it. :class:`SingleReadFrames`
therefore:

- holds back the last :func:`look_ahead` frames of each chunk, until the
  frames after them are estimated (the Savitzky-Golay half window, the
  neighbours of the jump test);
- warps each frame with a *provisional* transform: the stack-wide steps run
  on a window of the frames around it (:data:`BACK_FRAMES` before, the
  look-ahead after; :func:`back_frames`), which gives the final transform of nearly every frame
  bit for bit;
- warps a chunk in its own thread while the next one is estimated (the
  in-memory path overlaps them the same way);
- at the end (:meth:`SingleReadFrames.finish`) runs the stack-wide steps
  on the whole table, exactly as the two-read path does, and rewrites the
  frames whose final transform differs in any bit from the provisional one
  (read a second time, those frames only).

The output is therefore the same, bit for bit, as the two-read path's (and
as the in-memory registration's), with about one read of the input.
"""

from __future__ import annotations

import warnings
from collections import deque
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from ...io._deferred import FinalWrite
from ...transforms import FrameTransforms
from ..apply import APPLY_DEFAULTS
from ..apply._warp import applicable_matrices, apply_transforms
from ..frames import READ_AHEAD_BLOCKS, BlockProducer, ChannelFrames, ReadAhead, frame_ranges
from ..smoothing import smooth_transforms
from ._engine import FLAG_UNUSABLE, FrameResults
from ._jump_evidence import SignalAutocorrelation
from ._stages import (
    PyramidJob,
    TemplateState,
    corrections,
    cross_checked,
    estimate_range,
    finish,
    new_trajectory,
    turn_checked,
)
from ._trust import JUMP_WINDOW, judge

__all__ = ["BACK_FRAMES", "MIN_BACK_FRAMES", "SingleReadFrames", "back_frames", "look_ahead"]

#: frames before the first frame to warp that the provisional stack-wide steps see (at most; see
#: :func:`back_frames`)
BACK_FRAMES = 64
#: ... and at least
MIN_BACK_FRAMES = 16


def back_frames(job: PyramidJob, chunk: int) -> int:
    """Frames before a chunk that its provisional stack-wide steps see: up to :data:`BACK_FRAMES`,
    twice the chunk (the steps' cost per frame stays about twice that of the final ones), and the
    smoothing window."""
    opts = job.options
    return max(min(BACK_FRAMES, 2 * chunk), MIN_BACK_FRAMES, opts.window_length if opts.smooth else 0)


def look_ahead(job: PyramidJob) -> int:
    """Frames held back at the end of each chunk until the frames after them are estimated:
    the smoothing half window, and the trustworthy neighbours the jump test compares with."""
    opts = job.options
    half = opts.window_length // 2 if opts.smooth else 0
    return half + JUMP_WINDOW + 2


class SingleReadFrames(BlockProducer):
    """The registered stack, estimated and warped chunk by chunk from one read of the input.

    An array-like for :func:`~napari_stackalign.io._deferred.write_stack_deferred`:
    read it in order (``w[0:k]``, ``w[k:2k]``, ...), then call :meth:`finish`.

    Parameters
    ----------
    stack : array-like (T, Y, X) or (T, C, Y, X)
        The input (every channel is warped).
    channel : int or None
        The channel the motion is estimated on ((T, C, Y, X) input).
    job, state
        From :func:`~napari_stackalign.core.pyramid._stages.plan_pyramid` and
        :func:`~napari_stackalign.core.pyramid._stages.build_template`.
    chunk : int
        Frames read, estimated and warped at a time.
    pool : executor, optional
        Threads for the estimation.
    workers : int
        Threads for the warp.
    warp : mapping
        ``order``, ``border``, ``cval``, ``output_dtype``.
    failed : str
        What becomes of failed frames (as for :class:`~napari_stackalign.core.apply.WarpedFrames`).
    """

    thread_name = "stackalign-single-read"

    def __init__(
        self,
        stack: Any,
        channel: int | None,
        job: PyramidJob,
        state: TemplateState,
        *,
        chunk: int,
        pool: Any,
        workers: int,
        warp: Mapping[str, Any],
        out_dtype: Any,
        failed: str = APPLY_DEFAULTS.failed,
    ) -> None:
        n = int(stack.shape[0])
        if job.chained or job.n_frames != n:
            raise ValueError("the single-read path needs a fixed template and one estimate per frame of the stack.")
        self._ranges_in = frame_ranges(0, n, chunk)
        super().__init__(self._ranges_in, self._step, depth=READ_AHEAD_BLOCKS)
        self._stack = stack
        self._channel = channel
        self._job = job
        self._state = state
        self._pool = pool
        self._warp = {**dict(warp), "workers": workers, "failed": "apply"}
        self._failed = failed
        self._preparer = job.preparer()
        self._estimator = job.estimator(state.template)
        self._autocorrelation = SignalAutocorrelation(state.template)
        self._ahead = ReadAhead(stack, self._ranges_in)
        self._look = look_ahead(job)
        self._back = back_frames(job, chunk)
        self._shifts = np.full((n, 2), np.nan)
        self._quality = np.full(n, np.nan)
        self._flags = np.zeros(n, np.int64)
        self._neff = np.full(n, np.nan)
        self._turn = np.full(n, np.nan)
        #: the transform each frame was warped with (dy, dx, angle, scale)
        self._applied = np.full((n, 4), np.nan)
        self._held: deque = deque()  # (start, input frames) not yet warped
        self._ready = 0  # first frame not yet warped
        self._estimated = 0
        self._trajectory = new_trajectory()
        self.shape = tuple(int(s) for s in stack.shape)
        self.dtype = np.dtype(out_dtype)
        self.ndim = len(self.shape)
        self._buffer: deque = deque()
        self._next = 0
        self.rewritten = 0
        #: warps chunk k while chunk k + 1 is estimated (one chunk at a time, in order)
        self._warper: ThreadPoolExecutor | None = None

    def __len__(self) -> int:
        return self.shape[0]

    # ----------------------------------------------------------- production
    def start(self) -> SingleReadFrames:
        if self._warper is None:
            self._warper = ThreadPoolExecutor(1, thread_name_prefix="stackalign-single-read-warp")
        self._ahead.start()
        return super().start()

    def close(self) -> None:
        """Stop the threads and drop what they made."""
        super().close()
        if self._warper is not None:
            self._warper.shutdown(wait=True, cancel_futures=True)
            self._warper = None
        self._ahead.close()
        self._buffer.clear()
        self._held.clear()

    def _step(self, a: int, b: int) -> tuple[int, np.ndarray | Future]:
        """Read, estimate frames ``a:b``; warp the frames whose neighbours are known (in the warp
        thread: the block comes out as a future of the warped frames)."""
        frames = np.asarray(self._ahead[a:b])
        view = frames if frames.ndim == 3 else frames[:, int(self._channel or 0)]
        res = estimate_range(
            view,
            self._job,
            self._state,
            a,
            b,
            preparer=self._preparer,
            estimator=self._estimator,
            pool=self._pool,
            offset=a,
            trajectory=self._trajectory,
        )
        self._shifts[a:b] = res.shifts
        self._quality[a:b] = res.quality
        self._flags[a:b] = res.flags
        self._neff[a:b] = res.neff
        self._turn[a:b] = res.turn
        self._estimated = b
        self._held.append((a, frames))
        n = self.shape[0]
        stop = n if b == n else b - self._look
        start = self._ready
        first = max(0, min(start - self._back, b - self._job.options.window_length))
        if stop <= start or (self._job.options.smooth and b - first < self._job.options.window_length):
            return start, frames[:0]
        transforms = self._provisional(first, b)[start - first : stop - first]
        self._applied[start:stop] = np.stack([transforms.dy, transforms.dx, transforms.angle, transforms.scale], 1)
        block = self._take_held(start, stop)
        assert self._warper is not None, "start() first"
        out = self._warper.submit(apply_transforms, block, transforms, chunk_size=max(1, stop - start), **self._warp)
        self._ready = stop
        return start, out

    def _take_held(self, start: int, stop: int) -> np.ndarray:
        """Input frames ``start:stop`` from the held chunks (dropping those fully used)."""
        pieces = []
        for a, frames in self._held:
            lo, hi = max(start, a), min(stop, a + len(frames))
            if lo < hi:
                pieces.append(frames[lo - a : hi - a])
        while self._held and self._held[0][0] + len(self._held[0][1]) <= stop:
            self._held.popleft()
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)

    def _provisional(self, first: int, stop: int) -> FrameTransforms:
        """The stack-wide steps of :func:`finish` on frames ``first:stop`` only, resolved for ``failed``."""
        job, opts = self._job, self._job.options
        shifts = self._shifts[first:stop].copy()
        flags = self._flags[first:stop]
        usable = (flags & FLAG_UNUSABLE) == 0
        if not usable.any():
            shifts[:] = 0.0
        elif not usable.all():
            idx = np.arange(len(shifts))
            for axis in range(2):
                shifts[~usable, axis] = np.interp(idx[~usable], idx[usable], shifts[usable, axis])
        in_template = job.in_template()
        member = in_template[: self._estimated] & ((self._flags[: self._estimated] & FLAG_UNUSABLE) == 0)
        h, w = job.crop_shape
        bound = (opts.max_movement * h / 2.0, opts.max_movement * w / 2.0)
        ok, reason = judge(
            shifts,
            self._quality[first:stop],
            flags,
            self._neff[first:stop],
            in_template=in_template[first:stop],
            usable_template=int(member.sum()),
            bound=bound,
            autocorrelation=self._autocorrelation,
            turn=self._turn[first:stop],
        )
        if self._state.anchor is not None:
            shifts = shifts - self._state.anchor
        raw = corrections(job, shifts, quality=self._quality[first:stop], ok=ok, reason=reason, method="pyramid")
        if opts.smooth:
            raw = smooth_transforms(raw, window_length=opts.window_length, polyorder=opts.polyorder)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            resolved, _ = raw.resolve_failed(self._failed)
        return resolved

    # -------------------------------------------------------------- reading
    def _take(self, a: int, b: int) -> np.ndarray:
        pieces = []
        pos = a
        while pos < b:
            if not self._buffer:
                _, _, (start, block) = self._next_item()
                if isinstance(block, Future):
                    block = block.result()
                if len(block):
                    self._buffer.append((start, block))
                continue
            start, block = self._buffer[0]
            lo, hi = pos - start, min(b, start + len(block)) - start
            pieces.append(block[lo:hi])
            pos = start + hi
            if pos >= start + len(block):
                self._buffer.popleft()
        self._next = b
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, slice) and key.step in (None, 1):
            a, b, _ = key.indices(self.shape[0])
            if a == self._next and b > a:
                if not self.started:
                    self.start()
                return self._take(a, b)
        raise IndexError("SingleReadFrames is read once, in order, by contiguous slices of frames.")

    # ---------------------------------------------------------------- finish
    def finish(self, metadata: Mapping | None) -> tuple[FinalWrite, FrameTransforms, FrameTransforms]:
        """The stack-wide steps on the whole table, and the frames to rewrite.

        Call once every frame has been read. ``metadata`` is completed with
        the final parameters (``metadata["stackalign"]["params"]``, and the
        raw transforms when smoothed) and the count of frames rewritten.

        Returns
        -------
        (FinalWrite, raw, final)
        """
        if self._next != self.shape[0]:
            raise RuntimeError("finish() before every frame was read.")
        results = FrameResults(self._shifts, self._quality, self._flags, self._neff, self._turn)
        view = self._stack if len(self._stack.shape) == 3 else ChannelFrames(self._stack, int(self._channel or 0))
        # no lattice: a template that holds one is read twice instead (``_to_file._register_single_read``)
        notes, extra = turn_checked(view, self._job, self._estimator, results, self._preparer, None, None, False)
        notes, extra = cross_checked(view, self._job, self._state, results, self._preparer, notes, extra, self._pool)
        raw, final = finish(
            self._job, self._state, results, levels_used=self._estimator.active_rates, notes=notes, extra_params=extra
        )
        applicable_matrices(final, self.shape[-2:], self._failed)  # its checks and warning, as the two-read path
        resolved, _ = final.resolve_failed(self._failed)
        exact = np.stack([resolved.dy, resolved.dx, resolved.angle, resolved.scale], 1)
        differs = np.flatnonzero((exact != self._applied).any(axis=1))
        self.rewritten = int(differs.size)
        meta = dict(metadata or {})
        block = dict(meta.get("stackalign") or {})
        block["params"] = dict(final.params)
        if raw is not final:
            block["raw_transforms"] = raw.to_dict()
        streaming = dict(block.get("streaming") or {})
        streaming.update(reads="single", frames_read_twice=self.rewritten)
        block["streaming"] = streaming
        meta["stackalign"] = block
        return FinalWrite(meta, final, self._patches(differs, resolved)), raw, final

    def _patches(self, frames: np.ndarray, resolved: FrameTransforms) -> Iterator[tuple[int, np.ndarray]]:
        """``(start, warped frames)`` for runs of ``frames``, read again and warped with ``resolved``."""
        if not frames.size:
            return
        limit = max(1, self._ranges_in[0][1] - self._ranges_in[0][0])
        breaks = np.flatnonzero(np.diff(frames) != 1) + 1
        for run in np.split(frames, breaks):
            for a in range(int(run[0]), int(run[-1]) + 1, limit):
                b = min(a + limit, int(run[-1]) + 1)
                block = np.asarray(self._stack[a:b])
                yield a, apply_transforms(block, resolved[a:b], chunk_size=max(1, b - a), **self._warp)
