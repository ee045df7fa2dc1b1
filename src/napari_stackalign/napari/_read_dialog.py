"""The dialog that asks which dataset of an HDF5 file to open, and its axis order.

It shows :func:`._read_choice.propose_read`'s proposal: the candidate
datasets with their shapes, the proposed one selected, and the axis order
(one letter per dimension: T frames, C channels, Z planes, Y rows, X columns) in an
editable field with a live check of what it would read ("20 frames of
128 x 256"). OK is enabled only for an axis order the reader accepts. Tests
drive it with :meth:`ReadChoiceDialog.select_dataset`,
:meth:`ReadChoiceDialog.set_axes` and ``accept()``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QApplication,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ._read_choice import ReadProposal, describe_reading, proposed_axes

__all__ = ["ReadChoiceDialog", "ask_read_choice"]


class ReadChoiceDialog(QDialog):
    """Choose the dataset and the axis order of an HDF5 file the reader cannot decide alone."""

    def __init__(self, proposal: ReadProposal, path: str | Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.proposal = proposal
        self.setWindowTitle(f"Open {Path(path).name}")
        self.setObjectName("stackalign_read_choice")
        why = QLabel("The reader needs your choice: " + "; ".join(proposal.reasons) + ".")
        why.setWordWrap(True)
        self.datasets = QListWidget()
        for cand in proposal.candidates:
            item = QListWidgetItem(cand.describe())
            item.setData(Qt.ItemDataRole.UserRole, cand.name)
            self.datasets.addItem(item)
        self.datasets.setMaximumHeight(self.datasets.sizeHintForRow(0) * min(6, len(proposal.candidates)) + 8)
        self.axes = QLineEdit(proposal.axes)
        self.axes.setToolTip(
            "One letter per dimension of the stored array, in order: T frames, C channels, Z planes, Y rows, "
            "X columns (e.g. YXT for an array stored as rows, columns, frames; TZYX for volumes over time)."
        )
        self.preview = QLabel()
        self.preview.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        form = QFormLayout()
        form.addRow("Axis order:", self.axes)
        letters = QLabel("One letter per stored axis, in order: T frames, C channels, Z planes, Y rows, X columns.")
        letters.setWordWrap(True)
        form.addRow("", letters)
        form.addRow("Reads as:", self.preview)
        layout = QVBoxLayout(self)
        layout.addWidget(why)
        layout.addWidget(QLabel("Datasets that could be the stack:"))
        layout.addWidget(self.datasets)
        layout.addLayout(form)
        layout.addWidget(self.buttons)
        self.datasets.currentRowChanged.connect(self._on_dataset)
        self.axes.textChanged.connect(self._check)
        self.select_dataset(proposal.dataset)
        self.axes.setText(proposal.axes)
        self._check()
        self.resize(520, self.sizeHint().height())

    # -- programmatic control (what the tests drive) -------------------------
    def select_dataset(self, name: str) -> None:
        """Select the dataset ``name``; the axis field gets its proposed order."""
        names = [c.name for c in self.proposal.candidates]
        self.proposal.candidate(name)  # ValueError naming the candidates
        self.datasets.setCurrentRow(names.index(name))

    def set_axes(self, axes: str) -> None:
        """Type ``axes`` into the axis-order field."""
        self.axes.setText(axes)

    def choice(self) -> tuple[str, str]:
        """The selected dataset and the typed axis order (upper case)."""
        item = self.datasets.currentItem()
        return str(item.data(Qt.ItemDataRole.UserRole)), self.axes.text().strip().upper()

    def can_accept(self) -> bool:
        """Whether the current choice is readable (OK is enabled)."""
        return bool(self.buttons.button(QDialogButtonBox.StandardButton.Ok).isEnabled())

    # -- internals ------------------------------------------------------------
    def _on_dataset(self, row: int) -> None:
        if row < 0:
            return
        axes, _doubt = proposed_axes(self.proposal.candidates[row])
        self.axes.setText(axes)
        self._check()

    def _check(self) -> None:
        ok_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        if self.datasets.currentItem() is None:
            ok_button.setEnabled(False)
            return
        name, axes = self.choice()
        cand = self.proposal.candidate(name)
        try:
            text = describe_reading(axes, cand.shape)
        except ValueError as exc:
            self.preview.setText(f"<span style='color:#d95f02'>{exc}</span>")
            ok_button.setEnabled(False)
            return
        self.preview.setText(text)
        ok_button.setEnabled(True)

    def accept(self) -> None:
        """Close with OK, only when the choice is readable (also when called directly)."""
        if self.can_accept():
            super().accept()


def ask_read_choice(proposal: ReadProposal, path: str | Path, parent: Any = None) -> tuple[str, str] | None:
    """Show :class:`ReadChoiceDialog` (modal); the chosen (dataset, axes), or None when cancelled."""
    # over the napari window (the active one) rather than a free-floating window
    dialog = ReadChoiceDialog(proposal, path, parent if parent is not None else QApplication.activeWindow())
    try:
        if dialog.exec() == QDialog.DialogCode.Accepted:
            return dialog.choice()
        return None
    finally:
        dialog.deleteLater()
