"""File-to-file registration with bounded memory (``register_file``,
``register_stack_to_file``) against the in-memory engine on known stacks."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from napari_stackalign.core import Cancelled
from napari_stackalign.core.apply._warp import apply_transforms
from napari_stackalign.core.frames._source import FileFrames
from napari_stackalign.core.pyramid import PyramidOptions
from napari_stackalign.core.pyramid._register import register_pyramid
from napari_stackalign.core.pyramid._stages import (
    build_template,
    concat_results,
    estimate_range,
    finish,
    plan_pyramid,
)
from napari_stackalign.core.pyramid._to_file import (
    BLOCKS_IN_FLIGHT,
    WORK_IMAGES_PER_THREAD,
    parse_memory_limit,
    plan_chunks,
    register_file,
    register_stack_to_file,
    suggest_output_path,
)
from napari_stackalign.io import read_stack, write_stack
from napari_stackalign.synthetic import alignment_error, make_stack
from napari_stackalign.transforms import FrameTransforms

N_FRAMES = 40
SHAPE = (80, 96)
#: smaller than the stack (40 x 80 x 96 x 2 bytes = 614 kB): with one thread
#: (12 float32 working images, 369 kB) it leaves room for a few frames per chunk
TINY_BUDGET = 600_000


@pytest.fixture(scope="module")
def drifting():
    stack, truth = make_stack("beads", n_frames=N_FRAMES, shape=SHAPE, drift=14, snr=3, dtype=np.uint16, seed=5)
    return stack, truth


@pytest.fixture(scope="module")
def in_memory(drifting):
    stack, _ = drifting
    transforms = register_pyramid(stack)
    return transforms, apply_transforms(stack, transforms)


def _same_transforms(a: FrameTransforms, b: FrameTransforms) -> None:
    for name in ("dy", "dx", "angle", "scale", "quality", "ok"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.params == b.params
    assert a.center == b.center


class Recording:
    """A numpy stack that records the largest block of frames read at once."""

    def __init__(self, array: np.ndarray) -> None:
        self._array = array
        self.shape, self.dtype, self.ndim = array.shape, array.dtype, array.ndim
        self.largest = 0

    def __getitem__(self, key):
        block = np.asarray(self._array[key])
        frames = block.shape[0] if isinstance(key, slice) else 1
        self.largest = max(self.largest, frames)
        return block


def _leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


@pytest.mark.parametrize("suffix", [".h5", ".tif"])
def test_file_larger_than_budget_is_identical_to_in_memory(tmp_path, drifting, in_memory, suffix):
    stack, truth = drifting
    ref_t, ref_img = in_memory
    src = tmp_path / f"movie{suffix}"
    write_stack(src, stack, scale=(0.2, 0.2), units="µm", metadata={"note": "x"})
    assert stack.nbytes > TINY_BUDGET
    with FileFrames(str(src)).open() as opened:  # read directly, not through dask or a memory map
        assert opened.kind == ("hdf5" if suffix == ".h5" else "tiff")
        np.testing.assert_array_equal(opened.frames[3:9], stack[3:9])
    out = tmp_path / "registered.h5"
    table = tmp_path / "shifts.csv"
    result = register_file(src, out, memory_limit=TINY_BUDGET, workers=1, transforms_path=table)
    _same_transforms(result, ref_t)
    assert alignment_error(result, truth)["rms"] < 0.05
    back = read_stack(out, lazy=False)
    np.testing.assert_array_equal(back.data, ref_img)
    assert back.dtype == np.uint16
    _same_transforms(back.transforms, ref_t)
    block = back.metadata["stackalign"]
    assert block["method"] == "pyramid" and block["source"] == str(src.resolve())
    assert block["streaming"]["memory_limit"] == TINY_BUDGET
    assert block["streaming"]["estimate_chunk"] < N_FRAMES and block["streaming"]["apply_block"] < N_FRAMES
    assert back.metadata["note"] == "x"
    assert back.pixel_size == pytest.approx((0.2, 0.2)) and back.units == "µm"
    with h5py.File(out, "r") as f:  # chunked by frames
        assert f["image_data"].chunks[1:] == SHAPE
    _same_transforms(FrameTransforms.load(table), ref_t.__class__.load(table))
    np.testing.assert_allclose(FrameTransforms.load(table).dy, ref_t.dy)
    assert _leftovers(tmp_path, {src.name, out.name, table.name}) == []


def test_reads_stay_within_the_chunk_plan(tmp_path, drifting, in_memory):
    stack, _ = drifting
    ref_t, ref_img = in_memory
    rec = Recording(stack)
    out = tmp_path / "out.h5"
    result = register_stack_to_file(rec, out, memory_limit=1_000_000, workers=2)
    plan = plan_chunks(SHAPE, np.uint16, np.uint16, memory_limit=1_000_000, workers=2)
    assert rec.largest <= max(plan.estimate, plan.apply) < N_FRAMES
    _same_transforms(result.transforms, ref_t)
    assert result.raw_transforms is result.transforms
    with h5py.File(out, "r") as f:
        np.testing.assert_array_equal(f["image_data"][()], ref_img)


@pytest.mark.parametrize(
    "params",
    [
        {"iterate": 2, "num_frames": 12},
        {"smooth": True, "window_length": 7, "polyorder": 2},
        {"roi": (8, 72, 10, 90), "max_movement": 0.6},
        {"mask": "frame", "reference": "frame 20"},
    ],
    ids=["iterate", "smooth", "roi", "mask+reference"],
)
def test_options_match_register_pyramid(tmp_path, drifting, params):
    stack, _ = drifting
    if params.get("mask") == "frame":  # leave a 6 px border out, register to frame 20
        mask = np.zeros(SHAPE, bool)
        mask[6:-6, 6:-6] = True
        params = dict(params, mask=mask, reference=stack[20].astype(np.float32))
    expected = register_pyramid(stack, **params)
    import dask.array as da

    lazy = da.from_array(stack, chunks=(5, *SHAPE))  # like a lazily opened napari layer
    result = register_stack_to_file(lazy, tmp_path / "out.h5", memory_limit=TINY_BUDGET, workers=1, **params)
    _same_transforms(result.transforms, expected)
    if params.get("smooth"):
        assert result.raw_transforms is not result.transforms
        assert "smoothing" in result.transforms.params and "smoothing" not in result.raw_transforms.params
        back = read_stack(tmp_path / "out.h5")
        assert back.metadata["stackalign"]["raw_transforms"]["dy"] == pytest.approx(list(result.raw_transforms.dy))


def test_stages_do_not_depend_on_the_split(drifting, in_memory):
    stack, _ = drifting
    ref_t, _ = in_memory
    job = plan_pyramid(stack.shape, stack.dtype, PyramidOptions(chunk_size=3))
    state = build_template(stack, job)
    estimator = job.estimator(state.template)
    parts = [estimate_range(stack[a:b], job, state, a, b, offset=a) for a, b in [(0, 7), (7, 8), (8, 33), (33, 40)]]
    _, final = finish(job, state, concat_results(parts), levels_used=estimator.active_rates)
    _same_transforms(final, ref_t)


def test_multichannel_estimates_on_one_channel_and_corrects_all(tmp_path, drifting):
    stack, _ = drifting
    two = np.stack([stack, (stack // 2 + 7).astype(np.uint16)], axis=1)  # (T, C, Y, X)
    src = tmp_path / "two.h5"
    write_stack(src, two)
    out = tmp_path / "two_registered.h5"
    result = register_file(src, out, channel=1, memory_limit=TINY_BUDGET * 2, workers=1)
    expected = register_pyramid(two[:, 1])
    np.testing.assert_array_equal(result.dy, expected.dy)
    back = read_stack(out, lazy=False)
    assert back.axes == "TCYX"
    np.testing.assert_array_equal(back.data, apply_transforms(two, expected))
    with pytest.raises(ValueError, match="channels"):
        register_file(src, tmp_path / "x.h5")


def test_saved_transforms_are_applied_without_estimating(tmp_path, drifting, in_memory):
    stack, _ = drifting
    ref_t, ref_img = in_memory
    src = tmp_path / "m.tif"
    write_stack(src, stack)
    calls = []
    out = tmp_path / "applied.h5"
    result = register_file(src, out, transforms=ref_t, progress=lambda d, t, s: calls.append(s))
    assert result is ref_t
    assert not any(s in ("reference", "estimate") for s in calls)
    np.testing.assert_array_equal(read_stack(out, lazy=False).data, ref_img)


def test_compressed_tiff_goes_through_the_lazy_reader(tmp_path, drifting, in_memory):
    stack, _ = drifting
    ref_t, ref_img = in_memory
    src = tmp_path / "zip.tif"
    write_stack(src, stack, compression="zlib")
    with FileFrames(str(src)).open() as opened:
        assert opened.kind == "dask"
    result = register_file(src, tmp_path / "out.tif", memory_limit=TINY_BUDGET, workers=1)
    _same_transforms(result, ref_t)
    np.testing.assert_array_equal(read_stack(tmp_path / "out.tif", lazy=False).data, ref_img)


@pytest.mark.parametrize("stage", ["reference", "estimate", "writing"])
def test_cancel_leaves_no_output_and_no_temporary_file(tmp_path, drifting, stage):
    stack, _ = drifting
    src = tmp_path / "in.h5"
    write_stack(src, stack)
    out = tmp_path / "out.h5"
    seen = []

    def progress(done, total, name):
        seen.append(name)
        if name.startswith(stage) and done > 0:
            raise Cancelled()

    with pytest.raises(Cancelled):
        register_file(
            src, out, memory_limit=TINY_BUDGET, workers=1, transforms_path=tmp_path / "t.csv", progress=progress
        )
    assert _leftovers(tmp_path, {src.name}) == []
    # an existing output is left as it was
    out.write_bytes(b"old")
    with pytest.raises(Cancelled):
        register_file(src, out, memory_limit=TINY_BUDGET, workers=1, overwrite=True, progress=progress)
    assert out.read_bytes() == b"old"
    assert _leftovers(tmp_path, {src.name, out.name}) == []


def test_clear_errors_before_any_work(tmp_path, drifting):
    stack, _ = drifting
    src = tmp_path / "in.h5"
    write_stack(src, stack)
    (tmp_path / "exists.h5").write_bytes(b"")
    calls = []
    progress = lambda d, t, s: calls.append(s)
    with pytest.raises(ValueError, match="already exists"):
        register_file(src, tmp_path / "exists.h5", progress=progress)
    with pytest.raises(ValueError, match="HDF5"):
        register_file(src, tmp_path / "out.npy", progress=progress)
    with pytest.raises(ValueError, match="input file"):
        register_file(src, src, overwrite=True, progress=progress)
    with pytest.raises(ValueError, match="too small"):
        register_file(src, tmp_path / "o.h5", memory_limit="10kB", progress=progress)
    with pytest.raises(ValueError, match="not both"):
        register_file(src, tmp_path / "o.h5", scheduler="tcp://127.0.0.1:1", n_workers=2, progress=progress)
    with pytest.raises(ValueError, match="downsample_rates"):
        register_file(src, tmp_path / "o.h5", downsample_rates=(1, 0.5), progress=progress)
    with pytest.raises(ValueError, match="fewer than the smoothing window_length"):
        register_file(src, tmp_path / "o.h5", smooth=True, window_length=41, progress=progress)
    with pytest.raises(FileNotFoundError):
        register_file(tmp_path / "missing.h5", tmp_path / "o.h5")
    with pytest.raises(ValueError, match="single 2-D image"):
        register_stack_to_file(stack[0], tmp_path / "o.h5")
    assert calls == []
    assert _leftovers(tmp_path, {"in.h5", "exists.h5"}) == []


def test_memory_limit_parsing_and_chunk_plan():
    assert parse_memory_limit("2GB") == 2_000_000_000
    assert parse_memory_limit("512 MiB") == 512 * 2**20
    assert parse_memory_limit(1e6) == 1_000_000
    for bad in ("lots", "-1GB", 0, True, "1XB"):
        with pytest.raises(ValueError, match="memory_limit"):
            parse_memory_limit(bad)
    big = plan_chunks((512, 512), np.uint16, np.uint16, memory_limit=2**30, chunk_size=64, workers=2)
    assert big.estimate == 64 and big.apply == 32  # 16 MB output blocks
    small = plan_chunks((512, 512), np.uint16, np.uint16, memory_limit=40 * 2**20, chunk_size=64, workers=2)
    assert 1 <= small.estimate < 64 and 1 <= small.apply < 32
    # the single read holds each chunk in flight's input and output, the input of the chunk being warped
    # while the next is estimated, and one output being written
    frame = 512 * 512 * 2
    spare = 40 * 2**20 - 2 * WORK_IMAGES_PER_THREAD * 512 * 512 * 4
    assert 1 <= small.read_once and small.read_once * (2 * (BLOCKS_IN_FLIGHT + 1) * frame) <= spare
    assert (small.read_once + 1) * (2 * (BLOCKS_IN_FLIGHT + 1) * frame) > spare  # and no smaller than needed
    # a 4x larger frame gets 4x fewer frames per chunk in the same budget
    four = plan_chunks((1024, 1024), np.uint16, np.uint16, memory_limit=2**30, chunk_size=10_000, workers=1)
    one = plan_chunks((512, 512), np.uint16, np.uint16, memory_limit=2**30, chunk_size=10_000, workers=1)
    assert 3.5 < one.estimate / four.estimate < 4.5


def test_constant_frames_are_interpolated_as_in_memory(tmp_path, drifting):
    stack, _ = drifting
    odd = stack.copy()
    odd[5] = 0
    odd[6] = 0
    src = tmp_path / "odd.h5"
    write_stack(src, odd)
    result = register_file(src, tmp_path / "o.h5", memory_limit=TINY_BUDGET, workers=1)
    expected = register_pyramid(odd)
    _same_transforms(result, expected)
    assert not result.ok[5] and not result.ok[6]


def test_suggested_output_paths(tmp_path):
    src = tmp_path / "movie 1.tif"
    first = suggest_output_path(src, "ignored")
    assert first == tmp_path / "movie 1 registered.h5"
    first.write_bytes(b"")
    assert suggest_output_path(src, "ignored") == tmp_path / "movie 1 registered (2).h5"
    anywhere = suggest_output_path(None, "layer/with:odd*chars", suffix=".tif")
    assert anywhere.suffix == ".tif" and "/" not in anywhere.name and ":" not in anywhere.name
    assert os.access(anywhere.parent, os.W_OK)
    with pytest.raises(ValueError, match="suffix"):
        suggest_output_path(src, "x", suffix=".npy")
