"""All-pairs Fourier-masked registration: known shifts, conventions, unit-cell
hops, short stacks, odd/non-square frames, outliers, termination, the shift
solve, averaging, saving and bad input."""

import time
from dataclasses import replace

import numpy as np
import pytest
import tifffile
from skimage.registration import phase_cross_correlation

from napari_stackalign import synthetic as pairwise_scenes
from napari_stackalign.core import Cancelled
from napari_stackalign.core.pairwise import (
    PairwiseOptions,
    fourier_mask,
    mask_preview,
    read_pairwise_tiff,
    register_pairwise,
    save_pairwise_report,
    save_pairwise_tiff,
    save_registered_tiff,
)
from napari_stackalign.core.pairwise._outliers import (
    smoothness_outliers,
    transitivity_scores,
)
from napari_stackalign.core.pairwise._peaks import (
    OVERSAMPLE,
    coarse_grid,
    find_pair_peaks,
)
from napari_stackalign.core.pairwise._register import pairwise_spectra_for
from napari_stackalign.core.pairwise._solve import solve_shifts
from napari_stackalign.synthetic import alignment_error, make_stack
from napari_stackalign.transforms import FrameTransforms

stem_stack = pairwise_scenes.stem_stack


def _true_matrices(truth):
    c = truth.shifts
    return c[:, None, 0] - c[None, :, 0], c[:, None, 1] - c[None, :, 1]


@pytest.fixture(scope="module")
def scene():
    return stem_stack(10, (128, 128), snr=1.0, seed=4)


@pytest.fixture(scope="module")
def result(scene):
    return register_pairwise(scene[0], mask="hann", n=2, maxima="gf", workers=1)


# ------------------------------------------------------------- accuracy
@pytest.mark.parametrize("maxima, tol", [("gf", 0.07), ("dft", 0.07), ("pixel", 0.3)])
def test_known_shifts_recovered(scene, maxima, tol):
    stack, truth = scene
    res = register_pairwise(stack, mask="hann", n=2, maxima=maxima, workers=1)
    err = alignment_error(res.transforms, truth)
    assert err["rms"] < tol, err
    assert res.frame_ok.all() and not res.outliers.any()


def test_matrices_match_truth_and_are_skew_symmetric(scene, result):
    _, truth = scene
    ty, tx = _true_matrices(truth)
    np.testing.assert_allclose(result.dy, -result.dy.T)
    np.testing.assert_allclose(result.dx, -result.dx.T)
    iu = np.triu_indices(10, 1)
    err = np.hypot(result.dy[iu] - ty[iu], result.dx[iu] - tx[iu])
    assert np.sqrt(np.mean(err**2)) < 0.15 and err.max() < 0.5
    # the reference's naming is the same matrices (X = rows)
    X, Y = result.reference_matrices()
    np.testing.assert_array_equal(X, result.dy)
    np.testing.assert_array_equal(Y, result.dx)


def test_sign_convention_matches_phase_cross_correlation():
    stack, truth = make_stack("texture", n_frames=2, shape=(96, 96), snr=None, drift=5, jitter=0, seed=2)
    res = register_pairwise(stack, mask="none", maxima="dft", upsample=50, average=None, threshold=None)
    # dy[i, j] = correction moving frame i onto frame j = pcc(reference=frame j, moving=frame i)
    expected, _, _ = phase_cross_correlation(stack[1], stack[0], upsample_factor=50, normalization=None)
    assert abs(expected[0]) > 3  # a real shift, not the zero-shift edge peak
    assert res.dy[0, 1] == pytest.approx(expected[0], abs=0.25)
    assert res.dx[0, 1] == pytest.approx(expected[1], abs=0.25)
    # transforms: corrections to the mean position, in the package's convention
    ty, tx = _true_matrices(truth)
    # the window-overlap bias is removed: 0.1 px for this 5 px shift in 96 px
    assert res.dy[0, 1] == pytest.approx(ty[0, 1], abs=0.05)
    assert res.dx[0, 1] == pytest.approx(tx[0, 1], abs=0.05)
    assert res.transforms.dy[0] - res.transforms.dy[1] == pytest.approx(ty[0, 1], abs=0.1)
    assert res.transforms.dy.sum() == pytest.approx(0, abs=1e-9)


def test_input_stack_is_not_modified(scene):
    stack = scene[0].copy()
    before = stack.copy()
    register_pairwise(stack, mask="hann", n=2, workers=1, registered=True)
    np.testing.assert_array_equal(stack, before)


@pytest.mark.parametrize("correlation", ["cc", "mc", "pc"])
def test_correlation_kinds(correlation):
    stack, truth = stem_stack(6, (96, 96), snr=4.0, seed=12)
    res = register_pairwise(stack, mask="hann", n=2, correlation=correlation, maxima="dft", workers=1, average=None)
    assert alignment_error(res.transforms, truth)["rms"] < 0.1
    np.testing.assert_allclose(res.dy, -res.dy.T)  # symmetric normalisations


# ------------------------------------------------------- unit-cell hops
@pytest.mark.parametrize("seed, d0", [(1, (3.264, 0.411)), (2, (2.930, 0.421)), (4, (4.193, -1.832))])
def test_gaussian_fit_avoids_unit_cell_hop_that_pixel_makes(seed, d0):
    # A noise-free lattice (period 8 px) where frame 1 is displaced by d0, more
    # than half-way to the next lattice position: the true correlation peak
    # falls between pixels and looks dimmer than a neighbouring lattice peak
    # centred on a pixel. The brightest pixel hops a unit cell; Gaussian fits
    # (and DFT refinement) of the distinct peaks compare the true heights.
    motion = FrameTransforms(dy=[0, d0[0], 0.3], dx=[0, d0[1], -0.2])
    stack, _ = make_stack("lattice", n_frames=3, shape=(96, 96), motion=motion, snr=None, lattice_period=8, seed=seed)

    def error(**kw):
        r = register_pairwise(stack, mask="none", average=None, threshold=None, **kw)
        return float(np.hypot(r.dy[0, 1] - d0[0], r.dx[0, 1] - d0[1]))

    assert error(maxima="pixel") > 6.0  # a whole lattice vector (8 px) off
    assert error(maxima="gf", num_peaks=3) < 0.05
    assert error(maxima="dft", num_peaks=3) < 0.05
    assert error(maxima="gf", num_peaks=1) > 6.0  # the guard needs several distinct peaks


# ------------------------------------------------ short and odd stacks
@pytest.mark.parametrize("n_frames", [3, 4, 5])
@pytest.mark.parametrize("maxpaths", [5, 10])
def test_short_stacks(n_frames, maxpaths):
    stack, truth = stem_stack(n_frames, (64, 64), snr=3.0, drift=2.0, seed=5)
    res = register_pairwise(stack, mask="hann", n=2, maxpaths=maxpaths, workers=1)
    assert alignment_error(res.transforms, truth)["rms"] < 0.08
    assert np.isfinite(res.scores[np.triu_indices(n_frames, 1)]).all()
    assert res.average.shape[0] > 50


def test_two_frames_work_without_outlier_check():
    stack, truth = stem_stack(2, (64, 64), snr=3.0, drift=2.0, seed=6)
    res = register_pairwise(stack, mask="hann", n=2)
    assert alignment_error(res.transforms, truth)["rms"] < 0.1
    assert any("2 frames" in w for w in res.warnings)


@pytest.mark.parametrize("shape", [(201, 199), (97, 130)])
def test_odd_and_non_square_frames(shape):
    stack, truth = stem_stack(5, shape, snr=1.0, seed=7)
    for maxima in ("gf", "dft"):
        res = register_pairwise(stack, mask="hann", n=2, maxima=maxima, workers=1)
        assert alignment_error(res.transforms, truth)["rms"] < 0.07
    assert res.average_full.shape == shape
    r0, r1, c0, c1 = res.crop
    assert res.average.shape == (r1 - r0, c1 - c0)


@pytest.mark.parametrize("maxima", ["gf", "dft", "pixel"])
def test_band_limited_path_matches_full_resolution(maxima):
    # n = 6 keeps a small band: the coarse inverse FFT + DFT windows must give
    # the same peaks as the full-size inverse FFT of the same masked product.
    stack, truth = stem_stack(6, (128, 128), period=16, texture=0.5, snr=2.0, seed=8)
    spec, _, _ = pairwise_spectra_for(stack, PairwiseOptions(mask="hann", n=6), workers=1)
    settings = PairwiseOptions(mask="hann", n=6, maxima=maxima)
    grid = coarse_grid(spec, OVERSAMPLE)
    assert grid[0] * grid[1] < 0.45 * 128 * 128
    pi, pj = np.triu_indices(6, 1)
    small = find_pair_peaks(spec, pi, pj, settings, grid)
    full = find_pair_peaks(spec, pi, pj, settings, spec.padded)
    np.testing.assert_allclose(small.dy, full.dy, atol=0.051)
    np.testing.assert_allclose(small.dx, full.dx, atol=0.051)
    np.testing.assert_allclose(small.quality, full.quality, rtol=1e-3)
    res = register_pairwise(stack, mask="hann", n=6, maxima=maxima, workers=1, average=None)
    assert res.params["coarse_grid"] == list(grid)
    assert alignment_error(res.transforms, truth)["rms"] < (0.3 if maxima == "pixel" else 0.15)


# ----------------------------------------------------------- outliers
def test_planted_outlier_pairs_found_by_transitivity(result):
    dy = result.dy.copy()
    dx = result.dx.copy()
    planted = [(1, 6), (2, 8), (0, 9)]
    for i, j in planted:
        dy[i, j] += 7.0
        dy[j, i] -= 7.0
        dx[i, j] -= 3.0
        dx[j, i] += 3.0
    bad = replace(result, dy=dy, dx=dx).reevaluate(threshold=1.0, maxpaths=5)
    found = {(int(i), int(j)) for i, j in zip(*np.nonzero(np.triu(bad.outliers, 1)))}
    assert found == set(planted)
    # the solution ignores them: same shifts as the clean matrix
    np.testing.assert_allclose(bad.shifts, result.reevaluate(threshold=1.0).shifts, atol=0.05)
    # the corrected matrix fills them with the consistent value
    assert abs(bad.corrected_dy[1, 6] - result.dy[1, 6]) < 0.3
    # the smoothness check finds the same jumps in this smooth drift
    nn = replace(result, dy=dy, dx=dx).reevaluate(threshold=None, max_shift=3.0)
    assert {(int(i), int(j)) for i, j in zip(*np.nonzero(np.triu(nn.outliers, 1)))} == set(planted)


def test_transitivity_on_three_frames_flags_the_inconsistent_triangle():
    dy = np.array([[0, 1.0, 2.0], [-1.0, 0, 1.0], [-2.0, -1.0, 0]])
    dx = np.zeros((3, 3))
    measured = ~np.eye(3, dtype=bool)
    s = transitivity_scores(dy, dx, measured, maxpaths=5)
    assert np.allclose(s[np.triu_indices(3, 1)], 0)
    dy[0, 2], dy[2, 0] = 6.0, -6.0
    s = transitivity_scores(dy, dx, measured, maxpaths=5)
    assert np.allclose(s[np.triu_indices(3, 1)], 4.0)


def test_smoothness_check_finds_a_jump():
    n = 12
    c = np.linspace(0, 5, n)
    dy = c[:, None] - c[None, :]
    dx = np.zeros((n, n))
    dy[3, 8] += 4.0
    dy[8, 3] -= 4.0
    out = smoothness_outliers(dy, dx, ~np.eye(n, dtype=bool), 1.0)
    assert {(int(i), int(j)) for i, j in zip(*np.nonzero(out))} == {(3, 8), (8, 3)}


def test_reevaluate_changes_outliers_without_recomputing(result, scene):
    stack = scene[0]
    t0 = time.perf_counter()
    strict = result.reevaluate(threshold=0.01)
    elapsed = time.perf_counter() - t0
    assert strict.outliers.sum() > result.outliers.sum()
    np.testing.assert_array_equal(strict.dy, result.dy)  # the same correlations
    assert strict.average is None  # stale until recomputed
    assert elapsed < 5.0
    nn = result.reevaluate(threshold=None, max_shift=0.01)
    assert nn.params["threshold"] is None and nn.outliers.any()
    back = strict.reevaluate(threshold=2.0).with_average(stack)
    np.testing.assert_allclose(back.shifts, result.shifts)
    np.testing.assert_allclose(back.average, result.average, atol=1e-5)
    with pytest.raises(ValueError, match="threshold"):
        result.reevaluate(threshold=-1)
    with pytest.raises(ValueError, match="bad_frames"):
        result.reevaluate(bad_frames=[99])


def test_bad_frames_are_left_out(scene, result):
    stack, truth = scene
    res = result.reevaluate(bad_frames=[2, 7]).with_average(stack)
    assert not res.frame_ok[[2, 7]].any() and res.frame_ok.sum() == 8
    assert not res.valid[2].any() and not res.valid[:, 7].any()
    good = res.frame_ok
    est = res.transforms[good]
    assert alignment_error(est, truth[good])["rms"] < 0.07


def test_terminates_with_pure_noise_frames():
    stack, truth = stem_stack(12, (96, 96), snr=2.0, seed=9)
    rng = np.random.default_rng(0)
    noise_frames = [3, 8, 10]
    for k in noise_frames:
        stack[k] = rng.poisson(stack[k].mean(), stack[k].shape)
    t0 = time.perf_counter()
    res = register_pairwise(stack, mask="hann", n=2, threshold=1.0, workers=1)
    assert time.perf_counter() - t0 < 30
    assert set(np.flatnonzero(~res.frame_ok)) == set(noise_frames)
    good = res.frame_ok
    assert alignment_error(res.transforms[good], truth[good])["rms"] < 0.1
    assert any("rejected" in w for w in res.warnings)


def test_terminates_when_every_frame_is_noise():
    rng = np.random.default_rng(1)
    stack = rng.poisson(50.0, (6, 64, 64)).astype(np.float32)
    res = register_pairwise(stack, mask="hann", n=2, threshold=0.5, workers=1)
    assert res.average is not None and np.isfinite(res.average).all()
    assert np.isfinite(res.shifts).all()
    if not res.frame_ok.any():
        assert any("no consistent group" in w for w in res.warnings)


# ---------------------------------------------------------------- solve
def test_least_squares_equals_row_mean_when_complete_and_equal():
    rng = np.random.default_rng(3)
    n = 9
    a = rng.normal(size=(n, n))
    dy = a - a.T
    b = rng.normal(size=(n, n))
    dx = b - b.T
    valid = ~np.eye(n, dtype=bool)
    shifts, ok = solve_shifts(dy, dx, valid, np.ones((n, n)))
    assert ok.all()
    np.testing.assert_allclose(shifts[:, 0], dy.mean(axis=1), atol=1e-12)
    np.testing.assert_allclose(shifts[:, 1], dx.mean(axis=1), atol=1e-12)


def test_register_equal_weights_is_the_reference_row_mean(result):
    eq = result.reevaluate(weights="equal")
    assert eq.valid.sum() == 10 * 9
    np.testing.assert_allclose(eq.shifts[:, 0], result.dy.mean(axis=1), atol=1e-9)
    np.testing.assert_allclose(eq.shifts[:, 1], result.dx.mean(axis=1), atol=1e-9)


def test_weights_follow_quality():
    n = 4
    c = np.array([0.0, 1.0, 2.0, 3.0])
    dy = c[:, None] - c[None, :]
    dy[0, 1], dy[1, 0] = dy[0, 1] + 1.0, dy[1, 0] - 1.0  # a wrong but low-quality pair
    dx = np.zeros((n, n))
    valid = ~np.eye(n, dtype=bool)
    w = np.ones((n, n))
    w[0, 1] = w[1, 0] = 1e-6
    shifts, _ = solve_shifts(dy, dx, valid, w)
    np.testing.assert_allclose(shifts[:, 0] - shifts[0, 0], c - c[0], atol=1e-4)


def test_disconnected_frames_are_not_ok():
    n = 5
    c = np.arange(n, dtype=float)
    dy = c[:, None] - c[None, :]
    dx = np.zeros((n, n))
    valid = ~np.eye(n, dtype=bool)
    valid[4, :] = valid[:, 4] = False
    shifts, ok = solve_shifts(dy, dx, valid, measured=~np.eye(n, dtype=bool))
    assert ok.tolist() == [True, True, True, True, False]
    np.testing.assert_allclose(shifts[:, 0] - shifts[0, 0], c - c[0], atol=1e-9)


# -------------------------------------------------------------- average
def test_fourier_average_of_integer_shifts_is_a_roll_without_abs():
    rng = np.random.default_rng(2)
    base = rng.normal(size=(64, 80)).astype(np.float32) - 3.0  # negative values stay negative
    shifts = [(0, 0), (3, -2), (-4, 5), (1, 1)]  # mean (0, 1): whole-pixel corrections
    stack = np.stack([np.roll(base, s, axis=(0, 1)) for s in shifts])
    res = register_pairwise(stack, mask="none", maxima="pixel", workers=1)
    np.testing.assert_allclose(res.shifts - res.shifts[0], -(np.array(shifts) - shifts[0]), atol=1e-9)
    # every frame moved to the mean position: base rolled by (0, 1)
    np.testing.assert_allclose(res.shifts[0], (0.0, 1.0), atol=1e-9)
    expected = np.roll(base, (0, 1), axis=(0, 1))
    np.testing.assert_allclose(res.average_full, expected, atol=1e-4)
    assert res.average_full.min() < -5  # no abs(): negatives survive
    r0, r1, c0, c1 = res.crop
    hi = np.ceil(np.maximum(res.shifts.max(axis=0), 0) - 1e-6).astype(int)
    lo = np.ceil(np.maximum(-res.shifts.min(axis=0), 0) - 1e-6).astype(int)
    assert (r0, c0) == tuple(hi) and (r1, c1) == (64 - lo[0], 80 - lo[1])


def test_warp_average_agrees_with_fourier(scene, result):
    stack, _ = scene
    warp = result.with_average(stack, average="warp")
    r0, r1, c0, c1 = result.crop
    wr0, wr1, wc0, wc1 = warp.crop
    y0, y1, x0, x1 = max(r0, wr0), min(r1, wr1), max(c0, wc0), min(c1, wc1)
    a = result.average_full[y0:y1, x0:x1]
    b = warp.average_full[y0:y1, x0:x1]
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.97
    assert warp.params["average"] == "warp"


def test_average_improves_snr_against_truth():
    stack, _truth = stem_stack(10, (96, 96), snr=0.5, seed=10)
    clean, _ = stem_stack(10, (96, 96), snr=None, seed=10)
    res = register_pairwise(stack, mask="hann", n=2, workers=1)
    r0, r1, c0, c1 = res.crop
    # the clean frames moved by the same corrections are the ground truth of the average
    target = res.with_average(clean).average
    single = np.corrcoef(stack[0][r0:r1, c0:c1].ravel(), clean[0][r0:r1, c0:c1].ravel())[0, 1]
    avg = np.corrcoef(res.average.ravel(), target.ravel())[0, 1]
    assert avg > 0.8 and avg > single + 0.3


def test_registered_stack(scene, result):
    stack, _ = scene
    reg = result.with_average(stack, registered=True)
    assert reg.registered.shape == stack.shape and reg.registered.dtype == np.float32
    np.testing.assert_allclose(reg.registered[reg.frame_ok].mean(axis=0), reg.average_full, atol=1e-3)


# ------------------------------------------------------------ saving
def test_tiff_description_round_trip(tmp_path, scene, result):
    path = save_pairwise_tiff(tmp_path / "avg.tif", result)
    image, record = read_pairwise_tiff(path)
    np.testing.assert_allclose(image, result.average)
    np.testing.assert_allclose(record["dy"], result.dy)
    np.testing.assert_allclose(record["dx"], result.dx)
    np.testing.assert_array_equal(record["outliers"], result.outliers)
    np.testing.assert_array_equal(record["valid"], result.valid)
    np.testing.assert_allclose(record["transforms"].shifts, result.shifts)
    np.testing.assert_allclose(record["mask"], result.mask)
    assert tuple(record["crop"]) == result.crop and record["cropped"] is True
    for key in ("mask", "n", "correlation", "maxima", "num_peaks", "sigma_guess", "window_radius", "threshold", "maxpaths"):
        assert key in record["params"]
    assert record["params"]["n"] == 2.0 and record["params"]["maxima"] == "gf"
    with tifffile.TiffFile(path) as tif:
        assert tif.pages[0].dtype == np.float32
    full = save_pairwise_tiff(tmp_path / "full.tif", result, crop=False)
    assert read_pairwise_tiff(full)[0].shape == result.frame_shape
    reg = save_registered_tiff(tmp_path / "reg.tif", result.with_average(scene[0], registered=True))
    assert read_pairwise_tiff(reg)[0].shape == scene[0].shape
    with pytest.raises(ValueError, match="registered=True"):
        save_registered_tiff(tmp_path / "x.tif", result)
    with pytest.raises(ValueError, match=".tif"):
        save_pairwise_tiff(tmp_path / "avg.png", result)
    tifffile.imwrite(tmp_path / "plain.tif", np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="no pairwise record"):
        read_pairwise_tiff(tmp_path / "plain.tif")


def test_report_pdf_and_png(tmp_path, result):
    pdf = save_pairwise_report(tmp_path / "r.pdf", result)
    png = save_pairwise_report(tmp_path / "r.png", result.reevaluate(threshold=0.05))
    assert pdf.read_bytes()[:4] == b"%PDF"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    with pytest.raises(ValueError, match=".pdf or .png"):
        save_pairwise_report(tmp_path / "r.svg", result)


# ---------------------------------------------------- inputs, progress
def test_memmap_and_dask_inputs(tmp_path, scene, result):
    stack = scene[0]
    mm = np.lib.format.open_memmap(tmp_path / "s.npy", mode="w+", dtype=np.float32, shape=stack.shape)
    mm[:] = stack
    r1 = register_pairwise(mm, mask="hann", n=2, maxima="gf", workers=1)
    np.testing.assert_allclose(r1.shifts, result.shifts, atol=1e-9)
    da = pytest.importorskip("dask.array")
    r2 = register_pairwise(da.from_array(stack, chunks=(3, -1, -1)), mask="hann", n=2, maxima="gf", workers=1)
    np.testing.assert_allclose(r2.shifts, result.shifts, atol=1e-9)


def test_progress_and_cancel(scene):
    seen = []
    register_pairwise(scene[0], mask="hann", n=2, progress=lambda d, t, s: seen.append((d, t, s)), workers=2)
    stages = {s for _, _, s in seen}
    assert {"spectra", "pairs", "average"} <= stages
    assert (45, 45, "pairs") in seen

    def cancel(done, total, stage):
        if stage == "pairs" and done > 0:
            raise Cancelled()

    with pytest.raises(Cancelled):
        register_pairwise(scene[0], mask="hann", n=2, progress=cancel, workers=2)


def test_user_and_elliptical_masks(scene):
    stack, truth = scene
    ell = register_pairwise(stack, mask="elliptical", n=2, n2=3, theta=30, workers=1, average=None)
    assert alignment_error(ell.transforms, truth)["rms"] < 0.1
    user = fourier_mask(stack.shape[1:], "hann", 2, centered=True)
    usr = register_pairwise(stack, mask=user, workers=1, average=None)
    assert usr.params["mask"] == "user"
    assert alignment_error(usr.transforms, truth)["rms"] < 0.1


def test_mask_preview(scene):
    stack, truth = scene
    prev = mask_preview(stack[0], stack[5], mask="hann", n=2)
    ty, tx = _true_matrices(truth)
    assert prev.peak == (pytest.approx(round(ty[0, 5]), abs=1), pytest.approx(round(tx[0, 5]), abs=1))
    assert prev.spectrum.shape == prev.mask.shape == prev.padded
    r = prev.correlation.shape[0] // 2
    assert prev.correlation.shape == (2 * r + 1, 2 * r + 1)


@pytest.mark.parametrize(
    "stack, kwargs, match",
    [
        (np.zeros((32, 32)), {}, "single 2-D image"),
        (np.zeros((1, 32, 32)), {}, "at least 2"),
        (np.zeros((3, 2, 32, 32)), {}, "use one channel"),
        (np.zeros((3, 4, 4)), {}, "too small"),
        (np.ones((3, 32, 32)), {}, "fewer than 2 frames carry signal"),
        (None, {"maxima": "max"}, "maxima must be one of"),
        (None, {"correlation": "xc"}, "correlation must be one of"),
        (None, {"mask": "cosine"}, "mask kind must be one of"),
        (None, {"n": 0}, "n must be a number of at least 1"),
        (None, {"mask": "hann", "n": 40}, "keeps no frequency"),
        (None, {"num_peaks": 0}, "num_peaks"),
        (None, {"maxima": "gf", "window_radius": 40}, "window_radius"),
        (None, {"sigma_guess": -1}, "sigma_guess"),
        (None, {"upsample": 0}, "upsample"),
        (None, {"threshold": 0}, "threshold"),
        (None, {"maxpaths": 0}, "maxpaths"),
        (None, {"max_shift": float("nan")}, "max_shift"),
        (None, {"bad_frames": [0, 1, 2]}, "leaves 1 frame"),
        (None, {"bad_frames": ["a"]}, "bad_frames"),
        (None, {"weights": "snr"}, "weights must be one of"),
        (None, {"average": "median"}, "average must be one of"),
    ],
)
def test_bad_input(stack, kwargs, match):
    if stack is None:
        stack = stem_stack(4, (48, 48), snr=3, seed=1)[0]
    with pytest.raises(ValueError, match=match):
        register_pairwise(stack, **kwargs)


def test_nan_frame_is_reported():
    stack = stem_stack(4, (48, 48), snr=3, seed=1)[0]
    stack[2, 5, 5] = np.nan
    with pytest.raises(ValueError, match="frame 2 contains NaN"):
        register_pairwise(stack)


def test_constant_frame_is_left_out_with_a_warning():
    stack, truth = stem_stack(6, (64, 64), snr=3, drift=2, seed=11)
    stack[4] = 7.0
    res = register_pairwise(stack, mask="hann", n=2, workers=1)
    assert not res.frame_ok[4] and res.frame_ok.sum() == 5
    assert not res.measured[4].any()
    assert any("no signal" in w for w in res.warnings)
    good = res.frame_ok
    assert alignment_error(res.transforms[good], truth[good])["rms"] < 0.1


@pytest.mark.parametrize("shift", [(-1.0, -1.0), (1.0, -2.0), (-3.4, 0.6)])
def test_small_shifts_on_odd_frames_with_pooled_search(shift):
    # 201 x 199 frames: the peak search pools the map in 2 x 2 blocks, and the
    # odd size wraps around; a shift of -1 px sits in the last row/column.
    motion = FrameTransforms(dy=[0.0, shift[0]], dx=[0.0, shift[1]])
    stack, truth = make_stack("texture", n_frames=2, shape=(201, 199), motion=motion, snr=None, seed=3)
    ty, tx = _true_matrices(truth)
    user = fourier_mask((201, 199), "hann", 2, centered=True)  # a user mask keeps the odd grid
    for mask in ("hann", user):
        res = register_pairwise(stack, mask=mask, n=2, maxima="dft", average=None)
        assert res.dy[0, 1] == pytest.approx(ty[0, 1], abs=0.06)
        assert res.dx[0, 1] == pytest.approx(tx[0, 1], abs=0.06)
    assert res.padded_shape == (201, 199)
