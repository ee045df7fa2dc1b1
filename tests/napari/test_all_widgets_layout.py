"""All six widgets docked from the Plugins menu into a laptop-sized window (1366x768).

The window must not grow past the screen, and every widget's Run button must
be reachable by scrolling its dock.
"""

from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtCore import QPoint, QRect
from qtpy.QtWidgets import QScrollArea

from napari_stackalign.napari._runner import TaskRunner

WINDOW = (1366, 768)
DISPLAY_NAMES = (
    "Pyramid registration", "Compare", "Particles", "Trajectories", "Similarity stacking", "Pairwise averaging"
)


def _scroll_area(widget):
    parent = widget.parentWidget()
    while parent is not None and not isinstance(parent, QScrollArea):
        parent = parent.parentWidget()
    return parent


@pytest.fixture
def six_docked(make_napari_viewer, qtbot):
    """A 1366x768 window with a long-named stack and all six widgets docked (stacked, as the menu docks them)."""
    viewer = make_napari_viewer(show=True)
    viewer.add_image(np.random.default_rng(0).random((6, 64, 64)).astype(np.float32), name="a stack with a long name")
    window = viewer.window._qt_window
    window.resize(*WINDOW)
    qtbot.wait(50)
    docked = {}
    for name in DISPLAY_NAMES:
        docked[name] = viewer.window.add_plugin_dock_widget("napari-stackalign", name)
        qtbot.wait(20)
    qtbot.wait(200)
    held = {"window": window, "docked": docked}
    yield held
    held.clear()  # napari's leak check counts viewers still referenced


def test_the_window_does_not_grow_past_the_screen(six_docked):
    window = six_docked["window"]
    assert window.width() <= WINDOW[0] and window.height() <= WINDOW[1], (window.width(), window.height())


@pytest.mark.parametrize("name", DISPLAY_NAMES)
def test_every_run_button_can_be_scrolled_into_view(six_docked, qtbot, name):
    window = six_docked["window"]
    dock_widget, widget = six_docked["docked"][name]
    dock_widget.show()
    dock_widget.raise_()
    runners = widget.findChildren(TaskRunner)
    assert runners, f"{name}: no Run row"
    screen = QRect(window.mapToGlobal(QPoint(0, 0)), window.size())
    for runner in runners:
        button = runner.run_button
        area = _scroll_area(button)
        assert area is not None, f"{name}: its Run button is not in a scroll area"
        area.ensureWidgetVisible(button)
        qtbot.wait(20)
        assert not button.visibleRegion().isEmpty(), f"{name}: {button.text()!r} cannot be scrolled into view"
        top_left = button.mapToGlobal(QPoint(0, 0))
        assert screen.contains(top_left), f"{name}: {button.text()!r} at {top_left} is outside the window"
