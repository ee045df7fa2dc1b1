"""The piecewise options, the patch grid and the field's interpolation."""

from __future__ import annotations

import numpy as np
import pytest

from napari_stackalign.core.piecewise import PIECEWISE_DEFAULTS, PiecewiseOptions, patch_grid
from napari_stackalign.core.piecewise._grid import patch_starts
from napari_stackalign.piecewise_transforms import field_matrix


def test_options_check_their_values():
    assert PIECEWISE_DEFAULTS.patch_size == 64 and PIECEWISE_DEFAULTS.patch_overlap == 32
    assert "patch" in PiecewiseOptions.help("patch_size")
    with pytest.raises(ValueError, match="patch_overlap .* must be below patch_size"):
        PiecewiseOptions(patch_size=32, patch_overlap=32)
    with pytest.raises(ValueError, match="patch_size"):
        PiecewiseOptions(patch_size=8)
    with pytest.raises(ValueError, match="max_deviation"):
        PiecewiseOptions(max_deviation=0)
    with pytest.raises(ValueError, match="kernel"):
        PiecewiseOptions(kernel="cubic")


@pytest.mark.parametrize(("length", "size", "overlap"), [(256, 64, 32), (100, 64, 32), (50, 64, 16), (97, 32, 0)])
def test_patches_cover_the_axis(length, size, overlap):
    starts = patch_starts(length, size, overlap)
    size = min(size, length)
    assert starts[0] == 0 and starts[-1] + size == length
    assert np.all(np.diff(starts) <= size - overlap) and np.all(np.diff(starts) > 0)


def test_grid_centres():
    grid = patch_grid((128, 96), 64, 32)
    assert grid.shape == (3, 2)
    np.testing.assert_allclose(grid.rows, [31.5, 63.5, 95.5])
    np.testing.assert_allclose(grid.cols, [31.5, 63.5])


def test_field_matrix_interpolates_and_reproduces_lines():
    centres = np.array([10.0, 40.0, 70.0, 100.0])
    w = field_matrix(centres, 111)
    np.testing.assert_allclose(w[centres.astype(int)], np.eye(4), atol=1e-12)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-12)  # a constant field stays constant
    line = 0.5 * centres - 3
    np.testing.assert_allclose(w @ line, 0.5 * np.arange(111) - 3, atol=1e-9)  # and a linear one linear
    assert field_matrix(np.array([5.0]), 9).shape == (9, 1)
    with pytest.raises(ValueError, match="increasing"):
        field_matrix(np.array([3.0, 3.0]), 9)


def test_an_outlier_patch_takes_its_neighbours_value():
    from napari_stackalign.core.piecewise._patches import FLAG_NOT_SIGNIFICANT, FLAG_OUTLIER
    from napari_stackalign.core.piecewise._regularise import regularise

    residual = np.zeros((4, 5, 2))
    residual[..., 0] = np.linspace(0, 1, 5)[None, :]  # a smooth ramp
    residual[1, 2] = (5.0, 0.0)  # one wild patch
    flag = np.zeros((4, 5), np.uint8)
    flag[3, 4] = FLAG_NOT_SIGNIFICANT
    filled, new_flag = regularise(residual, flag, tolerance=2.0)
    assert new_flag[1, 2] == FLAG_OUTLIER and new_flag[3, 4] == FLAG_NOT_SIGNIFICANT
    assert np.count_nonzero(new_flag) == 2
    assert abs(filled[1, 2, 0] - 0.5) < 0.3 and abs(filled[3, 4, 0] - 1.0) < 0.3
    nothing, _ = regularise(residual, np.full((4, 5), FLAG_NOT_SIGNIFICANT, np.uint8), tolerance=2.0)
    assert np.all(nothing == 0)


def test_register_piecewise_signature_matches_the_options():
    import inspect

    from napari_stackalign.core.piecewise import register_piecewise

    params = inspect.signature(register_piecewise).parameters
    defaults = PiecewiseOptions.defaults()
    for name, default in defaults.items():
        assert name in params, f"register_piecewise lacks the option {name}"
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY
        assert params[name].default == default, name
    # every other keyword is not an option: the data, the rigid step, how the work runs, or the options object
    assert set(params) - set(defaults) == {"stack", "rigid", "rigid_options", "progress", "options"}
    assert params["options"].default is None


def test_cli_flags_come_from_the_options():
    from napari_stackalign.cli import build_parser

    args = build_parser().parse_args(["register", "-i", "a.tif", "-o", "b.tif", "--piecewise", "--patch-size", "96"])
    assert args.piecewise and args.patch_size == 96
    assert args.patch_overlap == PIECEWISE_DEFAULTS.patch_overlap
    assert args.max_deviation == PIECEWISE_DEFAULTS.max_deviation
