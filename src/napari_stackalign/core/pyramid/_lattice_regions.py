"""Lattice frames whose regions do not agree with the translation found: a rotation, a deformation.

A frame rotated against the template by an angle ``theta`` is displaced by
``theta`` times the distance from the centre of rotation: 1 degree moves the
edges of a 1024 px frame 9 px. On most content the best single translation
is still that of the frame's centre. On a lattice it is not: the lattice
matches wherever the local displacement is a whole lattice vector, so the
frame-wide match can settle several pixels from the centre's displacement,
with a quality that looks fine (grid seed 202, case 5: a 10 px square lattice,
192x1024, frames rotated by up to 0.9 degrees; 5 frames 3.4-4.2 px off,
marked ok). A frame is flagged when the centre's error exceeds
``CENTRE_TOLERANCE`` (beyond 3 standard errors), or when its regions depart
from one translation by more than ``SPREAD_LIMIT`` of the shortest lattice
vector. A long stack is screened first (``SCREEN_FRAMES``, :func:`screen`):
its frames are checked only when the screened ones turn (a region costs an
FFT correlation: 25 of 64 px on a 512 px frame with an 8 px lattice).

:class:`RegionCheck` measures each region's residual shift against the
template after the frame's translation (the lattice-equivalent nearest a
straight-line fit of the regions nearer the centre, so a lattice vector is
never mistaken for a rotation) and :func:`centre_error` fits a translation
plus a linear field to them: its value at the frame centre is how far the
translation found is from the centre's.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..fourier import parabolic_peak
from ._lattice_geometry import nearest_lattice_point
from ._ncc_search import NCCSearch

__all__ = ["CENTRE_TOLERANCE", "SCREEN_FRAMES", "SPREAD_LIMIT", "RegionCheck", "centre_error", "off_centre", "screen", "turned_frames"]

#: regions are squares of about this many longest lattice vectors, between the sizes below (px)
REGION_PERIODS = 8.0
MIN_REGION = 64
MAX_REGION = 256
#: region centres at most this many longest lattice vectors apart: neighbours' residuals then differ by
#: less than half a lattice vector up to a rotation of 1/32 rad (1.8 degrees). The regions need not
#: cover the frame (on a 512 px frame with an 8 px lattice: 25 regions of 64 px, 2/5 of it)
REGION_SPACING = 16.0
#: at most this many regions per axis
MAX_REGIONS_PER_AXIS = 6
#: a translation whose error at the frame centre exceeds this (px), beyond 3 standard errors, is flagged
CENTRE_TOLERANCE = 0.5
#: regions departing from one translation by more than this share of the shortest lattice vector (the
#: fitted field's largest departure from its centre value) are flagged: regions on opposite sides then sit
#: a whole lattice vector apart, and the frame-wide match of the lattice means nothing (a template of
#: frames turned both ways is a blend of two lattices at its edges, and the fit's centre is then
#: unreliable too). Grid, 12 seeds: at a half, 5 fewer wrong frames marked ok for 4 right frames flagged;
#: at a quarter, 3 fewer for 19
SPREAD_LIMIT = 0.5
#: stacks of more frames are first screened: this many frames (evenly spaced, and the lowest in quality)
#: are checked, and the rest only when one of them departs by half of a flag's threshold
SCREEN_FRAMES = 12
#: a region whose template holds information over less than this share of its pixels is not used
MIN_VALID = 0.8


class RegionCheck:
    """Each region's residual shift against the template, after the frame's translation.

    Parameters
    ----------
    template : ndarray (h, w)
        The template (zero-mean where valid).
    valid : ndarray of bool (h, w) or None
        Where the template holds information.
    longest : float
        The longest lattice vector (px).
    """

    def __init__(self, template: np.ndarray, valid: np.ndarray | None, longest: float) -> None:
        h, w = template.shape
        size = int(np.clip(REGION_PERIODS * longest, MIN_REGION, MAX_REGION))
        spacing = REGION_SPACING * longest
        self.reach = 0.75 * longest  # every position has a lattice-equivalent this near 0
        r = int(np.ceil(self.reach)) + 1
        self.radius = r
        starts = [_starts(n, min(size, n), spacing) for n in (h, w)]
        self.regions: list[tuple[slice, slice]] = []
        self.searches: list[NCCSearch] = []
        centres = []
        if len(starts[0]) * len(starts[1]) >= 3 and min(size, h, w) >= 4 * r:
            for y0 in starts[0]:
                for x0 in starts[1]:
                    region = (slice(y0, y0 + min(size, h)), slice(x0, x0 + min(size, w)))
                    if valid is not None and valid[region].mean() < MIN_VALID:
                        continue
                    tile = template[region].astype(np.float32)
                    self.regions.append(region)
                    self.searches.append(NCCSearch(tile - np.float32(tile.mean()), (r, r), min_overlap=0.5))
                    centres.append((y0 + (tile.shape[0] - 1) / 2 - (h - 1) / 2, x0 + (tile.shape[1] - 1) / 2 - (w - 1) / 2))
        #: the regions' centres (k, 2) px, relative to the frame centre
        self.centres = np.array(centres, float).reshape(-1, 2)
        yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
        self._outside = np.hypot(yy, xx) > self.reach

    @property
    def usable(self) -> bool:
        """Whether there are regions enough to fit a translation and a linear field."""
        return len(self.regions) >= 3

    def residuals(self, image: np.ndarray, shift: tuple[float, float]) -> np.ndarray:
        """Each region's residual ``r`` (k, 2) px: ``frame[p + shift + r] ~ template[p]`` there, the one
        within ``reach`` of 0 (any lattice-equivalent); NaN where a region has no match."""
        h, w = image.shape
        m = np.array([[1.0, 0.0, float(shift[1])], [0.0, 1.0, float(shift[0])]])
        moved = cv2.warpAffine(
            np.ascontiguousarray(image, np.float32), m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        )
        out = np.full((len(self.regions), 2), np.nan)
        r = self.radius
        for k, (region, search) in enumerate(zip(self.regions, self.searches)):
            scores = search.scores(moved[region])
            scores[self._outside] = -np.inf
            iy, ix = np.unravel_index(int(np.argmax(scores)), scores.shape)
            if not np.isfinite(scores[iy, ix]) or scores[iy, ix] <= 0:
                continue
            fy, fx = parabolic_peak(np.fmax(scores, -1.0), (int(iy), int(ix)))
            out[k] = (fy - r, fx - r)
        return out


def _starts(length: int, size: int, spacing: float) -> list[int]:
    """Region starts along an axis of ``length`` px: evenly spread, the first at 0 and the last at the end,
    neighbours at most ``spacing`` apart (at most ``MAX_REGIONS_PER_AXIS``)."""
    room = length - size
    n = min(int(np.ceil(room / spacing)) + 1, MAX_REGIONS_PER_AXIS) if room > 0 else 1
    return [int(round(v)) for v in np.linspace(0, room, n)] if n > 1 else [room // 2]


def off_centre(fit: tuple[np.ndarray, float, float] | None, shortest: float, share: float = 1.0) -> bool:
    """Whether :func:`centre_error`'s ``fit`` exceeds ``share`` of a flag's threshold: the centre's error
    beyond ``CENTRE_TOLERANCE`` (plus 3 standard errors), or the regions' departure beyond
    ``SPREAD_LIMIT`` of the ``shortest`` lattice vector."""
    if fit is None:
        return False
    centre, spread, stderr = fit
    return bool(
        np.hypot(*centre) > share * CENTRE_TOLERANCE + 3.0 * stderr or spread > share * SPREAD_LIMIT * shortest
    )


def turned_frames(
    residuals: list[np.ndarray], n: int, centres: np.ndarray, vectors: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which of ``n`` frames to flag (``residuals``: one :meth:`RegionCheck.residuals` per frame, or none
    when the frames were not checked), each one's centre error (n, 2) px and its regions' departure (px).
    """
    basis = np.asarray(vectors, float)
    shortest = float(np.min(np.hypot(basis[:, 0], basis[:, 1])))
    turned, centre, spread = np.zeros(n, bool), np.zeros((n, 2)), np.zeros(n)
    for k, residual in enumerate(residuals):
        fit = centre_error(residual, centres, basis)
        if fit is not None:
            centre[k], spread[k], _ = fit
            turned[k] = off_centre(fit, shortest)
    return turned, centre, spread


def screen(quality: np.ndarray, count: int = SCREEN_FRAMES) -> np.ndarray:
    """The frames (indices into ``quality``) a long stack's rotation is looked for in first: half of
    ``count`` evenly spaced, the rest the lowest in quality (a frame turned against the template matches
    it less well)."""
    n = len(quality)
    if n <= count:
        return np.arange(n)
    even = np.linspace(0, n - 1, count // 2).round().astype(int)
    q = np.where(np.isfinite(quality), quality, -np.inf)
    worst = np.argsort(q, kind="stable")[: count - len(even)]
    return np.unique(np.concatenate([even, worst]))


def centre_error(
    residuals: np.ndarray, centres: np.ndarray, vectors: np.ndarray
) -> tuple[np.ndarray, float, float] | None:
    """The translation's error at the frame centre, from the regions' residuals.

    Each residual is taken at the lattice-equivalent nearest the fit of the regions nearer the centre
    (the nearest first), then all are fitted by a translation plus a linear field.

    Parameters
    ----------
    residuals : ndarray (k, 2)
        :meth:`RegionCheck.residuals` (NaN rows are left out).
    centres : ndarray (k, 2)
        The regions' centres relative to the frame centre (px).
    vectors : ndarray (2, 2)
        The lattice vectors (rows, px).

    Returns
    -------
    (centre, spread, standard_error) or None
        The fitted residual at the frame centre (2,) px, its shortest lattice-equivalent (the centre's
        shift is the translation plus it, up to a lattice vector), how far the fitted field departs from it across the regions (px, the largest) and the
        standard error of ``centre`` (px). None with fewer than 4 regions matched.
    """
    use = np.isfinite(residuals).all(axis=1)
    res, cen = np.asarray(residuals, float)[use], np.asarray(centres, float)[use]
    if len(res) < 4:
        return None
    basis = np.asarray(vectors, float)
    inverse = np.linalg.inv(basis.T)
    columns = [np.ones(len(cen))] + [cen[:, a] for a in (0, 1) if np.ptp(cen[:, a]) > 0]
    design = np.column_stack(columns)
    order = np.argsort(np.hypot(cen[:, 0], cen[:, 1]), kind="stable")
    placed = np.zeros_like(res)
    done: list[int] = []
    for k in order:
        if len(done) > design.shape[1]:
            coef = np.linalg.lstsq(design[done], placed[done], rcond=None)[0]
            expected = design[k] @ coef
        elif done:
            expected = placed[done].mean(axis=0)
        else:
            expected = np.zeros(2)
        placed[k] = res[k] + nearest_lattice_point(expected - res[k], basis, inverse)
        done.append(int(k))
    coef, *_ = np.linalg.lstsq(design, placed, rcond=None)
    fitted = design @ coef
    dof = len(res) - design.shape[1]
    scatter = float(np.sqrt(((placed - fitted) ** 2).sum() / max(2 * dof, 1)))
    # the standard error of the constant term (per axis), from the scatter
    cov = np.linalg.pinv(design.T @ design)
    stderr = scatter * float(np.sqrt(cov[0, 0]))
    spread = float(np.max(np.hypot(*(fitted - coef[0]).T)))
    # the residuals say where the lattice lies, not which of its sites: the centre's error is known up to
    # a lattice vector (which site is the resolver's choice), and is reported as its shortest equivalent
    centre = coef[0] + nearest_lattice_point(-coef[0], basis, inverse)
    return centre, spread, stderr
