"""The dock-widget base every widget uses: scrolling content, layer pickers kept current, closing cancels.

- The content scrolls vertically and is never clipped sideways, so many
  widgets docked in a small window keep their Run button reachable.
- magicgui containers added with :meth:`ScrollingDock.add_magic` get their
  layer choices refreshed through :meth:`ScrollingDock.reset_choices`, which
  napari calls when layers are added, renamed, reordered or removed.
- Closing the widget (napari takes it out of its dock) while a run is in
  progress cancels the run and drops its result: no layer appears later.
"""

from __future__ import annotations

from typing import Any

from qtpy.QtCore import QEvent, Qt
from qtpy.QtWidgets import QFrame, QScrollArea, QVBoxLayout, QWidget

from ._runner import TaskRunner

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
        self._magic: list[Any] = []
        #: True once the widget was closed (taken out of its dock)
        self.closed = False

    # ------------------------------------------------------------ magicgui
    def add_magic(self, container: Any, layout: Any = None) -> Any:
        """Add a magicgui widget (its ``native``) to ``layout`` (default: the body); returns it."""
        # "layout or ...": an empty QLayout is falsy (len 0), so test for None
        (layout if layout is not None else self.body_layout).addWidget(container.native)
        self._magic.append(container)
        return container

    def reset_choices(self, *_: Any) -> None:
        """Refresh every layer picker (napari calls this when the layer list changes)."""
        if self.closed:
            return
        for container in self._magic:
            try:
                container.reset_choices()
            except RuntimeError:  # a Qt widget already deleted
                continue

    # ------------------------------------------------------------- closing
    def runners(self) -> list[TaskRunner]:
        """Every Run / Cancel row of the widget."""
        return self.findChildren(TaskRunner)

    def on_close(self) -> None:
        """Cancel every run and drop its result; the widget adds nothing from now on."""
        if self.closed:
            return
        self.closed = True
        for runner in self.runners():
            runner.discard()

    def event(self, event: Any) -> bool:
        # napari's remove_dock_widget (the dock's close button) takes the widget out: setParent(None)
        if event.type() == QEvent.ParentChange:
            if self.parent() is not None:
                self._was_docked = True
            elif getattr(self, "_was_docked", False):
                self.on_close()
        return super().event(event)

    def closeEvent(self, event: Any) -> None:
        self.on_close()
        super().closeEvent(event)

    def showEvent(self, event: Any) -> None:
        self.reset_choices()
        bar = self._scroll.verticalScrollBar().sizeHint().width()
        self._scroll.setMinimumWidth(self.body.minimumSizeHint().width() + bar + 4)
        super().showEvent(event)
