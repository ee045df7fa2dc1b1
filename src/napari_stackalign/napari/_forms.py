"""magicgui forms built from a method's options object, and layer pickers.

Each widget's parameter form is an :class:`OptionsForm`: one magicgui value
widget per option, whose default, range, choices, label and tooltip come from
the method's :class:`~napari_stackalign.core.options.Options` class (the same
place the API and the command line read them). The form remembers the user's
last values between sessions the way magicgui's ``persist=True`` does (read
back with the container's ``_load``, from a file under magicgui's user cache
folder, in the format of its ``_dump``); layers are never stored.

Layer pickers are magicgui's napari layer types (:func:`layer_picker`): napari
fills them from the viewer and refreshes them when layers are added, renamed,
reordered or removed (it calls the dock widget's ``reset_choices``).
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, LineEdit, SpinBox, Widget, create_widget

from ..core.options import Options

__all__ = ["OptionsForm", "layer_picker", "settings_dir", "tooltip"]

#: upper end of an integer box whose option has no maximum
INT_CAP = 10_000_000
#: upper end of a number box whose option has no maximum
FLOAT_CAP = 1e9


def settings_dir() -> Path:
    """Where forms keep the user's last values (magicgui's user cache folder)."""
    from magicgui._util import user_cache_dir

    return Path(user_cache_dir()) / "napari-stackalign"


def tooltip(options: type[Options], name: str) -> str:
    """An option's help with its default and range, as a sentence."""
    text = options.help(name)
    return text[:1].upper() + text[1:]


def _label(options: type[Options], name: str) -> str:
    spec = options.specs()[name]
    return (spec.label or name.replace("_", " ")).capitalize()


def option_widget(options: type[Options], name: str, **overrides: Any) -> Widget:
    """One magicgui widget for an option: its type, default, range or choices, label and tooltip.

    ``overrides`` go to the widget (``max=20``, ``step=2``, ``label=...``);
    options that are not a plain number, switch, word or choice need a
    ``widget=`` override (e.g. a :class:`~magicgui.widgets.LineEdit`).
    """
    spec = options.specs()[name]
    default = options.default(name)
    kwargs: dict[str, Any] = {"name": name, "label": _label(options, name), "tooltip": tooltip(options, name)}
    widget_class = overrides.pop("widget", None)
    kwargs.update(overrides)
    if widget_class is not None:
        kwargs.setdefault("value", default)
        return widget_class(**kwargs)
    if spec.choices is not None:
        return ComboBox(value=default, choices=tuple(spec.choices), **kwargs)
    if spec.kind == "bool":
        kwargs.setdefault("text", kwargs["label"])
        return CheckBox(value=bool(default), **kwargs)
    if spec.kind == "int":
        kwargs.setdefault("min", int(spec.minimum) if spec.minimum is not None else -INT_CAP)
        kwargs.setdefault("max", int(spec.maximum) if spec.maximum is not None else INT_CAP)
        return SpinBox(value=int(default), **kwargs)
    if spec.kind == "float":
        step = kwargs.setdefault("step", 0.05)
        low = spec.minimum if spec.minimum is not None else -FLOAT_CAP
        kwargs.setdefault("min", low + (step / 5 if spec.exclusive_minimum else 0))
        kwargs.setdefault("max", spec.maximum if spec.maximum is not None else FLOAT_CAP)
        return FloatSpinBox(value=float(default), **kwargs)
    if spec.kind == "str":
        return LineEdit(value=str(default), **kwargs)
    raise ValueError(f"option {name!r} of {options.__name__} needs a widget= override in the form.")


class OptionsForm(Container):
    """A magicgui form of some of a method's options, remembering the last values.

    Parameters
    ----------
    options : type of Options
        The method's options class.
    names : iterable of str
        The options shown, in order.
    key : str
        The name the last values are kept under (one per widget).
    overrides : mapping, optional
        Per option, keyword arguments for :func:`option_widget`.
    extra : iterable of magicgui widgets, optional
        Further fields of the widget that are not options of the method
        (kept with the options and restored the same way).
    persist : bool
        Restore the last values now, and keep every change.
    """

    def __init__(
        self,
        options: type[Options],
        names: Iterable[str],
        *,
        key: str,
        overrides: Mapping[str, Mapping[str, Any]] | None = None,
        extra: Iterable[Widget] = (),
        persist: bool = True,
    ) -> None:
        overrides = overrides or {}
        self.options_class = options
        self.option_names = tuple(names)
        widgets = [option_widget(options, name, **dict(overrides.get(name, {}))) for name in self.option_names]
        super().__init__(widgets=[*widgets, *extra], labels=True)
        self.key = key
        self.persist = persist
        self._defaults = {w.name: w.value for w in self._value_widgets()}
        if persist:
            self._load(self.settings_path, quiet=True)
            self.changed.connect(self._save)

    @property
    def settings_path(self) -> Path:
        """The file the last values are kept in."""
        return settings_dir() / f"{self.key}.form"

    def _value_widgets(self) -> list[Widget]:
        return [w for w in self if hasattr(w, "value")]

    def _save(self, *_: Any) -> None:
        """Keep every value now, in the file format of magicgui's ``persist`` (its ``_dump`` waits a moment
        in a thread; a form is saved at once so that a widget opened right after finds the values)."""
        record = {}
        for name, value in self.values().items():
            try:
                record[name] = pickle.dumps(value)
            except (pickle.PicklingError, TypeError, AttributeError):
                continue
        path = self.settings_path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            part = path.with_name(path.name + ".part")
            part.write_bytes(pickle.dumps(record))
            part.replace(path)
        except OSError:  # a read-only home: the form still works, it just forgets
            return

    def values(self) -> dict[str, Any]:
        """Every field's value by name."""
        return {w.name: w.value for w in self._value_widgets()}

    def set_values(self, **values: Any) -> None:
        """Set fields by name (ValueError for an unknown name)."""
        for name, value in values.items():
            if name not in self._defaults:
                raise ValueError(f"the form has no field {name!r}; fields: {sorted(self._defaults)}.")
            self[name].value = value

    def reset(self) -> None:
        """Every field back to its default (the options' default)."""
        self.set_values(**self._defaults)

    def option_values(self, convert: Mapping[str, Callable[[Any], Any]] | None = None) -> dict[str, Any]:
        """The values of the option fields, each converted by ``convert`` when it names it."""
        convert = convert or {}
        values = self.values()
        return {name: convert.get(name, lambda v: v)(values[name]) for name in self.option_names}


def layer_picker(
    annotation: Any,
    name: str,
    label: str,
    tip: str,
    *,
    nullable: bool = False,
    accept: Callable[[Any], bool] | None = None,
) -> Widget:
    """A magicgui napari layer combo box (it follows the viewer's layers).

    Parameters
    ----------
    annotation : type
        The napari layer type (``napari.layers.Image``...).
    name, label, tip : str
        Field name, label and tooltip.
    nullable : bool
        Offer "no layer" (the value None) as the first entry.
    accept : callable, optional
        ``accept(layer) -> bool``: offer only these layers of the type (e.g. time series, not 2-D images).
    """
    options: dict[str, Any] = {"nullable": nullable, "tooltip": tip}
    if accept is not None:
        from napari.utils._magicgui import get_layers  # the choices napari gives its layer types

        options["choices"] = lambda gui: [layer for layer in get_layers(gui) if accept(layer)]
    return create_widget(annotation=annotation, name=name, label=label, options=options)
