"""Sub-pixel shift of every patch of a frame against the template's patch.

Per patch and frame:

1. the patch of the frame is read where the frame's rigid shift puts it, and
   a search (``cv2.matchTemplate``, normalised correlation; at half
   resolution for patches of 32 px and more, with a parabola through the
   peak) over ``+/- max_deviation`` px finds the best match (at the frame's
   edge, with the part of the patch whose search range lies inside the
   frame); a peak on the search bound is flagged;
2. the pyramid's sub-pixel step refines it (inverse-compositional
   Gauss-Newton with a gain and an offset, Lagrange interpolation of the
   frame: :class:`~napari_stackalign.core.pyramid._lucas_kanade.LKTemplate`),
   straight from the raw frame at rigid + residual shift, so the frame is not
   resampled twice;
3. the peak's significance is tested like a whole frame's in
   :mod:`~napari_stackalign.core.pyramid._trust`:
   ``z = atanh(r) sqrt(neff - 3)``, with ``neff`` the correlation's effective
   number of independent pixels (Bartlett, from the template patch's power
   spectrum and the frame patch's spectrum made isotropic).

Shift convention inside: ``s`` with ``frame[p + s] ~ template_patch[p]``
(patch coordinates); the residual correction is ``s_rigid - s``.
"""

from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import cv2
import numpy as np
import scipy.fft
from numpy.lib.stride_tricks import sliding_window_view

from ..pyramid._lucas_kanade import KERNELS, LKTemplate
from ..pyramid._trust import leave_one_out
from ._batch_lk import BatchLK
from ._grid import PatchGrid

__all__ = [
    "FLAG_AT_BOUND",
    "FLAG_FAILED",
    "FLAG_NOT_SIGNIFICANT",
    "FLAG_OUTLIER",
    "FLAG_UNUSABLE",
    "PatchEstimate",
    "PatchTemplates",
    "patch_significance",
]

FLAG_UNUSABLE = 1
FLAG_NOT_SIGNIFICANT = 2
FLAG_AT_BOUND = 3
FLAG_FAILED = 4
FLAG_OUTLIER = 5

#: a patch needs at least this share of template pixels that frames covered
MIN_VALID_SHARE = 0.5
#: the sub-pixel step's iterations and the update (px) that ends it (its error is about this squared)
LK_ITERATIONS = 4
LK_TOL = 0.005
#: a refinement that stopped with a last update below this (px) still counts
LOOSE_TOL = 0.05
#: the searched part of a patch at the frame's edge must be at least this wide (px)
MIN_SEARCH_SIDE = 16
#: patches at least this large (px) are searched at half resolution first
COARSE_SEARCH_FROM = 32


class PatchEstimate(NamedTuple):
    """One frame's patches (ny, nx): residual (.., 2), flag (uint8, significance not tested yet),
    correlation ``r`` of the refined match and its effective pixel count ``neff``."""

    residual: np.ndarray
    flag: np.ndarray
    ncc: np.ndarray
    neff: np.ndarray


def patch_significance(ncc: np.ndarray, neff: np.ndarray, in_template: np.ndarray, template_size: int) -> np.ndarray:
    """``z`` of every patch of every frame, (T, ny, nx) (NaN: unknown).

    As :func:`~napari_stackalign.core.pyramid._trust.significance`, patch by
    patch: a frame averaged into the template correlates with it through its
    own noise, so its ``r`` is first corrected to the correlation with the
    template without it (:func:`~napari_stackalign.core.pyramid._trust.leave_one_out`,
    ``sigma`` per patch the mean correlation of the template's frames).
    """
    r = np.array(ncc, dtype=np.float64)
    member = np.asarray(in_template, bool)
    if member.any() and template_size > 1:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a patch no frame could use: NaN
            sigma = np.nanmean(np.clip(r[member], 0.0, 1.0), axis=0)
        for i, j in np.ndindex(*sigma.shape):
            if np.isfinite(sigma[i, j]):
                r[member, i, j] = leave_one_out(r[member, i, j], template_size, float(sigma[i, j]))
    with np.errstate(invalid="ignore"):
        fisher = np.arctanh(np.clip(r, -0.999999, 0.999999))
        return fisher * np.sqrt(np.maximum(np.asarray(neff, dtype=np.float64) - 3.0, 0.0))


def _rings(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ring index of every ``rfft2`` frequency of a ``shape`` patch, the
    order that sorts the frequencies by ring, and where each ring starts in it."""
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    rings = np.rint(np.hypot(fy, fx) * max(shape)).astype(int).ravel()
    order = np.argsort(rings, kind="stable")
    starts = np.searchsorted(rings[order], np.arange(rings.max() + 1))
    return rings, order, starts


class PatchTemplates:
    """The template's patches, ready for :meth:`estimate`.

    Parameters
    ----------
    template : ndarray (Y, X)
        The template (NaN where no frame covered it).
    grid : PatchGrid
        The patches.
    max_deviation : float
        Search range (px) around the rigid shift.
    kernel : str
        Interpolation of the sub-pixel step.
    """

    def __init__(self, template: np.ndarray, grid: PatchGrid, max_deviation: float, kernel: str) -> None:
        image = np.asarray(template, dtype=np.float32)
        valid = np.isfinite(image)
        image = np.where(valid, image, np.float32(0))
        self.grid = grid
        self.max_deviation = float(max_deviation)
        self.search = math.ceil(max_deviation)
        self.kernel_support = KERNELS[kernel]
        self.size = grid.size
        self._rings, self._order, self._starts = _rings(self.size)
        self._counts = np.bincount(self._rings)
        # the whole-pixel search runs at half resolution on patches this large
        self.coarse = min(self.size) >= COARSE_SEARCH_FROM
        sy, sx = self.size
        self.patches: list[tuple[int, int, LKTemplate, np.ndarray, np.ndarray, np.ndarray] | None] = []
        for r0 in grid.row_starts:
            for c0 in grid.col_starts:
                self.patches.append(
                    self._prepare(
                        image[r0 : r0 + sy, c0 : c0 + sx], valid[r0 : r0 + sy, c0 : c0 + sx], int(r0), int(c0), kernel
                    )
                )

        # the usable patches' sub-pixel step, all at once; _row: a patch's row in it (-1: unusable)
        self._row = np.full(len(self.patches), -1)
        usable = [j for j, entry in enumerate(self.patches) if entry is not None]
        self._row[usable] = np.arange(len(usable))
        self._batch = BatchLK([self.patches[j][2] for j in usable]) if usable else None
        # the usable patches' corners, standardised patches and search templates, in that order
        self._usable = np.asarray(usable, dtype=np.int64)
        self._r0 = np.array([self.patches[j][0] for j in usable], dtype=np.float64)
        self._c0 = np.array([self.patches[j][1] for j in usable], dtype=np.float64)
        self._coarse = [self.patches[j][3] for j in usable]
        self._std = [self.patches[j][4] for j in usable]
        spectra = np.stack([entry[5] if entry is not None else np.zeros((sy, sx // 2 + 1)) for entry in self.patches])
        # what the effective pixel count needs of each template patch's spectrum: its sum and its sums over
        # each ring (the frame patch's isotropic spectrum is constant on a ring); ring 0 is the DC term alone
        self._var_t = spectra.reshape(len(self.patches), -1).sum(axis=1)
        self._ring_sums = np.stack([np.bincount(self._rings, s.ravel(), self._counts.size) for s in spectra])

    def _prepare(self, patch: np.ndarray, valid: np.ndarray, r0: int, c0: int, kernel: str):
        """(r0, c0, LK template, search template, standardised patch, power spectrum) or None for an
        unusable patch."""
        if valid.mean() < MIN_VALID_SHARE:
            return None
        mean = float(patch[valid].mean())
        std = patch - np.float32(mean)
        std[~valid] = 0
        sd = float(np.sqrt(np.mean(std[valid].astype(np.float64) ** 2)))
        if not sd > 0:
            return None
        std = np.ascontiguousarray(std / np.float32(sd))
        spectrum = np.abs(np.fft.rfft2(std)) ** 2
        spectrum[0, 0] = 0
        lk = LKTemplate(std, None if valid.all() else valid, kernel=kernel)
        search = cv2.pyrDown(std) if min(std.shape) >= COARSE_SEARCH_FROM else std
        return r0, c0, lk, search, std, spectrum

    def estimate(
        self,
        frame: np.ndarray,
        rigid_shift: tuple[float, float],
        valid: np.ndarray | None = None,
        search: np.ndarray | None = None,
    ) -> PatchEstimate:
        """The residual correction of every patch of ``frame`` (float32, no NaN) whose rigid correction is
        ``rigid_shift`` (dy, dx); ``valid`` (bool, the frame's shape) marks the pixels that hold data
        (the others are left out of the sub-pixel step). ``search`` (bool, the grid's shape; default all)
        marks the patches that get the whole-pixel search; the others (already registered to well
        within a pixel by a previous pass) go straight to the sub-pixel step."""
        search = np.ones(self.grid.shape, bool) if search is None else np.asarray(search, bool)
        search = search.reshape(-1)
        weights = None
        if valid is not None and not valid.all():
            m = self.kernel_support
            weights = cv2.erode(
                valid.astype(np.uint8),
                np.ones((2 * m + 1, 2 * m + 1), np.uint8),
                borderType=cv2.BORDER_CONSTANT,
                borderValue=0,
            ).astype(np.float32)
        ny, nx = self.grid.shape
        n = ny * nx
        residual = np.zeros((n, 2))
        flag = np.full(n, FLAG_UNUSABLE, np.uint8)
        ncc = np.full(n, np.nan)
        neff = np.full(n, np.nan)
        sy, sx = self.size
        h, w = frame.shape
        k = self.search
        # where the rigid shift puts every usable patch, and the part of it whose whole search range lies
        # inside the frame; a patch the rigid shift moved (mostly) out of the frame is left unusable
        js = self._usable
        s0y = self._r0 - float(rigid_shift[0])
        s0x = self._c0 - float(rigid_shift[1])
        iy0 = np.rint(s0y).astype(np.int64)
        ix0 = np.rint(s0x).astype(np.int64)
        a0, a1 = np.maximum(0, k - iy0), np.minimum(sy, h - k - iy0)
        b0, b1 = np.maximum(0, k - ix0), np.minimum(sx, w - k - ix0)
        keep = (a1 - a0 >= max(MIN_SEARCH_SIDE, MIN_VALID_SHARE * sy)) & (
            b1 - b0 >= max(MIN_SEARCH_SIDE, MIN_VALID_SHARE * sx)
        )
        if not keep.any():
            return PatchEstimate(
                residual.reshape(ny, nx, 2), flag.reshape(ny, nx), ncc.reshape(ny, nx), neff.reshape(ny, nx)
            )
        rows = np.flatnonzero(keep)
        used_idx = js[rows]
        rigid_arr = np.stack([s0y[rows], s0x[rows]], axis=1)
        starts_arr = rigid_arr.copy()
        on_edge = np.zeros(rows.size, bool)
        searched = np.flatnonzero(search[used_idx])
        if searched.size:
            found, edge = self._search(frame, rows[searched], iy0, ix0, a0, a1, b0, b1)
            starts_arr[searched] = found
            on_edge[searched] = edge
        weighted = np.zeros(rows.size, bool)
        if weights is not None:
            # the patches whose (searched) surroundings hold a pixel with less than full weight
            below = cv2.integral((weights < 1).astype(np.uint8))
            y0 = np.clip(iy0[rows] - k, 0, h)
            y1 = np.clip(iy0[rows] + sy + k, 0, h)
            x0 = np.clip(ix0[rows] - k, 0, w)
            x1 = np.clip(ix0[rows] + sx + k, 0, w)
            weighted = (below[y1, x1] - below[y0, x1] - below[y1, x0] + below[y0, x0]) > 0
        res = self._batch.refine(
            frame,
            starts_arr,
            which=self._row[used_idx],
            weights=weights,
            weighted=weighted,
            max_iter=LK_ITERATIONS,
            tol=LK_TOL,
        )
        shift = res.shift
        ncc[used_idx] = res.ncc
        lost = res.failed | ~(res.converged | (res.step < LOOSE_TOL))
        residual[used_idx] = np.where(lost[:, None], rigid_arr - starts_arr, rigid_arr - shift)
        at_bound = on_edge | (np.abs(residual[used_idx]).max(axis=1) > self.max_deviation + 0.5)
        flag[used_idx] = np.where(lost, FLAG_FAILED, np.where(at_bound, FLAG_AT_BOUND, 0))
        # the frame's patch where the search put it, for the effective pixel count
        iy = np.clip(np.rint(starts_arr[:, 0]), 0, h - sy).astype(int)
        ix = np.clip(np.rint(starts_arr[:, 1]), 0, w - sx).astype(int)
        crops = sliding_window_view(frame, (sy, sx))[iy, ix]
        neff[used_idx] = self._effective_pixels(crops, used_idx)
        return PatchEstimate(
            residual.reshape(ny, nx, 2), flag.reshape(ny, nx), ncc.reshape(ny, nx), neff.reshape(ny, nx)
        )

    def _effective_pixels(self, crops: np.ndarray, used: np.ndarray) -> np.ndarray:
        """Bartlett's effective pixel count of the correlation of each patch ``used`` (see
        :meth:`~napari_stackalign.core.pyramid._engine.PyramidEstimator.effective_pixels`):
        the frame patch's spectrum is made isotropic (geometric mean over
        each ring, times ``exp(euler_gamma)``), so the signal's own peaks barely count.

        With ``T`` the template patch's power spectrum and ``L_r`` the isotropic level of the frame
        patch's on ring ``r`` (``c_r`` frequencies, DC left out), ``neff = sum T * sum_r c_r L_r /
        sum_r L_r T_r`` where ``T_r`` is the sum of ``T`` over ring ``r`` (precomputed): no spectrum is
        expanded back to every frequency."""
        crops = crops.astype(np.float32, copy=False)
        crops -= crops.mean(axis=(1, 2), keepdims=True)
        spectrum = scipy.fft.rfft2(crops)  # float32 in, complex64 out
        power = spectrum.real**2 + spectrum.imag**2
        # the mean log power of each ring (float32 is plenty: a ring holds at most a few hundred terms)
        logs = np.log(np.maximum(power.reshape(len(crops), -1)[:, self._order], np.float32(1e-30)))
        # sums over each ring (no BLAS: a matrix product here is slow on a loaded machine)
        logs = np.add.reduceat(logs, self._starts, axis=1)
        counts = self._counts[1:]
        level = np.exp(logs[:, 1:] / np.maximum(counts, 1) + np.euler_gamma)  # float64 from here
        var_t = self._var_t[used]
        var_n = (level * counts).sum(axis=1)
        cross = (self._ring_sums[used, 1:] * level).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where((var_t > 0) & (var_n > 0) & (cross > 0), var_t * var_n / cross, np.nan)


    def _search(
        self,
        frame: np.ndarray,
        rows: np.ndarray,
        iy0: np.ndarray,
        ix0: np.ndarray,
        a0: np.ndarray,
        a1: np.ndarray,
        b0: np.ndarray,
        b1: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The whole-pixel search of the usable patches ``rows`` (indices into the usable patches, with
        their rounded rigid positions ``iy0, ix0`` and searchable parts ``[a0, a1) x [b0, b1)``): the
        start of each (n, 2) and whether its peak lies on the search bound (n,)."""
        sy, sx = self.size
        k = self.search
        step = 2 if self.coarse else 1
        scores = []
        for i in rows.tolist():
            y, x = int(iy0[i]), int(ix0[i])
            ra, rb, ca, cb = int(a0[i]), int(a1[i]), int(b0[i]), int(b1[i])
            window = frame[y + ra - k : y + rb + k, x + ca - k : x + cb + k]
            if (ra, rb, ca, cb) != (0, sy, 0, sx):
                pattern = self._std[i][ra:rb, ca:cb]
                pattern = cv2.pyrDown(pattern) if self.coarse else np.ascontiguousarray(pattern)
            else:
                pattern = self._coarse[i]
            window = cv2.pyrDown(window) if self.coarse else window
            scores.append(cv2.matchTemplate(window, pattern, cv2.TM_CCOEFF_NORMED))
        # every patch has the same lags (the window is the pattern plus the search range on each side)
        scores = np.stack(scores)
        scores[~np.isfinite(scores)] = -1.0
        n, ly, lx = scores.shape
        py, px = np.divmod(scores.reshape(n, -1).argmax(axis=1), lx)
        edge = (py == 0) | (py == ly - 1) | (px == 0) | (px == lx - 1)
        found = np.stack(
            [
                iy0[rows] - k + step * (py + _vertices(scores[np.arange(n), :, px], py)),
                ix0[rows] - k + step * (px + _vertices(scores[np.arange(n), py, :], px)),
            ],
            axis=1,
        )
        return found, edge


def _vertices(values: np.ndarray, peaks: np.ndarray) -> np.ndarray:
    """Sub-pixel offset (within +/- 0.5) of a parabola through each row's peak and its neighbours:
    ``values`` (n, L), ``peaks`` (n,); 0 for a peak on the row's end or without curvature."""
    n, length = values.shape
    if length < 3:
        return np.zeros(n)
    inner = (peaks > 0) & (peaks < length - 1)
    at = np.clip(peaks, 1, length - 2)
    idx = np.arange(n)
    left = values[idx, at - 1].astype(np.float64)
    centre = values[idx, at].astype(np.float64)
    right = values[idx, at + 1].astype(np.float64)
    den = left - 2 * centre + right
    ok = inner & (den < 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        offset = np.clip(0.5 * (left - right) / np.where(ok, den, -1.0), -0.5, 0.5)
    return np.where(ok, offset, 0.0)
