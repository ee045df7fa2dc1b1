"""The terminal progress bar: stages in words, off with --quiet or without a terminal."""

from __future__ import annotations

import io

from napari_stackalign.cli._progress_bar import bar_enabled, batch_item, progress_bar, stage_words


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_stages_are_named_in_words_and_a_batch_names_its_file():
    assert stage_words("estimate") == "measuring the drift"
    assert stage_words("reference") == "building the template"
    assert stage_words("writing out.h5") == "writing out.h5"  # an unknown stage is shown as it is
    with batch_item("[2/5] run2.h5"):
        assert stage_words("apply") == "[2/5] run2.h5: correcting the frames"
    assert stage_words("apply") == "correcting the frames"


def test_the_bar_is_off_without_a_terminal_or_with_quiet(monkeypatch):
    assert not bar_enabled(stream=io.StringIO())
    assert bar_enabled(stream=_Terminal())
    assert not bar_enabled(quiet=True, stream=_Terminal())
    monkeypatch.setattr("sys.stderr", io.StringIO())
    with progress_bar(True) as callback:
        assert callback is None
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    with progress_bar(True) as callback:
        callback(3, 10, "estimate")
    assert "measuring the drift" in terminal.getvalue()
