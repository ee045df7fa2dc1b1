"""The piecewise result's layer data (pure numpy: no viewer needed)."""

from __future__ import annotations

import numpy as np

from napari_stackalign import FrameTransforms, PiecewiseTransforms
from napari_stackalign.napari._piecewise_layers import field_vectors_layer, motion_map_layer


def _result() -> PiecewiseTransforms:
    rigid = FrameTransforms(dy=np.zeros(3), dx=np.zeros(3))
    residual = np.zeros((3, 2, 2, 2))
    residual[1, 0, 1] = (0.5, -1.0)
    flag = np.zeros((3, 2, 2), np.uint8)
    flag[2, 1, 1] = 2
    return PiecewiseTransforms(rigid, [8.0, 24.0], [8.0, 24.0], residual, (32, 32), patch_flag=flag)


def test_vectors_layer_has_one_arrow_per_patch_and_frame():
    data, kwargs, kind = field_vectors_layer(_result(), "movie", scale=4.0)
    assert kind == "vectors" and data.shape == (12, 2, 3)
    assert kwargs["name"] == "movie residual field"
    arrow = data[(data[:, 0, 0] == 1) & (data[:, 0, 1] == 8.0) & (data[:, 0, 2] == 24.0)][0]
    np.testing.assert_allclose(arrow[1], [0, 2.0, -4.0])
    colors = kwargs["edge_color"]
    assert colors.shape == (12, 4) and not np.allclose(colors[-1], colors[0])  # the regularised patch differs


def test_motion_map_layer():
    image, kwargs, kind = motion_map_layer(_result(), "movie")
    assert kind == "image" and image.shape == (32, 32) and image.dtype == np.float32
    assert kwargs["contrast_limits"][1] == image.max() > 0
