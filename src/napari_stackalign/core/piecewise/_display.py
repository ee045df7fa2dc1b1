"""What a viewer shows of a piecewise result: arrows per patch and a map of the residual motion (pure numpy)."""

from __future__ import annotations

import numpy as np

from ...piecewise_transforms import PiecewiseTransforms

__all__ = ["field_vectors", "residual_motion_map"]


def field_vectors(
    result: PiecewiseTransforms, frames: int | np.ndarray | None = None, *, scale: float = 1.0, only_used: bool = False
) -> np.ndarray:
    """The residual field as vectors, for a napari ``Vectors`` layer over the registered stack.

    Parameters
    ----------
    result : PiecewiseTransforms
    frames : int or array of int, optional
        The frames to draw (default: all).
    scale : float
        Arrow length per px of residual correction.
    only_used : bool
        Only the patches whose own estimate was used (not the regularised ones).

    Returns
    -------
    ndarray, shape (N, 2, 3)
        Per arrow ``[[t, row, col], [0, dy * scale, dx * scale]]``: starting at
        the patch centre of frame ``t``, pointing along the residual correction.
    """
    index = np.arange(len(result)) if frames is None else np.atleast_1d(np.asarray(frames, dtype=int))
    centres = result.patch_centres.reshape(-1, 2)
    rows = []
    for t in index:
        res = result.residual[t].reshape(-1, 2)
        keep = result.patch_ok[t].reshape(-1) if only_used else np.ones(len(res), bool)
        n = int(keep.sum())
        vec = np.zeros((n, 2, 3))
        vec[:, 0, 0] = t
        vec[:, 0, 1:] = centres[keep]
        vec[:, 1, 1:] = res[keep] * scale
        rows.append(vec)
    return np.concatenate(rows) if rows else np.zeros((0, 2, 3))


def residual_motion_map(result: PiecewiseTransforms, *, upsample: bool = True) -> np.ndarray:
    """Root-mean-square length (px) of the residual correction over the frames, per place.

    Shows where the motion was not rigid. ``upsample``: at every registered
    pixel, (Y, X) (the field interpolated as it is applied); else per patch,
    (ny, nx).
    """
    if not upsample:
        return np.sqrt(np.mean(np.sum(result.residual**2, axis=-1), axis=0))
    total = np.zeros(result.frame_shape)
    for t in range(len(result)):
        field = result.residual_field(t)
        total += field[0] ** 2 + field[1] ** 2
    return np.sqrt(total / max(len(result), 1))
