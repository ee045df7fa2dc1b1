"""write_stack to OME-Zarr (NGFF 0.4 folders): round trip, streaming, atomicity, refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("zarr")
pytest.importorskip("bioio_ome_zarr")

from napari_stackalign import Cancelled
from napari_stackalign.io import read_stack, write_stack
from napari_stackalign.transforms import FrameTransforms


def _stack(shape=(5, 12, 16), dtype=np.uint16, seed=0):
    return np.random.default_rng(seed).integers(0, 4000, shape).astype(dtype)


def _transforms(n):
    return FrameTransforms(dy=np.arange(n) * 0.5, dx=-np.arange(n) * 0.25, method="pyramid")


def _attrs(path):
    return json.loads((path / ".zattrs").read_text())


def test_round_trip_values_dtype_scale_units_transforms(tmp_path):
    data = _stack()
    out = write_stack(
        tmp_path / "movie.ome.zarr",
        data,
        scale=(0.25, 0.5),
        units="µm",
        metadata={"experiment": "e1"},
        transforms=_transforms(5),
    )
    assert out.is_dir()
    got = read_stack(out, lazy=False)
    np.testing.assert_array_equal(got.data, data)
    assert got.data.dtype == np.uint16
    assert got.axes == "TYX"
    assert got.scale == (1.0, 0.25, 0.5)
    assert got.units == "µm"
    assert got.metadata["experiment"] == "e1"
    np.testing.assert_array_equal(got.transforms.dy, np.arange(5) * 0.5)
    np.testing.assert_array_equal(got.transforms.dx, -np.arange(5) * 0.25)
    assert got.transforms.method == "pyramid"
    # the NGFF metadata itself: axes with types and units, the scale, one frame per chunk
    ms = _attrs(out)["multiscales"][0]
    assert ms["version"] == "0.4"
    assert ms["name"] == "movie"
    assert ms["axes"] == [
        {"name": "t", "type": "time"},
        {"name": "y", "type": "space", "unit": "micrometer"},
        {"name": "x", "type": "space", "unit": "micrometer"},
    ]
    assert ms["datasets"] == [
        {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1.0, 0.25, 0.5]}]}
    ]
    assert json.loads((out / "0" / ".zarray").read_text())["chunks"] == [1, 12, 16]
    assert _attrs(out)["stackalign"]["transforms"] == _transforms(5).to_dict()


def test_bioio_reads_the_ngff_calibration_without_our_block(tmp_path):
    import zarr

    out = write_stack(tmp_path / "a.zarr", _stack(dtype=np.float32), scale=0.5, units="nm")
    del zarr.open_group(str(out), mode="r+").attrs["stackalign"]
    got = read_stack(out, lazy=False)
    assert got.scale == (1.0, 0.5, 0.5)
    assert got.units == "nm"
    assert got.data.dtype == np.float32


def test_channels_stack(tmp_path):
    data = _stack((4, 2, 10, 14), dtype=np.uint8)
    out = write_stack(tmp_path / "c.ome.zarr", data, scale=0.1, units="µm")
    got = read_stack(out, lazy=False)
    assert got.axes == "TCYX"
    assert got.channel_axis == 1
    np.testing.assert_array_equal(got.data, data)
    axes = _attrs(out)["multiscales"][0]["axes"]
    assert [a["name"] for a in axes] == ["t", "c", "y", "x"]
    assert axes[1] == {"name": "c", "type": "channel"}
    assert json.loads((out / "0" / ".zarray").read_text())["chunks"] == [1, 2, 10, 14]


def test_dask_input_is_streamed_not_computed_whole(tmp_path, monkeypatch):
    dask = pytest.importorskip("dask")
    da = pytest.importorskip("dask.array")
    data = _stack((6, 8, 8))
    lazy = da.from_array(data, chunks=(1, 8, 8))
    monkeypatch.setattr("napari_stackalign.io._lazy.ITER_CHUNK_BYTES", 2 * data[0].nbytes)
    computes = []

    def counting_scheduler(dsk, keys, **kwargs):
        computes.append(keys)
        return dask.get(dsk, keys, **kwargs)

    with dask.config.set(scheduler=counting_scheduler):
        write_stack(tmp_path / "d.ome.zarr", lazy)
    np.testing.assert_array_equal(read_stack(tmp_path / "d.ome.zarr", lazy=False).data, data)
    assert len(computes) == 3  # two frames at a time, never the six at once


def test_never_overwrites_its_input(tmp_path):
    out = write_stack(tmp_path / "in.ome.zarr", _stack())
    stack = read_stack(out)
    with pytest.raises(ValueError, match="holds the data being written"):
        write_stack(out, stack, overwrite=True)
    with pytest.raises(ValueError, match="Save under a new name"):
        write_stack(out, stack, force=True)
    np.testing.assert_array_equal(read_stack(out, lazy=False).data, _stack())


def test_overwrite_is_needed_and_replaces_the_folder(tmp_path):
    out = write_stack(tmp_path / "o.ome.zarr", _stack((3, 6, 6)))
    with pytest.raises(ValueError, match="already exists"):
        write_stack(out, _stack((4, 6, 6), seed=1))
    write_stack(out, _stack((4, 6, 6), seed=1), overwrite=True)
    np.testing.assert_array_equal(read_stack(out, lazy=False).data, _stack((4, 6, 6), seed=1))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.ome.zarr"]


def test_a_folder_that_is_not_zarr_is_never_replaced(tmp_path):
    folder = tmp_path / "notes.zarr"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a Zarr"):
        write_stack(folder, _stack(), overwrite=True)
    assert (folder / "keep.txt").read_text() == "mine"


def test_cancel_mid_write_leaves_no_output_and_no_part(tmp_path):
    calls = []

    def progress(done, total, stage):
        calls.append(done)
        if done >= 2:
            raise Cancelled("stop")

    with pytest.raises(Cancelled):
        write_stack(tmp_path / "x.ome.zarr", _stack((8, 256, 256)), progress=progress)
    assert list(tmp_path.iterdir()) == []


def test_failure_mid_write_keeps_the_previous_output(tmp_path, monkeypatch):
    monkeypatch.setattr("napari_stackalign.io._lazy.ITER_CHUNK_BYTES", 64 * 64 * 2)
    out = write_stack(tmp_path / "x.ome.zarr", _stack((3, 6, 6)))

    class Broken(np.ndarray):
        def __getitem__(self, key):
            part = np.ndarray.__getitem__(self, key)
            if isinstance(key, slice) and (key.start or 0) > 0:
                raise OSError("read error")
            return part

    broken = np.zeros((5, 64, 64), np.uint16).view(Broken)
    with pytest.raises(OSError, match="read error"):
        write_stack(out, broken, overwrite=True)
    np.testing.assert_array_equal(read_stack(out, lazy=False).data, _stack((3, 6, 6)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.ome.zarr"]


def test_volumes_and_lzf_are_refused(tmp_path):
    with pytest.raises(ValueError, match="TIFF or HDF5"):
        write_stack(tmp_path / "v.ome.zarr", _stack((2, 3, 6, 6)), axes="TZYX")
    with pytest.raises(ValueError, match="lzf"):
        write_stack(tmp_path / "v.ome.zarr", _stack(), compression="lzf")
    assert list(tmp_path.iterdir()) == []


def test_output_transaction_commits_the_folder_with_the_other_outputs(tmp_path):
    from napari_stackalign.files import atomic_write_text, output_transaction

    with pytest.raises(RuntimeError), output_transaction():
        write_stack(tmp_path / "t.ome.zarr", _stack((2, 6, 6)))
        atomic_write_text(tmp_path / "t.csv", "a\n")
        assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".part")) == []
        raise RuntimeError("a later step failed")
    assert list(tmp_path.iterdir()) == []
    with output_transaction():
        write_stack(tmp_path / "t.ome.zarr", _stack((2, 6, 6)))
        atomic_write_text(tmp_path / "t.csv", "a\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv", "t.ome.zarr"]
    np.testing.assert_array_equal(read_stack(tmp_path / "t.ome.zarr", lazy=False).data, _stack((2, 6, 6)))
