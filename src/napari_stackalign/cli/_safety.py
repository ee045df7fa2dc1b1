"""What keeps a ``stackalign`` run from losing data: outputs checked first, signals heard.

* :func:`check_outputs`: every output of a subcommand is checked before any
  work (a valid name with a known extension, not a folder, its folder there
  and writable, not one of the inputs, not another output of the same run,
  not replaced without ``--overwrite``), and temporary files that killed runs
  left beside it are removed (when provably abandoned) and reported.
* :func:`handling_signals`: SIGINT, SIGTERM and SIGHUP become an
  :class:`~napari_stackalign.files.Interrupted` raised at a safe point, so
  every temporary file is removed and the command exits ``128 + signum``.

The outputs of a run are committed together by ``cli.main``
(:func:`~napari_stackalign.files.output_transaction`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..core.apply import ApplyOptions
from ..files import Interrupted, interrupt, remove_stale_parts
from ..io._formats import suffix_of
from ..io._zarr import ZARR_WRITE_SUFFIXES
from ._options import add_option_arguments

__all__ = [
    "EXIT_NO_SIGNAL",
    "EXIT_SIGNALS",
    "Output",
    "add_failed_arguments",
    "check_outputs",
    "handling_signals",
    "same_path",
]

#: the exit code when no frame could be aligned (NoSignalWarning) and --force was not given
EXIT_NO_SIGNAL = 3

#: the signals a run stops on cleanly (each exits with 128 + its number)
EXIT_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


@dataclass(frozen=True)
class Output:
    """One output of a run, as the user typed it.

    Attributes
    ----------
    flag : str
        The flag that names it (``-o``, ``--transforms``, ...), for the messages.
    text : str or None
        The path typed (None: not asked for).
    suffixes : tuple of str
        The extensions allowed (lower case, with the dot); empty: any.
    folder : bool
        The output is a folder (e.g. ``--plots``); ``files`` are written in it.
    files : tuple of str
        For a folder: the names of the files written in it.
    """

    flag: str
    text: str | None
    suffixes: tuple[str, ...] = ()
    folder: bool = False
    files: tuple[str, ...] = ()


def same_path(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name the same file (links and ``..`` resolved; same inode when both exist)."""
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.expanduser().resolve() == b.expanduser().resolve()


def _checked_name(out: Output) -> Path:
    text = out.text
    assert text is not None
    if not str(text).strip():
        raise ValueError(f"{out.flag}: the output name is empty: give a file name.")
    path = Path(text).expanduser()
    if out.folder:
        if path.exists() and not path.is_dir():
            raise ValueError(f"{out.flag} {path} is a file: give a folder.")
        return path
    if suffix_of(path) in ZARR_WRITE_SUFFIXES and suffix_of(path) in out.suffixes:
        if path.exists() and not path.is_dir():
            raise ValueError(f"{out.flag} {path} is a file: an OME-Zarr output is a folder; choose another name.")
        return Path(str(text).rstrip("/" + os.sep)).expanduser()
    if str(text).endswith(("/", os.sep)) or path.is_dir():
        raise ValueError(f"{out.flag} {path} is a folder: give a file name" + _ending(out) + ".")
    if out.suffixes and path.suffix.lower() not in out.suffixes:
        what = f"has the extension {path.suffix!r}" if path.suffix else "has no extension"
        raise ValueError(f"{out.flag} {path.name} {what}: name it{_ending(out)}.")
    return path


def _ending(out: Output) -> str:
    if not out.suffixes:
        return ""
    return " ending in " + (out.suffixes[0] if len(out.suffixes) == 1 else ", ".join(out.suffixes))


def _check_folder(flag: str, folder: Path) -> None:
    if not folder.is_dir():
        raise ValueError(f"{flag}: the output folder {folder} does not exist: create it first or choose another path.")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{flag}: the output folder {folder} is not writable: choose a folder you can write to.")


def check_outputs(
    inputs: Sequence[str | os.PathLike | None],
    outputs: Sequence[Output],
    *,
    overwrite: bool,
    say: Callable[..., None] | None = None,
) -> list[Path | None]:
    """Check every output of a run before any work is done.

    Parameters
    ----------
    inputs : sequence of path-like or None
        Every file the run reads (None entries are skipped).
    outputs : sequence of Output
        Every output the run may write.
    overwrite : bool
        ``--overwrite``: existing outputs may be replaced (never an input).
    say : callable, optional
        Tells about temporary files of interrupted runs (removed or left).

    Returns
    -------
    list of Path or None
        The outputs' paths, in order (None where not asked for).

    Raises
    ------
    ValueError
        With a message that names the flag and says what to do.
    """
    ins = [Path(p).expanduser() for p in inputs if p is not None and str(p) != ""]
    paths: list[Path | None] = []
    written: list[tuple[str, Path]] = []
    for out in outputs:
        if out.text is None:
            paths.append(None)
            continue
        path = _checked_name(out)
        paths.append(path)
        if out.folder:
            if path.exists():
                _check_folder(out.flag, path)
            else:
                _check_folder(out.flag, path.resolve().parent)
            files = [path / name for name in out.files]
        else:
            _check_folder(out.flag, path.resolve().parent)
            files = [path]
        for file in files:
            for src in ins:
                if same_path(file, src):
                    raise ValueError(
                        f"{out.flag} {file} is an input of this run: choose another name (an input is never "
                        "overwritten, even with --overwrite)."
                    )
            for flag, other in written:
                if same_path(file, other):
                    raise ValueError(f"{out.flag} and {flag} name the same file {file}: give each output its own name.")
            if file.exists() and not overwrite:
                raise ValueError(f"{file} already exists: pass --overwrite to replace it, or choose another name.")
            written.append((out.flag, file))
    for _, file in written:
        _report_stale(file, say)
    return paths


def _report_stale(path: Path, say: Callable[..., None] | None) -> None:
    if not path.parent.is_dir():
        return
    removed, kept = remove_stale_parts(path)
    if say is None:
        return
    for part in removed:
        say(f"removed a stale temporary file from an interrupted run: {part}")
    for part in kept:
        say(
            f"note: {part} looks like the temporary file of another run (still running, from another machine "
            "or an older version): left in place; delete it if no run is writing it."
        )


@contextlib.contextmanager
def handling_signals() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP raise :class:`Interrupted` at a safe point while the block runs.

    Outside the main thread (where handlers cannot be installed) nothing
    changes; a signal that is ignored (SIGHUP under ``nohup``) stays ignored. The previous handlers are restored afterwards.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}

    def handler(signum: int, frame: object) -> None:
        interrupt(Interrupted(signum, signal.Signals(signum).name))

    for signum in EXIT_SIGNALS:
        with contextlib.suppress(OSError, ValueError):
            if signal.getsignal(signum) is signal.SIG_IGN:  # e.g. SIGHUP under nohup: stay ignored
                continue
            previous[signum] = signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            with contextlib.suppress(OSError, ValueError, TypeError):
                signal.signal(signum, old if old is not None else signal.SIG_DFL)


def add_failed_arguments(group: object) -> None:
    """``--failed`` (what becomes of the failed frames, from :class:`ApplyOptions`) and ``--force``."""
    add_option_arguments(group, ApplyOptions, ("failed",))
    group.add_argument(  # type: ignore[attr-defined]
        "--force",
        action="store_true",
        help=f"write the output even when no frame could be aligned (otherwise exit {EXIT_NO_SIGNAL}, nothing written).",
    )
