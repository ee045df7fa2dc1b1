"""The translation of a frame's centre when it turns too far for one linearised step.

:meth:`._lucas_kanade.LKTemplate.refine` (with ``rotation``) measures a
frame's turn from one Gauss-Newton step taken at the converged translation,
and corrects the translation to the centre's from that step while the turn
moves the template's farthest pixel by at most ``MAX_TURN_PX``. Beyond, the
step is not trusted: it underestimates a large turn (grid seed 1004, case 23:
0.4 degrees measured of about 0.8), and the translation-only fit stays the
displacement where the template's detail sits, pixels from the centre's.

:func:`refine_turned` iterates instead: the frame is sampled turned by the
current angle about the template's centre (``cv2.warpAffine``, bicubic) and
translation plus turn are solved together (the template's gradients and its
turn column, with the gain and offset fitted as the translation-only step
fits them), until the update is below the tolerance. Its translation is then
the centre's. It runs only for frames that turn that far, so its cost (one
warp and a few dot products over the frame per iteration) does not touch the
others.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    from ._lucas_kanade import LKTemplate

__all__ = ["MAX_RIGID_ITER", "MAX_RIGID_MOVE", "MAX_RIGID_TURN", "refine_turned"]

#: at most this many joint updates
MAX_RIGID_ITER = 10
#: the iteration has lost the match when the centre moves more than this (level px) from where it started
MAX_RIGID_MOVE = 3.0
#: ... or the turn exceeds this (radians: 5 degrees, beyond the small turns a drift-correction stack has)
MAX_RIGID_TURN = math.radians(5.0)


def refine_turned(
    lk: LKTemplate,
    frame: np.ndarray,
    shift: tuple[float, float],
    turn: float,
    weights: np.ndarray | None,
    fit_gain: bool,
    tol: float,
) -> tuple[tuple[float, float], float, float] | None:
    """The centre's translation and the turn of a frame that turns against ``lk``'s template.

    Parameters
    ----------
    lk : LKTemplate
        The template (built with ``rotation=True``).
    frame : ndarray (H', W'), float32
        The frame at the template's level.
    shift : (float, float)
        Start: the centre's translation from the linearised step (``frame[c + s] ~ template[c]`` at the
        template's centre ``c``).
    turn : float
        Start: the turn from that step (radians; the frame turned by ``turn`` about ``c + s``).
    weights : ndarray (H', W') or None
        Per frame-pixel weights (0: ignore), as for :meth:`LKTemplate.refine`.
    fit_gain : bool
        Fit a gain as well as an offset.
    tol : float
        Stop when the update moves the centre and the farthest pixel by less than this (level px).

    Returns
    -------
    ((sy, sx), turn, step) or None
        The converged translation of the centre, the turn and the last update's largest move (level px,
        below ``tol``); None when the iteration did not converge,
        lost the match (more than ``MAX_RIGID_MOVE`` from its start) or its system was singular.
    """
    h, w = lk.shape
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    radius = max(math.hypot(cy, cx), 1.0)
    sy, sx, theta = float(shift[0]), float(shift[1]), float(turn)
    start = (sy, sx)
    template = lk.template.ravel()
    columns = lk.rigid_columns
    src = np.ascontiguousarray(frame, dtype=np.float32)
    ones = np.ones(src.shape, np.float32) if weights is None else np.ascontiguousarray(weights, np.float32)
    for _ in range(MAX_RIGID_ITER):
        c, s = math.cos(theta), math.sin(theta)
        # frame point (row, col) = c + (sy, sx) + R (p - c), R = [[cos, sin], [-sin, cos]] on (row, col): a
        # turn by theta moves p by theta * (x, -y), the template's turn column
        matrix = np.array(
            [[c, -s, cx + sx - c * cx + s * cy], [s, c, cy + sy - s * cx - c * cy]], dtype=np.float64
        )
        flags = cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP
        sample = cv2.warpAffine(src, matrix, (w, h), flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
        cover = cv2.warpAffine(ones, matrix, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
        weight = np.where(cover >= 0.999, cover, np.float32(0)).ravel() if weights is None else cover.ravel()
        n = float(weight.sum())
        if n < 16:
            return None
        f = sample.ravel()
        wf = weight * f
        sf, sff = float(wf.sum()), float(np.dot(wf, f))
        st, stt = float(np.dot(weight, template)), float(np.dot(weight * template, template))
        sft = float(np.dot(wf, template))
        tvar, fvar, cov = stt - st * st / n, sff - sf * sf / n, sft - sf * st / n
        if not (tvar > 0 and fvar > 0):
            return None
        gain = cov / tvar if fit_gain else 1.0
        if not gain > 1e-6 * (fvar / tvar) ** 0.5:
            return None
        offset = (sf - gain * st) / n
        weighted = columns * weight  # (3, N)
        sums_g = weighted.sum(axis=1)  # sum of w g_k
        b = (columns @ wf - offset * sums_g) / gain - weighted @ template
        hessian = weighted @ columns.T
        try:
            update = -np.linalg.solve(hessian, b)
        except np.linalg.LinAlgError:
            return None
        if not np.all(np.isfinite(update)):
            return None
        sy, sx, theta = sy + float(update[0]), sx + float(update[1]), theta + float(update[2])
        if math.hypot(sy - start[0], sx - start[1]) > MAX_RIGID_MOVE or abs(theta) > MAX_RIGID_TURN:
            return None
        step = max(math.hypot(update[0], update[1]), abs(update[2]) * radius)
        if step < tol:
            return (sy, sx), theta, step
    return None
