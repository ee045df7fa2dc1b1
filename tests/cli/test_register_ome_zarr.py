"""`stackalign register -o out.ome.zarr`, in memory and on the streaming (big-file) path."""

from __future__ import annotations

import json
import shlex

import numpy as np
import pytest

pytest.importorskip("zarr")
pytest.importorskip("bioio_ome_zarr")

from napari_stackalign.cli import main
from napari_stackalign.io import read_stack, write_stack
from napari_stackalign.synthetic import make_stack

FLAGS = "--iterate 2 -s 1 --num_frames 12 --window_length 5 --polyorder 2"


def _run(argline: str) -> int:
    return main(["register", *shlex.split(argline)])


@pytest.fixture(scope="module")
def movie(tmp_path_factory):
    stack, _ = make_stack("beads", n_frames=12, shape=(64, 72), drift=6, snr=4, dtype=np.uint16, seed=5)
    path = tmp_path_factory.mktemp("zarr_in") / "movie.h5"
    write_stack(path, stack, scale=0.2, units="µm", metadata={"experiment": "e1"})
    return path


def test_register_writes_ome_zarr_with_transforms(movie, tmp_path, capsys):
    out = tmp_path / "out.ome.zarr"
    assert _run(f"-i {movie} -o {out} {FLAGS}") == 0
    assert "OME-Zarr" in capsys.readouterr().out
    h5 = tmp_path / "out.h5"
    assert _run(f"-i {movie} -o {h5} -q {FLAGS}") == 0
    got, reference = read_stack(out, lazy=False), read_stack(h5, lazy=False)
    np.testing.assert_array_equal(got.data, reference.data)
    assert got.scale == reference.scale
    assert got.units == "µm"
    assert got.metadata["experiment"] == "e1"
    np.testing.assert_array_equal(got.transforms.dy, reference.transforms.dy)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.h5", "out.ome.zarr"]
    # an existing output folder needs --overwrite; with it the folder is replaced
    assert _run(f"-i {movie} -o {out} -q {FLAGS}") == 2
    assert "already exists" in capsys.readouterr().err
    assert _run(f"-i {movie} -o {out} -q --overwrite {FLAGS}") == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.h5", "out.ome.zarr"]


def test_an_ome_zarr_input_is_never_its_output(tmp_path, capsys):
    stack, _ = make_stack("beads", n_frames=6, shape=(32, 32), drift=2, dtype=np.uint16, seed=1)
    src = write_stack(tmp_path / "in.ome.zarr", stack)
    assert _run(f"-i {src} -o {src} -q --overwrite {FLAGS}") == 2
    assert "input" in capsys.readouterr().err
    np.testing.assert_array_equal(read_stack(src, lazy=False).data, stack)


def test_streaming_path_writes_ome_zarr(movie, tmp_path, monkeypatch, capsys):
    reference = tmp_path / "ref.h5"
    assert _run(f"-i {movie} -o {reference} -q {FLAGS}") == 0
    # pretend the input fits nowhere under the memory cap: it is opened lazily and streamed
    monkeypatch.setattr("napari_stackalign.io._api.fraction_for_max_memory", lambda *a, **k: 0.0)
    out = tmp_path / "big.ome.zarr"
    assert _run(f"-i {movie} -o {out} {FLAGS}") == 0
    assert "streaming it chunk by chunk" in capsys.readouterr().err
    got, expected = read_stack(out, lazy=False), read_stack(reference, lazy=False)
    np.testing.assert_array_equal(got.data, expected.data)
    assert got.scale == expected.scale
    assert got.units == "µm"
    assert got.metadata["experiment"] == "e1"
    assert got.metadata["stackalign"]["method"] == "pyramid"
    np.testing.assert_array_equal(got.transforms.dy, expected.transforms.dy)
    assert json.loads((out / "0" / ".zarray").read_text())["chunks"] == [1, 64, 72]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.ome.zarr", "ref.h5"]


def test_lzf_and_save_as_tif_are_refused_for_ome_zarr(movie, tmp_path, capsys):
    assert _run(f"-i {movie} -o {tmp_path / 'o.ome.zarr'} --compression lzf {FLAGS}") == 2
    assert "lzf" in capsys.readouterr().err
    assert _run(f"-i {movie} -o {tmp_path / 'o.ome.zarr'} --save_as_tif 1 {FLAGS}") == 2
    assert "save_as_tif" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
