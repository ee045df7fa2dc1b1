"""register_volumes_to_file: volumes streamed file to file, the same as in memory, bounded memory, no partial output."""

from __future__ import annotations

import tracemalloc
import warnings

import numpy as np
import pytest

import napari_stackalign.core.volume._to_file as to_file
from napari_stackalign import (
    VolumeTransforms,
    apply_transforms,
    average_frames,
    read_stack,
    register_pyramid,
    write_stack,
)
from napari_stackalign.core import Cancelled
from napari_stackalign.core.pyramid import PyramidOptions
from napari_stackalign.core.volume import register_volumes, register_volumes_to_file
from napari_stackalign.synthetic_volume import make_volume_stack, volume_error


@pytest.fixture(scope="module")
def two_channels(tmp_path_factory):
    """(T, C, Z, Y, X) uint16 volumes on disk, opened lazily; the motion is in channel 1 (channel 0 is its
    copy with another gain and offset)."""
    v = make_volume_stack(8, (16, 48, 48), scene="texture", snr=5.0, seed=11)
    moving = (v.data * 300 + 400).clip(0, 65535)
    data = np.stack([moving * 0.5 + 100, moving], axis=1).astype(np.uint16)
    path = tmp_path_factory.mktemp("vol") / "in.h5"
    write_stack(path, data, axes="TCZYX", metadata={"experiment": "v1"})
    return path, data, v.truth


def _lazy(path):
    opened = read_stack(path, volumes=True, lazy=True)
    assert not isinstance(opened.data, np.ndarray)  # read volume by volume, never whole
    return opened


@pytest.mark.parametrize("suffix", [".h5", ".tif"])
def test_streamed_output_equals_the_in_memory_path(two_channels, tmp_path, suffix):
    path, data, truth = two_channels
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected_tf = register_pyramid(data, axes="TCZYX", channel=1)
        expected = apply_transforms(data, expected_tf)
        mean = average_frames(data, expected_tf)
        opened = _lazy(path)
        done = register_volumes_to_file(
            opened.data, tmp_path / f"out{suffix}", axes="TCZYX", channel=1, average=True,
            metadata=opened.metadata, source_path=path,
        )
    np.testing.assert_array_equal(done.transforms.shifts_zyx, expected_tf.shifts_zyx)
    assert volume_error(done.transforms, truth)["rms"] < 0.05
    back = read_stack(done.path, volumes=True, lazy=False)
    assert back.axes == "TCZYX" and back.dtype == np.uint16
    np.testing.assert_array_equal(back.data, expected)
    assert isinstance(back.transforms, VolumeTransforms)
    np.testing.assert_array_equal(back.transforms.shifts_zyx, expected_tf.shifts_zyx)
    assert back.metadata["experiment"] == "v1" and "streaming" in back.metadata["stackalign"]
    # the running mean is average_frames' mean
    np.testing.assert_allclose(done.average.image, mean.image, rtol=1e-6, equal_nan=True)
    np.testing.assert_array_equal(done.average.coverage, mean.coverage)
    assert done.average.crop == mean.crop and done.average.n_frames == mean.n_frames
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"out{suffix}"]


def test_one_channels_transforms_move_every_channel(two_channels, tmp_path):
    path, data, _ = two_channels
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        done = register_volumes_to_file(_lazy(path).data, tmp_path / "out.h5", axes="TCZYX", channel=1)
    assert done.transforms.params["channel"] == 1
    back = read_stack(done.path, volumes=True, lazy=False).data
    for c in range(2):
        np.testing.assert_array_equal(back[:, c], apply_transforms(data[:, c], done.transforms))
    # channel 0 is channel 1 with another gain: registered by channel 1's shifts, it is aligned too
    still = back[:, 0].astype(float)
    moving = data[:, 0].astype(float)
    inner = (slice(None), slice(4, -4), slice(8, -8), slice(8, -8))
    assert still[inner].std(axis=0).mean() < 0.5 * moving[inner].std(axis=0).mean()


def test_given_transforms_and_failed_policy(two_channels, tmp_path):
    path, data, truth = two_channels
    tf = truth  # the true corrections
    done = register_volumes_to_file(_lazy(path).data, tmp_path / "out.h5", axes="TCZYX", transforms=tf, order=3)
    np.testing.assert_array_equal(read_stack(done.path, volumes=True, lazy=False).data, apply_transforms(data, tf, order=3))
    with pytest.raises(ValueError, match="transforms for a stack of 8 volumes"):
        register_volumes_to_file(data, tmp_path / "o2.h5", axes="TCZYX", transforms=VolumeTransforms.from_shifts(truth.shifts_zyx[:5]))
    with pytest.raises(ValueError, match="OME-Zarr"):
        register_volumes_to_file(data, tmp_path / "o.ome.zarr", axes="TCZYX", transforms=tf)
    with pytest.raises(ValueError, match="already exists"):
        register_volumes_to_file(data, tmp_path / "out.h5", axes="TCZYX", transforms=tf)


def test_a_failure_midway_leaves_no_output(two_channels, tmp_path, monkeypatch):
    path, data, truth = two_channels
    tf = truth
    real = to_file.shift_frame
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise RuntimeError("disk went away")
        return real(*args, **kwargs)

    monkeypatch.setattr(to_file, "shift_frame", failing)
    for suffix in (".h5", ".tif"):
        calls.clear()
        with pytest.raises(RuntimeError, match="disk went away"):
            register_volumes_to_file(_lazy(path).data, tmp_path / f"out{suffix}", axes="TCZYX", transforms=tf)
    monkeypatch.setattr(to_file, "shift_frame", real)
    assert list(tmp_path.iterdir()) == []

    def cancel(done, total, stage):
        if stage.startswith("writing") and done > 0:
            raise Cancelled()

    existing = tmp_path / "old.h5"
    existing.write_bytes(b"keep me")
    with pytest.raises(Cancelled):
        register_volumes_to_file(
            _lazy(path).data, existing, axes="TCZYX", transforms=tf, overwrite=True, progress=cancel
        )
    assert existing.read_bytes() == b"keep me"  # replaced only when complete
    assert [p.name for p in tmp_path.iterdir()] == ["old.h5"]


def _peak(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_streamed_estimation_memory_does_not_grow_with_the_frames(tmp_path):
    shape = (16, 64, 64)
    volume = int(np.prod(shape)) * 4  # one float32 volume
    v = make_volume_stack(64, shape, scene="texture", snr=4.0, seed=5)
    write_stack(tmp_path / "in.h5", v.data, axes="TZYX")
    opts = PyramidOptions(num_frames=16)
    peaks = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for n in (24, 64):
            lazy = read_stack(tmp_path / "in.h5", volumes=True, lazy=True).data[:n]
            peaks[n] = _peak(lambda lazy=lazy: register_volumes(lazy, axes="TZYX", options=opts)) / volume
    # the template, its sums and one volume's estimation: about 25 volumes, whatever the frame count
    assert peaks[64] < 30, peaks
    assert peaks[64] < peaks[24] + 2, peaks


def test_streamed_write_memory_is_the_writers_block_and_a_few_volumes(tmp_path):
    shape = (16, 128, 128)
    volume = int(np.prod(shape)) * 4  # 1 MiB: the writer's 16 MiB block holds 16 of them
    n = 96
    rng = np.random.default_rng(0)
    write_stack(tmp_path / "in.h5", rng.random((n, *shape), dtype=np.float32), axes="TZYX")
    tf = VolumeTransforms.from_shifts(rng.uniform(-2, 2, (n, 3)))
    lazy = read_stack(tmp_path / "in.h5", volumes=True, lazy=True).data

    def run():
        register_volumes_to_file(lazy, tmp_path / "out.h5", axes="TZYX", transforms=tf, average=True,
                                 apply_workers=2)

    peak = _peak(run) / volume
    assert peak < 16 + 16, peak  # the write block, the threads' volumes and the mean's sums (measured 28)
    assert peak < n / 3, peak


def test_workers_and_chunk_size_do_not_change_the_result():
    v = make_volume_stack(10, (16, 48, 48), scene="beads", snr=4.0, seed=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for mode in ("template", "previous"):
            opts = PyramidOptions(reference_mode=mode, num_frames=6)
            one = register_volumes(v.data, axes="TZYX", options=opts)
            for workers, chunk in ((2, 64), (3, 2), (2, 1)):
                many = register_volumes(v.data, axes="TZYX", options=opts.replace(chunk_size=chunk), workers=workers)
                np.testing.assert_array_equal(many.shifts_zyx, one.shifts_zyx)
                np.testing.assert_array_equal(many.quality, one.quality)
                np.testing.assert_array_equal(many.ok, one.ok)
    with pytest.raises(ValueError, match="workers must be at least 1"):
        register_volumes(v.data, axes="TZYX", options=PyramidOptions(), workers=0)


def test_ordered_map_keeps_order_and_bounds_the_volumes_in_flight():
    import threading
    import time

    from napari_stackalign.core.volume._threads import volume_threads

    running = []
    lock = threading.Lock()
    state = {"now": 0, "most": 0}

    def work(t):
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        time.sleep(0.01 * (t % 3))
        with lock:
            state["now"] -= 1
        running.append(t)
        return t * t

    with volume_threads(4, chunk_size=3) as threads:
        assert threads.in_flight == 3
        assert list(threads.map(work, range(12))) == [t * t for t in range(12)]
    assert 1 < state["most"] <= 3
    with pytest.raises(ValueError, match="chunk_size must be at least 1"):
        volume_threads(2, chunk_size=0)
