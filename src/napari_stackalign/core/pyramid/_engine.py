"""The per-frame machinery of pyramid registration.

- :class:`PyramidEstimator` holds one template at every pyramid level and
  estimates a frame's translation: an exhaustive overlap-normalised
  correlation search at the first (coarsest) level, then Gauss-Newton
  (Lucas-Kanade) refinement at every level, ending sub-pixel at the last.
- :func:`run_frames` reads frames chunk by chunk, estimates them in a thread
  pool, and optionally accumulates the registered frames into a new template.

Levels live in :mod:`._levels`, frame preparation in :mod:`._frames`,
templates in :mod:`._template` (re-exported here).

Shift convention inside this module: ``s`` with ``frame[p + s] ~ template[p]``
(the correction is ``-s``).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple

import cv2
import numpy as np
from scipy import sparse

from ...progress import ProgressCallback, report
from ..fourier import power_spectrum
from ._frames import FramePreparer, FrameWeights, PreparedFrame
from ._levels import MIN_LEVEL_POWER, MIN_LEVEL_SIZE, MIN_SEARCH_SIZE, Levels, level_power
from ._lucas_kanade import DEFAULT_KERNEL, LKTemplate
from ._ncc_search import NCCSearch, SearchResult
from ._template import Registered, Template, TemplateAccumulator
from ._trajectory import Trajectory

__all__ = [
    "FLAG_AT_EDGE",
    "FLAG_FAILED",
    "FLAG_NOT_CONVERGED",
    "FLAG_TURNED",
    "FLAG_UNUSABLE",
    "MIN_LEVEL_POWER",
    "MIN_LEVEL_SIZE",
    "Estimate",
    "FramePreparer",
    "FrameResults",
    "FrameRun",
    "FrameWeights",
    "Levels",
    "PreparedFrame",
    "PyramidEstimator",
    "Registered",
    "Template",
    "TemplateAccumulator",
    "level_power",
    "run_frames",
]

#: the frame has no usable pixels (constant, all NaN or all masked)
FLAG_UNUSABLE = 1
#: the coarse match lies on the edge of the allowed search range
FLAG_AT_EDGE = 2
#: the sub-pixel refinement failed at the last level
FLAG_FAILED = 4
#: the sub-pixel refinement did not converge at the last level
FLAG_NOT_CONVERGED = 8
#: the frame turns against the template too far for its translation to be corrected to the centre's
#: (:attr:`._lucas_kanade.LKResult.uncorrected` over ``TURNED_OFF_PX``)
FLAG_TURNED = 16


# -------------------------------------------------------------- estimator
#: coarse peaks within this share of the best are re-scored before choosing
AMBIGUITY = 0.5
#: at most this many coarse peaks are re-scored (the best, then those nearest the prior)
CANDIDATES = 8
#: peaks within this share of the best count as equally good
TIE = 0.05
#: Gauss-Newton settings: (max iterations, tolerance in level px) for the
#: intermediate levels and for the last level
COARSE_ITER = (2, 0.1)
FINAL_ITER = (4, 0.02)
#: frames estimated together when following a trajectory (see ``run_frames``).
#: Small, so the expected shift is at most 2-3 frames old: with batches of 8
#: the last frame of a batch expected the median of frames 8-15 before it,
#: and a lattice that moved about half a period (4 px for an 8 px period) in
#: that time hopped one period (the benchmark's lattice cases at 100 frames,
#: seed 1: frame 95 off by 7.9 px)
FOLLOW_BATCH = 2
#: a shift within this (full-resolution px) of the max_movement bound is at the bound
BOUND_TOL = 0.05
#: the last update must be below this (px) for the frame to count as converged
CONVERGED_STEP = 0.05
#: a turned frame whose uncorrected translation may be this far (full-resolution px) from its centre's is
#: flagged (``FLAG_TURNED``). Grid seed 1004, case 23 (a 1024x320 camera crop turning by up to 1.1 degrees,
#: at SNR 20): the three frames turning most were 2.2-3.9 px off and marked ok
TURNED_OFF_PX = 0.5


#: a lattice whose first-order frequencies exceed this (cycles per level pixel, either axis) is fine at
#: that level: two-point differences have a gain below 0.76 there and Gauss-Newton overshoots by more
#: than 1.3 (beyond 2, it diverges: 6 px lattices at the 1/2 level lost the match), so the template's
#: gradients take the sixth-order filter (``WIDE_DERIVATIVE``, see ``_lucas_kanade.DERIVATIVE_TAPS``)
FINE_LATTICE = 0.2
#: the derivative filter's half support at the levels of a fine lattice
WIDE_DERIVATIVE = 3


def fine_lattice_levels(template: Template, scales: Any, levels: Any) -> set[int]:
    """The ``levels`` (indices into ``scales``, level px per full-resolution px) at which the
    template's lattice (if any, :func:`~._periodic.detect_lattice`) is finer than ``FINE_LATTICE``."""
    from ._periodic import detect_lattice  # the lattice module builds on this one

    lattice = detect_lattice(template)
    if lattice is None:
        return set()
    # reciprocal vectors (cycles per full-resolution px, (fy, fx)) and the first-order Bragg peaks: both,
    # and the shorter of their sum and difference when it is no longer than them (hexagonal lattices)
    recip = np.linalg.inv(np.asarray(lattice.vectors, np.float64)).T
    peaks = [recip[0], recip[1]]
    other = min((recip[0] + recip[1], recip[0] - recip[1]), key=lambda v: float(np.hypot(*v)))
    if np.hypot(*other) <= 1.01 * max(np.hypot(*recip[0]), np.hypot(*recip[1])):
        peaks.append(other)
    peaks = np.array(peaks)
    fy, fx = float(np.abs(peaks[:, 0]).max()), float(np.abs(peaks[:, 1]).max())
    return {int(i) for i in levels if max(fy / scales[i][0], fx / scales[i][1]) > FINE_LATTICE}


class Estimate(NamedTuple):
    shift: tuple[float, float]  # full-resolution px, frame[p + s] ~ template[p]
    quality: float
    flags: int
    #: independent pixels of the last level's correlation (NaN: unknown), see
    #: :meth:`PyramidEstimator.effective_pixels`
    neff: float = float("nan")
    #: the frame's turn against the template about its centre, measured at the last level (radians;
    #: NaN: not measured), see :attr:`~._lucas_kanade.LKResult.turn`
    turn: float = float("nan")


class PyramidEstimator:
    """Coarse-to-fine translation estimation of frames against one template.

    Parameters
    ----------
    template : Template
        Full-resolution template of the compared area.
    levels : Levels
        Pyramid geometry (rates in visiting order, coarse to fine).
    max_movement : float
        Fraction of the frame size searched, split over +/-: no shift beyond
        ``+/- max_movement * size / 2`` (full-resolution px, per axis) is
        ever returned, at any level; one that reaches it is flagged
        ``FLAG_AT_EDGE``.
    kernel : str
        Interpolation kernel of the sub-pixel step (see ``KERNELS``).
    fit_gain : bool
        Fit a gain per frame in the sub-pixel step.
    upto : int, optional
        Use only the levels ``levels.rates[:upto]`` (template building stops
        before full resolution).
    with_neff : bool
        Measure each frame's effective pixels (``Estimate.neff``, what the
        trust tests need); False leaves it NaN (template building, which
        only needs the shifts, saves one FFT per frame).

    Notes
    -----
    Levels whose band holds less than ``MIN_LEVEL_POWER`` of the template's
    signal power, or whose shorter side is under ``MIN_SEARCH_SIZE`` px, are
    skipped (the last level is always used, and with ``upto`` it is moved to
    the first level large enough); the exhaustive search runs at the first
    level used.
    """

    def __init__(
        self,
        template: Template,
        levels: Levels,
        max_movement: float,
        *,
        kernel: str = DEFAULT_KERNEL,
        fit_gain: bool = True,
        upto: int | None = None,
        with_neff: bool = True,
    ) -> None:
        self.levels = levels
        #: whether :meth:`estimate` measures the effective pixels (``Estimate.neff``)
        self.with_neff = with_neff
        h, w = levels.shape
        #: the largest shift per axis (full-resolution px)
        self.bound = (max_movement * h / 2.0, max_movement * w / 2.0)
        self.fit_gain = fit_gain
        self.kernel = kernel
        n_levels = len(levels.rates) if upto is None else max(1, min(upto, len(levels.rates)))
        shapes = levels.shapes
        # the last level is always used: not one too small to search when a finer one is allowed
        while n_levels < len(levels.rates) and min(shapes[n_levels - 1]) < MIN_SEARCH_SIZE:
            n_levels += 1
        scales = levels.scales
        power = level_power(template.image, template.valid, scales[:n_levels])
        self.level_power = power
        self.active = [
            i
            for i in range(n_levels)
            if (power[i] >= MIN_LEVEL_POWER and min(shapes[i]) >= MIN_SEARCH_SIZE) or i == n_levels - 1
        ]
        needed = set(self.active)
        t_levels = levels.build(template.image, needed)
        v_levels = None
        if template.valid is not None:
            v_levels = levels.build(template.valid.astype(np.float32), needed)
        self._lk: dict[int, LKTemplate] = {}
        #: the levels whose template holds a lattice finer than ``FINE_LATTICE`` cycles per level pixel
        self.fine_lattice_levels = fine_lattice_levels(template, scales, self.active)
        for i in self.active:
            t = t_levels[i]
            v = None if v_levels is None else v_levels[i] >= 0.999
            if v is not None:
                t = np.where(v, t, np.float32(0)).astype(np.float32)
            if i == self.active[0]:
                sc = scales[i]
                bound = (int(np.floor(self.bound[0] * sc[0] + 1e-9)), int(np.floor(self.bound[1] * sc[1] + 1e-9)))
                self._search = NCCSearch(t, bound)
            radius = WIDE_DERIVATIVE if i in self.fine_lattice_levels else 1
            # the last level's shift is the translation of the template's centre, also when frames turn
            self._lk[i] = LKTemplate(t, v, kernel=kernel, derivative_radius=radius, rotation=i == self.active[-1])
        last = self.active[-1]
        t = self._lk_image(t_levels[last], None if v_levels is None else v_levels[last] >= 0.999)
        spec = power_spectrum(t)
        spec[0, 0] = 0
        self._spectra = {last: (spec, float(spec.sum()))}
        self._rings = {last: _RingSums(t.shape, spec)}
        self._valid = {} if v_levels is None else {last: v_levels[last] >= 0.999}
        self._masks = {level: _mask_weights(v) for level, v in self._valid.items()}

    @staticmethod
    def _lk_image(t: np.ndarray, v: np.ndarray | None) -> np.ndarray:
        """The zero-mean template over its valid pixels (0 elsewhere)."""
        t = t.astype(np.float32)
        if v is None:
            return t - np.float32(t.mean())
        n = max(int(v.sum()), 1)
        mean = float(np.where(v, t, 0).sum()) / n
        return np.where(v, t - np.float32(mean), np.float32(0)).astype(np.float32)

    @property
    def active_rates(self) -> list[float]:
        return [self.levels.rates[i] for i in self.active]

    def lk_template(self, level: int) -> LKTemplate:
        """The sub-pixel refinement's template at ``level`` (one of :attr:`active`)."""
        return self._lk[level]

    def _first_level(
        self, image: np.ndarray, frame: PreparedFrame, prior: tuple[float, float] = (0.0, 0.0)
    ) -> SearchResult | None:
        """Exhaustive search at the first level used.

        Peaks are ranked by significance: correlation times the square root
        of the overlap fraction, so small overlaps do not win on noise. When
        other peaks come within ``AMBIGUITY`` of the best (periodic content
        such as a lattice has many equally good peaks one period apart), each
        is re-scored by the correlation of the frame sampled at its sub-pixel
        position (one Gauss-Newton iteration at this level: a peak that falls
        between pixels is not undervalued). Going from the peak nearest
        ``prior`` (level px; the expected shift, that of the previous frames)
        outwards, the first one whose significance is within ``TIE``
        (relative) of the best, or within ``5 / sqrt(pixels)`` (about three
        noise standard deviations of a correlation over this level, whose
        noise is correlated over ~2 px), wins.
        """
        found = self._search.candidates(image, within=AMBIGUITY, limit=CANDIDATES, prior=prior)
        if len(found) <= 1:
            return found[0] if found else None
        i = self.active[0]
        weights = None if frame.weights is None else frame.weights.eroded(i)
        margin_floor = 5.0 / np.sqrt(image.size)

        def rescored(cand: SearchResult) -> tuple[float, SearchResult]:
            res = self._lk[i].refine(image, cand.shift, weights=weights, max_iter=1, tol=0.0, fit_gain=self.fit_gain)
            moved = np.hypot(res.shift[0] - cand.shift[0], res.shift[1] - cand.shift[1])
            if res.failed or not np.isfinite(res.ncc) or moved > 1.5:
                return self._search.significance(cand.score, cand.shift), cand
            return self._search.significance(res.ncc, cand.shift), SearchResult(res.shift, res.ncc, cand.at_edge)

        best = found[0]
        top, best_refined = rescored(best)
        by_prior = sorted(found, key=lambda c: (c.shift[0] - prior[0]) ** 2 + (c.shift[1] - prior[1]) ** 2)
        for cand in by_prior:
            if cand is best:
                return best_refined
            z, refined = rescored(cand)
            top = max(top, z)
            if z >= top - max(TIE * abs(top), margin_floor):
                return refined
        return best_refined

    def estimate(
        self,
        frame: PreparedFrame,
        init: tuple[float, float] | None = None,
        init_level: int = -1,
        prior: tuple[float, float] = (0.0, 0.0),
    ) -> Estimate:
        """Estimate one frame.

        Parameters
        ----------
        frame : PreparedFrame
            The frame.
        init : (float, float), optional
            A full-resolution estimate from an earlier pass (against a
            template in the same coordinates); then the search and the levels
            up to ``init_level`` are skipped.
        init_level : int
            Index (into ``levels.rates``) of the finest level ``init`` was
            refined at.
        prior : (float, float)
            Expected full-resolution shift: of equally good matches (periodic
            content), the one nearest this is chosen.

        Returns
        -------
        Estimate
            Shift ``s`` (full-resolution px; ``frame[p + s] ~ template[p]``),
            quality (normalised correlation at the last level), flags and
            the effective pixels ``neff`` (NaN unless ``with_neff``).
        """
        est, neff = self.estimate_deferred(frame, init, init_level, prior)
        return est if neff is None else est._replace(neff=neff())

    def estimate_deferred(
        self,
        frame: PreparedFrame,
        init: tuple[float, float] | None = None,
        init_level: int = -1,
        prior: tuple[float, float] = (0.0, 0.0),
    ) -> tuple[Estimate, Callable[[], float] | None]:
        """:meth:`estimate` with the effective pixels left to the caller: the
        estimate (``neff`` NaN) and, with ``with_neff`` and a measured
        frame, what computes its ``neff`` (a call with no arguments that
        holds no lock: it may run in another thread, beside the next frame's
        estimate)."""
        if not frame.usable:
            return Estimate((0.0, 0.0), float("nan"), FLAG_UNUSABLE), None
        levels = self.levels
        scales = levels.scales
        todo = self.active
        if init is not None:
            later = [i for i in self.active if i > init_level]
            todo = later if later else self.active[-1:]
        imgs = levels.build(frame.image, set(todo))
        first = todo[0]
        head = imgs[first]
        low, high = cv2.minMaxLoc(head)[:2]  # one pass over the image
        if not high > low:
            return Estimate((0.0, 0.0), float("nan"), FLAG_UNUSABLE), None
        flags = 0
        if init is None:
            sc = scales[first]
            found = self._first_level(head, frame, (prior[0] * sc[0], prior[1] * sc[1]))
            if found is None:
                return Estimate((0.0, 0.0), float("nan"), FLAG_FAILED), None
            if found.at_edge:
                flags |= FLAG_AT_EDGE
            sy, sx = found.shift
        else:
            sy, sx = init[0] * scales[first][0], init[1] * scales[first][1]
        quality = float("nan")
        turn = float("nan")
        prev = first
        last_level = todo[-1]
        for i in todo:
            if i != prev:
                sy *= scales[i][0] / scales[prev][0]
                sx *= scales[i][1] / scales[prev][1]
                prev = i
            last = i == last_level
            weights = None if frame.weights is None else frame.weights.eroded(i)
            max_iter, tol = FINAL_ITER if last else COARSE_ITER
            res = self._lk[i].refine(imgs[i], (sy, sx), weights=weights, max_iter=max_iter, tol=tol, fit_gain=self.fit_gain)
            # at the last level the shift is the centre's translation (the translation-only fit of a
            # frame that turns settles where the template's detail is, pixels away when it turns far)
            ey, ex = (res.shift[0] + res.centre[0], res.shift[1] + res.centre[1]) if last else res.shift
            # a refinement that fails, or wanders more than ~2 level pixels from its start (both the
            # translation-only fit and the centre's: a start from a coarser level's centre lies between
            # them), has lost the match: keep the coarser answer
            wander = min(np.hypot(ey - sy, ex - sx), np.hypot(res.shift[0] - sy, res.shift[1] - sx))
            if res.failed or wander > 2.0:
                if last:
                    flags |= FLAG_FAILED
                continue
            sy, sx = ey, ex
            # max_movement holds at every level
            by, bx = self.bound[0] * scales[i][0], self.bound[1] * scales[i][1]
            sy, sx = min(max(sy, -by), by), min(max(sx, -bx), bx)
            if last:
                quality = res.ncc
                turn = res.turn
                if res.step > CONVERGED_STEP:
                    flags |= FLAG_NOT_CONVERGED
                if res.uncorrected > TURNED_OFF_PX * min(scales[i]):
                    flags |= FLAG_TURNED
        shift = (sy / scales[prev][0], sx / scales[prev][1])
        if abs(shift[0]) >= self.bound[0] - BOUND_TOL or abs(shift[1]) >= self.bound[1] - BOUND_TOL:
            flags |= FLAG_AT_EDGE
        estimate = Estimate(shift, quality, flags, turn=turn)
        if not self.with_neff:
            return estimate, None
        image = imgs[last_level]
        return estimate, lambda: self.effective_pixels(image, frame, last_level)

    @staticmethod
    def _neff(var_t: float, ring_level: np.ndarray, rings: _RingSums) -> float:
        """``var_t var_f / cross`` (NaN unless all three are positive), ``P_N`` being ``ring_level``."""
        # P_N is ring_level over each ring, 0 at the zero frequency (whose
        # template power is 0 already): the sums run over the rings
        var_f = float(ring_level @ rings.counts) - float(ring_level[rings.zero_ring])
        cross = float(ring_level @ rings.power)
        if not (var_t > 0 and var_f > 0 and cross > 0):
            return float("nan")
        return var_t * var_f / cross

    def effective_pixels(self, image: np.ndarray, frame: PreparedFrame, level: int) -> float:
        """Effective pixels of the correlation of ``image`` (the frame at
        ``level``) with the template there.

        The correlation of the template (power spectrum ``P_T``) with
        unrelated noise of power spectrum ``P_N`` has variance
        ``sum(P_T P_N) / (sum(P_T) sum(P_N))`` (Bartlett): its inverse is the
        number of independent pixels the correlation averages over. ``P_N``
        is the frame's own spectrum made isotropic (the geometric mean over
        each ring of frequencies, times ``exp(euler_gamma)``, the mean of an
        exponential periodogram): coloured noise keeps its colour, while
        sparse peaks (a lattice's Bragg peaks, the signal itself) barely
        count. NaN: unknown.
        """
        rings = self._rings[level]
        return self._neff(self._spectra[level][1], rings.levels(power_spectrum(self._compared(image, frame, level))), rings)

    def _compared(self, image: np.ndarray, frame: PreparedFrame, level: int) -> np.ndarray:
        """``image`` (the frame at ``level``) as its effective pixels see it:
        zero-mean over the pixels compared, 0 elsewhere."""
        valid = self._valid.get(level)
        img = image.astype(np.float32, copy=False)
        if frame.weights is not None:
            w = frame.weights.eroded(level)
            if w is not None:
                valid = (w > 0) if valid is None else (valid & (w > 0))
        if valid is None:
            return img - np.float32(img.mean())
        # the mean as one dot product with the 0/1 mask, then two in-place passes: 4x faster than numpy's
        # where at 512x512 (OpenCV's masked mean is slower still)
        cached = self._masks.get(level) if valid is self._valid.get(level) else None
        weights, n = cached if cached is not None else _mask_weights(valid)
        if n == 0:
            return np.zeros_like(img)
        img = np.ascontiguousarray(img)
        mean = float(np.dot(img.ravel(), weights.ravel())) / n
        out = np.subtract(img, np.float32(mean))
        return np.multiply(out, weights, out=out)


def _mask_weights(valid: np.ndarray) -> tuple[np.ndarray, int]:
    """``valid`` as float32 0/1 weights, and how many pixels it holds."""
    return np.ascontiguousarray(valid, dtype=np.float32), int(np.count_nonzero(valid))


class _RingSums:
    """Rings of frequencies of an (h, w) real FFT (``floor(|f| min(h, w))``)
    and the template's power summed over each.

    :meth:`levels` gives a spectrum's isotropic level per ring: the geometric
    mean of its power over the ring times ``exp(euler_gamma)`` (the mean of
    an exponential periodogram). The ring sums are one sparse
    matrix-vector product and the logarithms OpenCV's (float32, 4x faster
    than numpy's): per frame 0.36 ms instead of 0.42 ms at 256x256, 1.3 ms
    instead of 1.6 ms at 512x512 (the same values to 4e-6, relative).
    """

    def __init__(self, shape: tuple[int, int], template_power: np.ndarray) -> None:
        fy = np.abs(np.fft.fftfreq(shape[0]))[:, None]
        fx = np.fft.rfftfreq(shape[1])[None, :]
        rings = np.floor(np.hypot(fy, fx) * min(shape)).astype(np.int64).ravel()
        n_rings = int(rings.max()) + 1
        #: (n_rings, frequencies) 0/1: which frequencies each ring holds
        self.matrix = sparse.csr_matrix(
            (np.ones(rings.size, np.float32), (rings, np.arange(rings.size))), shape=(n_rings, rings.size)
        )
        #: frequencies per ring
        self.counts = np.bincount(rings, minlength=n_rings).astype(np.float64)
        #: the ring of the zero frequency
        self.zero_ring = int(rings[0])
        #: the template's power summed over each ring (``sum(P_T P_N)`` is
        #: then one dot product, ``P_N`` being constant over a ring)
        self.power = self.matrix @ template_power.ravel().astype(np.float64)

    def levels(self, power: np.ndarray) -> np.ndarray:
        """The isotropic level per ring of ``power`` (float32, a real FFT's
        power spectrum, :func:`~napari_stackalign.core.fourier.power_spectrum`)."""
        logs = cv2.log(np.maximum(power, np.float32(1e-30)))
        sums = self.matrix @ logs.ravel()
        return np.exp(sums.astype(np.float64) / np.maximum(self.counts, 1.0) + np.euler_gamma)


# ------------------------------------------------------------------- loop
@dataclass
class FrameResults:
    shifts: np.ndarray  # (n, 2) s per frame
    quality: np.ndarray  # (n,)
    flags: np.ndarray  # (n,) int
    neff: np.ndarray | None = None  # (n,) see Estimate (NaN: unknown)
    turn: np.ndarray | None = None  # (n,) radians, see Estimate (NaN: not measured)

    def __post_init__(self) -> None:
        if self.neff is None:
            self.neff = np.full(len(self.quality), np.nan)
        if self.turn is None:
            self.turn = np.full(len(self.quality), np.nan)


def _read(stack: Any, idx: np.ndarray) -> np.ndarray:
    """Frames ``idx`` (one slice read when they are consecutive)."""
    if idx.size and idx[-1] - idx[0] == idx.size - 1 and np.all(np.diff(idx) == 1):
        return np.asarray(stack[int(idx[0]) : int(idx[-1]) + 1])
    return np.stack([np.asarray(stack[int(i)]) for i in idx])


@dataclass
class FrameRun:
    """How :func:`run_frames` runs over its frames.

    Attributes
    ----------
    pool : executor or None
        Thread pool that estimates the frames (None: this thread).
    chunk_size : int
        Frames read at a time.
    progress : callable or None
        ``progress(done, total, stage)``.
    stage : str
        The stage reported.
    done_offset : int
        Progress is reported as ``done_offset + frames done`` of ``total``.
    total : int, optional
        Default: the number of frames of this run.
    init : ndarray (n, 2), optional
        One full-resolution start per frame (NaN for none), see
        :meth:`PyramidEstimator.estimate`.
    init_level : int
        The finest level ``init`` was refined at.
    prior : (float, float)
        The expected shift (decides between equally good matches of periodic
        content).
    follow : bool
        Estimate in batches of ``FOLLOW_BATCH``, each expecting the median
        shift of the previous one (template building); see
        :class:`~._trajectory.Trajectory`.
    trajectory : Trajectory, optional
        Follow this trajectory (implies ``follow``): frame ``j`` of the run
        is frame ``first + j`` of it, and the run records its estimates
        there, so consecutive runs follow one trajectory.
    first : int
        The trajectory's index of the run's first frame.
    accumulate : ndarray of bool, optional
        The frames that are also resampled and added to ``accumulator``.
    accumulator : TemplateAccumulator, optional
        The next template.
    """

    pool: Any
    chunk_size: int
    progress: ProgressCallback | None
    stage: str
    done_offset: int = 0
    total: int | None = None
    init: np.ndarray | None = None
    init_level: int = -1
    prior: tuple[float, float] = (0.0, 0.0)
    follow: bool = False
    trajectory: Trajectory | None = None
    first: int = 0
    accumulate: np.ndarray | None = None
    accumulator: TemplateAccumulator | None = None


class _FrameTask:
    """Estimates one frame ``(j, raw)`` of a run (what the thread pool maps)."""

    def __init__(self, preparer: FramePreparer, estimator: PyramidEstimator, run: FrameRun) -> None:
        self.preparer = preparer
        self.estimator = estimator
        self.init = run.init
        self.init_level = run.init_level
        self.keep = run.accumulate if run.accumulator is not None else None
        #: where the effective pixels are measured (None: in :meth:`PyramidEstimator.estimate`)
        self.measurer: _BackgroundNeff | None = None
        #: the expected shift (updated between batches when following)
        self.prior = (float(run.prior[0]), float(run.prior[1]))

    def __call__(self, args: tuple[int, np.ndarray]) -> tuple[Estimate, PreparedFrame | None]:
        j, raw = args
        prepared = self.preparer(raw)
        init = self.init
        start = None
        if init is not None and np.all(np.isfinite(init[j])):
            start = (float(init[j, 0]), float(init[j, 1]))
        if self.measurer is None:
            est = self.estimator.estimate(prepared, start, self.init_level, self.prior)
        else:
            est, later = self.estimator.estimate_deferred(prepared, start, self.init_level, self.prior)
            if later is not None:
                self.measurer.submit(j, later)
        keep = self.keep is not None and self.keep[j] and not est.flags & FLAG_UNUSABLE
        return est, prepared if keep else None


class _BackgroundNeff:
    """Measures the frames' effective pixels in one background thread while the
    next frames are estimated: it is one FFT and a few passes over the
    spectrum, mostly outside the GIL, the largest share of the final pass
    (512x512: about 0.8 of 1.3 ms a frame)."""

    def __init__(self, max_waiting: int) -> None:
        self.max_waiting = max_waiting
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stackalign-neff")
        self.waiting: list[tuple[int, Future]] = []
        self.done: list[tuple[int, float]] = []

    def submit(self, j: int, later: Callable[[], float]) -> None:
        """Measure frame ``j`` of the run with ``later``."""
        self.waiting.append((j, self.thread.submit(later)))

    def throttle(self) -> None:
        """Wait until at most ``max_waiting`` frames wait (their images are held)."""
        while len(self.waiting) > self.max_waiting:
            j, future = self.waiting.pop(0)
            self.done.append((j, future.result()))

    def collect(self, neff: np.ndarray) -> None:
        """Write every frame's measure into ``neff`` (and raise what the thread raised)."""
        for j, future in self.waiting:
            self.done.append((j, future.result()))
        self.waiting = []
        for j, value in self.done:
            neff[j] = value

    def shutdown(self) -> None:
        """Stop the thread (cancelling what has not started)."""
        self.thread.shutdown(wait=True, cancel_futures=True)


#: frames of at least this many pixels (at the last level) have their effective pixels measured in a
#: background thread. The final pass over 100 frames (anchors stacks, seed 7, one run on a shared machine):
#: 512x512 beads 170 -> 138 ms, camera 181 -> 122 ms; but 256x256 beads 46 -> 66 ms (the hand-over costs
#: more than the overlap gains)
BACKGROUND_NEFF_PIXELS = 2 * 256 * 256


def background_neff(estimator: PyramidEstimator, n_frames: int, max_waiting: int = 64) -> _BackgroundNeff | None:
    """Where ``n_frames`` frames estimated by ``estimator`` have their effective pixels measured: a
    background thread for frames of ``BACKGROUND_NEFF_PIXELS`` or more (None: inline, or not at all
    without ``with_neff``)."""
    h, w = estimator.levels.shapes[estimator.active[-1]]
    if estimator.with_neff and h * w >= BACKGROUND_NEFF_PIXELS and n_frames > 1:
        return _BackgroundNeff(max_waiting)
    return None


class _BackgroundAdder:
    """Resamples registered frames and adds them to the next template in one
    background thread, in frame order (so the sums, hence the template, are
    the same bits whatever the threads), while the next frames are estimated:
    resampling is one large OpenCV call that runs beside the GIL-bound
    estimation."""

    def __init__(self, accumulator: TemplateAccumulator, max_waiting: int) -> None:
        self.accumulator = accumulator
        self.max_waiting = max_waiting
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stackalign-template")
        self.added: list[Future] = []

    def _add(self, prepared: PreparedFrame, shift: tuple[float, float]) -> None:
        self.accumulator.add(self.accumulator.register(prepared, shift))

    def submit(self, prepared: PreparedFrame, shift: tuple[float, float]) -> None:
        """Add ``prepared``, registered with ``shift``, in the background."""
        self.added.append(self.thread.submit(self._add, prepared, shift))

    def throttle(self) -> None:
        """Wait until at most ``max_waiting`` frames wait (memory)."""
        while len(self.added) > self.max_waiting:
            self.added.pop(0).result()

    def wait(self) -> None:
        """Wait for every frame (and raise what the thread raised)."""
        for future in self.added:
            future.result()

    def shutdown(self) -> None:
        """Stop the thread (cancelling what has not started)."""
        self.thread.shutdown(wait=True, cancel_futures=True)


class _InlineAdder(_BackgroundAdder):
    """:class:`_BackgroundAdder`'s work done at once, in the calling thread
    (the same sums in the same order). For small frames the hand-over to a
    thread costs more than the overlap gains: template building, 100 frames
    of 256x256, 0.13 s with the background thread against 0.10 s without
    (512x512: 0.21-0.27 s against 0.22 s)."""

    def __init__(self, accumulator: TemplateAccumulator) -> None:
        self.accumulator = accumulator

    def submit(self, prepared: PreparedFrame, shift: tuple[float, float]) -> None:
        self._add(prepared, shift)

    def throttle(self) -> None:
        pass

    def wait(self) -> None:
        pass

    def shutdown(self) -> None:
        pass


#: frames of at most this many pixels are added to the next template in the estimating thread
INLINE_ADD_PIXELS = 512 * 512


def _adder(accumulator: TemplateAccumulator, shape: tuple[int, int], max_waiting: int) -> _BackgroundAdder:
    """The adder for frames of ``shape``: inline up to ``INLINE_ADD_PIXELS``, else in the background."""
    if shape[0] * shape[1] <= INLINE_ADD_PIXELS:
        return _InlineAdder(accumulator)
    return _BackgroundAdder(accumulator, max_waiting)


def _read_batch(stack: Any, indices: np.ndarray, b0: int, b1: int, chunk_size: int) -> np.ndarray:
    """Frames ``indices[b0:b1]``, read in pieces of at most ``chunk_size`` frames."""
    pieces = [_read(stack, indices[r0 : min(r0 + chunk_size, b1)]) for r0 in range(b0, b1, chunk_size)]
    return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)


def _estimate_batch(
    chunk: np.ndarray, b0: int, task: _FrameTask, pool: Any, out: FrameResults, adder: _BackgroundAdder | None
) -> None:
    """Estimate the frames of ``chunk`` (frames ``b0:`` of the run) into ``out``."""
    b1 = b0 + len(chunk)
    items = [(j, chunk[j - b0]) for j in range(b0, b1)]
    results = pool.map(task, items) if pool is not None else map(task, items)
    shifts, quality, flags = out.shifts, out.quality, out.flags
    for j, (est, prepared) in zip(range(b0, b1), results):
        shifts[j] = est.shift
        quality[j] = est.quality
        flags[j] = est.flags
        out.neff[j] = est.neff
        out.turn[j] = est.turn
        if prepared is not None and adder is not None:
            adder.submit(prepared, est.shift)


def _follow(
    chunk: np.ndarray,
    c0: int,
    task: _FrameTask,
    run: FrameRun,
    trajectory: Trajectory,
    out: FrameResults,
    adder: _BackgroundAdder | None,
) -> None:
    """Estimate the frames of ``chunk`` (frames ``c0:`` of the run) batch by batch of ``trajectory``,
    each batch expecting the trajectory's prior, and record them there."""
    c1 = c0 + len(chunk)
    b0 = c0
    while b0 < c1:
        b1 = min(trajectory.next_boundary(run.first + b0) - run.first, c1)
        task.prior = trajectory.prior(run.first + b0)
        _estimate_batch(chunk[b0 - c0 : b1 - c0], b0, task, run.pool, out, adder)
        usable = (out.flags[b0:b1] & (FLAG_UNUSABLE | FLAG_FAILED)) == 0
        for j in range(b0, b1):
            trajectory.record(run.first + j, out.shifts[j], bool(usable[j - b0]))
        b0 = b1


def run_frames(
    stack: Any,
    indices: np.ndarray,
    preparer: FramePreparer,
    estimator: PyramidEstimator,
    run: FrameRun,
) -> FrameResults:
    """Estimate the frames ``indices`` of ``stack``, chunk by chunk.

    ``run.prior`` is the expected shift (it only decides between equally good
    matches of periodic content; templates are centred so that 0 is right).
    Without ``run.follow`` or ``run.trajectory`` every frame gets it, so a
    frame's estimate depends on the frame, the template and its ``init``
    only. With them, frames are estimated in batches of ``FOLLOW_BATCH`` at
    fixed positions and each batch expects the median usable shift of the
    batch before (:class:`~._trajectory.Trajectory`), so a drifting lattice
    is followed across periods; the estimates then depend on the frames
    before, still never on the chunking or the thread that runs them.

    ``run.init`` (one full-resolution shift per index, NaN for none) starts
    frames from an earlier estimate (see :meth:`PyramidEstimator.estimate`).
    Frames where ``run.accumulate`` (bool per index) is True are also
    resampled with their estimate and added to ``run.accumulator`` (the next
    template). Progress is reported as ``run.done_offset + frames done`` of
    ``run.total``.
    """
    indices = np.asarray(indices, dtype=np.int64)
    n = indices.size
    total = n if run.total is None else run.total
    out = FrameResults(np.zeros((n, 2), np.float64), np.full(n, np.nan), np.zeros(n, np.int64))
    task = _FrameTask(preparer, estimator, run)
    trajectory = run.trajectory
    if trajectory is None and run.follow:
        trajectory = Trajectory(FOLLOW_BATCH, run.prior)
    # at most a few frames wait for the background thread (memory)
    adder = _adder(run.accumulator, preparer.shape, 2 * run.chunk_size + 4) if run.accumulator is not None else None
    task.measurer = background_neff(estimator, n, 2 * run.chunk_size + 4)
    try:
        report(run.progress, run.done_offset, total, run.stage)
        for c0 in range(0, n, run.chunk_size):
            c1 = min(c0 + run.chunk_size, n)
            chunk = _read_batch(stack, indices, c0, c1, run.chunk_size)
            if trajectory is None:
                _estimate_batch(chunk, c0, task, run.pool, out, adder)
            else:
                _follow(chunk, c0, task, run, trajectory, out, adder)
            if adder is not None:
                adder.throttle()
            if task.measurer is not None:
                task.measurer.throttle()
            report(run.progress, run.done_offset + c1, total, run.stage)
        if adder is not None:
            adder.wait()
        if task.measurer is not None:
            task.measurer.collect(out.neff)
    finally:
        if adder is not None:
            adder.shutdown()
        if task.measurer is not None:
            task.measurer.shutdown()
    return out
