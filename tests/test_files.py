"""files.py: temporary parts named for their run, stale parts, transactions, interrupts, a full disk."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from napari_stackalign import files
from napari_stackalign.files import (
    Interrupted,
    atomic_path,
    atomic_write_text,
    interrupt,
    output_transaction,
    raise_if_interrupted,
    remove_stale_parts,
    reset_interrupt,
    signals_deferred,
)
from napari_stackalign.io import write_stack


@pytest.fixture(autouse=True)
def _clean_interrupt():
    reset_interrupt()
    yield
    reset_interrupt()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_part_names_its_target_process_and_host(tmp_path):
    with atomic_path(tmp_path / "out.h5") as tmp:
        assert tmp.name.startswith(f".out.h5.sa-{os.getpid()}@{files._host()}.")
        assert tmp.name.endswith(".part")
        assert files._PART.match(tmp.name)["name"] == "out.h5"


def test_stale_parts_removed_only_when_ours_and_abandoned(tmp_path):
    host = files._host()
    dead = tmp_path / f".out.h5.sa-{_dead_pid()}@{host}.abcd1234.part"
    live = tmp_path / f".out.h5.sa-{os.getpid()}@{host}.abcd1234.part"
    elsewhere = tmp_path / f".out.h5.sa-{_dead_pid()}@another-machine.abcd1234.part"
    legacy = tmp_path / ".out.h5.k3j_x9qa.part"  # mkstemp's name in earlier versions: not provably ours
    other_target = tmp_path / f".other.h5.sa-{_dead_pid()}@{host}.abcd1234.part"
    for p in (dead, live, elsewhere, legacy, other_target):
        p.write_bytes(b"x")
    removed, kept = remove_stale_parts(tmp_path / "out.h5")
    assert removed == [dead] and not dead.exists()
    assert sorted(kept) == sorted([live, elsewhere, legacy])
    assert all(p.exists() for p in (live, elsewhere, legacy, other_target))


def test_a_transaction_commits_all_or_none(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("old")
    with pytest.raises(ValueError), output_transaction():
        atomic_write_text(a, "new")
        atomic_write_text(b, "b")
        assert a.read_text() == "old" and not b.exists()  # nothing renamed yet
        raise ValueError("the run failed after writing both")
    assert a.read_text() == "old" and not b.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]
    with output_transaction():
        atomic_write_text(a, "first")
        atomic_write_text(a, "second")  # written twice: the last one wins, one part left
        atomic_write_text(b, "b")
    assert a.read_text() == "second" and b.read_text() == "b"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt"]


def test_an_interrupt_noted_inside_a_deferred_block_is_raised_at_the_next_safe_point(tmp_path):
    target = tmp_path / "a.txt"
    with pytest.raises(Interrupted) as info, atomic_path(target) as tmp:
        with signals_deferred():
            interrupt(Interrupted(signal.SIGTERM))  # noted only: we are "inside h5py"
            tmp.write_text("written anyway")
        raise_if_interrupted()
    assert info.value.signum == signal.SIGTERM
    assert list(tmp_path.iterdir()) == []


def test_an_interrupt_swallowed_by_a_library_still_stops_the_commit(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(Interrupted), output_transaction(), atomic_path(target) as tmp:
        tmp.write_text("new")
        try:  # a library that catches everything, as an h5py callback does
            interrupt(Interrupted(signal.SIGINT))
        except BaseException:  # noqa: BLE001, S110 (what such a library does)
            pass
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_a_second_signal_during_cleanup_is_only_noted():
    with pytest.raises(Interrupted):
        interrupt(Interrupted(signal.SIGINT))
    interrupt(Interrupted(signal.SIGTERM))  # does not raise again
    with pytest.raises(Interrupted) as info:
        raise_if_interrupted()
    assert info.value.signum == signal.SIGINT  # the first one is reported


def test_enospc_inside_an_atomic_path_says_the_disk_is_full(tmp_path):
    with pytest.raises(OSError) as info, atomic_path(tmp_path / "out.tif"):
        exc = OSError(errno.ENOSPC, "No space left on device")
        exc.written, exc.total = 1000, 5000
        raise exc
    assert info.value.errno == errno.ENOSPC
    assert "the disk is full (wrote 1.0 KB of 5.0 KB) while writing out.tif" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_hdf5_sink_keeps_a_failed_write_and_the_writer_raises_it(tmp_path, monkeypatch):
    from napari_stackalign.io import _h5sink

    real_open = open
    calls = {"n": 0}

    class Failing:
        def __init__(self, f):
            self._f = f

        def write(self, b):
            calls["n"] += 1
            if calls["n"] > 3:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self._f.write(b)

        def __getattr__(self, name):
            return getattr(self._f, name)

    monkeypatch.setattr(_h5sink, "open", lambda *a, **k: Failing(real_open(*a, **k)), raising=False)
    target = tmp_path / "out.h5"
    target.write_bytes(b"previous")
    data = np.random.default_rng(0).integers(0, 1000, size=(30, 128, 128), dtype=np.uint16)
    with pytest.raises(OSError) as info:
        write_stack(target, data, overwrite=True, compression="none")
    assert "the disk is full (wrote" in str(info.value)
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["out.h5"]
