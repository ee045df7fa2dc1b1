"""Registration on a dask.distributed LocalCluster (loopback) gives exactly the
single-process result."""

from __future__ import annotations

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")

from napari_stackalign.core import Cancelled
from napari_stackalign.core.pyramid import PyramidOptions
from napari_stackalign.core.pyramid._distributed import (
    connect,
    register_pyramid_distributed,
)
from napari_stackalign.core.pyramid._register import register_pyramid
from napari_stackalign.core.pyramid._to_file import register_file
from napari_stackalign.io import read_stack, write_stack
from napari_stackalign.synthetic import alignment_error, make_stack


@pytest.fixture(scope="module")
def client():
    """Two worker processes on 127.0.0.1, shared by the tests of this module."""
    with connect(n_workers=2) as c:
        addresses = list(c.scheduler_info()["workers"])
        assert len(addresses) == 2 and all(a.startswith("tcp://127.0.0.1:") for a in addresses)
        yield c


def test_local_cluster_listens_on_loopback_only(client):
    psutil = pytest.importorskip("psutil")
    here = psutil.Process()
    workers = set(client.run(lambda: __import__("os").getpid()).values())
    procs = [here] + [psutil.Process(pid) for pid in workers]
    listening = [c.laddr for p in procs for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
    assert len(listening) >= 3  # scheduler, two workers (and their HTTP endpoints)
    assert all(a.ip == "127.0.0.1" for a in listening), listening


@pytest.fixture(scope="module")
def movie(tmp_path_factory):
    stack, truth = make_stack("texture", n_frames=36, shape=(72, 88), drift=12, snr=2, dtype=np.uint16, seed=9)
    stack[4] = 0  # an unusable frame: interpolated once, after gathering
    path = tmp_path_factory.mktemp("cluster") / "movie.h5"
    write_stack(path, stack)
    return path, stack, truth


def _identical(a, b) -> None:
    for name in ("dy", "dx", "quality", "ok"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.params == b.params


@pytest.mark.parametrize(
    "params",
    [{}, {"iterate": 2, "num_frames": 10, "smooth": True, "window_length": 5, "polyorder": 2}],
    ids=["defaults", "iterate+smooth"],
)
def test_cluster_transforms_identical_to_single_process(client, movie, params):
    path, stack, truth = movie
    expected = register_pyramid(stack, **params)
    # small tasks: the stack is split over both workers in 6 ranges
    got = register_pyramid_distributed(path, scheduler=client, task_frames=6, chunk_size=4, **params)
    _identical(got, expected)
    assert not got.ok[4]
    if not params.get("smooth"):  # smoothing removes the true jitter too
        assert alignment_error(got[got.ok], truth[got.ok])["rms"] < 0.1


def test_register_file_on_cluster_writes_the_same_file(client, movie, tmp_path):
    path, _, _ = movie
    here = register_file(path, tmp_path / "here.h5", workers=1)
    there = register_file(path, tmp_path / "there.h5", scheduler=client)
    _identical(there, here)
    a = read_stack(tmp_path / "here.h5", lazy=False)
    b = read_stack(tmp_path / "there.h5", lazy=False)
    np.testing.assert_array_equal(a.data, b.data)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["here.h5", "there.h5"]


def test_cancel_on_cluster_leaves_no_file_and_the_cluster_usable(client, movie, tmp_path):
    path, stack, _ = movie

    def progress(done, total, stage):
        if stage == "estimate":
            raise Cancelled()

    with pytest.raises(Cancelled):
        register_file(path, tmp_path / "out.h5", scheduler=client, progress=progress)
    assert list(tmp_path.iterdir()) == []
    got = register_pyramid_distributed(path, scheduler=client)
    np.testing.assert_array_equal(got.dy, register_pyramid(stack).dy)


def test_connect_rejects_bad_requests():
    bad = [
        ({}, "not both"),
        ({"scheduler": "tcp://127.0.0.1:1", "n_workers": 1}, "not both"),
        ({"n_workers": 0}, "n_workers"),
        ({"scheduler": ""}, "address"),
    ]
    for kwargs, message in bad:
        with pytest.raises(ValueError, match=message), connect(**kwargs):
            pass


def test_options_equal_keywords(client, movie):
    path, stack, _ = movie
    chosen = {"num_frames": 10, "iterate": 2, "kernel": "lagrange4", "chunk_size": 6}
    by_keywords = register_pyramid_distributed(path, scheduler=client, **chosen)
    by_options = register_pyramid_distributed(path, scheduler=client, options=PyramidOptions(**chosen))
    _identical(by_options, by_keywords)
    _identical(by_keywords, register_pyramid(stack, **chosen))


@pytest.mark.parametrize(
    "kind, snr", [("lattice", 3.0), ("texture", 0.3)], ids=["lattice-resolver", "weak-cross-check"]
)
def test_cluster_runs_the_stack_wide_checks_a_single_process_runs(client, tmp_path, kind, snr):
    # the lattice resolver and the cross-check read frames again once all are estimated: before, the
    # cluster path skipped them (and the first-level turn check), so a lattice frame one period off or an
    # unconfirmed weak frame could pass as ok there and not here
    stack, _ = make_stack(kind, n_frames=24, shape=(96, 96), drift=10, snr=snr, dtype=np.uint16, seed=3)
    path = tmp_path / "stack.h5"
    write_stack(path, stack)
    expected = register_pyramid(stack)
    got = register_pyramid_distributed(path, scheduler=client, task_frames=6)
    _identical(got, expected)
    assert ("lattice" if kind == "lattice" else "cross_check") in got.params
