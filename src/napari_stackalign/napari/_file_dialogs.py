"""One helper for the file dialogs of every widget (tests replace :func:`ask_path`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from qtpy.QtWidgets import QFileDialog

__all__ = ["ask_path", "open_file", "save_file"]

#: the tables of transforms, for both directions
TABLE_FILTERS = {"CSV table": (".csv",), "JSON": (".json",)}


def _filter_text(filters: Mapping[str, Sequence[str]]) -> str:
    return ";;".join(f"{name} ({' '.join('*' + ext for ext in exts)})" for name, exts in filters.items())


def ask_path(kind: str, parent: Any, title: str, start: str, filter_text: str) -> str:
    """Show Qt's dialog (``kind`` "open" or "save"); returns the chosen path or ``""``."""
    dialog = QFileDialog.getSaveFileName if kind == "save" else QFileDialog.getOpenFileName
    path, _ = dialog(parent, title, start, filter_text)
    return path


def save_file(parent: Any, title: str, default_name: str, filters: Mapping[str, Sequence[str]]) -> Path | None:
    """Ask where to save; the first filter's extension is added when the name has none of them.

    Returns None when the user cancels.
    """
    path = ask_path("save", parent, title, default_name, _filter_text(filters))
    if not path:
        return None
    allowed = [ext for exts in filters.values() for ext in exts]
    if Path(path).suffix.lower() not in allowed:
        path += next(iter(filters.values()))[0]
    return Path(path)


def open_file(parent: Any, title: str, filters: Mapping[str, Sequence[str]]) -> Path | None:
    """Ask for a file to open (the filters are offered together); None when the user cancels."""
    every = {"Supported files": tuple(ext for exts in filters.values() for ext in exts)}
    path = ask_path("open", parent, title, "", _filter_text({**every, **filters}))
    return Path(path) if path else None
