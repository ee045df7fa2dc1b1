"""Advice when ``--max-memory`` leaves the streaming path chunks too small to run at full speed.

The single-read streaming path reads, estimates, warps and writes a chunk of
frames at a time, and each chunk costs a fixed amount of work beside its
frames (the stack-wide steps on a window around it, thread hand-overs).
Measured on 953 frames of 512 x 512 uint16 (``stackalign register
--max-memory``; wall time less the command's start-up, about 2.5 s): 8.0 s with 1 frame per chunk, 4.4 s
with 5, 3.3 s with 15, 3.0 s with 34 and 3.3 s with 64. Below
:data:`FAST_CHUNK_FRAMES` frames per chunk the run says so, with the cap that
reaches them: the cap is the user's, but a run should not be slow without a
word.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..core.apply import APPLY_DEFAULTS, result_dtype
from ..core.pyramid._to_file import plan_chunks
from ..core.workers import default_workers
from ._memory_cap import describe, streaming_limit

__all__ = ["FAST_CHUNK_FRAMES", "chunk_advice"]

#: frames per chunk from which streaming runs at about full speed (see the module notes)
FAST_CHUNK_FRAMES = 16


def _chunk_frames(cap: int, frame_shape: tuple[int, ...], in_dtype: np.dtype, out_dtype: np.dtype) -> int:
    """Frames per single-read chunk under ``cap`` (0 when the cap cannot stream at all)."""
    pixels = int(np.prod(frame_shape, dtype=np.int64))
    try:
        room = streaming_limit(cap, pixels)
        plan = plan_chunks(frame_shape, in_dtype, out_dtype, memory_limit=room, workers=default_workers(None))
    except ValueError:
        return 0
    return int(plan.read_once)


def chunk_advice(cap: int, frame_shape: Sequence[int], dtype: Any) -> str | None:
    """What to tell a user whose ``--max-memory`` gives chunks below :data:`FAST_CHUNK_FRAMES` frames.

    Parameters
    ----------
    cap : int
        ``--max-memory`` (bytes).
    frame_shape : sequence of int
        One frame, ``(Y, X)`` or ``(C, Y, X)``.
    dtype
        The input's pixel type (the output keeps the default, as the command does).

    Returns
    -------
    str or None
        The advice (frames per chunk, and the least cap that reaches
        :data:`FAST_CHUNK_FRAMES`, to the megabyte), or None when the chunks are large enough or
        the stack cannot be streamed under ``cap`` at all (an error says so elsewhere).
    """
    shape = tuple(int(n) for n in frame_shape)
    in_dtype = np.dtype(dtype)
    out_dtype = result_dtype(in_dtype, APPLY_DEFAULTS.border, None)
    frames = _chunk_frames(cap, shape, in_dtype, out_dtype)
    if frames == 0 or frames >= FAST_CHUNK_FRAMES:
        return None
    low, high = int(cap), 2 * int(cap)
    while _chunk_frames(high, shape, in_dtype, out_dtype) < FAST_CHUNK_FRAMES:
        low, high = high, 2 * high
    while high - low > 10**6:  # the least cap, to the megabyte
        mid = (low + high) // 2
        if _chunk_frames(mid, shape, in_dtype, out_dtype) >= FAST_CHUNK_FRAMES:
            high = mid
        else:
            low = mid
    need = (high + 10**6 - 1) // 10**6 * 10**6
    return (
        f"--max-memory {describe(cap)} leaves room for {frames} frame(s) per chunk, which streams up to 2x "
        f"slower than chunks of {FAST_CHUNK_FRAMES} frames; --max-memory {describe(need)} or more allows them."
    )
