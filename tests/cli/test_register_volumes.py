"""`stackalign register` on volumes over time: ImageJ hyperstacks and HDF5 with --axes, 3-D transforms."""

from __future__ import annotations

import shlex

import numpy as np
import pytest
import tifffile

from napari_stackalign import FrameTransforms, VolumeTransforms
from napari_stackalign.cli import main
from napari_stackalign.io import read_stack, write_stack
from napari_stackalign.synthetic_volume import make_volume_stack, volume_error


def _run(argline: str) -> int:
    return main(["register", *shlex.split(argline)])


@pytest.fixture(scope="module")
def volumes():
    return make_volume_stack(6, (16, 48, 48), scene="beads", snr=6.0, seed=2, channels=2)


def test_hyperstack_is_registered_in_3d_on_one_channel(tmp_path, volumes, capsys):
    data = (volumes.data * 300 + 200).clip(0, 65535).astype(np.uint16)
    src = tmp_path / "in.tif"
    tifffile.imwrite(
        src,
        np.transpose(data, (0, 2, 1, 3, 4)),
        imagej=True,
        resolution=(10.0, 10.0),
        metadata={"axes": "TZCYX", "spacing": 0.5, "unit": "um"},
    )
    out, table = tmp_path / "out.tif", tmp_path / "t.csv"
    assert _run(f"-i {src} -o {out} --transforms {table} --channel 1") == 0
    assert "dz:" in capsys.readouterr().out
    tf = FrameTransforms.load(table)
    assert isinstance(tf, VolumeTransforms) and tf.params["channel"] == 1
    assert volume_error(tf, volumes.truth)["rms"] < 0.1
    back = read_stack(out, volumes=True)
    assert back.axes == "TCZYX" and back.data.shape == data.shape and back.dtype == np.uint16
    assert back.scale[2] == pytest.approx(0.5)  # the Z step is kept
    # re-applying the table gives the same output
    again = tmp_path / "again.tif"
    assert _run(f"-i {src} -o {again} --apply-transforms {table}") == 0
    np.testing.assert_array_equal(read_stack(again, volumes=True).data, back.data)


def test_hdf5_volume_with_axes_flag(tmp_path, volumes):
    src = tmp_path / "in.h5"
    write_stack(src, volumes.data[:, 0], axes="TZYX")
    out, table = tmp_path / "out.h5", tmp_path / "t.json"
    assert _run(f"-i {src} -o {out} --axes TZYX --transforms {table} -q") == 0
    assert volume_error(FrameTransforms.load(table), volumes.truth)["rms"] < 0.1


def test_volume_errors_are_clear(tmp_path, volumes, capsys):
    src = tmp_path / "in.h5"
    write_stack(src, volumes.data[:, 0], axes="TZYX")
    flat = tmp_path / "flat.csv"
    FrameTransforms(dy=np.zeros(6), dx=np.zeros(6)).save(flat)
    assert _run(f"-i {src} -o {tmp_path / 'o.h5'} -q --apply-transforms {flat}") != 0
    assert "2-D table (no dz column)" in capsys.readouterr().err
    assert _run(f"-i {src} -o {tmp_path / 'o2.h5'} -q --channel 1") != 0
    assert "--channel applies to multichannel" in capsys.readouterr().err
    assert not (tmp_path / "o.h5").exists() and not (tmp_path / "o2.h5").exists()
