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
    """
    flags = flags or {}
    parsers = parsers or {}
    metavars = metavars or {}
    specs = options.specs()
    for name in names:
        spec = specs[name]
        default = options.default(name)
        spellings = flags.get(name) or _default_flags(name)
        kwargs: dict[str, Any] = {"dest": name, "default": default, "help": _escape(options.help(name))}
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


def _default_flags(name: str) -> tuple[str, ...]:
    flag = "--" + name
    dashed = "--" + name.replace("_", "-")
    return (flag,) if dashed == flag else (flag, dashed)


def _escape(text: str) -> str:
    """argparse formats help with %: a literal percent sign must be doubled."""
    return text.replace("%", "%%")
