"""Faults during a real ``stackalign`` run: signals, SIGKILL leftovers, a full disk.

Each test starts the command as a subprocess (``python -m napari_stackalign.cli``,
what the ``stackalign`` entry point runs), on an input big enough that writing
the output takes a couple of seconds (zlib-compressed noise), and acts on it
while the output is being written: the moment its temporary ``.part`` file
appears beside the output.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_stackalign import FrameTransforms

SRC = Path(__file__).resolve().parents[2] / "src"
N_FRAMES, SIZE = 160, 512  # 84 MB of uint16 noise: about 1-3 s to write with zlib here
PREVIOUS = b"the previous output, which must survive"


@pytest.fixture(scope="module")
def big_input(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A (T, Y, X) uint16 noise TIFF and a table of zero shifts for it (no estimation: the write dominates)."""
    folder = tmp_path_factory.mktemp("faults")
    rng = np.random.default_rng(0)
    stack = rng.integers(0, 60000, size=(N_FRAMES, SIZE, SIZE), dtype=np.uint16)
    path = folder / "in.tif"
    tifffile.imwrite(path, stack)
    table = folder / "zero.csv"
    FrameTransforms(dy=np.zeros(N_FRAMES), dx=np.zeros(N_FRAMES)).save(table)
    return path, table


#: runs the command with SIGINT and SIGHUP at their defaults first: a test run launched in the background
#: (``nohup pytest &``) passes them on ignored, and the command rightly leaves an ignored signal ignored
_DEFAULT_SIGNALS_THEN_CLI = (
    "import runpy, signal\n"
    "for name in ('SIGINT', 'SIGHUP'):\n"
    "    if hasattr(signal, name):\n"
    "        signal.signal(getattr(signal, name), signal.SIG_DFL)\n"
    "runpy.run_module('napari_stackalign.cli', run_name='__main__', alter_sys=True)\n"
)


#: as :data:`_DEFAULT_SIGNALS_THEN_CLI`, but SIGHUP ignored at launch (``nohup stackalign ...``)
_SIGHUP_IGNORED_THEN_CLI = _DEFAULT_SIGNALS_THEN_CLI.replace(
    "runpy.run_module", "signal.signal(signal.SIGHUP, signal.SIG_IGN)\nrunpy.run_module"
)


def _start(args: list[str], cwd: Path, launcher: str = _DEFAULT_SIGNALS_THEN_CLI) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen(
        [sys.executable, "-c", launcher, *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # a signal for it alone, not for pytest
    )


def _parts(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.endswith(".part"))


def _wait_for_part(proc: subprocess.Popen, folder: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _parts(folder):
            time.sleep(0.3)  # well inside the write
            return
        if proc.poll() is not None:
            _, err = proc.communicate()
            pytest.fail(f"the run ended (rc {proc.returncode}) before writing began: {err.decode()[-2000:]}")
        time.sleep(0.02)
    proc.kill()
    pytest.fail("no temporary output file appeared")


def _register_args(inp: Path, table: Path, out: Path, *extra: str) -> list[str]:
    return [
        "register",
        "-i",
        str(inp),
        "-o",
        str(out),
        "--apply-transforms",
        str(table),
        "--compression",
        "zlib",
        "--overwrite",
        "-q",
        *extra,
    ]


@pytest.mark.parametrize("suffix", [".h5", ".tif"])
@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)], ids=["INT", "TERM", "HUP"]
)
def test_a_signal_while_writing_leaves_no_output_and_the_previous_one_intact(
    big_input: tuple[Path, Path], tmp_path: Path, suffix: str, signum: int, code: int
) -> None:
    inp, table = big_input
    out = tmp_path / f"out{suffix}"
    out.write_bytes(PREVIOUS)
    proc = _start(_register_args(inp, table, out), tmp_path)
    _wait_for_part(proc, tmp_path)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err.decode()[-3000:]
    assert "interrupted" in err.decode()
    assert "Traceback" not in err.decode()
    assert out.read_bytes() == PREVIOUS
    assert _parts(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]


def test_a_sighup_that_was_ignored_at_launch_stays_ignored(big_input: tuple[Path, Path], tmp_path: Path) -> None:
    """``nohup stackalign ...``: a hang-up does not stop the run, which finishes and writes its output."""
    inp, table = big_input
    out = tmp_path / "out.tif"
    proc = _start(_register_args(inp, table, out), tmp_path, _SIGHUP_IGNORED_THEN_CLI)
    _wait_for_part(proc, tmp_path)
    proc.send_signal(signal.SIGHUP)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err.decode()[-3000:]
    assert _parts(tmp_path) == []
    assert tifffile.imread(out).shape == (N_FRAMES, SIZE, SIZE)


def test_a_sigint_while_writing_hdf5_with_a_local_cluster(big_input: tuple[Path, Path], tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    inp, table = big_input
    out = tmp_path / "out.h5"
    out.write_bytes(PREVIOUS)
    proc = _start(_register_args(inp, table, out, "--workers", "2"), tmp_path)
    _wait_for_part(proc, tmp_path, timeout=240)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err.decode()[-3000:]
    assert out.read_bytes() == PREVIOUS
    assert _parts(tmp_path) == []


@pytest.mark.parametrize("suffix", [".h5", ".tif"])
def test_a_killed_runs_part_is_removed_and_reported_by_the_next_run(
    big_input: tuple[Path, Path], tmp_path: Path, suffix: str
) -> None:
    inp, table = big_input
    out = tmp_path / f"out{suffix}"
    proc = _start(_register_args(inp, table, out), tmp_path)
    _wait_for_part(proc, tmp_path)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    left = _parts(tmp_path)
    assert len(left) == 1 and f".sa-{proc.pid}@" in left[0].name  # SIGKILL cannot be caught: a part is left
    # a part of a live process (this one) for the same output is not touched
    live = tmp_path / f".{out.name}.sa-{os.getpid()}@{left[0].name.split('@')[1]}"
    live.write_bytes(b"")
    small = tmp_path / "small.tif"
    tifffile.imwrite(small, np.random.default_rng(2).integers(0, 1000, size=(8, 64, 64), dtype=np.uint16))
    zero = tmp_path / "zero8.csv"
    FrameTransforms(dy=np.zeros(8), dx=np.zeros(8)).save(zero)
    again = _start(["register", "-i", str(small), "-o", str(out), "--apply-transforms", str(zero)], tmp_path)
    _, err = again.communicate(timeout=120)
    assert again.returncode == 0, err.decode()[-3000:]
    assert f"removed a stale temporary file from an interrupted run: {left[0]}" in err.decode()
    assert not left[0].exists()
    assert live.exists() and str(live) in err.decode()  # reported, left in place
    assert out.exists()


# ----------------------------------------------------------------- full disk
@pytest.fixture
def small_disk(tmp_path: Path):
    """A 2 MB tmpfs (root only; skipped otherwise)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "small"
    mnt.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True, check=False
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True, check=False)


@pytest.mark.parametrize("suffix", [".h5", ".tif"])
def test_a_full_disk_is_a_clean_error(small_disk: Path, tmp_path: Path, suffix: str) -> None:
    stack = np.random.default_rng(1).integers(0, 60000, size=(40, 256, 256), dtype=np.uint16)  # 5.2 MB
    inp = tmp_path / "in.tif"
    tifffile.imwrite(inp, stack)
    table = tmp_path / "zero.csv"
    FrameTransforms(dy=np.zeros(40), dx=np.zeros(40)).save(table)
    out = small_disk / f"out{suffix}"
    proc = _start(["register", "-i", str(inp), "-o", str(out), "--apply-transforms", str(table), "-q"], tmp_path)
    _, err = proc.communicate(timeout=120)
    text = err.decode()
    assert proc.returncode == 2, text[-3000:]
    assert "the disk is full (wrote" in text and "of 5.2 MB" in text
    assert "Traceback" not in text and "Exception ignored" not in text
    assert list(small_disk.iterdir()) == []


@pytest.mark.parametrize("suffix", [".h5", ".tif"])
def test_a_full_disk_under_a_small_output_is_a_clean_error(small_disk: Path, tmp_path: Path, suffix: str) -> None:
    """``stack -o avg.h5``: one image written directly through h5py (the disk nearly full beforehand)."""
    from napari_stackalign.synthetic import make_stack

    stack, _ = make_stack("beads", n_frames=6, shape=(256, 256), drift=2, jitter=0.0, snr=8, dtype="uint16", seed=6)
    inp = tmp_path / "in.tif"
    tifffile.imwrite(inp, stack)
    filler = small_disk / "filler"
    free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
    filler.write_bytes(b"\0" * (free - 64 * 1024))  # leaves 64 KB: the 256 KB average does not fit
    out = small_disk / f"avg{suffix}"
    proc = _start(["stack", "-i", str(inp), "-o", str(out), "-q"], tmp_path)
    _, err = proc.communicate(timeout=120)
    text = err.decode()
    assert proc.returncode == 2, text[-3000:]
    assert "the disk is full" in text
    assert "Traceback" not in text and "Exception ignored" not in text
    assert [p.name for p in small_disk.iterdir()] == ["filler"]
