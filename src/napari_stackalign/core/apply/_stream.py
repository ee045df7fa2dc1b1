"""The registered stack as an array-like that is computed just ahead of its reader.

:func:`~napari_stackalign.io.write_stack` streams any frame-indexable array
into a file chunk by chunk (atomically, with the metadata and the
transforms). :class:`WarpedFrames` is such an array: a background thread
reads the input, warps it with
:func:`~napari_stackalign.core.apply.apply_transforms` and queues the result a
few blocks ahead, so reading, warping and writing overlap (h5py, ``preadv``
and OpenCV release the GIL) and memory stays bounded by the queue.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from ...transforms import FrameTransforms
from ..frames import READ_AHEAD_BLOCKS, BlockProducer, frame_ranges
from ._options import APPLY_DEFAULTS
from ._warp import applicable_matrices, apply_transforms, result_dtype

__all__ = ["WarpedFrames"]


class WarpedFrames(BlockProducer):
    """``frames`` resampled by ``transforms``, produced in order, ``depth`` blocks ahead.

    Parameters
    ----------
    frames : array-like (T, Y, X) or (T, C, Y, X)
        Input (read ``frames[a:b]`` block by block).
    transforms : FrameTransforms
        One transform per frame.
    block : int
        Frames per block.
    depth : int
        Blocks computed ahead.
    workers : int, optional
        Threads for the warp (all cores by default).
    order, border, cval, output_dtype
        As for :func:`~napari_stackalign.core.apply.apply_transforms`.

    Notes
    -----
    Reads must come in order (``w[0:k]``, ``w[k:2k]``, ...; any block
    boundaries); anything else is computed on the spot. Use it as a context
    manager, or call :meth:`close`, to stop the thread.
    """

    thread_name = "stackalign-warp-ahead"

    def __init__(
        self,
        frames: Any,
        transforms: FrameTransforms,
        *,
        block: int,
        depth: int = READ_AHEAD_BLOCKS,
        workers: int | None = APPLY_DEFAULTS.workers,
        order: int = APPLY_DEFAULTS.order,
        border: str = APPLY_DEFAULTS.border,
        cval: float = APPLY_DEFAULTS.cval,
        output_dtype: Any = APPLY_DEFAULTS.output_dtype,
        failed: str = APPLY_DEFAULTS.failed,
    ) -> None:
        if len(transforms) != int(frames.shape[0]):
            raise ValueError(
                f"{len(transforms)} transforms for {int(frames.shape[0])} frames."
            )
        applicable_matrices(
            transforms, tuple(frames.shape[-2:]), failed
        )  # checks and warns once, here
        transforms, _ = transforms.resolve_failed(failed)
        super().__init__(
            frame_ranges(0, int(frames.shape[0]), block), self._compute, depth=depth
        )
        self._frames = frames
        self._transforms = transforms
        # resolved above: each block applies what it is given
        self._warp = {
            "order": order,
            "border": border,
            "cval": cval,
            "output_dtype": output_dtype,
            "workers": workers,
            "failed": "apply",
        }
        self.shape = tuple(int(n) for n in frames.shape)
        self.dtype = result_dtype(np.dtype(frames.dtype), border, output_dtype)
        self.ndim = len(self.shape)
        self._buffer: deque = (
            deque()
        )  # produced blocks not fully consumed: (start, array)
        self._next = 0  # first frame not yet handed out

    def __len__(self) -> int:
        return self.shape[0]

    def _compute(self, a: int, b: int) -> np.ndarray:
        chunk = np.asarray(self._frames[a:b])
        return apply_transforms(
            chunk, self._transforms[a:b], chunk_size=max(1, b - a), **self._warp
        )

    def close(self) -> None:
        """Stop the producer and drop what it computed."""
        super().close()
        self._buffer.clear()

    def _take(self, a: int, b: int) -> np.ndarray:
        """Frames ``a:b`` from the produced blocks (``a`` is the next frame)."""
        pieces = []
        pos = a
        while pos < b:
            if not self._buffer:
                start, _, block = self._next_item()
                self._buffer.append((start, block))
            start, block = self._buffer[0]
            lo, hi = pos - start, min(b, start + len(block)) - start
            pieces.append(block[lo:hi])
            pos = start + hi
            if pos >= start + len(block):
                self._buffer.popleft()
        self._next = b
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, slice) and key.step in (None, 1) and self.started:
            a, b, _ = key.indices(self.shape[0])
            if a == self._next and b > a:
                return self._take(a, b)
        if isinstance(key, slice) and key.step in (None, 1):
            a, b, _ = key.indices(self.shape[0])
            return self._compute(a, max(a, b))
        if isinstance(key, (int, np.integer)):
            t = int(key) + self.shape[0] if key < 0 else int(key)
            return self._compute(t, t + 1)[0]
        raise IndexError(
            "WarpedFrames supports integer and contiguous slice indexing of frames only."
        )

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self._compute(0, self.shape[0])
        return out if dtype is None else out.astype(dtype)
