"""Layer data of a piecewise-rigid result: arrows of the residual field and a map of where it moved.

Pure numpy (napari's layer-data tuples ``(data, kwargs, layer_type)``), so the
widget that shows a :class:`~napari_stackalign.PiecewiseTransforms` only adds
them to the viewer; see :func:`~napari_stackalign.core.piecewise.field_vectors`
and :func:`~napari_stackalign.core.piecewise.residual_motion_map`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.piecewise import field_vectors, residual_motion_map
from ..piecewise_transforms import PiecewiseTransforms

__all__ = ["FIELD_SUFFIX", "MOTION_MAP_SUFFIX", "field_vectors_layer", "motion_map_layer"]

FIELD_SUFFIX = "residual field"
MOTION_MAP_SUFFIX = "residual motion"


def field_vectors_layer(
    result: PiecewiseTransforms, name: str, *, scale: float = 5.0
) -> tuple[np.ndarray, dict[str, Any], str]:
    """A ``Vectors`` layer over the registered stack: one arrow per patch and frame (length ``scale`` x
    the residual correction), the patches that took their neighbours' value drawn in orange."""
    vectors = field_vectors(result, scale=scale)
    used = result.patch_ok.reshape(-1)
    colors = np.where(used[:, None], np.array([[0.0, 0.9, 1.0, 1.0]]), np.array([[1.0, 0.6, 0.0, 1.0]]))
    kwargs = {
        "name": f"{name} {FIELD_SUFFIX}",
        "edge_width": 1.5,
        "edge_color": colors,
        "vector_style": "arrow",
        "metadata": {"stackalign": {"piecewise_scale": scale, "patch_size": result.params.get("patch_size")}},
    }
    return vectors, kwargs, "vectors"


def motion_map_layer(result: PiecewiseTransforms, name: str) -> tuple[np.ndarray, dict[str, Any], str]:
    """An ``Image`` layer of the RMS residual motion (px) at every registered pixel (over the frames)."""
    image = residual_motion_map(result).astype(np.float32)
    kwargs = {
        "name": f"{name} {MOTION_MAP_SUFFIX}",
        "colormap": "magma",
        "opacity": 0.6,
        "blending": "additive",
        "visible": False,
        "contrast_limits": (0.0, max(float(image.max()), 1e-3)),
        "metadata": {"stackalign": {"units": "px"}},
    }
    return image, kwargs, "image"
