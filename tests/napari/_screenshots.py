"""What the screenshot scripts share: a laptop-sized viewer with the widgets' defaults, and waiting for a run.

Not a test module (pytest collects ``test_*.py`` only). The ``make_*_screenshots.py``
scripts import it; run them under a display, e.g.::

    QT_API=pyqt6 PYTHONPATH=src xvfb-run -a -s "-screen 0 1600x1000x24" \\
        .venv/bin/python tests/napari/make_pyramid_screenshots.py
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

# the widgets with their defaults, not the last values this machine's user set (the forms remember them);
# set before napari is imported, since the settings folder is read then
os.environ.setdefault("XDG_CACHE_HOME", tempfile.mkdtemp(prefix="stackalign-shots-"))

import napari  # noqa: E402
from qtpy.QtWidgets import QApplication  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
#: where the screenshots go (the docs link them from there)
IMAGES = ROOT / "docs" / "images"
#: a laptop's screen: the size the widgets must fit
LAPTOP = (1366, 768)


def pump(n: int = 30) -> None:
    """Let Qt draw: process events ``n`` times, 10 ms apart."""
    for _ in range(n):
        QApplication.instance().processEvents()
        time.sleep(0.01)


def wait_for(runner, seconds: float = 120.0) -> None:
    """Process events until ``runner`` (a widget's Run/Cancel row) has no worker left, then let Qt draw."""
    start = time.time()
    while runner.worker is not None:
        QApplication.instance().processEvents()
        if time.time() - start > seconds:
            raise RuntimeError(f"the run did not finish in {seconds:.0f} s")
        time.sleep(0.02)
    pump(20)


def laptop_viewer() -> napari.Viewer:
    """A shown viewer whose window is laptop-sized (1366x768)."""
    IMAGES.mkdir(parents=True, exist_ok=True)
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(*LAPTOP)
    return viewer


def shoot(viewer: napari.Viewer, name: str) -> Path:
    """Save the whole window (canvas and docked widgets) as ``docs/images/<name>``; return the path."""
    path = IMAGES / name
    viewer.screenshot(str(path), canvas_only=False, flash=False)
    return path
