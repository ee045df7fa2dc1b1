"""register_and_apply: estimation and resampling overlapped, bit for bit the sequential result."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np
import pytest

import napari_stackalign as sa
from napari_stackalign.core import Cancelled
from napari_stackalign.core.apply._warp import apply_transforms
from napari_stackalign.core.pyramid._register import register_pyramid
from napari_stackalign.core.pyramid._register_apply import (
    AlignedStack,
    register_and_apply,
)
from napari_stackalign.core.smoothing import smooth_transforms
from napari_stackalign.synthetic import make_stack
from napari_stackalign.transforms import FrameTransforms

#: several chunks of 8 overlap; the template frames span more than one chunk
#: and fewer than the stack
OPTIONS: dict[str, Any] = {"num_frames": 20, "chunk_size": 8}
N_FRAMES = 60
SHAPE = (64, 80)


def _stack(dtype: Any = np.float32, *, n_frames: int = N_FRAMES, seed: int = 1) -> np.ndarray:
    """Beads drifting a few pixels, with jitter and noise."""
    return make_stack("beads", n_frames=n_frames, shape=SHAPE, drift=4.0, jitter=0.5, dtype=dtype, seed=seed).stack


def _sequential(stack: Any, *, reference: np.ndarray | None = None, warp: dict | None = None, **options: Any):
    """What register_and_apply must equal: register_pyramid, then apply_transforms."""
    transforms = register_pyramid(stack, reference=reference, **options)
    return transforms, apply_transforms(stack, transforms, **(warp or {}))


def assert_bit_identical(got: np.ndarray, expected: np.ndarray) -> None:
    """Same dtype, shape and bytes (NaN equal to NaN, -0.0 different from 0.0)."""
    np.testing.assert_array_equal(got, expected)  # readable message on a difference
    assert got.dtype == expected.dtype and got.shape == expected.shape
    assert np.ascontiguousarray(got).tobytes() == np.ascontiguousarray(expected).tobytes()


def assert_same_transforms(got: FrameTransforms, expected: FrameTransforms) -> None:
    """Identical matrices (to the bit), quality and ok (NaN equal to NaN)."""
    assert len(got) == len(expected)
    np.testing.assert_array_equal(got.to_cv2_matrices(), expected.to_cv2_matrices())
    assert got.to_cv2_matrices().tobytes() == expected.to_cv2_matrices().tobytes()
    np.testing.assert_array_equal(got.quality, expected.quality)
    np.testing.assert_array_equal(got.ok, expected.ok)


@pytest.fixture
def cv2_threads() -> Iterator[int]:
    """A distinctive OpenCV thread count for the test; the original is restored after."""
    before = cv2.getNumThreads()
    cv2.setNumThreads(3)
    yield 3
    cv2.setNumThreads(before)


def _left_for_the_end(n_frames: int, chunk_size: int, unusable: Any = ()) -> int:
    """Frames resampled after the estimation: the last chunk, plus the
    unusable frames before it (the anchor is fixed with the template, so
    every other chunk is resampled as soon as it is estimated, whatever the
    template size)."""
    first_left = ((n_frames - 1) // chunk_size) * chunk_size
    return n_frames - first_left + sum(1 for t in unusable if t < first_left)


def _redone(calls: list[tuple[int, int, str]]) -> set[int]:
    """The totals of the "apply" stage: frames resampled after the estimation
    (the stage is not reported when there are none)."""
    return {total for _, total, stage in calls if stage == "apply"}


def _apply_threads() -> list[str]:
    """Names of the background resampling threads still alive (after a short join)."""
    names = []
    for thread in threading.enumerate():
        if thread.name.startswith("stackalign-apply"):
            thread.join(timeout=2.0)
            if thread.is_alive():
                names.append(thread.name)
    return names


# ------------------------------------------------------------ equality
def test_bit_identical_to_register_pyramid_then_apply_transforms() -> None:
    stack = _stack()
    result = register_and_apply(stack, **OPTIONS)
    transforms, registered = _sequential(stack, **OPTIONS)

    assert isinstance(result, AlignedStack)
    assert isinstance(result.data, np.ndarray)
    assert result.data.dtype == registered.dtype and result.data.shape == stack.shape
    assert_bit_identical(result.data, registered)
    assert_same_transforms(result.transforms, transforms)
    assert result.transforms.params == transforms.params
    # the registration did something: the output is not the input
    assert not np.array_equal(result.data, stack)
    assert np.abs(transforms.shifts).max() > 1.0


@pytest.mark.parametrize(
    "options",
    [
        {"num_frames": 5, "chunk_size": 8},  # template inside the first chunk
        {"num_frames": 100, "chunk_size": 16},  # template frames are the whole stack
        {"num_frames": 20, "chunk_size": 7, "iterate": 2},  # chunks not aligned on the template
        {"num_frames": 12, "chunk_size": 8, "roi": (4, 60, 4, 76), "downsample_rates": (0.25, 0.5, 1.0)},
        {"num_frames": 12, "chunk_size": 8, "mask": np.arange(SHAPE[1])[None, :] > np.arange(SHAPE[0])[:, None] // 2},
    ],
    ids=["small-template", "template-is-stack", "iterate", "roi", "mask"],
)
def test_bit_identical_across_template_sizes_and_chunks(options: dict) -> None:
    stack = _stack(n_frames=45, seed=3)
    calls: list[tuple[int, int, str]] = []
    result = register_and_apply(stack, progress=lambda d, t, s: calls.append((d, t, s)), **options)
    transforms, registered = _sequential(stack, **options)
    assert_bit_identical(result.data, registered)
    assert_same_transforms(result.transforms, transforms)
    assert _redone(calls) == {_left_for_the_end(45, options["chunk_size"])}


def test_clean_stack_is_resampled_during_estimation() -> None:
    """Every frame but the last chunk is resampled in the overlap."""
    calls: list[tuple[int, int, str]] = []
    register_and_apply(_stack(), progress=lambda d, t, s: calls.append((d, t, s)), **OPTIONS)
    assert _redone(calls) == {N_FRAMES - 56}  # chunks of 8: frames 56-59 are the last chunk


def test_unusable_frames_stay_bit_identical() -> None:
    stack = _stack(seed=2).copy()
    # constant and all-NaN frames, inside the template frames (also the very
    # first one) and after them (also the last one)
    unusable = [0, 5, 13, 27, 41, N_FRAMES - 1]
    stack[0] = 7.0
    stack[5] = np.nan
    stack[13] = 0.0
    stack[27] = np.nan
    stack[41] = 3.5
    stack[-1] = 0.0
    calls: list[tuple[int, int, str]] = []
    result = register_and_apply(stack, progress=lambda d, t, s: calls.append((d, t, s)), **OPTIONS)
    transforms, registered = _sequential(stack, **OPTIONS)

    assert_bit_identical(result.data, registered)  # NaN equal to NaN
    assert_same_transforms(result.transforms, transforms)
    assert not result.transforms.ok[unusable].any()
    assert result.transforms.params["flags"]["unusable"] == len(unusable)
    # their shift is interpolated once every frame is known: they are resampled again
    assert _redone(calls) == {_left_for_the_end(N_FRAMES, 8, unusable)}


def test_user_reference() -> None:
    stack = _stack()
    reference = np.nanmean(stack[25:35], axis=0)
    calls: list[tuple[int, int, str]] = []
    result = register_and_apply(stack, reference=reference, progress=lambda d, t, s: calls.append((d, t, s)), **OPTIONS)
    transforms, registered = _sequential(stack, reference=reference, **OPTIONS)
    assert_bit_identical(result.data, registered)
    assert_same_transforms(result.transforms, transforms)
    # no anchoring to wait for: every frame but the last chunk is resampled during the estimation
    assert _redone(calls) == {_left_for_the_end(N_FRAMES, 8)}
    # the user's template defines the frame: not the anchoring on the template frames
    without = register_pyramid(stack, **OPTIONS)
    assert not np.array_equal(result.transforms.shifts, without.shifts)


@pytest.mark.parametrize(
    ("warp", "dtype", "expected_dtype"),
    [
        ({"order": 3}, np.uint16, np.uint16),
        ({"order": 0, "border": "edge"}, np.uint8, np.uint8),
        ({"border": "nan"}, np.uint16, np.float32),
        ({"border": "nan", "order": 3}, np.float32, np.float32),
        ({"border": "reflect", "output_dtype": np.float64}, np.uint8, np.float64),
        ({"cval": 17.0, "output_dtype": np.uint16}, np.float32, np.uint16),
    ],
)
def test_resampling_options(warp: dict, dtype: Any, expected_dtype: Any) -> None:
    stack = _stack(dtype)
    result = register_and_apply(stack, **warp, **OPTIONS)
    transforms, registered = _sequential(stack, warp=warp, **OPTIONS)
    assert result.data.dtype == np.dtype(expected_dtype)
    assert_bit_identical(result.data, registered)
    assert_same_transforms(result.transforms, transforms)
    if warp.get("border") == "nan":
        assert np.isnan(result.data).any()


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64])
def test_dtype_is_kept(dtype: Any) -> None:
    stack = _stack(dtype)
    result = register_and_apply(stack, **OPTIONS)
    assert result.data.dtype == np.dtype(dtype)
    assert_bit_identical(result.data, _sequential(stack, **OPTIONS)[1])


def test_apply_workers_and_workers() -> None:
    stack = _stack(np.uint16)
    result = register_and_apply(stack, workers=2, apply_workers=3, **OPTIONS)
    transforms, registered = _sequential(stack, **OPTIONS)
    assert_bit_identical(result.data, registered)
    assert_same_transforms(result.transforms, transforms)


# ----------------------------------------------------------- smoothing
def test_smooth_falls_back_to_sequential() -> None:
    stack = _stack()
    options = dict(OPTIONS, smooth=True, window_length=9, polyorder=2)
    result = register_and_apply(stack, **options)
    transforms, registered = _sequential(stack, **options)

    assert_bit_identical(result.data, registered)
    assert_same_transforms(result.transforms, transforms)
    assert "smoothing" in result.transforms.params
    # raw: the estimate before smoothing, the one register_pyramid gives without smoothing
    unsmoothed = register_pyramid(stack, **OPTIONS)
    assert result.raw_transforms is not result.transforms
    np.testing.assert_array_equal(result.raw_transforms.to_cv2_matrices(), unsmoothed.to_cv2_matrices())
    assert not np.array_equal(result.raw_transforms.shifts, result.transforms.shifts)
    smoothed = smooth_transforms(result.raw_transforms, window_length=9, polyorder=2)
    np.testing.assert_array_equal(result.transforms.to_cv2_matrices(), smoothed.to_cv2_matrices())


def test_raw_transforms_is_transforms_without_smoothing() -> None:
    result = register_and_apply(_stack(), **OPTIONS)
    assert result.raw_transforms is result.transforms


# ---------------------------------------------------------- stack kinds
def test_dask_input_stays_lazy() -> None:
    da = pytest.importorskip("dask.array")
    stack = _stack(np.uint16)
    lazy = da.from_array(stack, chunks=(10, SHAPE[0], SHAPE[1]))
    result = register_and_apply(lazy, **OPTIONS)
    assert isinstance(result.data, da.Array)
    assert result.data.shape == stack.shape and result.data.dtype == stack.dtype
    computed = result.data.compute()
    assert_bit_identical(computed, register_and_apply(stack, **OPTIONS).data)
    assert_bit_identical(computed, _sequential(stack, **OPTIONS)[1])
    assert_same_transforms(result.transforms, register_pyramid(stack, **OPTIONS))


def test_h5py_dataset_input(tmp_path: Any) -> None:
    h5py = pytest.importorskip("h5py")
    stack = _stack(np.uint16)
    path = tmp_path / "stack.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=stack, chunks=(4, SHAPE[0], SHAPE[1]))
    with h5py.File(path, "r") as f:
        result = register_and_apply(f["data"], **OPTIONS)
    expected = register_and_apply(stack, **OPTIONS)
    assert isinstance(result.data, np.ndarray)
    assert_bit_identical(result.data, expected.data)
    assert_bit_identical(result.data, _sequential(stack, **OPTIONS)[1])
    assert_same_transforms(result.transforms, expected.transforms)


# ------------------------------------------------ progress and cancelling
def test_progress_stages_in_order() -> None:
    calls: list[tuple[int, int, str]] = []
    register_and_apply(_stack(), progress=lambda d, t, s: calls.append((d, t, s)), **OPTIONS)
    stages = [stage for _, _, stage in calls]
    first = {}
    for i, stage in enumerate(stages):
        first.setdefault(stage, i)
    assert {"reference", "estimate", "done"} <= set(first)
    assert first["reference"] < first["estimate"] < first["done"]
    assert stages[-1] == "done" and stages.count("done") == 1
    assert calls[-1][0] == calls[-1][1] == N_FRAMES
    # each stage runs once, as one block, with done never going back
    blocks = [stage for i, stage in enumerate(stages) if i == 0 or stages[i - 1] != stage]
    assert len(blocks) == len(set(blocks))
    for stage in first:
        dones = [done for done, _, s in calls if s == stage]
        assert all(b >= a for a, b in itertools.pairwise(dones)), stage
    estimates = [(done, total) for done, total, s in calls if s == "estimate"]
    assert estimates[-1] == (N_FRAMES, N_FRAMES)


@pytest.mark.parametrize("stage", ["reference", "estimate", "apply"])
def test_cancel_stops_both_steps(stage: str, cv2_threads: int) -> None:
    stack = _stack().copy()
    stack[27] = np.nan  # an unusable frame: resampled again in the "apply" stage
    seen: list[str] = []

    def progress(done: int, total: int, current: str) -> None:
        seen.append(current)
        # in "estimate", cancel once a few chunks went to the background thread
        if current == stage and (stage != "estimate" or done >= 40):
            raise Cancelled()

    with pytest.raises(Cancelled):
        register_and_apply(stack, progress=progress, **OPTIONS)
    assert stage in seen and "done" not in seen
    assert _apply_threads() == []
    assert cv2.getNumThreads() == cv2_threads


def test_opencv_threads_restored(cv2_threads: int) -> None:
    seen: list[int] = []
    register_and_apply(_stack(), progress=lambda d, t, s: seen.append(cv2.getNumThreads()), **OPTIONS)
    assert cv2.getNumThreads() == cv2_threads
    # switched off while estimating (the background thread holds the other cores)
    assert 1 in seen
    assert _apply_threads() == []


def test_errors_in_estimation_leave_no_thread(cv2_threads: int) -> None:
    def progress(done: int, total: int, stage: str) -> None:
        if stage == "estimate" and done >= 24:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        register_and_apply(_stack(), progress=progress, **OPTIONS)
    assert _apply_threads() == []
    assert cv2.getNumThreads() == cv2_threads


# ---------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("stack", "kwargs"),
    [
        (np.zeros((64, 64), np.float32), {}),  # a single frame, not (T, Y, X)
        (np.zeros((4, 2, 32, 32), np.float32), {}),  # a channel axis
        (np.zeros((6, 32, 32), np.float32), {"order": 2}),
        (np.zeros((6, 32, 32), np.float32), {"border": "wrap"}),
        (np.zeros((6, 32, 32), np.float32), {"max_movement": 0.0}),
        (np.zeros((6, 32, 32), np.float32), {"workers": 0}),
        (np.zeros((6, 32, 32), bool), {}),
    ],
)
def test_bad_input_raises_value_error(stack: np.ndarray, kwargs: dict) -> None:
    with pytest.raises(ValueError):
        register_and_apply(stack, **kwargs)


def test_bad_reference_leaves_no_thread(cv2_threads: int) -> None:
    with pytest.raises(ValueError, match="reference"):
        register_and_apply(_stack(), reference=np.zeros((10, 10)), **OPTIONS)
    assert _apply_threads() == []
    assert cv2.getNumThreads() == cv2_threads


def test_unknown_option_raises_type_error() -> None:
    with pytest.raises(TypeError):
        register_and_apply(_stack(n_frames=6), no_such_option=1)


# --------------------------------------------------------------- export
def test_top_level_export() -> None:
    assert sa.register_and_apply is register_and_apply
    assert sa.AlignedStack is AlignedStack
    assert "register_and_apply" in sa.__all__ and "AlignedStack" in sa.__all__


def test_overlapping_calls_restore_opencv_threads(cv2_threads: int) -> None:
    """Call B starts while call A runs and ends after it: the thread count
    that both switched off comes back once the last one is done."""
    stack = _stack(n_frames=30)
    b_started, a_done = threading.Event(), threading.Event()

    def progress_a(done: int, total: int, stage: str) -> None:
        if stage == "estimate":
            b_started.wait(10)

    def progress_b(done: int, total: int, stage: str) -> None:
        if stage == "estimate":
            b_started.set()
            a_done.wait(10)

    def run_a() -> None:
        register_and_apply(stack, progress=progress_a, chunk_size=8)
        a_done.set()

    threads = [
        threading.Thread(target=run_a),
        threading.Thread(target=register_and_apply, args=(stack,), kwargs={"progress": progress_b, "chunk_size": 8}),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert a_done.is_set() and b_started.is_set()
    assert cv2.getNumThreads() == cv2_threads
