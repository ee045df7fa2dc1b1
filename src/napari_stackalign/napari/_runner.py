"""Run core functions in a worker thread with a progress bar and Cancel.

Every dock widget uses :class:`TaskRunner`: it owns a Run button, a Cancel
button and a progress bar, starts the work with napari's ``create_worker``
(so the viewer never freezes), forwards the core's ``progress(done, total,
stage)`` callback to the bar through a queued Qt signal, and turns a Cancel
click into :class:`~napari_stackalign.core.Cancelled` raised inside the core
at its next progress report.

Expected user errors (``ValueError``, ``OSError``) become napari
notifications that say what to do; a cancelled run says so and adds nothing.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from typing import Any

from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QObject, Signal
from qtpy.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..core import Cancelled
from ..core.apply import FailedFramesWarning
from ..transforms import NoSignalWarning
from ._progress import OverallProgress, Stage

__all__ = ["TaskRunner", "notify_user_error", "notify_warning"]


#: progress bar steps (the bar shows the fraction of the whole run)
BAR_STEPS = 1000


class _Bridge(QObject):
    progressed = Signal(int, int, str)


def notify_user_error(exc: BaseException) -> None:
    """Show an expected error as a napari notification (no traceback)."""
    if isinstance(exc, Cancelled):
        show_info("Cancelled: nothing was added or written.")
    elif isinstance(exc, (ValueError, OSError, KeyError)):
        show_error(str(exc) or exc.__class__.__name__)
    else:
        show_error(f"Unexpected error ({exc.__class__.__name__}): {exc}. Details are in the terminal.")
        traceback.print_exception(exc)


def notify_warning(args: tuple) -> None:
    """Show a warning raised in a worker (``showwarning``'s arguments) as a
    napari notification: failed frames and stacks without usable signal must
    not stay in the terminal."""
    message, category = args[0], args[1]
    if isinstance(category, type) and issubclass(category, (NoSignalWarning, FailedFramesWarning)):
        show_warning(str(message))
    elif isinstance(category, type) and issubclass(category, UserWarning):
        show_info(str(message))


class TaskRunner(QWidget):
    """Run / Cancel buttons, a status line and a progress bar driving one worker.

    The bar shows the progress of the whole run (every stage weighted by the
    ``stages`` given to :meth:`start`), the status line says the current
    stage in words and the time left. :meth:`discard` (called when the
    widget is closed) cancels the run and drops its result, so nothing
    appears later.

    Parameters
    ----------
    run_text : str
        Label of the Run button.
    on_run : callable
        Called (in the GUI thread) when Run is clicked; it collects the
        parameters and calls :meth:`start`.
    """

    def __init__(self, run_text: str, on_run: Callable[[], None], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.run_button = QPushButton(run_text)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("%p%")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(buttons)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.status)
        self._cancel_event = threading.Event()
        self._discarded = False
        self._overall = OverallProgress()
        self._bridge = _Bridge()
        self._bridge.progressed.connect(self._on_progress)
        self.worker: Any = None
        self.run_button.clicked.connect(on_run)
        self.cancel_button.clicked.connect(self.cancel)

    # -- state --------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.worker is not None

    def cancel(self) -> None:
        """Ask the running task to stop at its next progress report."""
        if self.worker is not None:
            self._cancel_event.set()
            self.status.setText("Cancelling…")

    def discard(self) -> None:
        """Cancel the run and drop its result (the widget was closed): nothing is added later."""
        self._discarded = True
        if self.worker is not None:
            self._cancel_event.set()

    def _progress_callback(self, done: int, total: int, stage: str) -> None:
        # called in the worker thread
        if self._cancel_event.is_set():
            raise Cancelled()
        self._bridge.progressed.emit(int(done), int(total), str(stage))

    def _on_progress(self, done: int, total: int, stage: str) -> None:
        if self.worker is None or self._cancel_event.is_set():
            return
        fraction = self._overall.update(done, total, stage or "")
        self.progress_bar.setRange(0, BAR_STEPS)
        self.progress_bar.setValue(round(BAR_STEPS * fraction))
        if stage:
            self.status.setText(self._overall.text(stage))

    # -- running ------------------------------------------------------------
    def start(
        self,
        func: Callable[..., Any],
        *args: Any,
        on_result: Callable[[Any], None],
        on_finish: Callable[[], None] | None = None,
        stages: tuple[Stage | str, ...] = (),
        **kwargs: Any,
    ) -> Any:
        """Run ``func(*args, progress=callback, **kwargs)`` in a worker thread.

        ``on_result`` gets the return value in the GUI thread (not when the
        run was discarded). ``stages`` are the core's stage names in the order
        they run, with their share of the work (see
        :class:`~napari_stackalign.napari._progress.OverallProgress`).
        Returns the worker (tests wait on its ``finished`` signal).
        """
        if self.worker is not None:
            show_warning("A run is already in progress: wait for it or press Cancel.")
            return None
        if self._discarded:
            return None
        self._cancel_event.clear()
        self._overall = OverallProgress(stages)
        self.progress_bar.setRange(0, 0)  # busy until the first report
        self.status.setText("Running…")
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)

        def task() -> Any:
            return func(*args, progress=self._progress_callback, **kwargs)

        worker = create_worker(task, _start_thread=False, _ignore_errors=True)
        self.worker = worker

        def returned(value: Any) -> None:
            if self._discarded:
                return
            try:
                on_result(value)
                self.status.setText("Done.")
            except Exception as exc:  # an error while building layers
                notify_user_error(exc)
                self.status.setText(f"Failed: {exc}")

        def errored(exc: BaseException) -> None:
            if self._discarded:
                return
            notify_user_error(exc)
            self.status.setText("Cancelled." if isinstance(exc, Cancelled) else f"Failed: {exc}")

        def finished() -> None:
            self.worker = None
            if self._discarded:
                return
            self.run_button.setEnabled(True)
            self.cancel_button.setEnabled(False)
            self.progress_bar.setRange(0, BAR_STEPS)
            self.progress_bar.setValue(BAR_STEPS if self.status.text() == "Done." else 0)
            if on_finish is not None:
                on_finish()

        worker.returned.connect(returned)
        worker.errored.connect(errored)
        worker.warned.connect(notify_warning)
        worker.finished.connect(finished)
        worker.start()
        return worker
