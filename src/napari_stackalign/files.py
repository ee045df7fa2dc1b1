"""Writing files safely, and values ready for JSON.

Every output of the package goes through :func:`atomic_path`: it is written
to a temporary file beside the target and renamed into place, so a failed or
cancelled run leaves nothing half-written and never touches an existing file.
This module imports nothing from the package, so every layer (``transforms``,
``io``, ``core``, ``cli``) can use it.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import math
import os
import re
import shutil
import socket
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "Interrupted",
    "atomic_folder",
    "atomic_path",
    "atomic_write_text",
    "check_writable_dir",
    "disk_full_error",
    "interrupt",
    "jsonable",
    "output_transaction",
    "raise_if_interrupted",
    "remove_part",
    "remove_stale_parts",
    "reset_interrupt",
    "signals_deferred",
]


# ------------------------------------------------------------------ interrupts
class Interrupted(KeyboardInterrupt):
    """A signal (SIGINT, SIGTERM, SIGHUP) asked the run to stop.

    A :class:`KeyboardInterrupt`, so everything that cleans up after Ctrl-C
    cleans up after it too. ``signum`` is the signal's number; the command
    line exits with ``128 + signum``.
    """

    def __init__(self, signum: int, name: str = "") -> None:
        super().__init__(name or f"signal {signum}")
        self.signum = int(signum)


#: the interrupt seen and not yet raised where it could be heard, and the depth of deferring blocks
_INTERRUPT: dict[str, Any] = {"pending": None, "raised": False, "depth": 0}


def reset_interrupt() -> None:
    """Forget an earlier interrupt (the command line calls this at the start of a run)."""
    _INTERRUPT.update(pending=None, raised=False, depth=0)


def interrupt(exc: BaseException) -> None:
    """Note an interrupt, and raise it unless signals are deferred or it was raised already.

    Called from signal handlers. Inside :func:`signals_deferred` (code that
    runs inside a C library's callbacks, such as an h5py write, where an
    exception would be lost or would corrupt the library's state) it is only
    noted, and :func:`raise_if_interrupted` raises it at the next safe point.
    A second signal while the first is being handled (cleanup) is only noted.
    """
    if _INTERRUPT["pending"] is None:
        _INTERRUPT["pending"] = exc
    if _INTERRUPT["depth"] == 0 and not _INTERRUPT["raised"]:
        _INTERRUPT["raised"] = True
        raise _INTERRUPT["pending"]


def raise_if_interrupted() -> None:
    """Raise the interrupt noted by :func:`interrupt`, if any (a safe point)."""
    pending = _INTERRUPT["pending"]
    if pending is not None:
        _INTERRUPT["raised"] = True
        raise pending


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """A block during which signal handlers only note an interrupt (see :func:`interrupt`)."""
    _INTERRUPT["depth"] += 1
    try:
        yield
    finally:
        _INTERRUPT["depth"] -= 1


# ------------------------------------------------------------------ disk full
def _size(nbytes: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if abs(nbytes) < 1000 or unit == "GB":
            return f"{nbytes:.0f} {unit}" if unit == "bytes" else f"{nbytes:.1f} {unit}"
        nbytes /= 1000
    return f"{nbytes:.1f} TB"  # pragma: no cover


def disk_full_error(target: str | os.PathLike, written: int | None = None, total: int | None = None) -> OSError:
    """The ``OSError`` (errno ENOSPC) that says the disk is full, how much was written, and what to do."""
    target = Path(target)
    done = ""
    if written is not None and total:
        done = f" (wrote {_size(written)} of {_size(total)})"
    elif written is not None:
        done = f" (wrote {_size(written)})"
    return OSError(
        errno.ENOSPC,
        f"the disk is full{done} while writing {target.name} in {target.parent}: free some space or "
        "choose another folder. Nothing was written and any previous file is intact.",
    )


#: numpy's message for a short write (a full disk)
_SHORT_WRITE = re.compile(r"\d+ requested and \d+ written")


# ------------------------------------------------------------------ stale parts
def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname() or "host")[:40] or "host"


#: ``.NAME.sa-PID@HOST.RANDOM.part``: the temporary file of a run of this package
_PART = re.compile(r"^\.(?P<name>.+)\.sa-(?P<pid>\d+)@(?P<host>[A-Za-z0-9_-]+)\.[A-Za-z0-9_]+\.part$")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_parts(path: str | os.PathLike) -> tuple[list[Path], list[Path]]:
    """Remove the temporary files that interrupted runs left beside ``path``.

    A temporary file is removed only when it is provably ours and abandoned:
    its name says it was written for ``path`` by a process of this machine
    (``.NAME.sa-PID@HOST.<random>.part``) and that process no longer exists.
    Others (another machine's run, a live run, the unnamed ``.NAME.<random>.part``
    of older versions) are left alone and returned as ``kept``.

    Returns
    -------
    (removed, kept)
        The files removed, and the temporary files for ``path`` left in place.
    """
    target = Path(path).expanduser()
    folder = target.parent
    removed: list[Path] = []
    kept: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed, kept
    host = _host()
    legacy = re.compile(rf"^\.{re.escape(target.name)}\.[A-Za-z0-9_]{{8}}\.part$")
    for entry in entries:
        match = _PART.match(entry.name)
        if match and match["name"] == target.name:
            if match["host"] == host and not _pid_alive(int(match["pid"])):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
                    continue
            kept.append(Path(entry.path))
        elif legacy.match(entry.name):
            kept.append(Path(entry.path))
    return removed, kept


# ------------------------------------------------------------------ writing
#: the parts of the running :func:`output_transaction` (target -> temporary file), None outside one
_TRANSACTION: contextvars.ContextVar[dict[Path, Path] | None] = contextvars.ContextVar(
    "stackalign_transaction", default=None
)


def check_writable_dir(path: str | os.PathLike) -> Path:
    """Return the folder of ``path`` after checking it exists and is writable.

    Raises
    ------
    ValueError
        With a message that says what to do.
    """
    folder = Path(path).expanduser().resolve().parent
    if not folder.is_dir():
        raise ValueError(f"output folder {folder} does not exist: create it first or choose another path.")
    if not os.access(folder, os.W_OK):
        raise ValueError(f"output folder {folder} is not writable: choose a folder you can write to.")
    return folder


def _new_file_mode(target: Path) -> int:
    """Permissions the finished file should get: the replaced file's, else 0o666 minus the umask."""
    try:
        return target.stat().st_mode & 0o7777
    except OSError:
        pass
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # no other portable way to read it
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    On any exception (including KeyboardInterrupt and cancellation) the
    temporary file is removed and an existing file at ``path`` is untouched.
    The finished file gets the permissions of the file it replaces, or the
    usual ones for a new file (``0o666`` minus the umask), not the private
    mode of the temporary file.
    """
    target = Path(path).expanduser()
    folder = check_writable_dir(target)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.sa-{os.getpid()}@{_host()}.", suffix=".part", dir=folder)
    os.close(fd)
    tmp = Path(tmp_name)
    parts = _TRANSACTION.get()
    try:
        try:
            yield tmp
        except OSError as exc:
            # numpy's tofile (under tifffile) says "N requested and M written", without an errno
            if exc.errno == errno.ENOSPC or (exc.errno is None and _SHORT_WRITE.search(str(exc))):
                written = getattr(exc, "written", None)
                raise disk_full_error(target, written, getattr(exc, "total", None)) from exc
            raise
        raise_if_interrupted()
        if parts is not None:  # committed with the run's other outputs
            earlier = parts.pop(target.resolve(), None)
            if earlier is not None:
                with contextlib.suppress(OSError):
                    earlier.unlink()
            parts[target.resolve()] = tmp
            return
        _commit(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _commit(tmp: Path, target: Path) -> None:
    if tmp.is_dir():
        _commit_folder(tmp, target)
        return
    with contextlib.suppress(OSError):
        os.chmod(tmp, _new_file_mode(target))
    os.replace(tmp, target)


def _commit_folder(tmp: Path, target: Path) -> None:
    """Rename the finished folder ``tmp`` onto ``target``; a folder already there is moved aside first and
    removed only once the new one is in place (if the rename fails, it is put back)."""
    with contextlib.suppress(OSError):
        os.chmod(tmp, 0o777 & ~_umask())
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.sa-{os.getpid()}@{_host()}.{uuid.uuid4().hex[:8]}.old.part")
        os.replace(target, old)
    try:
        os.replace(tmp, target)
    except BaseException:
        if old is not None:
            os.replace(old, target)
        raise
    if old is not None:
        remove_part(old)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def remove_part(part: Path) -> None:
    """Remove a temporary file or folder (errors ignored)."""
    if part.is_dir() and not part.is_symlink():
        shutil.rmtree(part, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            part.unlink()


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; rename it onto ``path`` on success.

    The folder counterpart of :func:`atomic_path` (for outputs such as
    OME-Zarr that are folders), with the same part naming, the same place in
    an :func:`output_transaction`, and the same guarantee: on any exception
    the temporary folder is removed and an existing ``path`` is untouched.
    An existing folder at ``path`` is replaced only once the new one is
    complete.
    """
    target = Path(path).expanduser()
    folder = check_writable_dir(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.sa-{os.getpid()}@{_host()}.", suffix=".part", dir=folder))
    parts = _TRANSACTION.get()
    try:
        try:
            yield tmp
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise disk_full_error(target, getattr(exc, "written", None), getattr(exc, "total", None)) from exc
            raise
        raise_if_interrupted()
        if parts is not None:
            earlier = parts.pop(target.resolve(), None)
            if earlier is not None:
                remove_part(earlier)
            parts[target.resolve()] = tmp
            return
        _commit(tmp, target)
    except BaseException:
        remove_part(tmp)
        raise


@contextlib.contextmanager
def output_transaction() -> Iterator[dict[Path, Path]]:
    """All the outputs written inside this block are committed together, or none.

    Every :func:`atomic_path` inside the block writes its temporary file as
    usual but does not rename it: the renames happen together when the block
    ends without an error (after a last check for an interrupt). On any
    exception, including an interrupt, every temporary file is removed and
    every existing file is untouched. Yields the pending parts (target ->
    temporary file).
    """
    parts: dict[Path, Path] = {}
    token = _TRANSACTION.set(parts)
    try:
        try:
            yield parts
            raise_if_interrupted()
        finally:
            _TRANSACTION.reset(token)
        with signals_deferred():
            for target, tmp in list(parts.items()):
                _commit(tmp, target)
                del parts[target]
    except BaseException:
        for tmp in parts.values():
            remove_part(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path`` and rename it into place."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def jsonable(value: Any) -> Any:
    """``value`` converted to plain JSON types.

    Numpy scalars and arrays, tuples and sets become lists and numbers, bytes
    text, NaN and infinities None, objects with a ``to_dict`` method (such as
    :class:`~napari_stackalign.FrameTransforms`) their dict; anything else
    becomes its ``str``.
    """
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return jsonable(to_dict())
    return str(value)
