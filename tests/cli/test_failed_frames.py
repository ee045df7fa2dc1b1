"""--failed {interpolate,identity,apply} and --force; no trustworthy frame: exit 3, nothing written."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import tifffile

from napari_stackalign import FrameTransforms
from napari_stackalign.cli import main
from napari_stackalign.io import read_stack
from napari_stackalign.synthetic import make_stack

N = 8


@pytest.fixture
def files(tmp_path):
    stack, _ = make_stack("beads", n_frames=N, shape=(64, 64), drift=0.0, jitter=0.0, snr=8, dtype="uint16", seed=4)
    inp = tmp_path / "in.tif"
    tifffile.imwrite(inp, stack)
    shifts = FrameTransforms(dy=np.zeros(N), dx=np.zeros(N))
    shifts.dy[3] = 5.0  # a wrong estimate on a frame flagged as failed
    one_failed = tmp_path / "one_failed.csv"
    shifts.flag([3], "test: no peak").save(one_failed)
    all_failed = tmp_path / "all_failed.csv"
    FrameTransforms(dy=np.zeros(N), dx=np.zeros(N)).flag(list(range(N)), "test: empty frame").save(all_failed)
    return stack, inp, one_failed, all_failed


@pytest.mark.parametrize("command", ["register"])
def test_no_trustworthy_frame_exits_3_and_writes_nothing(tmp_path, files, command, capsys):
    _, inp, _, all_failed = files
    out = tmp_path / "out.h5"
    assert main([command, "-i", str(inp), "-o", str(out), "--apply-transforms", str(all_failed), "-q"]) == 3
    err = capsys.readouterr().err
    assert "--force" in err and "Nothing was written" in err
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]
    assert main([command, "-i", str(inp), "-o", str(out), "--apply-transforms", str(all_failed), "--force", "-q"]) == 0
    assert out.exists()


@pytest.mark.parametrize(("policy", "moved"), [("interpolate", False), ("identity", False), ("apply", True)])
def test_failed_policy_reaches_the_warp(tmp_path, files, policy, moved, capsys):
    stack, inp, one_failed, _ = files
    out = tmp_path / f"out_{policy}.h5"
    assert (
        main(["register", "-i", str(inp), "-o", str(out), "--apply-transforms", str(one_failed), "--failed", policy])
        == 0
    )
    result = np.asarray(read_stack(out, lazy=False).data)
    assert np.array_equal(result[2], stack[2])  # a trustworthy frame with a zero shift: unchanged
    assert np.array_equal(result[3], stack[3]) != moved  # the failed frame moved only with --failed apply
    printed = capsys.readouterr().out
    assert "failed frames:" in printed and "3" in printed and "test: no peak" in printed


def test_a_bad_failed_policy_is_refused(tmp_path, files, capsys):
    _, inp, _, _ = files
    with pytest.raises(SystemExit):
        main(["register", "-i", str(inp), "-o", str(tmp_path / "o.h5"), "--failed", "guess"])
    assert "interpolate" in capsys.readouterr().err


def test_library_warnings_read_as_the_commands_own_lines(tmp_path, files, capsys):
    """A warning is the command's line on stderr: its message, not the library's file and source line."""
    _, inp, one_failed, _ = files
    out = tmp_path / "out.h5"
    with warnings.catch_warnings():
        warnings.simplefilter("always")  # whatever the test run's own filters
        assert main(["register", "-i", str(inp), "-o", str(out), "--apply-transforms", str(one_failed), "-q"]) == 0
    err = capsys.readouterr().err
    assert "stackalign register: warning: 1 of 8 frames failed and were interpolated" in err
    assert "\n  1 frame(s) 3: test: no peak" in err  # the message's later lines indented under it
    assert ".py:" not in err and "Warning:" not in err
