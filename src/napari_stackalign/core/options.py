"""Options objects: one definition of every option of a method.

Each method has one frozen dataclass (:class:`~napari_stackalign.core.pyramid.PyramidOptions`
and its siblings) whose fields are declared with :func:`option`: the default,
the allowed range or choices, and one line of help. Building the object
validates every field once (a bad value raises ``ValueError`` naming the
allowed values). Everything else reads the same object:

- the public functions keep explicit keyword parameters (so scripts and IDEs
  see them) with the same names and defaults, and also take ``options=``
  (:meth:`Options.merge` combines the two); a test checks that the signatures
  and the options objects cannot drift apart;
- the internal, streaming and cluster paths take the options object itself;
- the command line builds its flags from it (:mod:`napari_stackalign.cli._options`),
  and the widgets their forms.

Checks that need the data (a ROI inside the frame, a smoothing window shorter
than the stack) stay with the function that has the data.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import numpy as np

__all__ = ["OptionSpec", "Options", "option"]

_SPEC_KEY = "stackalign_option"

OptionsT = TypeVar("OptionsT", bound="Options")


@dataclass(frozen=True)
class OptionSpec:
    """What an option accepts, and how to describe it.

    Attributes
    ----------
    help : str
        One line for users (tooltips, ``--help``, docs).
    kind : {"int", "float", "bool", "str", "any"}
        The type the value is converted to ("any": only ``check`` applies).
    minimum, maximum : float, optional
        Allowed range (inclusive unless ``exclusive_minimum`` /
        ``exclusive_maximum``).
    choices : tuple, optional
        The allowed values.
    optional : bool
        None is allowed (meaning "not given" / "automatic").
    check : callable, optional
        ``check(value) -> value``: converts and validates what the simple
        rules above cannot (a sequence of rates, a rectangle); raises
        ``ValueError`` with a message for users.
    label : str
        A short name for forms (default: the field name in words).
    """

    help: str
    kind: str = "any"
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    exclusive_maximum: bool = False
    choices: tuple[Any, ...] | None = None
    optional: bool = False
    check: Callable[[Any], Any] | None = None
    label: str = ""

    def range_text(self) -> str:
        """The allowed values in words, e.g. ``"in (0, 1]"`` or ``"one of 'full', 'crop'"``."""
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.minimum is not None and self.maximum is not None:
            left = "(" if self.exclusive_minimum else "["
            right = ")" if self.exclusive_maximum else "]"
            return f"in {left}{self.minimum:g}, {self.maximum:g}{right}"
        if self.minimum is not None:
            return f"{'above' if self.exclusive_minimum else 'of at least'} {self.minimum:g}"
        if self.maximum is not None:
            return f"{'below' if self.exclusive_maximum else 'of at most'} {self.maximum:g}"
        return ""

    def validate(self, name: str, value: Any) -> Any:
        """Return ``value`` converted to the option's type, or raise ``ValueError``."""
        if value is None:
            if self.optional:
                return None
            raise ValueError(f"{name} must be given ({self.help.rstrip('.')}).")
        value = self._convert(name, value)
        if self.kind in ("int", "float"):
            self._check_range(name, value)
        if self.check is not None:
            value = self.check(value)
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"{name} must be {self.range_text()}, got {value!r}.")
        return value

    def _convert(self, name: str, value: Any) -> Any:
        kind = self.kind
        if kind == "bool":
            if isinstance(value, (bool, np.bool_)):
                return bool(value)
            if isinstance(value, numbers.Integral) and int(value) in (0, 1):
                return bool(value)
            raise ValueError(f"{name} must be True or False, got {value!r}.")
        if kind == "int":
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
                if not (isinstance(value, float) and value.is_integer()):
                    raise ValueError(f"{name} must be an integer {self.range_text()}, got {value!r}.".replace(" ,", ","))
            return int(value)
        if kind == "float":
            if isinstance(value, (bool, np.bool_)):
                raise ValueError(f"{name} must be a number, got {value!r}.")
            try:
                out = float(value)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{name} must be a number {self.range_text()}, got {value!r}.") from exc
            if not math.isfinite(out):
                raise ValueError(f"{name} must be a finite number {self.range_text()}, got {value!r}.")
            return out
        if kind == "str":
            if not isinstance(value, str):
                raise ValueError(f"{name} must be text ({self.range_text() or self.help}), got {value!r}.")
            return value
        return value

    def _check_range(self, name: str, value: float) -> None:
        low, high = self.minimum, self.maximum
        bad = (
            low is not None and (value <= low if self.exclusive_minimum else value < low)
        ) or (high is not None and (value >= high if self.exclusive_maximum else value > high))
        if bad:
            noun = "an integer" if self.kind == "int" else "a number"
            raise ValueError(f"{name} must be {noun} {self.range_text()}, got {value!r}.")


def option(
    default: Any,
    help: str,  # noqa: A002 - the word users know
    *,
    kind: str = "any",
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_minimum: bool = False,
    exclusive_maximum: bool = False,
    choices: tuple[Any, ...] | None = None,
    optional: bool = False,
    check: Callable[[Any], Any] | None = None,
    label: str = "",
    compare: bool = True,
) -> Any:
    """Declare one field of an :class:`Options` dataclass.

    Parameters
    ----------
    default : object
        The default value (the one place it is written).
    help : str
        One line for users.
    kind, minimum, maximum, exclusive_minimum, exclusive_maximum, choices, optional, check, label
        See :class:`OptionSpec`.
    compare : bool
        False for fields that cannot be compared with ``==`` (arrays).

    Returns
    -------
    dataclasses.Field
    """
    spec = OptionSpec(
        help=help,
        kind=kind,
        minimum=minimum,
        maximum=maximum,
        exclusive_minimum=exclusive_minimum,
        exclusive_maximum=exclusive_maximum,
        choices=choices,
        optional=optional,
        check=check,
        label=label,
    )
    return dataclasses.field(default=default, compare=compare, metadata={_SPEC_KEY: spec})


def _same(a: Any, b: Any) -> bool:
    """``a == b`` for plain values; identity for arrays and other objects without a clear ``==``."""
    if a is b:
        return True
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return False
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False


@dataclass(frozen=True)
class Options:
    """Base of every method's options: validated once, when built.

    Subclasses are frozen dataclasses whose fields are declared with
    :func:`option`; they may add cross-field checks in :meth:`check`.
    """

    #: the method these options belong to (used in messages and provenance)
    method: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            spec = f.metadata.get(_SPEC_KEY)
            if spec is not None:
                object.__setattr__(self, f.name, spec.validate(f.name, getattr(self, f.name)))
        self.check()

    def check(self) -> None:
        """Cross-field checks (none by default); raise ``ValueError``."""

    # ------------------------------------------------------------ describing
    @classmethod
    def specs(cls) -> dict[str, OptionSpec]:
        """Each option's name and :class:`OptionSpec`, in declaration order."""
        return {f.name: f.metadata[_SPEC_KEY] for f in dataclasses.fields(cls) if _SPEC_KEY in f.metadata}

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Each option's name and default value."""
        return {f.name: f.default for f in dataclasses.fields(cls) if _SPEC_KEY in f.metadata}

    @classmethod
    def default(cls, name: str) -> Any:
        """The default of one option."""
        return cls.defaults()[name]

    @classmethod
    def help(cls, name: str) -> str:
        """One option's help, with its default and allowed range, e.g. for tooltips and ``--help``."""
        spec = cls.specs()[name]
        default = cls.default(name)
        extra = [f"default {_show(default)}"] if default is not None else []
        if spec.range_text() and spec.choices is None:
            extra.append(spec.range_text())
        return f"{spec.help.rstrip('.')} ({'; '.join(extra)})." if extra else spec.help

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        for name in self.specs():
            yield name, getattr(self, name)

    def to_dict(self) -> dict[str, Any]:
        """``{name: value}`` of every option."""
        return dict(self)

    def replace(self: OptionsT, **changes: Any) -> OptionsT:
        """A copy with some options changed (validated again)."""
        unknown = set(changes) - set(self.specs())
        if unknown:
            raise ValueError(f"unknown {self.method or type(self).__name__} options: {sorted(unknown)}.")
        return dataclasses.replace(self, **changes)

    @classmethod
    def merge(cls: type[OptionsT], options: OptionsT | None, **keywords: Any) -> OptionsT:
        """The options of a call that has both explicit keywords and ``options=``.

        Parameters
        ----------
        options : Options or None
            An options object of this class, or None.
        **keywords
            The function's explicit keyword parameters (every option).

        Returns
        -------
        Options
            Without ``options``: built from the keywords. With it: ``options``,
            where every keyword that differs from its default replaces the
            option (so ``register_pyramid(s, options=o, iterate=2)`` is ``o``
            with two passes).
        """
        if options is None:
            return cls(**keywords)
        if not isinstance(options, cls):
            raise ValueError(f"options must be a {cls.__name__}, got {type(options).__name__}.")
        defaults = cls.defaults()
        changes = {k: v for k, v in keywords.items() if not _same(v, defaults[k])}
        return options.replace(**changes) if changes else options


    @classmethod
    def from_call(cls: type[OptionsT], options: OptionsT | None, values: Mapping[str, Any]) -> OptionsT:
        """:meth:`merge` with the option values picked out of ``values`` (a public function's ``locals()``).

        Lets a public function with explicit keyword parameters hand all of them
        over without listing the names again::

            def register_x(stack, *, a=DEFAULTS.a, b=DEFAULTS.b, options=None):
                opts = XOptions.from_call(options, locals())
        """
        return cls.merge(options, **{name: values[name] for name in cls.specs()})


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple):
        return "(" + ", ".join(_show(v) for v in value) + ")" if value else "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
