"""Fixtures shared by the widget tests: collected error notifications, and waiting for a run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def _fresh_form_settings(monkeypatch, tmp_path_factory) -> None:
    """Every test starts from the options' defaults: the forms keep their last values in a fresh folder."""
    folder = tmp_path_factory.mktemp("form-settings")
    monkeypatch.setattr("napari_stackalign.napari._forms.settings_dir", lambda: folder)


@pytest.fixture
def errors(monkeypatch) -> list[str]:
    """Collect the error notifications the widgets show (instead of showing them)."""
    shown: list[str] = []
    monkeypatch.setattr("napari_stackalign.napari._runner.show_error", lambda msg: shown.append(str(msg)))
    return shown


@pytest.fixture
def wait_run(qtbot) -> Callable[..., None]:
    """``wait_run(widget, worker)``: wait until the widget's run has finished and its result was handled.

    Waiting on ``worker.finished`` could miss a signal emitted before the wait
    starts (small runs finish fast); the runner forgets its worker in its
    ``finished`` handler, which runs after the ``returned`` handler.
    """

    def wait(widget: Any, worker: Any, timeout: int = 60000) -> None:
        assert worker is not None, "the run did not start (see the notification)"
        qtbot.waitUntil(lambda: widget.runner.worker is None, timeout=timeout)

    return wait


def dock_widget(viewer: Any, name: str) -> Any:
    """Dock one of the plugin's widgets the way a user does (Plugins menu) and return it.

    A widget docked this way gets napari's proxy of the viewer, where
    ``viewer.layers[0] is viewer.layers[0]`` can be False.
    """
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-stackalign", name)
    return widget


@pytest.fixture
def dock() -> Callable[[Any, str], Any]:
    """``dock(viewer, display_name)``: the widget, docked like a user docks it."""
    return dock_widget
