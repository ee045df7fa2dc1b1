"""A combo box of the viewer's layers of one type that follows ``viewer.layers``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qtpy.QtWidgets import QComboBox, QWidget

__all__ = ["LayerChoice"]


class LayerChoice(QComboBox):
    """Choose a layer of ``layer_type``; the list updates as layers come and go.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer whose layers are listed.
    layer_type : type or tuple of types
        Layer classes to list (e.g. ``napari.layers.Image``).
    none_text : str, optional
        When given, a first entry with this text stands for "no layer".
    accept : callable, optional
        Extra filter ``accept(layer) -> bool``.
    """

    def __init__(
        self,
        viewer: Any,
        layer_type: Any,
        *,
        none_text: str | None = None,
        accept: Callable[[Any], bool] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.layer_type = layer_type
        self.none_text = none_text
        self.accept = accept
        self.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.setMinimumContentsLength(12)
        events = viewer.layers.events
        events.inserted.connect(self._on_inserted)
        events.removed.connect(self.refresh)
        events.reordered.connect(self.refresh)
        for layer in viewer.layers:
            layer.events.name.connect(self.refresh)
        self.refresh()

    def _on_inserted(self, event: Any = None) -> None:
        layer = getattr(event, "value", None)
        if layer is not None:
            layer.events.name.connect(self.refresh)
        self.refresh()

    def layers(self) -> list[Any]:
        """The layers currently offered (top of the layer list first)."""
        found = [
            layer
            for layer in reversed(list(self.viewer.layers))
            if isinstance(layer, self.layer_type) and (self.accept is None or self.accept(layer))
        ]
        return found

    def refresh(self, event: Any = None) -> None:
        """Rebuild the list, keeping the current choice when it still exists."""
        try:
            current = self.currentText()
            self.blockSignals(True)
            self.clear()
            if self.none_text is not None:
                self.addItem(self.none_text)
            names = [layer.name for layer in self.layers()]
            self.addItems(names)
            if current in names or (self.none_text is not None and current == self.none_text):
                self.setCurrentText(current)
            self.blockSignals(False)
            if self.currentText() != current:
                self.currentIndexChanged.emit(self.currentIndex())
        except RuntimeError:  # the Qt widget was deleted; the viewer outlived it
            return

    @property
    def value(self) -> Any:
        """The chosen layer, or None."""
        name = self.currentText()
        if not name or (self.none_text is not None and name == self.none_text):
            return None
        try:
            layer = self.viewer.layers[name]
        except (KeyError, ValueError):
            return None
        return layer if isinstance(layer, self.layer_type) else None

    @value.setter
    def value(self, layer: Any) -> None:
        if layer is None:
            if self.none_text is None:
                raise ValueError("this choice needs a layer.")
            self.setCurrentText(self.none_text)
            return
        name = layer if isinstance(layer, str) else layer.name
        index = self.findText(name)
        if index < 0:
            raise ValueError(f"layer {name!r} is not one of the layers offered here.")
        self.setCurrentIndex(index)
