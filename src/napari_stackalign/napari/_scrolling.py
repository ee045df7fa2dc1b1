"""A dock-widget base whose content scrolls vertically and is never clipped sideways."""

from __future__ import annotations

from typing import Any

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QFrame, QScrollArea, QVBoxLayout, QWidget

__all__ = ["ScrollingDock"]


class ScrollingDock(QWidget):
    """Put widgets in ``self.body_layout``; a tall dock scrolls, a narrow one widens.

    napari's style sheet makes controls larger than their size before the
    widget is shown, so the minimum width is taken when the widget is shown.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.body = QWidget()
        self.body_layout = QVBoxLayout(self.body)
        self._scroll = QScrollArea()
        self._scroll.setWidgetResizable(True)
        self._scroll.setFrameShape(QFrame.NoFrame)
        self._scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self._scroll.setWidget(self.body)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self._scroll)

    def showEvent(self, event: Any) -> None:
        bar = self._scroll.verticalScrollBar().sizeHint().width()
        self._scroll.setMinimumWidth(self.body.minimumSizeHint().width() + bar + 4)
        super().showEvent(event)
