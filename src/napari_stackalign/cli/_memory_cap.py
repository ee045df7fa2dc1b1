"""``--max-memory SIZE``: the memory a ``stackalign`` run may use, under the user's control.

Every subcommand takes ``--max-memory`` (``2G``, ``500M``, ``1.5GiB``; bytes
when no unit is given; ``G`` is 10**9 bytes, ``GiB`` 2**30). Without it the cap
is :data:`DEFAULT_SHARE` of the memory *available* when the run starts
(``MemAvailable``: free memory plus reclaimable cache), not of the total, so a
machine that is busy already is not pushed into swap.

What the cap decides:

* loading or streaming: :func:`~napari_stackalign.io.read_stack` loads a
  stack whole only when :data:`~napari_stackalign.io.LOADED_COPIES` copies of
  it fit under the cap beside the process itself; otherwise it is opened
  lazily and the work streams;
* the streaming path's frame buffers: ``register_file(memory_limit=...)`` gets
  what the cap leaves once the process itself and a margin are counted
  (:func:`streaming_limit`).

Values that cannot work are refused before any work: text that is no size, a
cap at or below what the process uses already plus :data:`MIN_WORKING` bytes,
or more than this machine's physical memory.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..io import available_memory, process_memory, total_memory
from ..parsing import parse_byte_size

__all__ = [
    "DEFAULT_SHARE",
    "MIN_BUFFERS",
    "MIN_WORKING",
    "STREAM_MARGIN",
    "STREAM_OVERHEAD_FRAMES",
    "add_max_memory_argument",
    "default_max_memory",
    "describe",
    "max_memory_of",
    "process_memory",
    "resolve_max_memory",
    "streaming_limit",
]

#: share of the available memory a run may use when --max-memory is not given
DEFAULT_SHARE = 0.5
#: the least a cap must leave above what the process uses already (bytes)
MIN_WORKING = 64 * 10**6
#: share of what the cap leaves that the streaming frame buffers do not get: the run holds about as
#: much again as its planned buffers (float32 conversions, allocator slack; measured, docs/big-data.md)
STREAM_MARGIN = 0.5
#: float32 frames' worth of memory a streaming run holds beside its planned buffers (template, thread
#: pyramids, h5py and OpenCV); measured ~160 MB for 512 x 512 frames
STREAM_OVERHEAD_FRAMES = 150
#: the least memory_limit handed to the streaming path (bytes)
MIN_BUFFERS = 16 * 10**6


def add_max_memory_argument(group: Any) -> None:
    """Add ``--max-memory SIZE`` to a parser or argument group."""
    group.add_argument(
        "--max-memory",
        "--max_memory",
        dest="max_memory",
        default=None,
        metavar="SIZE",
        help=f"the most memory the run may use, e.g. 2G, 500M, 1.5GiB (default: {DEFAULT_SHARE * 100:.0f}%% of the "
        "memory available when it starts). Stacks that do not fit are streamed with flat memory.",
    )


def default_max_memory() -> int:
    """:data:`DEFAULT_SHARE` of the memory available now, and never less than the process needs to work."""
    return max(int(DEFAULT_SHARE * available_memory()), process_memory() + 2 * MIN_WORKING)


def resolve_max_memory(text: str | int | None) -> int:
    """The cap in bytes: ``--max-memory`` checked, or the default.

    Raises
    ------
    ValueError
        For text that is no size, a cap the process cannot work in, or a cap
        above this machine's physical memory; the message names the flag.
    """
    if text is None:
        return default_max_memory()
    try:
        cap = parse_byte_size(text, what="--max-memory")
    except ValueError as exc:
        raise ValueError(f"{exc} Examples: --max-memory 2G, --max-memory 500M.") from None
    used = process_memory()
    if cap <= used + MIN_WORKING:
        raise ValueError(
            f"--max-memory {text}: too small; this process already uses {describe(used)} and needs at least "
            f"{describe(MIN_WORKING)} more to work: give at least {describe(used + MIN_WORKING + 10**6)}."
        )
    total = total_memory()
    if cap > total:
        raise ValueError(
            f"--max-memory {text} is more than this machine's memory ({describe(total)}): give at most "
            f"{describe(total)}, or leave the flag out (default: {DEFAULT_SHARE:.0%} of the available memory)."
        )
    return cap


def streaming_limit(cap: int, frame_pixels: int) -> int:
    """``memory_limit`` for the streaming path under ``cap``.

    The chunk plan of ``register_file`` bounds its frame buffers by
    ``memory_limit``, but the streaming run holds more than those: the
    template frames, the per-thread pyramids, h5py and OpenCV buffers and the
    allocator's slack. Measured on 512 x 512 uint16 frames (docs/big-data.md),
    that is about :data:`STREAM_OVERHEAD_FRAMES` float32 frames plus as much
    again as the buffers themselves; both are taken off the cap here, with the
    process's own memory.

    Parameters
    ----------
    cap : int
        The run's ``--max-memory`` in bytes.
    frame_pixels : int
        Pixels of one frame (all channels).

    Raises
    ------
    ValueError
        When the cap leaves nothing for the frame buffers (the message gives
        the least cap that works).
    """
    used = process_memory()
    overhead = STREAM_OVERHEAD_FRAMES * int(frame_pixels) * 4
    room = int((cap - used - overhead) * (1.0 - STREAM_MARGIN))
    least = used + overhead + int(MIN_BUFFERS / (1.0 - STREAM_MARGIN))
    if room < MIN_BUFFERS:
        raise ValueError(
            f"--max-memory {describe(cap)} is too small to stream these frames: the process uses {describe(used)} "
            f"and streaming needs about {describe(overhead)} beside its frame buffers: give at least "
            f"--max-memory {describe(least)}."
        )
    return room


def max_memory_of(args: argparse.Namespace) -> int | None:
    """The resolved cap of a run (None for subcommands without ``--max-memory``)."""
    value = getattr(args, "max_memory", None)
    return int(value) if value is not None else None


def describe(nbytes: int) -> str:
    """A byte count for people: ``1.50 GB``, ``420 MB``."""
    if nbytes >= 10**9:
        return f"{nbytes / 1e9:.2f} GB"
    return f"{nbytes / 1e6:.0f} MB"
