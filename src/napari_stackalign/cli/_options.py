"""Command-line flags built from a method's options object (one definition of each option)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..core.options import Options

__all__ = ["add_option_arguments", "options_from_args"]

_TYPES: dict[str, Callable[[str], Any]] = {"int": int, "float": float, "str": str}


def add_option_arguments(
    group: Any,
    options: type[Options],
    names: Iterable[str],
    *,
    flags: Mapping[str, tuple[str, ...]] | None = None,
    parsers: Mapping[str, Callable[[str], Any]] | None = None,
    metavars: Mapping[str, str] | None = None,
    bool_style: str = "01",
    notes: Mapping[str, str] | None = None,
    shown_defaults: Mapping[str, str] | None = None,
) -> None:
    """Add one flag per option, with the options object's default, range and help.

    Parameters
    ----------
    group : argparse parser or argument group
    options : type of Options
        The method's options class.
    names : iterable of str
        The options to offer, in order.
    flags : mapping, optional
        Flag spellings per option (default ``--name``, plus ``--name-with-dashes``
        for names with underscores).
    parsers : mapping, optional
        Text-to-value converters for options that are not a plain number or
        word (``downsample_rates`` from ``[1/8,1/4,1/2,1]``).
    metavars : mapping, optional
        Metavariables shown in ``--help``.
    bool_style : {"01", "flag"}
        ``"01"``: ``--smooth 1`` / ``--smooth 0`` (the reference tool's style);
        ``"flag"``: ``--smooth`` / ``--no-smooth``.
    notes : mapping, optional
        What the command line adds to an option's help (its syntax, an example),
        appended after the options' help.
    shown_defaults : mapping, optional
        For options typed as text that the command reads itself (so that a bad
        value gets the command's message and exit code): the default written
        as that text (``downsample_rates``: ``"[1/8,1/4,1/2,1]"``). It becomes
        the flag's default (parsed like typed text when there is a parser) and
        the default the help shows.
    """
    flags = flags or {}
    parsers = parsers or {}
    metavars = metavars or {}
    notes = notes or {}
    shown_defaults = shown_defaults or {}
    specs = options.specs()
    for name in names:
        spec = specs[name]
        default = shown_defaults.get(name, options.default(name))
        spellings = flags.get(name) or _default_flags(name)
        text = _help(options, name, shown_defaults.get(name), notes.get(name))
        kwargs: dict[str, Any] = {"dest": name, "default": default, "help": _escape(text)}
        if name in metavars:
            kwargs["metavar"] = metavars[name]
        if name in parsers:
            kwargs["type"] = parsers[name]
        elif spec.kind == "bool":
            if bool_style == "flag":
                kwargs["action"] = argparse.BooleanOptionalAction
            else:
                kwargs.update(type=int, choices=(0, 1))
                kwargs["default"] = int(default)
        elif spec.kind in _TYPES:
            kwargs["type"] = _TYPES[spec.kind]
        if spec.choices is not None and "type" in kwargs and name not in parsers:
            kwargs["choices"] = spec.choices
        group.add_argument(*spellings, **kwargs)


def options_from_args(options: type[Options], args: argparse.Namespace, names: Iterable[str], **extra: Any) -> Any:
    """Build the options object from parsed arguments (``extra`` adds or overrides values)."""
    values = {name: getattr(args, name) for name in names}
    values.update(extra)
    return options(**values)


def _help(options: type[Options], name: str, shown_default: str | None, note: str | None) -> str:
    """The options' help of ``name``, with the default as the command line writes it, and the CLI's note."""
    text = options.help(name)
    if shown_default is not None:
        spec = options.specs()[name]
        extra = [f"default {shown_default}"]
        if spec.range_text() and spec.choices is None:
            extra.append(spec.range_text())
        text = f"{spec.help.rstrip('.')} ({'; '.join(extra)})."
    if not note:
        return text
    return f"{text} {note}" if text.endswith(".") else f"{text}. {note}"


def _default_flags(name: str) -> tuple[str, ...]:
    flag = "--" + name
    dashed = "--" + name.replace("_", "-")
    return (flag,) if dashed == flag else (flag, dashed)


def _escape(text: str) -> str:
    """argparse formats help with %: a literal percent sign must be doubled."""
    return text.replace("%", "%%")
