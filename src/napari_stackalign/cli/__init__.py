"""The ``stackalign`` command line.

Each subcommand lives in its own module of this package and defines
``add_parser(subparsers)``, which adds its parser and sets ``func`` to a
function taking the parsed arguments and returning an exit code. Modules are
discovered automatically, so adding a subcommand touches no other file.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import pkgutil
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from .._version import __version__
from ..files import (
    Interrupted,
    output_transaction,
    raise_if_interrupted,
    reset_interrupt,
)
from ..transforms import NoSignalWarning
from ._batch import dispatch
from ._safety import EXIT_NO_SIGNAL, handling_signals

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stackalign",
        description="Align microscopy time series: measure drift and jitter, remove it, average frames.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "add_parser"):
            module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``stackalign`` command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    reset_interrupt()
    try:
        with handling_signals():
            try:
                with warnings.catch_warnings():
                    warnings.showwarning = _warning_printer(args.command)
                    if not getattr(args, "force", False):
                        # no trustworthy frame: stop before anything is written (exit 3), unless --force
                        warnings.simplefilter("error", NoSignalWarning)
                    with output_transaction():  # every output of the run, or none
                        code = dispatch(args)  # one input, or a batch (cli/_batch.py)
                raise_if_interrupted()  # a signal that came while the outputs were renamed
                return code
            except NoSignalWarning as exc:
                _say(
                    f"stackalign {args.command}: error: {exc} Nothing was written; pass --force to write "
                    "the output anyway (the frames are left unshifted)."
                )
                return EXIT_NO_SIGNAL
            except (ValueError, OSError, KeyError) as exc:
                text = exc.strerror if isinstance(exc, OSError) and exc.errno == errno.ENOSPC else exc
                _say(f"stackalign {args.command}: error: {text}")
                return 2
    except Interrupted as exc:
        _say(f"stackalign {args.command}: interrupted by {exc}; no output was written (temporary files removed).")
        return 128 + exc.signum
    except KeyboardInterrupt:
        _say(f"stackalign {args.command}: interrupted; no output was written (temporary files removed).")
        return 130
    finally:
        reset_interrupt()  # what this run noted does not stop a later one in the same process


def _warning_printer(command: str) -> Callable[..., None]:
    """What shows a warning during a command: its message as the command's own lines on stderr
    (``stackalign register: warning: ...``), not Python's default, which adds the library's file, line
    number and source line."""

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int, *rest: Any) -> None:
        _say(f"stackalign {command}: warning: " + str(message).replace("\n", "\n  "))

    return show


def _say(text: str) -> None:
    """A line on stderr (which may be gone after SIGHUP)."""
    with contextlib.suppress(OSError, ValueError):
        print(text, file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
