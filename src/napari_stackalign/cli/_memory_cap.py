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
    "MIN_WORKING",
    "STREAM_MARGIN",
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
#: share of what the cap leaves that the streaming buffers do not get (h5py and OpenCV
#: buffers, thread stacks and allocator slack that the chunk plan does not count)
STREAM_MARGIN = 0.3


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


def streaming_limit(cap: int) -> int:
    """``memory_limit`` for the streaming path: what ``cap`` leaves above the process, less a margin.

    Raises
    ------
    ValueError
        When the cap leaves nothing for the frame buffers.
    """
    room = int((cap - process_memory()) * (1.0 - STREAM_MARGIN))
    if room <= 0:
        raise ValueError(
            f"--max-memory {describe(cap)} leaves no room for the frame buffers beside this process "
            f"({describe(process_memory())}): raise --max-memory."
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
