"""Piecewise-rigid registration: a rigid shift per frame plus a smooth residual field of patch shifts."""

from ._display import field_vectors, residual_motion_map
from ._grid import PatchGrid, patch_grid
from ._options import PIECEWISE_DEFAULTS, PiecewiseOptions
from ._register import register_piecewise

__all__ = [
    "PIECEWISE_DEFAULTS",
    "PatchGrid",
    "PiecewiseOptions",
    "field_vectors",
    "patch_grid",
    "register_piecewise",
    "residual_motion_map",
]
