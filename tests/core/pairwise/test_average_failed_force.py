"""``stackalign average --failed {interpolate,identity,apply}`` and ``--force``; ``with_average(failed=...)``."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_stackalign.cli import main
from napari_stackalign.core.pairwise import register_pairwise
from napari_stackalign.synthetic import stem_stack


@pytest.fixture(scope="module")
def lattice():
    return stem_stack(8, (96, 96), snr=2.0, seed=3)


@pytest.fixture
def noise_file(tmp_path):
    rng = np.random.default_rng(1)
    path = tmp_path / "noise.tif"
    tifffile.imwrite(path, rng.poisson(4.0, size=(8, 64, 64)).astype(np.uint16))
    return path


def test_noise_only_exits_3_and_writes_nothing(tmp_path, noise_file, capsys):
    out = tmp_path / "avg.tif"
    assert main(["average", "-i", str(noise_file), "-o", str(out), "-q"]) == 3
    err = capsys.readouterr().err
    assert "--force" in err and "Nothing was written" in err
    assert not out.exists()
    assert main(["average", "-i", str(noise_file), "-o", str(out), "-q", "--force"]) == 0
    assert out.exists()


@pytest.mark.parametrize("policy", ["interpolate", "identity", "apply"])
def test_failed_policy_reaches_the_registered_stack(tmp_path, lattice, policy):
    stack, _ = lattice
    inp = tmp_path / "in.tif"
    tifffile.imwrite(inp, stack.astype(np.float32))
    out, reg, table = tmp_path / "avg.tif", tmp_path / "reg.tif", tmp_path / "t.csv"
    args = ["average", "-i", str(inp), "-o", str(out), "--registered", str(reg), "--transforms", str(table)]
    assert main([*args, "--bad-frames", "2", "--failed", policy, "-q"]) == 0
    registered = tifffile.imread(reg)
    if policy == "identity":
        np.testing.assert_allclose(registered[2], stack[2], atol=1e-3)  # the bad frame left as acquired
    else:
        assert not np.allclose(registered[2], stack[2], atol=1e-3)


def test_a_bad_failed_policy_is_refused(tmp_path, noise_file, capsys):
    with pytest.raises(SystemExit):
        main(["average", "-i", str(noise_file), "-o", str(tmp_path / "a.tif"), "--failed", "guess"])
    assert "--failed" in capsys.readouterr().err


def test_with_average_failed_policies(lattice):
    stack, _ = lattice
    res = register_pairwise(stack, workers=1, average=None, bad_frames=[2])
    shifts = res.shifts
    ident = res.with_average(stack, average="fourier", registered=True, failed="identity")
    np.testing.assert_allclose(ident.registered[2], stack[2], atol=1e-3)  # left as acquired
    interp = res.with_average(stack, average="fourier", registered=True, failed="interpolate")
    applied = res.with_average(stack, average="fourier", registered=True, failed="apply")
    expected = 0.5 * (shifts[1] + shifts[3])  # frame 2 interpolated from its trustworthy neighbours
    for got, shift in ((interp.registered[2], expected), (applied.registered[2], shifts[2])):
        # the shift it got, not half a pixel beside it (the Nyquist terms differ a little: no exact match)
        assert _rms(got - _fourier_shift(stack[2], shift)) < 0.3 * _rms(got - _fourier_shift(stack[2], shift + 0.5))
    # a frame marked bad is never averaged, whatever the policy
    np.testing.assert_allclose(ident.average, interp.average, atol=1e-4)
    np.testing.assert_allclose(applied.average, interp.average, atol=1e-4)
    with pytest.raises(ValueError, match="failed"):
        res.with_average(stack, average="fourier", failed="guess")


def _rms(a: np.ndarray) -> float:
    return float(np.sqrt(np.mean(a**2)))


def _fourier_shift(frame: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """``frame`` moved by the correction ``shift`` (periodic), as the Fourier average does."""
    fy = np.fft.fftfreq(frame.shape[0])[:, None]
    fx = np.fft.fftfreq(frame.shape[1])[None, :]
    ramp = np.exp(-2j * np.pi * (fy * shift[0] + fx * shift[1]))
    return np.fft.ifft2(np.fft.fft2(frame) * ramp).real
