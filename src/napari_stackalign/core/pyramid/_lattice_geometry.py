"""The lattice point nearest a displacement (shared by the lattice resolver and its region check)."""

from __future__ import annotations

import numpy as np

__all__ = ["nearest_lattice_point"]

#: integer offsets from the cell corner ``floor(inverse @ d)`` among which the nearest point lies (a
#: reduced basis: the cell's corners and their neighbours)
_CORNERS = np.array([[0, 0], [1, 0], [0, 1], [1, 1], [-1, 0], [0, -1], [-1, 1], [1, -1], [-1, -1], [2, 0], [0, 2]], float)


def nearest_lattice_point(d: np.ndarray, basis: np.ndarray, inverse: np.ndarray) -> np.ndarray:
    """The integer combination of the rows of ``basis`` nearest ``d`` (px); ``inverse`` is
    ``inv(basis.T)``."""
    corner = np.floor(inverse @ d)
    points = (corner[None, :] + _CORNERS) @ basis
    return points[int(np.argmin(((points - d) ** 2).sum(axis=1)))]
