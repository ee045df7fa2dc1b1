"""Fourier masks: the reference's formulas on square frames, correct grids on
odd and non-square frames, layouts, user and elliptical masks, bad input."""

import numpy as np
import pytest

from napari_stackalign.core.pairwise._masks import (
    MASK_KINDS,
    centered_mask,
    fourier_mask,
    mask_cutoff,
)


def _reference_mask(kind, N, n):
    """The rigidregistration formulas (seeds-analysis 5.1) on its own integer
    index grid, which is right for square, even N: centred, DC at N/2."""
    k = np.arange(-N // 2, N // 2)
    kr = np.hypot(k[:, None], k[None, :])
    kmax = N / n / 2
    inside = kr < kmax
    if kind == "bandpass":
        return inside * np.sin(2 * n * np.pi * kr / N) ** 2
    if kind in ("hann", "lowpass"):
        return inside * np.cos(n * np.pi * kr / N) ** 2
    if kind == "hamming":
        return inside * (0.54 + 0.46 * np.cos(np.pi * kr / kmax))
    if kind == "blackman":
        return inside * (0.42 + 0.5 * np.cos(np.pi * kr / kmax) + 0.08 * np.cos(2 * np.pi * kr / kmax))
    if kind == "gaussian":
        return np.exp(-((kr / (kmax / 3)) ** 2))
    if kind == "none":
        return np.ones_like(kr)
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["bandpass", "lowpass", "hann", "hamming", "blackman", "gaussian", "none"])
@pytest.mark.parametrize("n", [2, 4, 6.5])
def test_matches_reference_on_square_even_frames(kind, n):
    N = 64
    ours = fourier_mask((N, N), kind, n, centered=True)
    assert ours.shape == (N, N) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, _reference_mask(kind, N, n), atol=2e-6)


def test_elliptical_matches_reference_form():
    N, n1, n2, theta = 64, 6.0, 2.0, 60.0
    k = np.arange(-N // 2, N // 2).astype(float)
    kx, ky = np.meshgrid(k, k, indexing="ij")  # reference: kx along axis 0 (rows)
    s1, s2 = N / n1 / 2 / 3, N / n2 / 2 / 3
    t = np.radians(theta)
    a = np.cos(t) ** 2 / (2 * s1**2) + np.sin(t) ** 2 / (2 * s2**2)
    b = -np.sin(2 * t) / (4 * s1**2) + np.sin(2 * t) / (4 * s2**2)
    c = np.sin(t) ** 2 / (2 * s1**2) + np.cos(t) ** 2 / (2 * s2**2)
    ref = np.exp(-(a * kx**2 + 2 * b * kx * ky + c * ky**2))
    ours = fourier_mask((N, N), "elliptical", n1, n2=n2, theta=theta, centered=True)
    np.testing.assert_allclose(ours, ref, atol=2e-6)


def test_elliptical_axes_follow_theta():
    # n (large) = narrow along its axis; theta 0 puts that axis on the rows
    m0 = fourier_mask((128, 128), "elliptical", 8, n2=2, theta=0, centered=True)
    m90 = fourier_mask((128, 128), "elliptical", 8, n2=2, theta=90, centered=True)
    c = 64
    assert m0[c + 10, c] < 0.5 * m0[c, c + 10]
    assert m90[c, c + 10] < 0.5 * m90[c + 10, c]
    # equal sizes: round, whatever the angle
    r = fourier_mask((64, 64), "elliptical", 4, n2=4, theta=33, centered=True)
    np.testing.assert_allclose(r, r.T, atol=1e-6)


@pytest.mark.parametrize("shape", [(201, 199), (199, 201), (64, 48), (63, 65), (7, 9)])
@pytest.mark.parametrize("kind", ["bandpass", "hann", "blackman", "gaussian", "none"])
def test_odd_and_non_square_grids(shape, kind):
    h, w = shape
    half = fourier_mask(shape, kind, 2)
    assert half.shape == (h, w // 2 + 1)
    full = fourier_mask(shape, kind, 2, centered=True)
    assert full.shape == shape
    # the same mask evaluated directly on the full frequency grid
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[None, :]
    f = np.hypot(fy, fx)
    fc = 1 / (2 * 2.0)
    direct = {
        "bandpass": np.where(f < fc, np.sin(2 * np.pi * 2 * f) ** 2, 0),
        "hann": np.where(f < fc, np.cos(np.pi * 2 * f) ** 2, 0),
        "blackman": np.where(f < fc, 0.42 + 0.5 * np.cos(np.pi * f / fc) + 0.08 * np.cos(2 * np.pi * f / fc), 0),
        "gaussian": np.exp(-((f / (fc / 3)) ** 2)),
        "none": np.ones_like(f),
    }[kind]
    np.testing.assert_allclose(full, np.fft.fftshift(direct), atol=1e-6)
    np.testing.assert_allclose(half, direct[:, : w // 2 + 1], atol=1e-6)
    # centred: DC at (H // 2, W // 2), symmetric under k -> -k
    flipped = np.roll(np.fft.ifftshift(full)[::-1, ::-1], 1, axis=(0, 1))
    np.testing.assert_allclose(np.fft.ifftshift(full), flipped, atol=1e-6)


def test_isotropic_in_cycles_per_pixel_on_non_square_frames():
    m = fourier_mask((200, 100), "hann", 3)
    # f = 0.1 cycles/px: row index 20 of 200, column 10 of 100
    assert m[20, 0] == pytest.approx(m[0, 10], abs=1e-6)
    assert m[20, 0] == pytest.approx(np.cos(np.pi * 3 * 0.1) ** 2, abs=1e-6)


def test_cutoff_zero_above_and_keeps_dc():
    m = fourier_mask((128, 128), "hann", 4)
    f = np.hypot(np.fft.fftfreq(128)[:, None], np.fft.rfftfreq(128)[None, :])
    assert np.all(m[f >= mask_cutoff(4)] == 0)
    assert m[0, 0] == 1
    assert fourier_mask((128, 128), "bandpass", 4)[0, 0] == 0


def test_user_mask_is_symmetrised_and_checked():
    shape = (33, 40)
    user = np.zeros(shape)
    user[16 + 3, 20 + 5] = 1.0  # one side only
    half = fourier_mask(shape, "user", user_mask=user)
    full = centered_mask(half, shape)
    assert full[16 + 3, 20 + 5] == pytest.approx(0.5)
    assert full[16 - 3, 20 - 5] == pytest.approx(0.5)
    sym = fourier_mask(shape, "hann", 3, centered=True)
    np.testing.assert_allclose(fourier_mask(shape, "user", user_mask=sym, centered=True), sym, atol=1e-6)
    with pytest.raises(ValueError, match="size of one frame"):
        fourier_mask(shape, "user", user_mask=np.ones((10, 10)))
    with pytest.raises(ValueError, match="non-negative"):
        fourier_mask(shape, "user", user_mask=-np.ones(shape))
    with pytest.raises(ValueError, match="user_mask"):
        fourier_mask(shape, "user")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"kind": "cosine"}, "mask kind must be one of"),
        ({"n": 0.5}, "n must be >= 1 pixel"),
        ({"n": float("nan")}, "n must be >= 1"),
        ({"n": "four"}, "n must be a number"),
        ({"kind": "elliptical", "n2": 0}, "n2 must be >= 1"),
        ({"kind": "elliptical", "theta": float("inf")}, "theta must be a finite number"),
    ],
)
def test_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fourier_mask((32, 32), **kwargs)


def test_bad_shape():
    with pytest.raises(ValueError, match="rows, cols"):
        fourier_mask((32,), "hann")
    with pytest.raises(ValueError, match="at least 2 x 2"):
        fourier_mask((1, 32), "hann")
    with pytest.raises(ValueError, match="expected"):
        centered_mask(np.ones((4, 4)), (4, 8))


def test_every_kind_listed_works():
    with pytest.raises(ValueError, match="power spectrum"):
        fourier_mask((16, 16), "auto", 2)  # made from a stack, by register_pairwise
    for kind in MASK_KINDS:
        if kind == "auto":
            continue
        kw = {"user_mask": np.ones((16, 16))} if kind == "user" else {}
        m = fourier_mask((16, 16), kind, 2, **kw)
        assert m.shape == (16, 9) and np.all(np.isfinite(m)) and m.min() >= 0
