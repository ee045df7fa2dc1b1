"""`stackalign register --dataset NAME --axes YXT`: an HDF5 with frames last, registered correctly."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from napari_stackalign import FrameTransforms
from napari_stackalign.cli import _positions as positions
from napari_stackalign.cli import main
from napari_stackalign.io import read_stack
from napari_stackalign.synthetic import alignment_error, make_stack


@pytest.fixture(scope="module")
def frames_last(tmp_path_factory):
    """20 frames of 64x64 with known drift, stored (y, x, t) in dataset 'imaging', no axis labels."""
    stack, truth = make_stack("beads", n_frames=20, shape=(64, 64), drift=4, jitter=0.0, snr=8, dtype="uint16", seed=3)
    path = tmp_path_factory.mktemp("axes") / "yxt.h5"
    with h5py.File(path, "w") as f:
        f["imaging"] = np.moveaxis(stack, 0, -1)
    return path, stack, truth


def test_yxt_hdf5_is_registered_with_axes(frames_last, tmp_path):
    path, stack, truth = frames_last
    out, table = tmp_path / "out.h5", tmp_path / "t.csv"
    assert (
        main(
            [
                "register",
                "-i",
                str(path),
                "--dataset",
                "imaging",
                "--axes",
                "YXT",
                "-o",
                str(out),
                "--transforms",
                str(table),
                "-q",
            ]
        )
        == 0
    )
    result = read_stack(out, lazy=False)
    assert result.data.shape == stack.shape  # 20 frames of 64x64, not 64 frames of 64x20
    assert alignment_error(FrameTransforms.load(table), truth)["rms"] < 0.15


def test_without_axes_an_ambiguous_order_is_an_error(frames_last, tmp_path, capsys):
    path, _, _ = frames_last
    out = tmp_path / "out.h5"
    assert main(["register", "-i", str(path), "--dataset", "imaging", "-o", str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert "--axes YXT" in err and "ambiguous" in err
    assert not out.exists()


def test_axes_on_the_streaming_path(frames_last, tmp_path, monkeypatch):
    path, stack, truth = frames_last
    real = positions.read_stack
    monkeypatch.setattr(positions, "read_stack", lambda *a, **k: real(*a, **{**k, "lazy": True}))  # as a big file
    out, table = tmp_path / "out.h5", tmp_path / "t.csv"
    assert (
        main(
            [
                "register",
                "-i",
                str(path),
                "--dataset",
                "imaging",
                "--axes",
                "YXT",
                "-o",
                str(out),
                "--transforms",
                str(table),
                "-q",
            ]
        )
        == 0
    )
    assert read_stack(out, lazy=False).data.shape == stack.shape
    assert alignment_error(FrameTransforms.load(table), truth)["rms"] < 0.15


def test_bad_axes_are_refused(frames_last, tmp_path, capsys):
    path, _, _ = frames_last
    assert (
        main(["register", "-i", str(path), "--dataset", "imaging", "--axes", "QQQ", "-o", str(tmp_path / "o.h5")]) == 2
    )
    assert "Traceback" not in capsys.readouterr().err
