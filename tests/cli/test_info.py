"""``stackalign info``."""

from __future__ import annotations

import h5py
import numpy as np

from napari_stackalign import FrameTransforms
from napari_stackalign.cli import main
from napari_stackalign.io import write_stack


def test_info_prints_what_the_file_holds(tmp_path, capsys):
    data = np.zeros((7, 2, 16, 20), np.uint16)
    path = write_stack(
        tmp_path / "s.h5",
        data,
        scale=(0.5, 0.25),
        units="µm",
        metadata={"sample": 1, "lab": "x"},
        transforms=FrameTransforms.identity(7),
    )
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "shape:       (7, 2, 16, 20)" in out
    assert "dtype:       uint16" in out
    assert "axes:        TCYX (channel axis 1)" in out
    assert "pixel size:  0.5 x 0.25 µm" in out
    assert "lazy:        no" in out
    assert "metadata:    lab, sample" in out
    assert "transforms:  yes (7 frames, method 'identity')" in out


def test_info_dataset_and_axes_options(tmp_path, capsys):
    with h5py.File(tmp_path / "two.h5", "w") as f:
        f["a"] = np.zeros((3, 8, 8), np.uint8)
        f["b"] = np.zeros((8, 10, 4), np.float32)
    assert main(["info", str(tmp_path / "two.h5")]) == 2
    err = capsys.readouterr().err
    assert "stackalign info: error:" in err and "'a' (3, 8, 8)" in err and "--dataset NAME" in err
    assert main(["info", str(tmp_path / "two.h5"), "--dataset", "b", "--axes", "YXT"]) == 0
    out = capsys.readouterr().out
    assert "shape:       (4, 8, 10)" in out and "float32" in out and "pixel size:  not calibrated" in out
    assert "transforms:  none" in out


def test_info_bad_inputs_exit_2(tmp_path, capsys):
    (tmp_path / "x.avi").write_bytes(b"x")
    assert main(["info", str(tmp_path / "x.avi")]) == 2
    assert "unknown file extension" in capsys.readouterr().err
    assert main(["info", str(tmp_path / "missing.tif")]) == 2
    assert "does not exist" in capsys.readouterr().err
