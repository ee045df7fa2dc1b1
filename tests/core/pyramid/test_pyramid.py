"""Pyramid registration against synthetic ground truth (fixed seeds)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from napari_stackalign.core import Cancelled
from napari_stackalign.core.pyramid._register import register_pyramid
from napari_stackalign.core.smoothing import smooth_transforms
from napari_stackalign.synthetic import alignment_error, make_stack
from napari_stackalign.transforms import FrameTransforms


def _motion(shifts: np.ndarray, shape: tuple[int, int]) -> FrameTransforms:
    """Content motion (the inverse of the correction) from (T, 2) displacements."""
    center = ((shape[0] - 1) / 2, (shape[1] - 1) / 2)
    return FrameTransforms.from_shifts(np.asarray(shifts, float), center=center)


@pytest.mark.parametrize(
    "kind, snr, drift, rms_tol",
    [
        ("beads", 5.0, 12.0, 0.03),
        ("texture", 1.5, 12.0, 0.05),
        ("beads", 0.5, 12.0, 0.2),
        ("texture", 0.4, 12.0, 0.2),
        ("lattice", 1.5, 3.0, 0.05),
    ],
)
def test_known_shifts_at_several_snr(kind, snr, drift, rms_tol):
    stack, truth = make_stack(kind, n_frames=24, shape=(128, 128), drift=drift, snr=snr, seed=11)
    est = register_pyramid(stack)
    err = alignment_error(est, truth)
    assert err["rms"] < rms_tol, err
    assert err["frac_over_1px"] == 0.0, err
    assert est.method == "pyramid"
    assert est.is_translation
    assert est.center == (63.5, 63.5)


def test_sign_convention_matches_skimage():
    # frame k's content is displaced by (+3.25, -5.5) from frame 0: the
    # correction of frame k relative to frame 0 is (-3.25, +5.5)
    shifts = np.array([[0.0, 0.0], [3.25, -5.5], [1.0, 2.0], [-2.5, 0.75]])
    stack, _ = make_stack("beads", n_frames=4, shape=(96, 112), motion=_motion(shifts, (96, 112)), snr=None, seed=3)
    est = register_pyramid(stack).relative_to(0)
    np.testing.assert_allclose(est.dy, -shifts[:, 0], atol=0.02)
    np.testing.assert_allclose(est.dx, -shifts[:, 1], atol=0.02)
    # the skimage convention, checked directly
    from skimage.registration import phase_cross_correlation

    sk, _, _ = phase_cross_correlation(stack[0], stack[1], upsample_factor=20, normalization=None)
    np.testing.assert_allclose(sk, [est.dy[1], est.dx[1]], atol=0.25)  # same sign; skimage is less exact


def test_frame_zero_is_registered():
    # frame 0 is the odd one out; every other frame sits still
    shifts = np.zeros((8, 2))
    shifts[0] = (4.0, -2.5)
    stack, _ = make_stack("beads", n_frames=8, shape=(96, 96), motion=_motion(shifts, (96, 96)), snr=8, seed=2)
    est = register_pyramid(stack)
    rel = est.relative_to(1)
    np.testing.assert_allclose([rel.dy[0], rel.dx[0]], [-4.0, 2.5], atol=0.05)
    np.testing.assert_allclose(rel.shifts[1:], 0, atol=0.05)


def test_subpixel_fraction_sweep_has_no_whole_pixel_bias():
    fracs = np.linspace(0, 1, 11)
    shifts = np.column_stack([fracs, 0.5 * fracs[::-1]])
    stack, _ = make_stack("texture", n_frames=len(fracs), shape=(128, 128), motion=_motion(shifts, (128, 128)), snr=None)
    est = register_pyramid(stack).relative_to(0)
    err = np.abs(-est.shifts - (shifts - shifts[0]))
    assert err.max() < 0.01, err.max()


@pytest.mark.parametrize("use", ["mask", "roi"])
def test_static_label_does_not_anchor(use):
    stack, truth = make_stack("beads", n_frames=20, shape=(128, 128), drift=8, snr=3, static_label=True, seed=4)
    if use == "mask":
        mask = np.ones((128, 128), bool)
        mask[:12, :30] = False
        est = register_pyramid(stack, mask=mask)
    else:
        est = register_pyramid(stack, roi=(12, 128, 0, 128))
    err = alignment_error(est, truth)
    assert err["rms"] < 0.1, err
    assert est.ok.all()
    assert est.params["mask" if use == "mask" else "roi"]


def test_intensity_decay_does_not_bias():
    stack, truth = make_stack("texture", n_frames=24, shape=(128, 128), drift=8, snr=3, intensity_decay=0.3, seed=5)
    est = register_pyramid(stack)
    err = alignment_error(est, truth)
    assert err["rms"] < 0.05, err
    assert est.ok.all()


def test_iterate_keeps_or_improves_accuracy():
    stack, truth = make_stack("beads", n_frames=20, shape=(128, 128), drift=10, snr=0.7, seed=6)
    one = register_pyramid(stack, num_frames=5)
    two = register_pyramid(stack, num_frames=5, iterate=2)
    e1, e2 = alignment_error(one, truth), alignment_error(two, truth)
    assert e2["rms"] <= e1["rms"] * 1.05 + 0.005, (e1, e2)
    assert two.params["iterate"] == 2
    assert len(two) == len(stack)


def test_smooth_option_equals_smooth_transforms():
    stack, _ = make_stack("texture", n_frames=15, shape=(96, 96), drift=6, snr=3, seed=7)
    raw = register_pyramid(stack)
    smoothed = register_pyramid(stack, smooth=True, window_length=7, polyorder=2)
    expected = smooth_transforms(raw, window_length=7, polyorder=2)
    np.testing.assert_allclose(smoothed.shifts, expected.shifts, atol=1e-9)
    assert smoothed.params["smoothing"]["window_length"] == 7


def test_smooth_on_short_stack_is_a_clear_error():
    stack, _ = make_stack("texture", n_frames=6, shape=(64, 64), snr=3)
    with pytest.raises(ValueError, match="window_length"):
        register_pyramid(stack, smooth=True)


def test_user_reference_sets_the_coordinate_frame():
    stack, truth = make_stack("beads", n_frames=10, shape=(96, 96), drift=6, snr=None, seed=8)
    est = register_pyramid(stack, reference=stack[3])
    np.testing.assert_allclose(est.shifts[3], 0, atol=0.02)
    np.testing.assert_allclose(est.shifts, truth.relative_to(3).shifts, atol=0.03)
    assert est.params["reference"] == "user"


def test_params_hold_every_parameter():
    stack, _ = make_stack("texture", n_frames=5, shape=(64, 64), snr=3)
    est = register_pyramid(stack, num_frames=3, downsample_rates=[1 / 4, 1 / 2, 1], max_movement=0.4)
    p = est.params
    for key in ("num_frames", "downsample_rates", "max_movement", "iterate", "smooth", "window_length",
                "polyorder", "roi", "mask", "normalize", "reference", "kernel"):
        assert key in p
    assert p["downsample_rates"] == [0.25, 0.5, 1.0]
    assert p["num_frames"] == 3 and p["max_movement"] == 0.4
    est.to_json()  # JSON-serialisable


class _CountingStack:
    """A frame-indexable stack that records how many frames each read takes."""

    def __init__(self, data: np.ndarray) -> None:
        self.data = data
        self.shape = data.shape
        self.dtype = data.dtype
        self.ndim = data.ndim
        self.largest = 0

    def __getitem__(self, index):
        out = self.data[index]
        if isinstance(index, slice):
            self.largest = max(self.largest, out.shape[0])
        return out

    def __len__(self) -> int:
        return self.shape[0]


def test_reads_in_bounded_chunks():
    stack, truth = make_stack("texture", n_frames=30, shape=(64, 64), drift=5, snr=4, seed=9)
    wrapped = _CountingStack(stack)
    est = register_pyramid(wrapped, chunk_size=7)
    assert 0 < wrapped.largest <= 7
    np.testing.assert_allclose(est.shifts, register_pyramid(stack).shifts, atol=1e-9)
    assert alignment_error(est, truth)["rms"] < 0.05


def test_h5py_memmap_and_dask_give_identical_transforms(tmp_path):
    h5py = pytest.importorskip("h5py")
    da = pytest.importorskip("dask.array")
    stack, _ = make_stack("beads", n_frames=12, shape=(80, 96), drift=6, snr=4, dtype=np.uint16, seed=10)
    ref = register_pyramid(stack, chunk_size=5)
    with h5py.File(tmp_path / "s.h5", "w") as f:
        f.create_dataset("image_data", data=stack, chunks=(1, 80, 96))
    with h5py.File(tmp_path / "s.h5", "r") as f:
        from_h5 = register_pyramid(f["image_data"], chunk_size=5)
    mm = np.lib.format.open_memmap(tmp_path / "s.npy", mode="w+", dtype=stack.dtype, shape=stack.shape)
    mm[:] = stack
    mm.flush()
    from_mm = register_pyramid(np.load(tmp_path / "s.npy", mmap_mode="r"), chunk_size=5)
    from_dask = register_pyramid(da.from_array(stack, chunks=(3, 80, 96)), chunk_size=5)
    for other in (from_h5, from_mm, from_dask):
        np.testing.assert_array_equal(other.shifts, ref.shifts)
        np.testing.assert_array_equal(other.ok, ref.ok)


def test_chunk_size_does_not_change_the_result():
    # a lattice: equally good matches one period apart are settled by the
    # same rule whatever the chunking
    stack, truth = make_stack("lattice", n_frames=30, shape=(96, 96), drift=3, snr=1.5, seed=14)
    a = register_pyramid(stack, chunk_size=3)
    b = register_pyramid(stack, chunk_size=64)
    np.testing.assert_array_equal(a.shifts, b.shifts)
    assert alignment_error(a, truth)["frac_over_1px"] == 0


@pytest.mark.parametrize("seed", [18, 29, 36])
def test_lattice_followed_across_a_fast_half_period_move(seed):
    # these trajectories move about half a lattice period within ~10 frames;
    # template building must follow them with a fresh expected shift (with
    # batches of 8 frames one frame hopped a whole period, 7.3-7.7 px off)
    stack, truth = make_stack("lattice", n_frames=24, shape=(64, 64), drift=3.0, jitter=0.3, snr=5, dtype=np.uint16, seed=seed)
    err = alignment_error(register_pyramid(stack), truth)
    assert err["max"] < 0.1, err


def test_single_thread_equals_threads():
    stack, _ = make_stack("texture", n_frames=10, shape=(64, 64), drift=5, snr=2, seed=12)
    a = register_pyramid(stack, workers=1)
    b = register_pyramid(stack, workers=2)
    np.testing.assert_array_equal(a.shifts, b.shifts)


def test_progress_stages_and_cancel():
    stack, _ = make_stack("texture", n_frames=12, shape=(64, 64), drift=5, snr=3)
    calls = []
    register_pyramid(stack, chunk_size=4, progress=lambda d, t, s: calls.append((d, t, s)))
    stages = {s for _, _, s in calls}
    assert {"reference", "estimate"} <= stages
    est_calls = [(d, t) for d, t, s in calls if s == "estimate"]
    assert est_calls[-1] == (12, 12)
    assert all(b[0] >= a[0] for a, b in itertools.pairwise(est_calls))

    def cancel(done, total, stage):
        if stage == "estimate" and done > 0:
            raise Cancelled()

    with pytest.raises(Cancelled):
        register_pyramid(stack, chunk_size=4, progress=cancel)


# ----------------------------------------------------------------- bad input
def test_constant_and_nan_frames_are_flagged_and_interpolated():
    shifts = np.column_stack([np.linspace(0, 6, 10), np.linspace(0, -3, 10)])
    stack, _truth = make_stack("beads", n_frames=10, shape=(96, 96), motion=_motion(shifts, (96, 96)), snr=8, seed=13)
    stack = stack.copy()
    stack[4] = 7.0  # constant frame
    stack[6] = np.nan  # all-NaN frame
    stack[2, 10:30, 10:30] = np.nan  # partly NaN: ignored pixels
    est = register_pyramid(stack)
    assert not est.ok[4] and not est.ok[6]
    assert est.ok[[0, 1, 2, 3, 5, 7, 8, 9]].all()
    rel = est.relative_to(0)
    # the missing frames get the linear interpolation of their neighbours
    np.testing.assert_allclose(rel.shifts[4], (rel.shifts[3] + rel.shifts[5]) / 2, atol=1e-9)
    np.testing.assert_allclose(rel.shifts[6], (rel.shifts[5] + rel.shifts[7]) / 2, atol=1e-9)
    np.testing.assert_allclose(rel.shifts[2], -(shifts[2] - shifts[0]), atol=0.05)
    assert est.params["flags"]["unusable"] == 2


def test_single_frame_stack():
    stack, _ = make_stack("beads", n_frames=1, shape=(64, 64), snr=5)
    est = register_pyramid(stack)
    assert len(est) == 1 and est.ok[0]
    np.testing.assert_allclose(est.shifts, 0, atol=1e-6)


def test_all_constant_stack_is_an_error():
    with pytest.raises(ValueError, match="usable"):
        register_pyramid(np.ones((4, 64, 64), np.float32))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"downsample_rates": []}, "empty"),
        ({"downsample_rates": [0, 1]}, r"\(0, 1\]"),
        ({"downsample_rates": [1 / 2, 2]}, r"\(0, 1\]"),
        ({"downsample_rates": [1 / 2, 1 / 4]}, "increase"),
        ({"downsample_rates": "1/8,1/4"}, "sequence"),
        ({"downsample_rates": [1 / 64]}, "at least"),
        ({"max_movement": 0}, r"\(0, 1\]"),
        ({"max_movement": 1.5}, r"\(0, 1\]"),
        ({"max_movement": float("nan")}, r"\(0, 1\]"),
        ({"num_frames": 0}, "num_frames"),
        ({"iterate": 0}, "iterate"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"roi": (0, 200, 0, 64)}, "roi"),
        ({"roi": (10, 5, 0, 64)}, "roi"),
        ({"roi": (0, 10, 0, 10)}, "16x16"),
        ({"mask": np.ones((10, 10), bool)}, "mask"),
        ({"mask": np.zeros((64, 64), bool)}, "mask"),
        ({"reference": np.ones((10, 10))}, "reference"),
        ({"reference": np.ones((64, 64))}, "constant"),
        ({"kernel": "cubic"}, "kernel"),
        ({"smooth": True, "window_length": 4}, "odd"),
        ({"smooth": True, "window_length": 5, "polyorder": 5}, "polyorder"),
    ],
)
def test_bad_parameters_raise_value_error(kwargs, match):
    stack, _ = make_stack("texture", n_frames=12, shape=(64, 64), snr=3)
    with pytest.raises(ValueError, match=match):
        register_pyramid(stack, **kwargs)


@pytest.mark.parametrize("shape", [(64, 64), (3, 2, 64, 64), (0, 64, 64)])
def test_bad_stack_shapes(shape):
    with pytest.raises(ValueError):
        register_pyramid(np.zeros(shape, np.float32))
