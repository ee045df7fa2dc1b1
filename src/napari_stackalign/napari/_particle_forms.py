"""Form fields of the particle widgets set from the options objects (default, range, tooltip)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qtpy.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QSpinBox

from ..core.options import Options

__all__ = ["set_choice", "set_flag", "set_number"]


def _bounds(options: type[Options], name: str, step: float) -> tuple[float | None, float | None]:
    """The option's range as spin-box bounds (exclusive ends moved in by ``step``)."""
    spec = options.specs()[name]
    low, high = spec.minimum, spec.maximum
    if low is not None and spec.exclusive_minimum:
        low += step
    if high is not None and spec.exclusive_maximum:
        high -= step
    return low, high


def set_number(
    box: QSpinBox | QDoubleSpinBox,
    options: type[Options],
    name: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
) -> None:
    """Range, value and tooltip of a spin box from option ``name``.

    ``minimum`` / ``maximum`` stand in where the option has no bound of its
    own (or narrow it for the form); the default is always the option's.
    """
    step = 1 if isinstance(box, QSpinBox) else 10.0 ** -box.decimals()
    low, high = _bounds(options, name, step)
    low = low if minimum is None else minimum
    high = high if maximum is None else maximum
    if isinstance(box, QSpinBox):
        box.setRange(int(low), int(high))
    else:
        box.setRange(float(low), float(high))
    box.setValue(options.default(name))
    box.setToolTip(options.help(name))


def set_choice(
    combo: QComboBox, options: type[Options], name: str, *, labels: Mapping[str, Any] | None = None
) -> None:
    """Items, current item and tooltip of a combo box from option ``name``.

    ``labels`` maps each item's text to its value (default: the option's
    choices, shown as they are).
    """
    labels = dict(labels) if labels is not None else {c: c for c in options.specs()[name].choices or ()}
    combo.clear()
    combo.addItems(list(labels))
    default = options.default(name)
    combo.setCurrentIndex(next(i for i, value in enumerate(labels.values()) if value == default))
    combo.setToolTip(options.help(name))


def set_flag(check: QCheckBox, options: type[Options], name: str) -> None:
    """State and tooltip of a check box from boolean option ``name``."""
    check.setChecked(bool(options.default(name)))
    check.setToolTip(options.help(name))
