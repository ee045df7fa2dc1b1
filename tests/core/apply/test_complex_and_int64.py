"""apply_transforms on complex data warps the real and imaginary parts alike
(OpenCV has no complex type) and never drops the imaginary part silently;
64-bit integers near 2**62 keep their small variations (no float64 rounding)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_stackalign import FrameTransforms, apply_transforms


@pytest.fixture
def stack():
    rng = np.random.default_rng(0)
    return (rng.random((3, 32, 30)) + 1j * rng.random((3, 32, 30))).astype(np.complex64)


MOTION = FrameTransforms(dy=[0.0, 1.5, -2.25], dx=[0.0, 0.5, 3.0], angle=[0, 2.0, 0])


@pytest.mark.parametrize("border", ["constant", "nan", "edge", "reflect"])
@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_complex_is_warped_part_by_part(stack, border, dtype):
    data = stack.astype(dtype)
    out = apply_transforms(data, MOTION, border=border)
    assert out.dtype == dtype
    part = np.float32 if dtype == np.complex64 else np.float64
    real = apply_transforms(data.real.copy(), MOTION, border=border, output_dtype=part)
    imag = apply_transforms(data.imag.copy(), MOTION, border=border, output_dtype=part)
    np.testing.assert_array_equal(out.real, real)
    np.testing.assert_array_equal(out.imag, imag)
    assert (
        np.abs(out.imag[np.isfinite(out.imag)]).max() > 0.5
    )  # the imaginary part is kept


def test_complex_constant_border_fills_real_cval(stack):
    out = apply_transforms(
        stack, FrameTransforms(dy=[0, 5, 0], dx=[0, 0, 0]), border="constant", cval=2.0
    )
    assert np.all(out[1, :5] == 2.0 + 0j)


def test_real_output_dtype_for_complex_is_refused(stack):
    with pytest.raises(ValueError, match="imaginary part"):
        apply_transforms(stack, MOTION, output_dtype=np.float32)


def test_complex_dask_input(stack):
    da = pytest.importorskip("dask.array")
    lazy = apply_transforms(da.from_array(stack, chunks=(1, 32, 30)), MOTION)
    np.testing.assert_array_equal(np.asarray(lazy), apply_transforms(stack, MOTION))


# ------------------------------------------------------------------ 64-bit integers beyond float64
@pytest.mark.parametrize("dtype", [np.int64, np.uint64])
def test_64_bit_integers_near_2_62_keep_their_variations(dtype):
    rel = (np.arange(64).reshape(8, 8) * 3)[None].repeat(2, axis=0)
    base = 2**62 if dtype == np.int64 else 2**63 + 2**61
    stack = rel.astype(dtype) + dtype(base)
    out = apply_transforms(stack, FrameTransforms(dy=[0.0, 1.0], dx=[0.0, 2.0]))
    assert out.dtype == dtype
    np.testing.assert_array_equal(out[0], stack[0])  # identity: exact
    got = (out[1, 1:, 2:] - dtype(base)).astype(np.int64)
    np.testing.assert_array_equal(got, rel[1, :-1, :-2])  # shifted by (1, 2): exact
