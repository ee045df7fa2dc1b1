"""The single-read streaming path: each chunk read once, the output identical to the two-read path's."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from napari_stackalign.core import Cancelled
from napari_stackalign.core.pyramid import _single_read
from napari_stackalign.core.pyramid._to_file import register_file, register_stack_to_file
from napari_stackalign.io import read_stack, write_stack
from napari_stackalign.synthetic import make_stack

N_FRAMES = 48
SHAPE = (80, 96)
BUDGET = 2_000_000
CASES = {
    "plain": {},
    "smooth": {"smooth": True, "window_length": 7, "polyorder": 2},
    "iterate": {"iterate": 2, "num_frames": 12},
}


class CountingStack:
    """A numpy stack that counts how many times each frame is read."""

    def __init__(self, array: np.ndarray, fail_on_reread: int | None = None) -> None:
        self._array = array
        self.shape, self.dtype, self.ndim = array.shape, array.dtype, array.ndim
        self.reads = np.zeros(array.shape[0], int)
        self._fail = fail_on_reread

    def __getitem__(self, key):
        idx = np.arange(self.shape[0])[key]
        self.reads[idx] += 1
        # frame ``fail`` read a third time (template, pass, rewrite): the rewrite is cancelled
        if self._fail is not None and self._fail in np.atleast_1d(idx) and self.reads[self._fail] > 2:
            raise Cancelled()
        return np.asarray(self._array[key])


@pytest.fixture(scope="module")
def stack_with_failures():
    """Drifting beads with a constant frame (no usable pixels) and a frame of another scene (a jump)."""
    stack, _ = make_stack("beads", n_frames=N_FRAMES, shape=SHAPE, drift=10, snr=3, dtype=np.uint16, seed=11)
    other, _ = make_stack("beads", n_frames=1, shape=SHAPE, drift=0, snr=3, dtype=np.uint16, seed=99)
    stack = stack.copy()
    stack[17] = 300
    stack[30] = other[0]
    return stack


def _two_read(stack: np.ndarray, path: Path, **kw) -> tuple[np.ndarray, object]:
    """The two-read path's pixels and result (the reference)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        done = register_stack_to_file(stack, path, memory_limit=BUDGET, workers=1, single_read=False, **kw)
    assert done.frames_read_twice is None
    return read_stack(path, lazy=False).data, done


def _same(a, b) -> None:
    for name in ("dy", "dx", "angle", "scale", "quality", "ok"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert list(a.reason) == list(b.reason)
    assert a.params == b.params


@pytest.mark.parametrize("suffix", [".h5", ".tif"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_single_read_output_is_the_two_read_output(tmp_path, stack_with_failures, suffix, case):
    kw = CASES[case]
    counted_twice = CountingStack(stack_with_failures)
    ref_pixels, ref = _two_read(counted_twice, tmp_path / f"two{suffix}", **kw)
    counting = CountingStack(stack_with_failures)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        done = register_stack_to_file(counting, tmp_path / f"one{suffix}", memory_limit=BUDGET, workers=1, **kw)
    back = read_stack(tmp_path / f"one{suffix}", lazy=False)
    np.testing.assert_array_equal(back.data, ref_pixels)
    _same(done.transforms, ref.transforms)
    _same(back.transforms, read_stack(tmp_path / f"two{suffix}", lazy=False).transforms)
    assert not done.transforms.ok[17] and not done.transforms.ok[30]  # both failures were flagged
    streaming = back.metadata["stackalign"]["streaming"]
    assert streaming["reads"] == "single" and streaming["frames_read_twice"] == done.frames_read_twice
    if case == "smooth":
        assert "raw_transforms" in back.metadata["stackalign"]
    # one read of every frame fewer than the two-read path (the template frames are read as before),
    # plus the frames rewritten
    assert counting.reads.sum() == counted_twice.reads.sum() - N_FRAMES + done.frames_read_twice
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f"two{suffix}", f"one{suffix}"])


@pytest.mark.parametrize("suffix", [".h5", ".tif"])
def test_frames_whose_verdict_changes_are_rewritten(tmp_path, stack_with_failures, suffix, monkeypatch):
    """When the provisional transforms differ from the final ones, the frames are read again and rewritten."""
    ref_pixels, ref = _two_read(stack_with_failures, tmp_path / f"two{suffix}")
    provisional = _single_read.SingleReadFrames._provisional

    def off_by_a_bit(self, first, stop):
        out = provisional(self, first, stop)
        out.dy = out.dy + 0.3 * (np.arange(first, stop) % 3 == 0)
        return out

    monkeypatch.setattr(_single_read.SingleReadFrames, "_provisional", off_by_a_bit)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        done = register_stack_to_file(stack_with_failures, tmp_path / f"one{suffix}", memory_limit=BUDGET, workers=1)
    assert done.frames_read_twice >= N_FRAMES // 3
    np.testing.assert_array_equal(read_stack(tmp_path / f"one{suffix}", lazy=False).data, ref_pixels)
    _same(done.transforms, ref.transforms)


def test_file_to_file_reads_once_and_falls_back_where_it_must(tmp_path, stack_with_failures):
    src = tmp_path / "in.h5"
    write_stack(src, stack_with_failures)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        register_file(src, tmp_path / "one.h5", memory_limit=BUDGET, workers=1)
        register_file(src, tmp_path / "zip.tif", memory_limit=BUDGET, workers=1, compression="zlib")
        register_file(src, tmp_path / "chain.h5", memory_limit=BUDGET, workers=1, reference_mode="previous")
    assert read_stack(tmp_path / "one.h5").metadata["stackalign"]["streaming"]["reads"] == "single"
    for name in ("zip.tif", "chain.h5"):  # compressed TIFF and the chained modes read the input twice
        assert "reads" not in read_stack(tmp_path / name).metadata["stackalign"]["streaming"]
    np.testing.assert_array_equal(
        read_stack(tmp_path / "one.h5", lazy=False).data, read_stack(tmp_path / "zip.tif", lazy=False).data
    )


@pytest.mark.parametrize("suffix", [".h5", ".tif"])
def test_failure_while_rewriting_leaves_no_output(tmp_path, stack_with_failures, suffix, monkeypatch):
    provisional = _single_read.SingleReadFrames._provisional

    def wrong(self, first, stop):
        out = provisional(self, first, stop)
        out.dx = out.dx + 0.5
        return out

    monkeypatch.setattr(_single_read.SingleReadFrames, "_provisional", wrong)
    out = tmp_path / f"out{suffix}"
    out.write_bytes(b"old")
    counting = CountingStack(stack_with_failures, fail_on_reread=20)
    with warnings.catch_warnings(), pytest.raises(Cancelled):
        warnings.simplefilter("ignore")
        register_stack_to_file(counting, out, memory_limit=BUDGET, workers=1, overwrite=True)
    assert counting.reads[20] == 3  # template, pass, and the rewrite that was cancelled
    assert out.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == [out.name]


def test_multichannel_single_read(tmp_path, stack_with_failures):
    two = np.stack([stack_with_failures, stack_with_failures[:, ::-1]], axis=1)
    ref_pixels, ref = _two_read(two, tmp_path / "two.h5", channel=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        done = register_stack_to_file(two, tmp_path / "one.h5", memory_limit=BUDGET, workers=1, channel=0)
    np.testing.assert_array_equal(read_stack(tmp_path / "one.h5", lazy=False).data, ref_pixels)
    _same(done.transforms, ref.transforms)
    assert read_stack(tmp_path / "one.h5").metadata["stackalign"]["params"]["channel"] == 0


def test_a_lattice_is_read_twice_and_resolved_like_in_memory(tmp_path):
    """A lattice template sends the run to the two-read path, where the period ambiguity is resolved."""
    from napari_stackalign.core.pyramid import register_pyramid

    stack, _ = make_stack("lattice", n_frames=24, shape=(64, 64), drift=6, snr=5, dtype=np.float32, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        done = register_stack_to_file(stack, tmp_path / "lattice.h5", memory_limit=BUDGET, workers=1)
        in_memory = register_pyramid(stack)
    assert done.frames_read_twice is None  # the two-read path ran
    assert "lattice" in done.transforms.params
    np.testing.assert_allclose(done.transforms.dy, in_memory.dy, atol=1e-6)
    np.testing.assert_allclose(done.transforms.dx, in_memory.dx, atol=1e-6)


def test_a_failed_warp_stops_the_run_and_leaves_no_output_or_thread(tmp_path, stack_with_failures, monkeypatch):
    """Chunks are warped in their own thread while the next is estimated: a warp that fails is raised
    where the frames are written, the output is not left behind and no thread outlives the run."""
    import threading

    names = []
    real = _single_read.apply_transforms

    def failing(block, transforms, **kw):
        names.append(threading.current_thread().name)
        if len(names) == 2:
            raise RuntimeError("warp failed")
        return real(block, transforms, **kw)

    monkeypatch.setattr(_single_read, "apply_transforms", failing)
    out = tmp_path / "out.h5"
    with warnings.catch_warnings(), pytest.raises(RuntimeError, match="warp failed"):
        warnings.simplefilter("ignore")
        register_stack_to_file(stack_with_failures, out, memory_limit=BUDGET, workers=1)
    assert names[0].startswith("stackalign-single-read-warp")
    assert list(tmp_path.iterdir()) == []
    assert not [t.name for t in threading.enumerate() if t.name.startswith("stackalign-single-read")]
