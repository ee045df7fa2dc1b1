"""One volume against a template: a 3-D coarse search, then Gauss-Newton refinement level by level.

Shifts here are ``s`` with ``frame[p + s] ~ template[p]`` (p = plane, row,
col), in the voxels of the level they belong to; the correction the caller
returns is ``-s``.

- The coarse search (first level) is the normalised correlation coefficient
  over the overlap for every integer shift within the bound: one zero-padded
  FFT correlation plus the FFT sums of the overlap's means and variances
  (nothing wraps around), ranked by ``ncc * sqrt(overlap fraction)`` so
  small overlaps do not win on noise, with a minimum overlap.
- Each level refines by inverse-compositional Gauss-Newton for a translation
  plus a gain and an offset (``normalize``) or an offset only, over the
  box of voxels both volumes cover. The frame is sampled with cubic
  B-splines (prefiltered once per level); the template's gradients are
  central differences, computed once per template.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import fft as sfft
from scipy import ndimage

from ..pyramid._engine import BOUND_TOL, CONVERGED_STEP, FLAG_AT_EDGE, FLAG_FAILED, FLAG_NOT_CONVERGED, FLAG_UNUSABLE
from ._levels import VolumeLevel, downsample

__all__ = ["Estimate", "VolumeEstimator", "VolumeTemplate", "prepare_volume"]

#: smallest overlap (fraction of the level's voxels) a shift may leave
MIN_OVERLAP = 0.25
#: Gauss-Newton iterations at the levels before the last, and at the last
COARSE_ITERATIONS = 3
FINE_ITERATIONS = 12
#: the last level stops when a step is below this (voxels)
FINE_TOL = 1e-3
#: a voxel is sampled only when its spline support lies inside the volume
MARGIN = 1
#: voxels per slab of the Gauss-Newton sums (float64 rows of 64 k voxels: 0.5 MB each)
SLAB_VOXELS = 2**16


def prepare_volume(volume: np.ndarray, normalize: bool) -> np.ndarray | None:
    """float32, zero mean (unit variance with ``normalize``); NaN voxels get the mean.
    None for a volume without contrast (constant, empty or all NaN)."""
    vol = np.asarray(volume, dtype=np.float32)
    finite = np.isfinite(vol)
    if not finite.any():
        return None
    if not finite.all():
        vol = np.where(finite, vol, np.float32(vol[finite].mean()))
    vol = vol - np.float32(vol.mean(dtype=np.float64))
    std = float(vol.std(dtype=np.float64))
    if not std > 0:
        return None
    return vol / np.float32(std) if normalize else vol


@dataclass
class Estimate:
    """One frame's result: ``shift`` (full-resolution voxels, ``frame[p + s] ~ template[p]``),
    the final-level correlation, flags and the correlation's effective voxels."""

    shift: np.ndarray
    quality: float
    flags: int
    neff: float
    #: the frame sampled at the final shift over ``box`` at the last level used (for the
    #: leave-one-out correlation of template frames; dropped once used)
    sampled: np.ndarray | None = None
    box: tuple[slice, ...] | None = None
    level: int = -1


class VolumeTemplate:
    """A template volume, its pyramid and its gradients per level."""

    def __init__(self, volume: np.ndarray, levels: list[VolumeLevel]) -> None:
        self.levels = levels
        self.images: list[np.ndarray] = []
        self.gradients: list[tuple[np.ndarray, ...]] = []
        for level in levels:
            img = downsample(volume.astype(np.float32, copy=False), level.factors)
            img = img - np.float32(img.mean(dtype=np.float64))
            self.images.append(img)
            self.gradients.append(tuple(g.astype(np.float32) for g in np.gradient(img)))


def _box(shape: tuple[int, ...], shift: np.ndarray) -> tuple[slice, ...] | None:
    """Voxels p with ``p + shift`` inside the volume (with the spline margin); None if empty."""
    box = []
    for n, s in zip(shape, shift):
        lo = max(0, math.ceil(MARGIN - s))
        hi = min(n - 1, math.floor(n - 1 - MARGIN - s))
        if hi < lo:
            return None
        box.append(slice(lo, hi + 1))
    return tuple(box)


def _bspline_weights(f: float) -> tuple[float, float, float, float]:
    """Cubic B-spline weights of the coefficients at offsets -1, 0, 1, 2 for a sample at ``f`` in [0, 1)."""
    g = 1.0 - f
    return (
        g**3 / 6.0,
        (4.0 - 6.0 * f * f + 3.0 * f**3) / 6.0,
        (1.0 + 3.0 * f + 3.0 * f * f - 3.0 * f**3) / 6.0,
        f**3 / 6.0,
    )


def _sample(coeffs: np.ndarray, shift: np.ndarray, box: tuple[slice, ...]) -> np.ndarray:
    """``frame[p + shift]`` for p in ``box``, from the frame's cubic spline coefficients
    (prefiltered with ``mode="nearest"``).

    A translation samples separably: per axis, the whole-voxel part is
    slicing and the fraction four weighted slices (12 taps per voxel, not
    the 64 of a 3-D cubic kernel). Coefficients beyond the volume repeat its
    edge, as the prefilter's ``"nearest"`` mode assumes.
    """
    whole = np.floor(shift).astype(int)
    frac = shift - whole
    # coefficient indices box.start + k - 1 ... box.stop - 1 + k + 2 along each axis, edge-clamped
    index = [
        np.clip(np.arange(sl.start + k - 1, sl.stop + k + 2), 0, n - 1) for sl, k, n in zip(box, whole, coeffs.shape)
    ]
    out = coeffs
    for axis, (idx, f) in enumerate(zip(index, frac)):
        lo, hi = int(idx[0]), int(idx[-1])
        if lo == idx[0] and hi - lo + 1 == idx.size and np.all(np.diff(idx) == 1):
            part = out[(slice(None),) * axis + (slice(lo, hi + 1),)]
        else:
            part = np.take(out, idx, axis=axis)
        m = part.shape[axis] - 3
        w = _bspline_weights(float(f))

        def tap(j: int, part: np.ndarray = part, axis: int = axis, m: int = m) -> np.ndarray:
            return part[(slice(None),) * axis + (slice(j, j + m),)]

        out = w[0] * tap(0) + w[1] * tap(1) + w[2] * tap(2) + w[3] * tap(3)
        out = out.astype(np.float32, copy=False)
    return out


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean(dtype=np.float64)
    b = b - b.mean(dtype=np.float64)
    den = math.sqrt(float(np.vdot(a, a)) * float(np.vdot(b, b)))
    return float(np.vdot(a, b)) / den if den > 0 else float("nan")


def coarse_search(frame: np.ndarray, template: np.ndarray, bound: tuple[int, ...]) -> np.ndarray | None:
    """The integer ``s`` (``frame[p + s] ~ template[p]``) within ``+/- bound`` with the best
    ``ncc * sqrt(overlap fraction)``; None when no shift leaves enough overlap."""
    shape = frame.shape
    size = [sfft.next_fast_len(2 * n, real=True) for n in shape]
    axes = (0, 1, 2)

    def spec(a: np.ndarray) -> np.ndarray:
        return sfft.rfftn(a.astype(np.float64), s=size, axes=axes)

    def corr(a_spec: np.ndarray, b_spec: np.ndarray) -> np.ndarray:
        # c[s] = sum_p a[p] b[p + s]
        return sfft.irfftn(np.conj(a_spec) * b_spec, s=size, axes=axes)

    ones = np.ones(shape)
    f_spec, f2_spec, one_spec = spec(frame), spec(frame.astype(np.float64) ** 2), spec(ones)
    t_spec, t2_spec = spec(template), spec(template.astype(np.float64) ** 2)
    grids = [np.arange(-b, b + 1) % m for b, m in zip(bound, size)]
    ix = np.ix_(*grids)
    num = corr(t_spec, f_spec)[ix]
    count = np.rint(corr(one_spec, one_spec)[ix])
    sum_f = corr(one_spec, f_spec)[ix]
    sum_f2 = corr(one_spec, f2_spec)[ix]
    sum_t = corr(t_spec, one_spec)[ix]
    sum_t2 = corr(t2_spec, one_spec)[ix]
    with np.errstate(invalid="ignore", divide="ignore"):
        var_f = sum_f2 - sum_f**2 / count
        var_t = sum_t2 - sum_t**2 / count
        ncc = (num - sum_f * sum_t / count) / np.sqrt(np.maximum(var_f * var_t, 1e-30))
    fraction = count / float(np.prod(shape))
    score = np.where((fraction >= MIN_OVERLAP) & (var_f > 0) & (var_t > 0), ncc * np.sqrt(fraction), -np.inf)
    if not np.isfinite(score).any():
        return None
    best = np.unravel_index(int(np.argmax(score)), score.shape)
    return np.array([int(best[i]) - bound[i] for i in range(3)], dtype=np.float64)


def _normal_equations(
    tpl: np.ndarray, grads: list[np.ndarray], sampled: np.ndarray, normalize: bool
) -> tuple[np.ndarray, np.ndarray]:
    """``J J^T`` and ``J r`` of one Gauss-Newton step, summed in float64 over slabs of planes.

    The Jacobian rows are the template (the gain; with ``normalize``), ones (the offset) and the
    three negated template gradients; the residual is the sampled frame (minus the template
    without ``normalize``). Slabs of at most :data:`SLAB_VOXELS` voxels keep the float64 rows
    small: memory does not grow with the volume (a whole-volume Jacobian held ~20 volumes).
    """
    n_par = 5 if normalize else 4
    hess = np.zeros((n_par, n_par))
    rhs = np.zeros(n_par)
    per = max(1, SLAB_VOXELS // max(1, sampled[0].size))
    for z0 in range(0, sampled.shape[0], per):
        sl = slice(z0, z0 + per)
        t = tpl[sl].ravel().astype(np.float64)
        g = [-gr[sl].ravel().astype(np.float64) for gr in grads]
        f = sampled[sl].ravel().astype(np.float64)
        if normalize:
            jac = np.stack([t, np.ones_like(t), *g])
            target = f
        else:
            jac = np.stack([np.ones_like(t), *g])
            target = f - t
        hess += jac @ jac.T
        rhs += jac @ target
    return hess, rhs


class VolumeEstimator:
    """Estimates frames against one :class:`VolumeTemplate`.

    ``bound`` is the ``max_movement`` bound per axis (full-resolution voxels);
    ``last`` the number of levels used (all by default; template building
    stops one short).
    """

    def __init__(self, template: VolumeTemplate, bound: tuple[float, float, float], normalize: bool) -> None:
        self.template = template
        self.bound = bound
        self.normalize = normalize

    def estimate(self, volume: np.ndarray | None, *, n_levels: int | None = None) -> Estimate:
        """Estimate one prepared volume (from :func:`prepare_volume`; None = unusable).

        The exhaustive search runs at the first level; when the refinement
        then loses the match (a wrong coarse peak: the first level is too
        coarse for this content or noise), the search is made again one level
        finer, down to the last but one level.
        """
        if volume is None:
            return Estimate(np.full(3, np.nan), float("nan"), FLAG_UNUSABLE, float("nan"))
        n_levels = len(self.template.levels) if n_levels is None else n_levels
        est = self._estimate_from(volume, 0, n_levels)
        start = 1
        while est.flags & FLAG_FAILED and start < max(n_levels - 1, 1):
            est = self._estimate_from(volume, start, n_levels)
            start += 1
        return est

    def _estimate_from(self, volume: np.ndarray, start: int, n_levels: int) -> Estimate:
        """Search at level ``start``, refine at it and every finer level up to ``n_levels``."""
        nan3 = np.full(3, np.nan)
        levels = self.template.levels
        first = levels[start]
        img0 = downsample(volume, first.factors)
        bound0 = tuple(max(1, int(b // f)) for b, f in zip(self.bound, first.factors))
        bound0 = tuple(min(b, n - 1) for b, n in zip(bound0, img0.shape))
        s = coarse_search(img0, self.template.images[start], bound0)
        if s is None:
            return Estimate(nan3, float("nan"), FLAG_FAILED, float("nan"))
        flags = 0
        quality = float("nan")
        step = 0.0
        prev_factors = first.factors
        neff = float("nan")
        sampled, box = None, None
        for i in range(start, n_levels):
            level = levels[i]
            s = s * np.array(prev_factors, float) / np.array(level.factors, float)
            prev_factors = level.factors
            img = img0 if i == start else downsample(volume, level.factors)
            last = i == n_levels - 1
            result = self._refine(img, i, s, FINE_ITERATIONS if last else COARSE_ITERATIONS, FINE_TOL if last else 0.0)
            if result is None:
                return Estimate(s * np.array(level.factors, float), float("nan"), flags | FLAG_FAILED, float("nan"))
            s, quality, step, sampled, box = result
            if last:
                neff = self._effective_voxels(sampled, i, box)
        full = s * np.array(prev_factors, float)
        if step > CONVERGED_STEP:
            flags |= FLAG_NOT_CONVERGED
        if any(abs(v) >= b - BOUND_TOL for v, b in zip(full, self.bound)):
            flags |= FLAG_AT_EDGE
        return Estimate(full, quality, flags, neff, sampled, box, n_levels - 1)

    def _refine(
        self, img: np.ndarray, level: int, s: np.ndarray, iterations: int, tol: float
    ) -> tuple[np.ndarray, float, float, np.ndarray, tuple[slice, ...]] | None:
        """Gauss-Newton steps from ``s``: (s, ncc, last step, sampled frame, box), None when lost."""
        tpl = self.template.images[level]
        grads = self.template.gradients[level]
        coeffs = ndimage.spline_filter(img, order=3, mode="nearest", output=np.float32)
        n_total = tpl.size
        step = np.inf
        sampled = None
        box = None
        for _ in range(max(iterations, 1)):
            box = _box(tpl.shape, s)
            if box is None or math.prod(b.stop - b.start for b in box) < MIN_OVERLAP * n_total:
                return None
            sampled = _sample(coeffs, s, box)
            hess, rhs = _normal_equations(tpl[box], [gr[box] for gr in grads], sampled, self.normalize)
            try:
                sol = np.linalg.solve(hess, rhs)
            except np.linalg.LinAlgError:
                return None
            if self.normalize:
                gain = sol[0]
                if not gain > 0:
                    return None
                delta = sol[2:] / gain
            else:
                delta = sol[1:]
            if not np.all(np.isfinite(delta)):
                return None
            s = s + delta
            step = float(np.linalg.norm(delta))
            if step < tol:
                break
        quality = _ncc(sampled, tpl[box])
        return s, quality, step, sampled, box

    def _effective_voxels(self, sampled: np.ndarray, level: int, box: tuple[slice, ...]) -> float:
        """Effective independent voxels of the correlation with the template (Bartlett), as the
        2-D engine's ``effective_pixels``: the frame's spectrum made isotropic (geometric mean per
        shell of frequencies times ``exp(euler_gamma)``) against the template's own."""
        tpl = self.template.images[level][box].astype(np.float64)
        frm = sampled.astype(np.float64)
        tpl = tpl - tpl.mean()
        frm = frm - frm.mean()
        spec_t = np.abs(sfft.rfftn(tpl)) ** 2
        spec_f = np.abs(sfft.rfftn(frm)) ** 2
        freqs = np.meshgrid(
            *[sfft.fftfreq(n) for n in tpl.shape[:-1]], sfft.rfftfreq(tpl.shape[-1]), indexing="ij", sparse=True
        )
        radius = np.sqrt(sum(f**2 for f in freqs))
        n_rings = max(min(tpl.shape) // 2, 2)
        rings = np.minimum((radius / radius.max() * n_rings).astype(int), n_rings).ravel()
        counts = np.bincount(rings, minlength=n_rings + 1)
        logs = np.bincount(rings, weights=np.log(np.maximum(spec_f, 1e-30)).ravel(), minlength=n_rings + 1)
        ring_level = np.exp(logs / np.maximum(counts, 1) + np.euler_gamma)
        spec_n = ring_level[rings].reshape(spec_t.shape)
        spec_t[(0,) * spec_t.ndim] = 0.0
        spec_n[(0,) * spec_n.ndim] = 0.0
        den = float(np.sum(spec_t * spec_n))
        if not den > 0:
            return float("nan")
        return float(np.sum(spec_t) * np.sum(spec_n) / den)
