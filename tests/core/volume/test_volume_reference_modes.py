"""Reference modes for volumes: 'frames', 'image' (as an option), and the chained 'previous' and 'running'
with their link tests (untrustworthy links flagged, bridged, the chain re-anchored)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_stackalign import register_pyramid
from napari_stackalign.core.pyramid import PyramidOptions
from napari_stackalign.synthetic_volume import make_volume_stack

SHAPE = (16, 48, 48)


def _relative(shifts: np.ndarray, to: int) -> np.ndarray:
    return shifts - shifts[to]


@pytest.mark.parametrize(("mode", "extra"), [("previous", {}), ("previous", {"keyframe_every": 1}), ("running", {})])
def test_chained_modes_follow_the_drift_from_the_first_volume(mode, extra):
    vols = make_volume_stack(8, SHAPE, scene="texture", snr=6.0, seed=11)
    result = register_pyramid(vols.data, axes="TZYX", reference_mode=mode, running_frames=3, **extra)
    assert result.ok.all(), result.failure_summary()
    np.testing.assert_allclose(result.shifts_zyx[0], 0.0, atol=1e-12)  # the start of the chain stays put
    np.testing.assert_allclose(result.shifts_zyx, _relative(vols.truth.shifts_zyx, 0), atol=0.08)
    assert result.params["reference_mode"] == mode and result.params["chain_breaks"] == []
    assert result.params["template_frames"] == 0
    if mode == "previous" and not extra:
        assert result.params["keyframe_links"] >= 1  # every 5th volume linked to its keyframe


def test_an_untrustworthy_link_is_flagged_and_bridged():
    vols = make_volume_stack(8, SHAPE, scene="texture", snr=6.0, seed=12)
    data = vols.data.copy()
    data[4] = np.random.default_rng(0).normal(size=SHAPE)  # a volume of pure noise
    result = register_pyramid(data, axes="TZYX", reference_mode="previous", keyframe_every=1)
    assert not result.ok[4] and result.reason[4]  # flagged, with its reason
    assert result.params["gap_links"] == 1  # volume 5 registered to volume 3, across the noise
    good = [0, 1, 2, 3, 5, 6, 7]
    assert result.ok[good].all(), result.failure_summary()
    np.testing.assert_allclose(result.shifts_zyx[good], _relative(vols.truth.shifts_zyx, 0)[good], atol=0.08)


def test_the_chain_is_re_anchored_after_max_gap_links_and_says_so():
    first = make_volume_stack(4, SHAPE, scene="texture", snr=6.0, seed=13)
    later = make_volume_stack(5, SHAPE, scene="texture", snr=6.0, seed=14)  # another sample: no link to the first
    noise = np.random.default_rng(1).normal(size=(5, *SHAPE)).astype(np.float32)
    data = np.concatenate([first.data, noise, later.data])
    result = register_pyramid(data, axes="TZYX", reference_mode="previous", keyframe_every=1)
    assert result.params["chain_breaks"] == [9]
    assert not result.ok[9] and "chain re-anchored here" in result.reason[9]
    assert not result.ok[4:9].any()
    assert result.ok[10:].all(), result.failure_summary()
    # after the break the links are measured again: relative to volume 9, as in the truth
    np.testing.assert_allclose(_relative(result.shifts_zyx, 9)[9:], _relative(later.truth.shifts_zyx, 0), atol=0.08)


def test_reference_frames_build_the_template_and_stay_in_place():
    vols = make_volume_stack(8, SHAPE, scene="texture", snr=6.0, seed=15)
    result = register_pyramid(vols.data, axes="TZYX", reference_frames=(3, 6))
    assert result.params["reference_mode"] == "frames" and result.params["reference_frames"] == [3, 6]
    assert result.params["template_frames"] == 3
    np.testing.assert_allclose(result.shifts_zyx[3:6].mean(axis=0), 0.0, atol=0.03)
    expected = vols.truth.shifts_zyx - vols.truth.shifts_zyx[3:6].mean(axis=0)
    np.testing.assert_allclose(result.shifts_zyx, expected, atol=0.08)
    with pytest.raises(ValueError, match="reach beyond the stack's 8 frames"):
        register_pyramid(vols.data, axes="TZYX", reference_frames=(6, 9))


def test_a_template_of_few_frames_is_accurate_to_its_borders():
    # what no template frame covers repeats the nearest covered voxel (not zeros, which pulled the
    # refinement towards the template's edges: 0.3-0.5 voxel errors with 1-3 template frames)
    vols = make_volume_stack(8, SHAPE, scene="texture", snr=6.0, seed=15)
    for n in (1, 3):
        result = register_pyramid(vols.data, axes="TZYX", num_frames=n)
        expected = vols.truth.shifts_zyx - vols.truth.shifts_zyx[:n].mean(axis=0)
        np.testing.assert_allclose(result.shifts_zyx, expected, atol=0.05)


def test_a_reference_volume_in_the_options_is_used():
    vols = make_volume_stack(5, SHAPE, scene="texture", snr=8.0, seed=16)
    by_keyword = register_pyramid(vols.data, axes="TZYX", reference=vols.data[1])
    by_options = register_pyramid(vols.data, axes="TZYX", options=PyramidOptions(reference=vols.data[1]))
    np.testing.assert_allclose(by_options.shifts_zyx, by_keyword.shifts_zyx, atol=1e-12)
    assert by_options.params["reference"] == "user" and by_options.params["reference_mode"] == "image"
    np.testing.assert_allclose(by_options.shifts_zyx, _relative(vols.truth.shifts_zyx, 1), atol=0.08)


def test_motion_beyond_max_movement_is_flagged_at_the_bound():
    drift = np.zeros((5, 3))
    drift[3] = (0.0, 9.0, 0.0)  # 9 px in y; max_movement 0.25 searches +/- 6 px of 48
    vols = make_volume_stack(5, SHAPE, scene="beads", snr=8.0, seed=17, drift=drift)
    result = register_pyramid(vols.data, axes="TZYX", max_movement=0.25)
    assert not result.ok[3] and "max_movement bound" in result.reason[3]
    assert result.ok[[0, 1, 2, 4]].all(), result.failure_summary()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"reference_mode": "previous", "iterate": 2}, "use iterate=1"),
        ({"reference_mode": "frames"}, "needs reference_frames"),
        ({"reference_mode": "image"}, "needs a reference image"),
        ({"kernel": "lagrange4"}, "cubic splines"),
        ({"mask": np.ones((32, 32), bool)}, "mask is not supported"),
    ],
)
def test_options_volumes_cannot_honour_are_refused(kwargs, match):
    stack = np.random.default_rng(0).normal(size=(4, 8, 32, 32)).astype(np.float32)
    with pytest.raises(ValueError, match=match):
        register_pyramid(stack, axes="TZYX", **kwargs)
