"""Pairwise averaging on the real STEM ABF stack (SrTiO3, 5 x 512 x 512;
internal test data, never shipped), against the rigidregistration package's
shift matrix measured on the same file (seeds-analysis 5.5)."""

import numpy as np
import pytest
import tifffile

from napari_stackalign.core.pairwise import register_pairwise

pytestmark = pytest.mark.real

# rigidregistration, hann mask, gf with num_peaks = 3 (row 0 of X_ij, Y_ij; final shifts)
REF_X0 = [0.0, -0.64, -2.13, -4.61, -3.2]
REF_Y0 = [0.0, 3.03, 6.51, 7.36, 9.32]
REF_SHIFTS_X = [-2.1, -1.5, 0.0, 2.5, 1.1]
REF_SHIFTS_Y = [5.3, 2.2, -1.3, -2.1, -4.1]


@pytest.fixture
def stem(real_data):
    path = real_data / "hyperspy-stem-abf" / "stem_abf_data_imagestack.tif"
    if not path.exists():
        pytest.skip("STEM ABF stack not present")
    return tifffile.imread(path)


@pytest.mark.parametrize("n", [4, 8])
@pytest.mark.parametrize("maxima", ["gf", "dft"])
def test_matches_reference_and_is_self_consistent(stem, n, maxima):
    res = register_pairwise(stem, mask="hann", n=n, maxima=maxima, num_peaks=3, sigma_guess=2, window_radius=6)
    # X_ij = dy (rows), Y_ij = dx (columns): same convention as the reference
    np.testing.assert_allclose(res.dy[0], REF_X0, atol=0.1)
    np.testing.assert_allclose(res.dx[0], REF_Y0, atol=0.1)
    np.testing.assert_allclose(res.shifts[:, 0], REF_SHIFTS_X, atol=0.1)
    np.testing.assert_allclose(res.shifts[:, 1], REF_SHIFTS_Y, atol=0.1)
    # transitive: every pair agrees with the solved shifts to a small fraction of a pixel
    assert np.nanmax(res.residuals()) < 0.1
    assert not res.outliers.any() and res.frame_ok.all()
    assert res.average.shape[0] > 500 and np.isfinite(res.average).all()


def test_unmasked_phase_correlation_is_not_consistent_on_this_lattice(stem):
    # what the mask is for: plain phase correlation hops between lattice positions
    res = register_pairwise(stem, mask="none", correlation="pc", maxima="dft", threshold=2.0)
    assert np.nanmax(res.residuals()) > 2.0 or res.outliers.any()


def test_defaults_match_reference(stem):
    # mask "auto" (12 Bragg peaks found) and maxima "newton": every frame trusted, the reference's shifts
    res = register_pairwise(stem, average=None)
    assert res.params["auto"]["periodic"] and res.frame_ok.all()
    np.testing.assert_allclose(res.shifts[:, 0], REF_SHIFTS_X, atol=0.1)
    np.testing.assert_allclose(res.shifts[:, 1], REF_SHIFTS_Y, atol=0.1)
