"""The file HDF5 output is written through: a full disk never corrupts the HDF5 library.

When HDF5's own file driver hits a full disk, the library is left with
metadata it can neither write nor drop: closing the file (or the
interpreter's exit) then crashes the process (SIGSEGV). Writing through this
Python file object instead (h5py's ``fileobj`` driver), a failed write is
recorded and the rest of the file is discarded while the library carries on
as if it succeeded; the writer then closes the file normally, removes it and
raises the recorded error. The data go to the disk unchanged, in the
library's chunks (megabytes each), so the speed is the same.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
from collections.abc import Iterator
from pathlib import Path

import h5py

from ..files import signals_deferred

__all__ = ["DiscardingSink", "hdf5_writer", "write_failed"]


class DiscardingSink(io.RawIOBase):
    """A read-write file whose first failed write is kept in ``error`` (later writes are dropped).

    Attributes
    ----------
    error : OSError or None
        The first write error (ENOSPC for a full disk).
    written : int
        Bytes written before it.
    """

    def __init__(self, path: str | os.PathLike, mode: str = "w+b") -> None:
        super().__init__()
        if mode not in ("w+b", "r+b"):
            raise ValueError(f"mode must be 'w+b' (a new file) or 'r+b' (update one), got {mode!r}.")
        self._file = open(Path(path), mode, buffering=0)  # noqa: SIM115 (closed by close())
        self.error: OSError | None = None
        self.written = 0

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, pos: int, whence: int = 0) -> int:
        return self._file.seek(pos, whence)

    def tell(self) -> int:
        return self._file.tell()

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        return self._file.readinto(buffer) or 0

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(data).cast("B")
        size = view.nbytes
        done = 0
        if self.error is None:
            try:
                while done < size:
                    n = self._file.write(view[done:])
                    if not n:
                        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                    done += n
                    self.written += n
            except OSError as exc:
                self.error = exc
        if done < size:
            self._file.seek(size - done, os.SEEK_CUR)
        return size

    def truncate(self, size: int | None = None) -> int:
        if self.error is not None:
            return self.tell() if size is None else size
        try:
            return self._file.truncate(size)
        except OSError as exc:
            self.error = exc
            return self.tell() if size is None else size

    def flush(self) -> None:
        return None

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
        super().close()


@contextlib.contextmanager
def hdf5_writer(target: str | os.PathLike, total: int | None = None, *, update: bool = False) -> Iterator[h5py.File]:
    """An HDF5 file open for writing at ``target``, through a :class:`DiscardingSink`.

    Signals are only noted inside the block (an exception raised inside
    h5py's callbacks is lost or corrupts the library): the writer calls
    :func:`~napari_stackalign.files.raise_if_interrupted` between chunks. A
    full disk is raised after the file is closed, as ``OSError(ENOSPC)``
    with ``written`` and ``total`` (bytes) attributes; check
    :func:`write_failed` between chunks to stop early.

    Parameters
    ----------
    target : path-like
        The (temporary) file to write.
    total : int, optional
        The bytes expected, for the message.
    update : bool
        Open an existing file to change it (``"r+"``) instead of creating
        one (the streaming writer rewrites frames and its tables last).
    """
    sink = DiscardingSink(target, "r+b" if update else "w+b")
    try:
        with signals_deferred(), h5py.File(sink, "r+" if update else "w") as f:
            f._stackalign_sink = sink  # for write_failed
            yield f
    finally:
        sink.close()
    if sink.error is not None:
        if sink.error.errno == errno.ENOSPC:
            full = OSError(errno.ENOSPC, f"the disk is full (wrote {sink.written} of {total} bytes)")
            full.written, full.total = sink.written, total  # type: ignore[attr-defined]
            raise full from sink.error
        raise sink.error


def write_failed(f: h5py.File) -> bool:
    """Whether a write into ``f`` (opened by :func:`hdf5_writer`) failed: the rest is discarded."""
    sink = getattr(f, "_stackalign_sink", None)
    return sink is not None and sink.error is not None
