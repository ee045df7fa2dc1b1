"""``--max-memory``: parsed, absurd values refused, and under a small cap the work streams (same result)."""

from __future__ import annotations

import shlex

import numpy as np
import pytest

import napari_stackalign.io._lazy as lazy_io
from napari_stackalign.cli import _memory_cap, main
from napari_stackalign.cli._chunk_advice import FAST_CHUNK_FRAMES, _chunk_frames, chunk_advice
from napari_stackalign.io import read_stack, total_memory, write_stack
from napari_stackalign.synthetic import make_stack

FLAGS = "--num_frames 8 --downsample_rates [1/2,1]"


def _run(argline: str) -> int:
    return main(shlex.split(argline))


@pytest.mark.parametrize(("text", "nbytes"), [("2G", 2 * 10**9), ("500M", 5 * 10**8), ("1.5GiB", int(1.5 * 2**30))])
def test_sizes_are_parsed(text, nbytes, monkeypatch):
    monkeypatch.setattr(_memory_cap, "total_memory", lambda: 10**12)
    monkeypatch.setattr(_memory_cap, "process_memory", lambda: 10**8)  # a long test session grows
    assert _memory_cap.resolve_max_memory(text) == nbytes


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("abc", "not understood"),
        ("0", "positive"),
        ("-1G", "positive"),
        ("1K", "too small"),
        ("999T", "more than this machine's memory"),
    ],
)
def test_absurd_values_are_refused_before_any_work(text, message, tmp_path, capsys):
    src = tmp_path / "in.h5"
    write_stack(src, np.zeros((4, 16, 16), np.uint16))
    assert _run(f"register -i {src} -o {tmp_path / 'out.h5'} --max-memory={text} -q") == 2
    assert message in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.h5"]


def test_the_default_is_a_share_of_the_available_memory(monkeypatch):
    monkeypatch.setattr(_memory_cap, "available_memory", lambda: 8 * 10**9)
    monkeypatch.setattr(_memory_cap, "process_memory", lambda: 10**8)
    assert _memory_cap.resolve_max_memory(None) == int(_memory_cap.DEFAULT_SHARE * 8 * 10**9)
    assert _memory_cap.resolve_max_memory(None) < total_memory() or total_memory() < 8 * 10**9


def test_read_stack_loads_or_streams_by_max_memory(tmp_path):
    path = tmp_path / "s.h5"
    write_stack(path, np.zeros((20, 64, 64), np.uint16))  # 164 kB
    assert not read_stack(path, max_memory="64G").lazy or total_memory() < 64e9 / lazy_io.LOADED_COPIES
    data = read_stack(path, max_memory=1)  # nothing fits: opened lazily
    assert data.lazy
    data.close()


def test_a_small_cap_takes_the_streaming_path_with_the_same_result(tmp_path, monkeypatch, capsys):
    stack, _ = make_stack("beads", n_frames=24, shape=(96, 104), drift=5, snr=6, dtype=np.uint16, seed=5)
    src = tmp_path / "in.h5"
    write_stack(src, stack)
    assert _run(f"register -i {src} -o {tmp_path / 'mem.h5'} {FLAGS} --max-memory 8G") == 0
    assert "streaming" not in capsys.readouterr().err
    # the process counts as empty and a loaded stack as 1000 copies: 100 MB hold no copy of this 480 kB stack
    monkeypatch.setattr("napari_stackalign.io._api.process_memory", lambda: 0)
    monkeypatch.setattr(_memory_cap, "process_memory", lambda: 0)
    monkeypatch.setattr(lazy_io, "LOADED_COPIES", 1000)
    assert _run(f"register -i {src} -o {tmp_path / 'stream.h5'} {FLAGS} --max-memory 100M") == 0
    assert "does not fit in memory under --max-memory 100 MB: streaming" in capsys.readouterr().err
    streamed = read_stack(tmp_path / "stream.h5", lazy=False)
    in_memory = read_stack(tmp_path / "mem.h5", lazy=False)
    np.testing.assert_array_equal(streamed.data, in_memory.data)


def test_every_subcommand_takes_max_memory():
    from napari_stackalign.cli import build_parser

    parser = build_parser()
    for command in ("register", "average", "stack", "track"):
        sub = parser._subparsers._group_actions[0].choices[command]
        assert any("--max-memory" in a.option_strings for a in sub._actions), command


def test_a_cap_that_leaves_small_chunks_says_which_cap_reaches_full_speed(monkeypatch):
    """Chunks of 1-5 frames stream up to 2x slower: the advice gives the least cap with 16-frame chunks,
    and that cap indeed gives them (and no advice)."""
    monkeypatch.setattr(_memory_cap, "process_memory", lambda: 230 * 10**6)
    text = chunk_advice(450 * 10**6, (512, 512), np.uint16)
    assert text is not None and "leaves room for 1 frame(s) per chunk" in text
    need = int(text.split("--max-memory ")[-1].split(" MB")[0]) * 10**6
    assert _chunk_frames(need, (512, 512), np.dtype(np.uint16), np.dtype(np.uint16)) >= FAST_CHUNK_FRAMES
    assert _chunk_frames(need - 2 * 10**6, (512, 512), np.dtype(np.uint16), np.dtype(np.uint16)) < FAST_CHUNK_FRAMES
    assert chunk_advice(need, (512, 512), np.uint16) is None
    assert chunk_advice(300 * 10**6, (512, 512), np.uint16) is None  # cannot stream at all: the error says so
    assert chunk_advice(4 * 10**9, (512, 512), np.uint16) is None
