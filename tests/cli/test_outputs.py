"""Every output of every subcommand checked before any work; all outputs of a run or none."""

from __future__ import annotations

import os
import shlex
import signal

import numpy as np
import pytest
import tifffile

from napari_stackalign import FrameTransforms
from napari_stackalign.cli import main
from napari_stackalign.synthetic import make_stack

PREVIOUS = b"previous output"


@pytest.fixture(scope="module")
def stack():
    data, _ = make_stack("beads", n_frames=8, shape=(64, 64), drift=3, jitter=0.0, snr=8, dtype="uint16", seed=2)
    return data


@pytest.fixture
def tif_in(tmp_path, stack):
    path = tmp_path / "in.tif"
    tifffile.imwrite(path, stack)
    return path


@pytest.fixture
def zero_table(tmp_path, stack):
    path = tmp_path / "zero.csv"
    FrameTransforms(dy=np.zeros(len(stack)), dx=np.zeros(len(stack))).save(path)
    return path


def _run(argline: str) -> int:
    return main(shlex.split(argline))


def _listing(folder):
    return sorted(p.name for p in folder.iterdir())


# ------------------------------------------------------------ the input is never an output
@pytest.mark.parametrize(
    "outputs",
    [
        "-o avg.tif --registered in.tif",
        "-o avg.tif --transforms in.tif",
        "-o in.tif",
        "-o avg.tif --registered link.tif",  # a symbolic link to the input
        "-o avg.tif --registered ./sub/../in.tif",
    ],
)
def test_average_never_writes_over_its_input(tmp_path, tif_in, outputs, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    os.symlink(tif_in, tmp_path / "link.tif")
    before = tif_in.read_bytes()
    assert _run(f"average -i in.tif {outputs} --overwrite -q") == 2
    err = capsys.readouterr().err
    assert "input" in err and "Traceback" not in err
    assert tif_in.read_bytes() == before
    assert _listing(tmp_path) == ["in.tif", "link.tif", "sub"]


@pytest.mark.parametrize(
    ("command", "outputs"),
    [
        ("register", "-o in.tif"),
        ("register", "-o out.h5 --transforms in.tif"),
        ("stack", "-o avg.tif --registered in.tif"),
        ("stack", "-o avg.tif --coverage in.tif"),
    ],
)
def test_no_subcommand_writes_over_its_input(tmp_path, tif_in, command, outputs, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = tif_in.read_bytes()
    assert _run(f"{command} -i in.tif {outputs} --overwrite -q") == 2
    assert "Traceback" not in capsys.readouterr().err
    assert tif_in.read_bytes() == before
    assert _listing(tmp_path) == ["in.tif"]


# ------------------------------------------------------------ two outputs, one file
@pytest.mark.parametrize(
    ("command", "outputs"),
    [
        ("average", "-o avg.tif --registered avg.tif"),
        ("average", "-o avg.tif --registered ./avg.tif"),
        ("stack", "-o avg.tif --registered avg.tif"),
        ("stack", "-o avg.h5 --coverage avg.h5"),
    ],
)
def test_two_outputs_of_one_run_cannot_be_the_same_file(tmp_path, tif_in, command, outputs, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _run(f"{command} -i in.tif {outputs} -q") == 2
    assert "name the same file" in capsys.readouterr().err
    assert _listing(tmp_path) == ["in.tif"]


# ------------------------------------------------------------ bad names
@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("out.npy", "not .npy"),
        ("''", "empty"),
        ("sub", "is a folder"),
        ("sub/", "is a folder"),
        ("missing/out.h5", "does not exist"),
    ],
)
def test_register_refuses_bad_output_names(tmp_path, tif_in, zero_table, output, message, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    assert _run(f"register -i in.tif -o {output} --apply-transforms zero.csv -q") == 2
    assert message in capsys.readouterr().err
    assert _listing(tmp_path) == ["in.tif", "sub", "zero.csv"]
    assert list((tmp_path / "sub").iterdir()) == []


@pytest.mark.parametrize(
    ("command", "outputs", "message"),
    [
        ("average", "-o ''", "empty"),
        ("average", "-o avg.tif --report sub", "is a folder"),
        ("average", "-o avg.tif --report missing/r.pdf", "does not exist"),
        ("average", "-o avg.tif --transforms missing/t.csv", "does not exist"),
        ("stack", "-o sub/", "is a folder"),
        ("stack", "-o avg.tif --log missing/t.csv", "does not exist"),
    ],
)
def test_side_outputs_are_checked_before_any_work(tmp_path, tif_in, command, outputs, message, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    assert _run(f"{command} -i in.tif {outputs} -q") == 2
    assert message in capsys.readouterr().err
    assert _listing(tmp_path) == ["in.tif", "sub"]


def test_register_side_output_in_a_missing_folder_leaves_the_previous_output(tmp_path, tif_in, zero_table, capsys):
    out = tmp_path / "out.h5"
    out.write_bytes(PREVIOUS)
    code = _run(
        f"register -i {tif_in} -o {out} --transforms {tmp_path}/nowhere/t.csv --apply-transforms {zero_table} "
        "--overwrite -q"
    )
    assert code == 2
    assert "nowhere" in capsys.readouterr().err
    assert out.read_bytes() == PREVIOUS


# ------------------------------------------------------------ all outputs or none
def test_a_failing_side_output_leaves_no_output_and_the_previous_ones_intact(
    tmp_path, tif_in, zero_table, capsys, monkeypatch
):
    out, table = tmp_path / "out.h5", tmp_path / "t.csv"
    out.write_bytes(PREVIOUS)
    table.write_bytes(PREVIOUS)

    def failing_save(self, path, *args, **kwargs):
        raise OSError(5, "Input/output error (injected)")

    monkeypatch.setattr(FrameTransforms, "save", failing_save)
    assert (
        _run(f"register -i {tif_in} -o {out} --transforms {table} --apply-transforms {zero_table} --overwrite -q") == 2
    )
    assert "injected" in capsys.readouterr().err
    assert out.read_bytes() == PREVIOUS and table.read_bytes() == PREVIOUS
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def test_average_writes_all_its_outputs_together(tmp_path, tif_in, capsys, monkeypatch):
    from napari_stackalign.cli import average

    out, reg, table = tmp_path / "avg.tif", tmp_path / "reg.tif", tmp_path / "t.csv"
    seen = {}
    original = average._write_outputs

    def spying(*args, **kwargs):
        written = original(*args, **kwargs)
        seen["during"] = _listing(tmp_path)  # nothing renamed into place before the run ends
        return written

    monkeypatch.setattr(average, "_write_outputs", spying)
    assert _run(f"average -i {tif_in} -o {out} --registered {reg} --transforms {table} -q") == 0
    assert not {"avg.tif", "reg.tif", "t.csv"} & set(seen["during"])
    assert {"avg.tif", "reg.tif", "t.csv"} <= set(_listing(tmp_path))
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


# ------------------------------------------------------------ signals in-process
def test_the_handlers_are_restored_after_a_run(tmp_path, tif_in, zero_table):
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    assert _run(f"register -i {tif_in} -o {tmp_path}/o.h5 --apply-transforms {zero_table} -q") == 0
    assert {s: signal.getsignal(s) for s in before} == before


def test_sigterm_during_a_run_in_process_exits_143(tmp_path, tif_in, zero_table, monkeypatch, capsys):
    from napari_stackalign.cli import _register_memory

    out = tmp_path / "o.h5"
    out.write_bytes(PREVIOUS)
    original = _register_memory.write_stack

    def signalled(*args, **kwargs):
        def progress(done, total, stage):
            if done:
                os.kill(os.getpid(), signal.SIGTERM)

        kwargs["progress"] = progress
        return original(*args, **kwargs)

    monkeypatch.setattr(_register_memory, "write_stack", signalled)
    assert _run(f"register -i {tif_in} -o {out} --apply-transforms {zero_table} --overwrite -q") == 143
    assert "SIGTERM" in capsys.readouterr().err
    assert out.read_bytes() == PREVIOUS
    assert _listing(tmp_path) == ["in.tif", "o.h5", "zero.csv"]
