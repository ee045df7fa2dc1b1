"""Data far from the usual range register as well as at a normal scale
(core/scaling): float32 x1e20 and x1e-30, maxima near 3e38 (no overflow to
"constant frames"), int64/uint64 near 2**62-2**63 with small variations (no
precision lost in the float cast)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from napari_stackalign import register_pairwise, register_pyramid, register_similarity
from napari_stackalign.core.scaling import IDENTITY, to_float32, working_scale
from napari_stackalign.synthetic import alignment_error, make_stack


@pytest.fixture(scope="module")
def scene():
    s = make_stack("beads", n_frames=16, shape=(96, 96), snr=3.0, seed=3)
    return s.stack.astype(np.float32), s.truth


def _as(base: np.ndarray, kind: str) -> np.ndarray:
    if kind == "normal":
        return base
    if kind == "x1e20":
        return base * np.float32(1e20)
    if kind == "x1e-30":
        return base * np.float32(1e-30)
    if kind == "near_max":
        return (base.astype(np.float64) / base.max() * 3e38).astype(np.float32)
    if kind == "float64_offset":
        return base.astype(np.float64) + 1e12
    if kind == "int64_2**62":
        return np.rint(base.astype(np.float64) * 10).astype(np.int64) + 2**62
    if kind == "int64_negative":
        return np.rint(base.astype(np.float64) * 10).astype(np.int64) - 2**62
    if kind == "uint64_2**63":
        return np.rint(base.astype(np.float64) * 10).astype(np.uint64) + np.uint64(
            2**63 + 12345
        )
    if kind == "uint32_offset":
        return np.rint(base.astype(np.float64) * 10).astype(np.uint32) + np.uint32(
            4_000_000_000
        )
    raise AssertionError(kind)


KINDS = [
    "x1e20",
    "x1e-30",
    "near_max",
    "float64_offset",
    "int64_2**62",
    "int64_negative",
    "uint64_2**63",
    "uint32_offset",
]
METHODS = {
    "pyramid": register_pyramid,
    "pairwise": lambda s: register_pairwise(s).transforms,
    "similarity": register_similarity,
}


def _rms(method, data, truth):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ft = METHODS[method](data)
    assert ft.ok.all(), ft.failure_summary()
    return alignment_error(ft, truth)["rms"]


@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize("kind", KINDS)
def test_far_from_usual_range_registers_like_normal(scene, method, kind):
    base, truth = scene
    normal = _rms(method, base, truth)
    assert normal < 0.1
    assert _rms(method, _as(base, kind), truth) < max(0.1, 1.5 * normal)


@pytest.mark.parametrize(
    "dtype", [np.uint8, np.uint16, np.int16, np.int32, np.float32, np.float64]
)
def test_usual_data_are_converted_as_before(dtype):
    rng = np.random.default_rng(0)
    frame = (
        rng.random((16, 16))
        * (200 if dtype == np.uint8 else 60000 if dtype != np.int16 else 30000)
    ).astype(dtype)
    scale = working_scale(frame)
    assert scale == IDENTITY
    got = to_float32(frame, scale)
    assert got.dtype == np.float32 and got.flags.c_contiguous
    assert np.array_equal(got, frame.astype(np.float32))
    assert got is not frame


def test_int64_differences_are_exact():
    frame = np.array([[2**62, 2**62 + 1], [2**62 + 2, 2**62 + 3]], dtype=np.int64)
    scale = working_scale(frame)
    assert scale.offset == 2**62
    assert np.array_equal(to_float32(frame, scale), [[0, 1], [2, 3]])
    # frames below the sample's minimum come back negative, not wrapped
    other = frame - 5
    assert np.array_equal(to_float32(other, scale), [[-5, -4], [-3, -2]])


def test_uint64_full_range_offset():
    frame = np.array([2**64 - 4, 2**64 - 1], dtype=np.uint64)
    scale = working_scale(frame)
    assert np.array_equal(to_float32(frame, scale), [0, 3])


def test_power_of_two_factor_and_nan_kept():
    frame = np.array([[1e20, 2e20], [np.nan, 3e20]], dtype=np.float32)
    scale = working_scale(frame)
    assert scale.offset == 0 and np.log2(scale.factor) == int(np.log2(scale.factor))
    got = to_float32(frame, scale)
    assert np.isnan(got[1, 0])
    assert np.all(np.abs(got[np.isfinite(got)]) < 2**9)
    assert np.allclose(got[0] / got[0, 0], [1, 2])


def test_constant_and_empty_samples_are_identity():
    assert (
        working_scale(np.full((4, 4), 3e38, np.float32)).factor != 1.0
    )  # huge: rescaled
    assert working_scale(np.zeros((4, 4), np.float32)) == IDENTITY
    assert working_scale(np.full((4, 4), np.nan, np.float32)) == IDENTITY
    assert working_scale(np.zeros((0, 4))) == IDENTITY
    assert working_scale(np.ones((2, 2), bool)) == IDENTITY


def test_has_spread():
    from napari_stackalign.core.scaling import has_spread

    assert has_spread(np.array([1, 2], np.uint16))
    assert not has_spread(np.zeros(4, np.float32))
    assert not has_spread(np.array([np.nan, 1.0]))
    assert has_spread(np.array([np.nan, 1.0, 2.0]))


@pytest.mark.parametrize("method", sorted(METHODS))
def test_a_blank_first_frame_does_not_fix_the_scale(scene, method):
    base, truth = scene
    data = _as(base, "x1e20")
    data[0] = 0  # blank: says nothing about the scale (frame 0 fails, the rest must not)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ft = METHODS[method](data)
    rest = slice(1, None)
    assert ft.ok[rest].all(), ft.failure_summary()
    assert alignment_error(ft[rest], truth[rest])["rms"] < 0.1
