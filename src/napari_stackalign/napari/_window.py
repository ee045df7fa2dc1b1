"""Whether plugin code (a reader or writer hook) runs inside a napari window's GUI thread.

The hooks ask (dialogs) and report errors as notifications only there; called
from a script (``npe2.read``, ``npe2.write``) they raise instead, so a script
sees the error.
"""

from __future__ import annotations

from qtpy.QtCore import QThread
from qtpy.QtWidgets import QApplication

import napari

__all__ = ["in_napari_window"]


def in_napari_window() -> bool:
    """True in the GUI thread of a running napari window."""
    app = QApplication.instance()
    if app is None or QThread.currentThread() is not app.thread():
        return False
    return napari.current_viewer() is not None
