"""Similarity registration (rotation, scale, translation) against exact ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from napari_stackalign.core import Cancelled, apply_transforms, average_frames
from napari_stackalign.core.average import largest_rectangle
from napari_stackalign.core.similarity import fill_failed, register_similarity
from napari_stackalign.synthetic import make_stack
from napari_stackalign.transforms import FrameTransforms

SHAPE = (160, 192)  # non-square on purpose
CENTER = ((SHAPE[0] - 1) / 2, (SHAPE[1] - 1) / 2)


def _stack(motion_rows, *, shape=SHAPE, kind="texture", snr=8.0, seed=1, **kw):
    """Stack whose frame t moved by motion_rows[t] = (angle, scale, dy, dx) about the centre."""
    rows = np.asarray(motion_rows, dtype=float)
    center = ((shape[0] - 1) / 2, (shape[1] - 1) / 2)
    motion = FrameTransforms(dy=rows[:, 2], dx=rows[:, 3], angle=rows[:, 0], scale=rows[:, 1], center=center)
    return make_stack(kind, n_frames=len(rows), shape=shape, motion=motion, snr=snr, seed=seed, **kw)


def _errors(est: FrameTransforms, truth: FrameTransforms):
    est = est.with_center(truth.center)
    da = np.mod(est.angle - truth.angle + 180, 360) - 180
    return np.abs(da), np.abs(est.scale - truth.scale), np.hypot(est.dy - truth.dy, est.dx - truth.dx)


# motion of each frame; the middle frame (index 3 of 7) does not move, so the
# truth (the correction to the undisplaced canvas) is the correction to it
MOTIONS = [
    (12.0, 1.10, 3.3, -2.2),
    (-25.0, 0.85, -6.4, 5.1),
    (3.5, 1.0, 0.4, 0.25),
    (0.0, 1.0, 0.0, 0.0),
    (29.0, 1.2, 7.7, 1.3),
    (-8.0, 0.81, -1.1, -7.9),
    (0.0, 1.0, 4.6, -3.35),
]


@pytest.fixture(scope="module")
def known():
    return _stack(MOTIONS)


def test_recovers_known_rotation_scale_shift(known):
    stack, truth = known
    est = register_similarity(stack, template="middle")
    assert est.method == "similarity"
    assert est.center == pytest.approx(CENTER)
    assert est.params["template_index"] == 3
    assert est.ok.all(), est.params["flagged"]
    da, ds, dd = _errors(est, truth)
    assert da.max() < 0.02
    assert ds.max() < 5e-4
    assert np.sqrt(np.mean(dd**2)) < 0.05
    # the success score: near 1 for every registered frame, exactly 1 for the template
    assert est.quality[3] == 1.0
    assert np.all(est.quality > 0.9)
    # sign convention: the result registers the stack onto the template
    registered = apply_transforms(stack, est, border="nan")
    inner = (slice(50, 110), slice(60, 130))
    for t in range(len(stack)):
        diff = registered[t][inner] - stack[3][inner]
        assert np.nanstd(diff) < 0.5 * np.std(stack[3][inner])


def test_template_index_and_first(known):
    stack, truth = known
    est = register_similarity(stack, template=0)
    rel = truth.compose(truth[[0] * len(truth)].invert())  # correction onto frame 0
    da, ds, dd = _errors(est, rel)
    assert est.params["template_index"] == 0
    assert da.max() < 0.02 and ds.max() < 5e-4 and dd.max() < 0.08
    again = register_similarity(stack, template="first")
    assert again.allclose(est, atol=1e-9)
    neg = register_similarity(stack, template=-1)
    assert neg.params["template_index"] == len(stack) - 1


@pytest.mark.parametrize("angle", [179.4, -179.7, 180.0, 176.0])
def test_near_180_degrees(angle):
    stack, truth = _stack([(0, 1, 0, 0), (angle, 1.05, 2.5, -1.5), (angle - 0.6, 0.97, -3.0, 0.5)], seed=3)
    est = register_similarity(stack, template=0)
    da, ds, dd = _errors(est, truth)
    assert est.ok.all()
    assert da.max() < 0.02 and ds.max() < 5e-4 and dd.max() < 0.08
    assert np.all((est.angle > -180) & (est.angle <= 180))


def test_range_limits_are_reachable():
    # corrections exactly at the limits: motion -30 deg gives a correction of +30 deg, scale 1/1.25 -> 1.25
    stack, truth = _stack(
        [(0, 1, 0, 0), (-30.0, 0.8, 2.0, 1.0), (30.0, 1.25, -1.0, 2.0), (15.0, 1.0, 0.5, 0.5)], seed=4
    )
    est = register_similarity(stack, template=0, angle_range=(-30, 30), scale_range=(0.8, 1.25))
    assert truth.angle[1] == pytest.approx(30) and truth.scale[1] == pytest.approx(1.25)
    assert est.ok.all(), est.params["flagged"]
    da, ds, dd = _errors(est, truth)
    assert da.max() < 0.02 and ds.max() < 5e-4 and dd.max() < 0.08
    assert est.params["angle_range"] == [-30.0, 30.0]


def test_angle_range_picks_the_180_candidate_inside_it():
    stack, _truth = _stack([(0, 1, 0, 0), (-170.0, 1.0, 1.0, 1.0)], seed=5)
    est = register_similarity(stack, template=0, angle_range=(150, 210))
    assert est.ok.all()
    assert est.angle[1] == pytest.approx(170.0, abs=0.02)


def test_motion_outside_the_range_is_flagged():
    stack, _truth = _stack([(0, 1, 0, 0), (25.0, 1.0, 1.0, 1.0), (-3.0, 1.0, 0.5, 0.0), (2.0, 1.0, 0.0, 1.0)], seed=6)
    est = register_similarity(stack, template=0, angle_range=(-10, 10))
    assert not est.ok[1]
    assert est.ok[[0, 2, 3]].all()
    assert "1" in est.params["flagged"]
    # the flagged frame falls back to interpolation between its neighbours
    assert est.angle[1] == pytest.approx(0.5 * (est.angle[0] + est.angle[2]))


def test_pure_noise_frame_is_flagged_and_interpolated():
    rows = [(2.0 * t, 1.0 + 0.01 * t, 0.5 * t, -0.3 * t) for t in range(6)]
    stack, _truth = _stack(rows, seed=7)
    rng = np.random.default_rng(0)
    stack[4] = rng.normal(stack.mean(), stack.std(), size=stack[4].shape).astype(stack.dtype)
    est = register_similarity(stack, template=2)
    assert not est.ok[4]
    assert est.ok[[0, 1, 2, 3, 5]].all()
    assert est.quality[4] < 0.2 or not np.isfinite(est.quality[4])
    # linear interpolation between frames 3 and 5 (angle, log scale, shift)
    assert est.angle[4] == pytest.approx(0.5 * (est.angle[3] + est.angle[5]))
    assert np.log(est.scale[4]) == pytest.approx(0.5 * (np.log(est.scale[3]) + np.log(est.scale[5])))
    assert est.dy[4] == pytest.approx(0.5 * (est.dy[3] + est.dy[5]))
    ident = register_similarity(stack, template=2, fallback="identity")
    assert not ident.ok[4]
    assert ident.angle[4] == 0 and ident.scale[4] == 1 and ident.dy[4] == 0 and ident.dx[4] == 0
    # an explicit threshold is honoured
    from napari_stackalign import NoSignalWarning

    with pytest.warns(NoSignalWarning, match="no usable signal"):
        strict = register_similarity(stack, template=2, min_success=0.999)
    # no frame matched the template: the template frame is not trusted either
    assert not strict.ok.any() and "no other frame matched" in strict.reason[2]
    assert strict.params["min_success_used"] == 0.999


def test_nan_and_constant_frames_are_flagged():
    stack, _truth = _stack([(0, 1, 0, 0), (5.0, 1.0, 1, 1), (0, 1, 0, 0), (-4.0, 1.0, 0, 2)], seed=8)
    stack[1, 10, 10] = np.nan
    stack[3] = 7.0
    est = register_similarity(stack, template=0)
    assert list(est.ok) == [True, False, True, False]
    assert "NaN" in est.params["flagged"]["1"]
    assert "constant" in est.params["flagged"]["3"]


def test_multichannel_estimates_on_one_channel_and_applies_to_all():
    stack, truth = _stack(MOTIONS[:4], n_channels=3, seed=9)
    assert stack.shape == (4, 3) + SHAPE
    est = register_similarity(stack, template="middle", channel=1)
    same = register_similarity(stack[:, 1], template="middle")
    assert est.allclose(same, atol=1e-9)
    da, _ds, dd = _errors(est, truth.compose(truth[[2] * 4].invert()))
    assert da.max() < 0.02 and dd.max() < 0.08
    registered = apply_transforms(stack, est)
    assert registered.shape == stack.shape
    for c in range(3):
        np.testing.assert_array_equal(registered[:, c], apply_transforms(stack[:, c], est))
    assert est.params["channel"] == 1


def test_mean_template_leave_one_out():
    rows = [(4.0 * np.sin(t), 1.0 + 0.03 * np.cos(t), 2 * np.sin(2 * t), 3 * np.cos(t)) for t in range(8)]
    rows[4] = (0, 1, 0, 0)
    stack, truth = _stack(rows, snr=2.0, seed=10)
    single = register_similarity(stack, template=4)
    mean = register_similarity(stack, template="mean")
    assert mean.params["template"] == "mean" and mean.params["template_index"] == 4
    assert mean.ok.all()
    # the mean template sits near frame 4's position: compare after removing one global transform
    _da1, _ds1, dd1 = _errors(single, truth)
    rel = mean.compose(mean[[4] * 8].invert())
    da2, ds2, dd2 = _errors(rel, truth)
    assert da2.max() < 0.03 and ds2.max() < 1e-3 and np.sqrt(np.mean(dd2**2)) < 0.06
    # every frame is refined against a cleaner template: at least as good overall
    assert np.sqrt(np.mean(dd2**2)) <= 1.5 * np.sqrt(np.mean(dd1**2)) + 0.01


@pytest.mark.parametrize("mode", ["full", "crop"])
def test_averaging_with_true_zeros_and_non_square_frames(mode):
    stack, _truth = _stack(
        [(0, 1, 0, 0), (6.0, 1.05, 4.0, -6.0), (-5.0, 0.95, -5.0, 3.0), (2.0, 1.0, 2.0, 8.0)], seed=11, snr=None
    )
    # a black object: exact zeros inside a region of the canvas
    est = register_similarity(stack, template=0)
    assert est.ok.all()
    data = stack.copy()
    reg = apply_transforms(data, est, border="nan")
    block = (slice(60, 100), slice(70, 120))
    # zero a region of the registered scene in every frame, through the inverse transform
    zeros = np.zeros(SHAPE, dtype=bool)
    zeros[block] = True
    back = apply_transforms(np.repeat(zeros[None].astype(np.float32), 4, axis=0), est.invert(), order=0)
    data[back > 0.5] = 0.0
    avg = average_frames(data, est, mode=mode)
    if mode == "full":
        assert avg.image.shape == SHAPE
        inner = (slice(65, 95), slice(75, 115))
        # zeros are data: averaged to 0 with full coverage, not holes
        np.testing.assert_allclose(avg.image[inner], 0.0, atol=0.02 * float(np.nanmax(stack)))
        assert np.all(avg.coverage[inner] == 4)
        assert avg.coverage.min() < 4  # the borders are covered by fewer frames
        assert not np.isnan(avg.image[avg.coverage > 0]).any()
    else:
        r0, r1, c0, c1 = avg.crop
        assert avg.image.shape == (r1 - r0, c1 - c0)
        assert np.all(avg.coverage == 4)
        # the largest region every frame covers (not a fixed margin; columns not tied to the height)
        full = average_frames(data, est, mode="full")
        expected = largest_rectangle(full.coverage == 4)
        assert (r1 - r0) * (c1 - c0) == (expected[1] - expected[0]) * (expected[3] - expected[2])
        assert c1 - c0 > r1 - r0  # wider than tall, like the frames
    del reg


def test_16bit_above_32767_is_preserved():
    stack, truth = _stack([(0, 1, 0, 0), (7.0, 1.04, 2.0, -1.0), (-4.0, 0.97, -1.5, 2.5)], seed=12, snr=None,
                          dtype=np.uint16)
    assert stack.dtype == np.uint16 and stack.max() > 50000
    est = register_similarity(stack, template=0)
    assert est.ok.all()
    da, _ds, dd = _errors(est, truth)
    assert da.max() < 0.02 and dd.max() < 0.08
    reg = apply_transforms(stack, est)
    assert reg.dtype == np.uint16
    inner = (slice(40, 120), slice(50, 140))
    assert reg[:, inner[0], inner[1]].max() > 40000
    # bright pixels stay bright (no int16 wrap-around to negative/small values)
    bright = stack[0][inner] > 45000
    assert np.all(reg[1][inner][bright] > 30000)
    avg = average_frames(stack, est, mode="crop")
    assert avg.image.dtype == np.float32 and float(avg.image.max()) > 40000


def test_progress_and_cancel(known):
    stack, _ = known
    calls = []
    register_similarity(stack, progress=lambda d, t, s: calls.append((d, t, s)))
    assert calls and calls[-1][0] == calls[-1][1] == len(stack)
    calls.clear()
    register_similarity(stack[:4], template="mean", progress=lambda d, t, s: calls.append((d, t, s)))
    assert calls[-1][:2] == (12, 12)  # two passes and the mean template, 4 frames each
    assert {"similarity (pass 1 of 2)", "mean template", "similarity (pass 2 of 2)"} <= {c[2] for c in calls}

    def cancel(done, total, stage):
        if done >= 2:
            raise Cancelled()

    with pytest.raises(Cancelled):
        register_similarity(stack, progress=cancel, workers=1, chunk_size=2)


def test_lazy_inputs_give_the_same_result(known, tmp_path):
    import dask.array as da
    import h5py

    stack, _ = known
    ref = register_similarity(stack[:4], template=0, workers=1)
    lazy = register_similarity(da.from_array(stack[:4], chunks=(1, -1, -1)), template=0, workers=1, chunk_size=2)
    assert lazy.allclose(ref, atol=1e-9)
    with h5py.File(tmp_path / "s.h5", "w") as fh:
        fh["data"] = stack[:4]
        got = register_similarity(fh["data"], template=0, workers=1, chunk_size=3)
    assert got.allclose(ref, atol=1e-9)


def test_csv_table_round_trip(known, tmp_path):
    stack, _ = known
    est = register_similarity(stack[:3], template=0)
    path = tmp_path / "t.csv"
    est.to_csv(path)
    back = FrameTransforms.from_csv(path)
    assert back.allclose(est, atol=1e-12)
    np.testing.assert_allclose(back.quality, est.quality)
    assert list(back.ok) == list(est.ok)
    header = path.read_text().splitlines()
    assert any(line.startswith("frame,dy,dx,angle,scale,quality,ok") for line in header)


def test_refine_false_is_coarser_but_close(known):
    stack, truth = known
    raw = register_similarity(stack, template="middle", refine=False)
    da, ds, dd = _errors(raw, truth)
    assert da.max() < 0.3 and ds.max() < 0.01 and dd.max() < 0.5


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"template": "median"}, "template must be one of"),
        ({"template": 9}, "out of range"),
        ({"template": True}, "template must be one of"),
        ({"angle_range": (10, -10)}, "min <= max"),
        ({"angle_range": "30"}, "pair of numbers"),
        ({"scale_range": (0.2, 1.5)}, "within 0.5..2"),
        ({"scale_range": (-1, 1)}, "positive"),
        ({"fallback": "zero"}, "fallback must be one of"),
        ({"min_success": 2.0}, "min_success"),
        ({"sigma": 0}, "sigma"),
        ({"channel": 2}, "no channel axis"),
        ({"chunk_size": 0}, "chunk_size"),
    ],
)
def test_bad_options(known, kwargs, message):
    stack, _ = known
    with pytest.raises(ValueError, match=message):
        register_similarity(stack, **kwargs)


def test_bad_stacks():
    img = np.random.default_rng(0).random((64, 64), dtype=np.float32)
    with pytest.raises(ValueError, match="single 2-D image"):
        register_similarity(img)
    with pytest.raises(ValueError, match="at least 2"):
        register_similarity(img[None])
    with pytest.raises(ValueError, match="too small"):
        register_similarity(np.zeros((3, 16, 64), np.float32))
    with pytest.raises(ValueError, match="pass channel="):
        register_similarity(np.zeros((3, 2, 64, 64), np.float32))
    with pytest.raises(ValueError, match="channel must be an integer in 0..1"):
        register_similarity(np.zeros((3, 2, 64, 64), np.float32), channel=5)
    with pytest.raises(ValueError, match="constant"):
        register_similarity(np.ones((3, 64, 64), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        register_similarity(np.full((3, 64, 64), np.nan, np.float32))


def test_fill_failed_without_good_frames_is_identity():
    ft = FrameTransforms(dy=[1.0, 2.0], dx=[0.5, 0.1], angle=[3.0, 4.0], scale=[1.1, 0.9])
    out = fill_failed(ft, np.array([False, False]))
    assert np.all(out.dy == 0) and np.all(out.angle == 0) and np.all(out.scale == 1)
    across = FrameTransforms(dy=[0, 0, 0], dx=[0, 0, 0], angle=[170.0, 0.0, -170.0])
    filled = fill_failed(across, np.array([True, False, True]))
    assert abs(filled.angle[1]) == pytest.approx(180.0)  # interpolated across the +-180 wrap
    with pytest.raises(ValueError, match="fallback"):
        fill_failed(ft, np.array([True, False]), "nearest")


def test_noise_only_stack_has_no_trustworthy_frame_and_says_so():
    from napari_stackalign import NoSignalWarning

    stack = np.random.default_rng(3).normal(100, 10, (8, 96, 96)).astype(np.float32)
    with pytest.warns(NoSignalWarning):
        est = register_similarity(stack)
    assert not est.ok.any()
    assert all("no significant match" in r for t, r in enumerate(est.reason) if t != est.params["template_index"])
