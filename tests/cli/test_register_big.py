"""`stackalign register` on big inputs (streamed) and on dask clusters
(``--workers N``, ``--scheduler ADDRESS``)."""

from __future__ import annotations

import shlex

import numpy as np
import pytest

from napari_stackalign.cli import main
from napari_stackalign.io import read_stack, write_stack
from napari_stackalign.synthetic import make_stack
from napari_stackalign.transforms import FrameTransforms

FLAGS = "--iterate 2 -s 1 --num_frames 12 --window_length 5 --polyorder 2"


def _run(argline: str) -> int:
    return main(["register", *shlex.split(argline)])


@pytest.fixture(scope="module")
def movie(tmp_path_factory):
    stack, _ = make_stack("beads", n_frames=30, shape=(80, 96), drift=10, snr=4, dtype=np.uint16, seed=21)
    path = tmp_path_factory.mktemp("big") / "movie.h5"
    write_stack(path, stack, metadata={"experiment": "e1"})
    return path, stack


@pytest.fixture(scope="module")
def single_process(movie, tmp_path_factory):
    """The ordinary in-memory CLI run: the reference result."""
    path, _ = movie
    folder = tmp_path_factory.mktemp("small")
    out, table = folder / "out.h5", folder / "t.csv"
    assert _run(f"-i {path} -o {out} --transforms {table} -q {FLAGS}") == 0
    return read_stack(out, lazy=False), FrameTransforms.load(table)


def _same_result(folder, expected) -> None:
    data, table = expected
    got = read_stack(folder / "out.h5", lazy=False)
    np.testing.assert_array_equal(got.data, data.data)
    assert got.metadata["experiment"] == "e1"
    assert got.metadata["stackalign"]["method"] == "pyramid"
    got_table = FrameTransforms.load(folder / "t.csv")
    np.testing.assert_array_equal(got_table.dy, table.dy)
    np.testing.assert_array_equal(got_table.dx, table.dx)
    np.testing.assert_array_equal(got.transforms.dy, table.dy)
    assert sorted(p.name for p in folder.iterdir() if p.name not in ("movie.h5",)) == ["out.h5", "t.csv"]


def test_large_input_goes_through_the_streaming_path(movie, single_process, tmp_path, monkeypatch, capsys):
    # pretend the input fits nowhere under the memory cap: it is opened lazily and streamed
    monkeypatch.setattr("napari_stackalign.io._api.fraction_for_max_memory", lambda *a, **k: 0.0)
    path, _ = movie
    assert _run(f"-i {path} -o {tmp_path / 'out.h5'} --transforms {tmp_path / 't.csv'} {FLAGS}") == 0
    err = capsys.readouterr()
    assert "streaming it chunk by chunk" in err.err
    assert "estimated transforms for 30 frames" in err.out
    _same_result(tmp_path, single_process)
    assert "streaming" in read_stack(tmp_path / "out.h5").metadata["stackalign"]


def test_workers_runs_a_local_cluster(movie, single_process, tmp_path, capsys):
    path, _ = movie
    assert _run(f"-i {path} -o {tmp_path / 'out.h5'} --transforms {tmp_path / 't.csv'} --workers 2 {FLAGS}") == 0
    assert "a local cluster of 2 workers" in capsys.readouterr().err
    _same_result(tmp_path, single_process)


def test_scheduler_address(movie, single_process, tmp_path):
    distributed = pytest.importorskip("distributed")
    path, _ = movie
    with distributed.LocalCluster(
        n_workers=1,
        threads_per_worker=2,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
        worker_dashboard_address="127.0.0.1:0",
        silence_logs=40,
    ) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tcp://127.0.0.1:")
        assert _run(f"-i {path} -o {tmp_path / 'out.h5'} --transforms {tmp_path / 't.csv'} --scheduler {address} -q {FLAGS}") == 0
    _same_result(tmp_path, single_process)


def test_cluster_flags_errors(movie, tmp_path, capsys):
    path, _ = movie
    assert _run(f"-i {path} -o {tmp_path / 'a.h5'} --workers 2 --scheduler tcp://127.0.0.1:1") == 2
    assert "not both" in capsys.readouterr().err
    assert _run(f"-i {path} -o {tmp_path / 'a.h5'} --workers 0") == 2
    assert "--workers must be at least 1" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
