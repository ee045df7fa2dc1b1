"""Results that explain themselves: names, replace-or-keep, Compare with input, the copyable recipe.

- :func:`result_name`: ``"pc12 registered (pyramid, smoothed 7/2)"``: the
  input, what the layer holds, the method and its key settings.
- :class:`ResultsRow`: the choice between replacing the previous result and
  keeping it, a "Compare with input" button that opens Compare on the pair,
  and the equivalent ``stackalign`` command and Python call of the last run,
  with buttons that copy them.
- :meth:`ResultsRow.add_layers` adds a run's layers; with "replace" it first
  removes the layers of the previous run of the same widget on the same input
  (found by the run id in their metadata, never by ``is``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from magicgui.widgets import ComboBox
from napari.utils.notifications import show_info
from qtpy.QtWidgets import QApplication, QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, QVBoxLayout, QWidget

from ._scripting import Recipe

__all__ = ["KEEP", "REPLACE", "ResultsRow", "open_compare", "result_name"]

REPLACE = "replace the previous result"
KEEP = "keep the previous results"


def result_name(input_name: str, what: str, method: str, settings: Sequence[str] = ()) -> str:
    """``"<input> <what> (<method>, <settings>...)"``, e.g. ``"pc12 registered (pyramid, smoothed 7/2)"``."""
    inside = ", ".join([method, *[s for s in settings if s]])
    return f"{input_name} {what} ({inside})"


def open_compare(viewer: Any, first: str, second: str) -> Any:
    """Dock (or raise) the Compare widget with layers ``first`` (A) and ``second`` (B); returns it."""
    dock, compare = viewer.window.add_plugin_dock_widget("napari-stackalign", "Compare", tabify=True)
    dock.show()
    dock.raise_()
    compare.reset_choices()
    compare.set_pair(first, second)
    return compare


def _run_id(layer: Any) -> str | None:
    block = dict(layer.metadata).get("stackalign") or {}
    return block.get("run_id")


class ResultsRow(QWidget):
    """Replace or keep, Compare with input, and the last run as a command and as Python.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer the results go to.
    key : str
        The widget's name.
    scripting : bool
        Show "Compare with input" and the command / Python of the last run
        (False for widgets whose results are views, like Compare's).
    """

    def __init__(self, viewer: Any, key: str, *, scripting: bool = True, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.key = key
        self.policy = ComboBox(
            value=REPLACE,
            choices=(REPLACE, KEEP),
            label="Each run",
            tooltip="Replace the layers of the previous run on the same input, or keep them next to the new ones.",
        )
        self.compare_button = QPushButton("Compare with input")
        self.compare_button.setToolTip("Open Compare on the input and the last result (before / after).")
        self.compare_button.setEnabled(False)
        self.compare_button.clicked.connect(self.compare_with_input)
        self.copy_command_button = QPushButton("Copy command")
        self.copy_python_button = QPushButton("Copy Python")
        for button in (self.copy_command_button, self.copy_python_button):
            button.setEnabled(False)
        self.copy_command_button.clicked.connect(lambda: self.copy("command"))
        self.copy_python_button.clicked.connect(lambda: self.copy("python"))
        self.recipe_view = QPlainTextEdit()
        self.recipe_view.setReadOnly(True)
        self.recipe_view.setPlaceholderText("After a run: the same work as a stackalign command and as Python.")
        self.recipe_view.setMaximumHeight(110)
        self.recipe_view.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        policy_row = QHBoxLayout()
        policy_row.addWidget(QLabel("Each run:"))
        policy_row.addWidget(self.policy.native, 1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.compare_button)
        buttons.addWidget(self.copy_command_button)
        buttons.addWidget(self.copy_python_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(policy_row)
        if scripting:
            layout.addLayout(buttons)
            layout.addWidget(self.recipe_view)
        else:
            for widget in (self.compare_button, self.copy_command_button, self.copy_python_button, self.recipe_view):
                widget.setParent(self)
                widget.hide()
        #: the last run's recipe
        self.recipe: Recipe | None = None
        #: input name and the name of the result to compare it with
        self.pair: tuple[str, str] | None = None
        self._runs: dict[str, str] = {}  # input name -> run id of its last run

    # ------------------------------------------------------------ results
    def new_run(self, input_name: str) -> str:
        """Start a run's results on ``input_name``: removes the previous run's layers when replacing.

        Returns the run id to put in every new layer's ``metadata["stackalign"]["run_id"]``.
        """
        previous = self._runs.get(input_name)
        if previous is not None and self.policy.value == REPLACE:
            for layer in [lay for lay in self.viewer.layers if _run_id(lay) == previous]:
                self.viewer.layers.remove(layer.name)
        run_id = uuid.uuid4().hex
        self._runs[input_name] = run_id
        return run_id

    def add_layers(
        self, input_name: str, layers: Sequence[tuple[Any, dict]], *, compare_with: int | None = 0,
        layer_type: str = "image",
    ) -> list[Any]:
        """Add a run's layers (``(data, kwargs)`` each, as ``viewer.add_<layer_type>`` takes them, or
        ``(data, kwargs, kind)`` for a layer of another type, e.g. ``"vectors"``).

        Each gets the run id in ``metadata["stackalign"]``; the layer at
        ``compare_with`` becomes the one "Compare with input" opens (None: none of them, e.g. a 2-D average).
        """
        run_id = self.new_run(input_name)
        added = []
        for data, kwargs, *kind in layers:
            block = dict(kwargs.get("metadata", {}).get("stackalign") or {})
            block["run_id"] = run_id
            kwargs = dict(kwargs, metadata={**kwargs.get("metadata", {}), "stackalign": block})
            add = getattr(self.viewer, f"add_{kind[0] if kind else layer_type}")
            added.append(add(data, **kwargs))
        if added and compare_with is not None:
            self.pair = (input_name, added[compare_with].name)
            self.compare_button.setEnabled(True)
        return added

    def compare_with_input(self) -> Any:
        """Open Compare on the input and the last result; returns the Compare widget (None when gone)."""
        if self.pair is None:
            return None
        names = {layer.name for layer in self.viewer.layers}
        missing = [name for name in self.pair if name not in names]
        if missing:
            show_info(f"layer {missing[0]!r} is gone: run again to compare.")
            return None
        return open_compare(self.viewer, *self.pair)

    # ------------------------------------------------------------- recipe
    def set_recipe(self, recipe: Recipe) -> None:
        """Show the last run as a command and as Python, ready to copy."""
        self.recipe = recipe
        self.recipe_view.setPlainText(recipe.text())
        self.copy_command_button.setEnabled(True)
        self.copy_python_button.setEnabled(True)

    def copy(self, what: str) -> str:
        """Copy the last run's ``"command"`` or ``"python"`` to the clipboard; returns the text."""
        if self.recipe is None:
            raise ValueError("there is nothing to copy yet: run first.")
        text = self.recipe.command if what == "command" else self.recipe.python
        notes = "".join(f"# {note}\n" for note in self.recipe.notes)
        text = notes + text
        QApplication.clipboard().setText(text)
        show_info(f"The {'command' if what == 'command' else 'Python code'} is on the clipboard.")
        return text
