"""`stackalign register` on volume files that do not fit under --max-memory: streamed volume by volume."""

from __future__ import annotations

import shlex

import numpy as np
import pytest

from napari_stackalign import FrameTransforms, VolumeTransforms
from napari_stackalign.cli import main
from napari_stackalign.cli._register_volume_stream import STREAM_VOLUMES, stream_threads
from napari_stackalign.io import read_stack, write_stack
from napari_stackalign.synthetic_volume import make_volume_stack, volume_error

FLAGS = "--num_frames 6 -s 1 --window_length 5 --polyorder 2"


def _run(argline: str) -> int:
    return main(["register", *shlex.split(argline)])


@pytest.fixture(scope="module")
def volume_file(tmp_path_factory):
    v = make_volume_stack(8, (16, 48, 48), scene="texture", snr=5.0, seed=4, channels=2)
    data = (v.data * 300 + 400).clip(0, 65535).astype(np.uint16)
    path = tmp_path_factory.mktemp("vols") / "in.h5"
    write_stack(path, data, axes="TCZYX", metadata={"experiment": "z1"})
    return path, v.truth


@pytest.fixture(scope="module")
def in_memory(volume_file, tmp_path_factory):
    path, _ = volume_file
    folder = tmp_path_factory.mktemp("mem")
    assert _run(f"-i {path} -o {folder / 'out.h5'} --transforms {folder / 't.csv'} --channel 1 -q {FLAGS}") == 0
    return read_stack(folder / "out.h5", volumes=True, lazy=False), FrameTransforms.load(folder / "t.csv")


@pytest.fixture
def too_big(monkeypatch):
    """Every input is too big for memory: the reader opens it lazily."""
    monkeypatch.setattr("napari_stackalign.io._api.fraction_for_max_memory", lambda *a, **k: 0.0)


def test_a_volume_file_too_big_for_memory_is_streamed_with_the_same_result(
    volume_file, in_memory, too_big, tmp_path, capsys
):
    path, truth = volume_file
    assert _run(f"-i {path} -o {tmp_path / 'out.h5'} --transforms {tmp_path / 't.csv'} --channel 1 {FLAGS}") == 0
    err = capsys.readouterr().err
    assert "streaming it volume by volume" in err
    expected, table = in_memory
    got = read_stack(tmp_path / "out.h5", volumes=True, lazy=False)
    np.testing.assert_array_equal(got.data, expected.data)
    streamed = FrameTransforms.load(tmp_path / "t.csv")
    assert isinstance(streamed, VolumeTransforms)
    np.testing.assert_array_equal(streamed.shifts_zyx, table.shifts_zyx)
    assert got.metadata["experiment"] == "z1"
    block = got.metadata["stackalign"]
    assert block["params"]["channel"] == 1 and block["params"]["smooth"] and "streaming" in block
    # -s 1 was applied while streaming: the random-walk truth is smoothed away (so the table is compared
    # with the in-memory one, not with the truth)
    assert streamed.params["smooth"] and volume_error(streamed, truth)["rms"] > 0.5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.h5", "t.csv"]
    # a saved table is applied the same way, streamed, into a TIFF hyperstack
    assert _run(f"-i {path} -o {tmp_path / 'again.tif'} --apply-transforms {tmp_path / 't.csv'} -q") == 0
    np.testing.assert_array_equal(read_stack(tmp_path / "again.tif", volumes=True).data, expected.data)


def test_a_cap_too_small_to_stream_volumes_says_what_is_needed(volume_file, too_big, tmp_path, capsys):
    path, _ = volume_file
    voxels = 16 * 48 * 48
    with pytest.raises(ValueError, match="too small to stream these volumes: .* give at least --max-memory"):
        stream_threads(10**6, voxels, 2)
    # a cap that holds the estimation and two threads gets two resampling threads (at most one per core)
    from napari_stackalign.cli._memory_cap import process_memory

    enough = process_memory() + STREAM_VOLUMES * voxels * 4 + 16 * 2**20 + 2 * 4 * voxels * 2 * 4 + 1000
    assert stream_threads(enough, voxels, 2) == min(2, stream_threads(None, voxels, 2))
    # a cluster is refused for volumes, with the reason
    assert _run(f"-i {path} -o {tmp_path / 'o.h5'} -q --workers 2") != 0
    assert "--scheduler/--workers (a dask cluster) are for (T, Y, X)" in capsys.readouterr().err
    assert not (tmp_path / "o.h5").exists()


def test_a_failure_while_streaming_leaves_no_output(volume_file, too_big, tmp_path, monkeypatch, capsys):
    path, truth = volume_file
    truth.save(tmp_path / "t.csv")
    import napari_stackalign.core.volume._to_file as to_file

    def broken(*args, **kwargs):
        raise MemoryError("out of memory")

    monkeypatch.setattr(to_file, "shift_frame", broken)
    with pytest.raises(MemoryError):
        _run(f"-i {path} -o {tmp_path / 'out.tif'} --apply-transforms {tmp_path / 't.csv'} -q")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]
