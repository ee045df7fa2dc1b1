"""One frame onto one template: the three stages of similarity registration.

:class:`SimilarityEstimator` holds what is computed once per template and
registers single frames (thread-safe); :func:`~napari_stackalign.core.similarity.register_similarity`
drives it over a stack, and its module docstring describes the method and the
meaning of the success score.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy import fft as sfft

from ._ambiguity import MAX_RIVALS, Peak, analyse_surface, coarse_note, contenders, refined_choice
from ._logpolar import (
    SCALE_LIMITS,
    LogPolarGrid,
    apodization_window,
    logpolar_magnitude,
    make_logpolar_grid,
    noise_weight,
    subpixel_peak,
)
from ._options import SIMILARITY_DEFAULTS, SimilarityOptions
from ._refine import RefineResult, SimilarityRefiner, _rc_to_cv, similarity_matrix
from ._symmetry import SymmetryRivals, close_rivals, common_scores, symmetric_choice

__all__ = ["MIN_OVERLAP", "FrameResult", "SimilarityEstimator"]

#: smallest share of the template a frame must cover to count as registered
MIN_OVERLAP = 0.25
#: times a frame's pose may move to a better image under the template's symmetries before it is flagged
SYMMETRY_ROUNDS = 3


def _angle_in_range(angle: np.ndarray | float, rng: tuple[float, float] | None, tol: float = 0.0) -> np.ndarray:
    """Whether ``angle`` (degrees, any turn) lies in ``rng`` (+- tol), modulo 360."""
    angle = np.asarray(angle, dtype=np.float64)
    if rng is None or rng[1] - rng[0] + 2 * tol >= 360:
        return np.ones(angle.shape, dtype=bool)
    lo, hi = rng[0] - tol, rng[1] + tol
    return np.mod(angle - lo, 360.0) <= hi - lo


def _wrap_angle(angle: float) -> float:
    """Angle in degrees wrapped to (-180, 180]."""
    a = float(np.mod(angle + 180.0, 360.0) - 180.0)
    return 180.0 if a == -180.0 else a


# --------------------------------------------------------------- estimator
@dataclass
class FrameResult:
    """One frame's estimate: the correction matrix (frame -> template,
    (row, col)), the success score, why it failed (empty if it did not), its
    predicted error in px at the frame corners (NaN: not known) and why the
    chosen candidate is ambiguous (empty if it is not)."""

    matrix: np.ndarray
    success: float
    failure: str
    predicted_error: float = float("nan")
    ambiguity: str = ""
    #: the refined poses the template's symmetries offered, the chosen one among them:
    #: (correction, success, predicted error) each (empty when there were none)
    alternatives: list = field(default_factory=list)


class SimilarityEstimator:
    """Registers single frames onto one fixed template.

    Holds everything computed once per template: its apodised spectrum, its
    log-polar map's spectrum, the allowed-shift mask of the log-polar
    correlation, the pyramid of the refinement and the template's own
    symmetries (:class:`~._symmetry.SymmetryRivals`, with ``refine`` only). Thread-safe: ``estimate``
    only reads these.

    Parameters
    ----------
    template : ndarray (Y, X)
        The reference frame.
    options : SimilarityOptions
        Uses ``angle_range`` and ``scale_range`` (the allowed correction
        angle in degrees and scale), ``sigma`` (the smoothing in px of the
        refinement and the success score) and ``refine`` (run the
        Gauss-Newton refinement, stage 3).
    """

    def __init__(self, template: np.ndarray, options: SimilarityOptions = SIMILARITY_DEFAULTS) -> None:
        tpl = np.ascontiguousarray(template, dtype=np.float32)
        if tpl.ndim != 2:
            raise ValueError(f"the template must be a 2-D image, got shape {tpl.shape}.")
        _check_frame_usable(tpl, "the template")
        self.template = tpl
        self.shape = tpl.shape
        h, w = tpl.shape
        self.center = ((h - 1) / 2.0, (w - 1) / 2.0)
        self.angle_range = options.angle_range
        self.scale_range = options.scale_range or SCALE_LIMITS
        self.sigma = float(options.sigma)
        self.fft_shape = (sfft.next_fast_len(h, real=True), sfft.next_fast_len(w, real=True))
        self.window = apodization_window(tpl.shape)
        max_log = max(abs(np.log(self.scale_range[0])), abs(np.log(self.scale_range[1])))
        self.grid: LogPolarGrid = make_logpolar_grid(self.fft_shape, max_log_scale=max_log)
        spec = self._spectrum(tpl)
        self._tpl_spec = spec
        weight = noise_weight(spec, self.grid)
        # a template whose spectrum looks like noise everywhere: keep the plain weight
        self._lp_weight = weight if float(weight.sum()) > 0.05 * float(self.grid.weight.sum()) else self.grid.weight
        self._tpl_lp = sfft.rfft2(self._logpolar(spec), s=self.grid.corr_shape, workers=1)
        self._allowed = self._allowed_shifts()
        # stage 2 runs on a reduced copy (about 128 px): cheap enough to try
        # several candidates; the refinement recovers the resolution
        level = 0
        while max(h, w) / 2 ** (level + 1) >= 96 and min(h, w) / 2 ** (level + 1) >= 32:
            level += 1
        self.search_level = level
        small = tpl
        for _ in range(level):
            small = cv2.pyrDown(small)
        self._search = _Correlator(small)
        # without refinement the winner's shift is measured again at full resolution
        self._full = _Correlator(tpl) if not options.refine else None
        self.refiner = SimilarityRefiner(tpl, sigma=options.sigma) if options.refine else None
        # the template's own symmetries (lattices, point-symmetric scenes): each frame's winner is
        # compared with its images under them (see ._symmetry); empty, and free, for other content
        self.symmetry = (
            SymmetryRivals(tpl, self.sigma, angle_range=self.angle_range, tol=self.grid.angle_step)
            if options.refine
            else None
        )
        self._tpl_smooth = cv2.GaussianBlur(tpl, (0, 0), self.sigma, borderType=cv2.BORDER_REFLECT_101)

    # -- helpers -------------------------------------------------------------
    def _spectrum(self, img: np.ndarray) -> np.ndarray:
        x = (img - np.float32(img.mean())) * self.window
        return sfft.rfft2(x, s=self.fft_shape, workers=1)

    def _logpolar(self, spec: np.ndarray) -> np.ndarray:
        return logpolar_magnitude(spec, self.grid, self._lp_weight)

    def _allowed_shifts(self) -> np.ndarray:
        """Boolean mask over the log-polar correlation: shifts whose angle (mod
        180) and scale are allowed (one bin of slack)."""
        grid = self.grid
        n_rows, n_cols = grid.corr_shape
        rows = np.arange(n_rows)
        rows = np.where(rows > n_rows // 2, rows - n_rows, rows)
        cols = np.arange(n_cols)
        cols = np.where(cols > n_cols // 2, cols - n_cols, cols)
        # a peak at (row, col) means a correction angle -row*step (mod 180)
        # and a correction scale exp(-col*log_step)
        corr_angle = -rows * grid.angle_step
        tol = grid.angle_step
        ok_rows = _angle_in_range(corr_angle, self.angle_range, tol) | _angle_in_range(
            corr_angle + 180.0, self.angle_range, tol
        )
        log_scale = -cols * grid.log_step
        lo, hi = np.log(self.scale_range[0]), np.log(self.scale_range[1])
        ok_cols = (log_scale >= lo - grid.log_step) & (log_scale <= hi + grid.log_step)
        return ok_rows[:, None] & ok_cols[None, :]

    # -- stages --------------------------------------------------------------
    def rotation_scale(self, frame: np.ndarray, n_peaks: int = 1) -> list[tuple[float, float]]:
        """Stage 1: candidate correction (angle modulo 180, scale) pairs, best first.

        The ``n_peaks`` highest separate peaks of the log-polar phase
        correlation within the allowed ranges (a peak counts when it is at
        least 30 % of the highest).
        """
        grid = self.grid
        lp_hat = sfft.rfft2(self._logpolar(self._spectrum(frame)), s=grid.corr_shape, workers=1)
        cross = self._tpl_lp * np.conj(lp_hat)
        cross /= np.abs(cross) + 1e-30
        corr = sfft.irfft2(cross, s=grid.corr_shape, workers=1)
        allowed = self._allowed.copy()
        n_rows, n_cols = grid.corr_shape
        found: list[tuple[float, float]] = []
        top = None
        for _ in range(n_peaks):
            if not allowed.any():
                break
            r, c, value = subpixel_peak(corr, allowed, wrap=(True, True))
            if top is None:
                top = value
            elif value < 0.3 * top:
                break
            # suppress this peak's neighbourhood before looking for the next
            ri, ci = int(round(r)) % n_rows, int(round(c)) % n_cols
            rows = np.arange(ri - 3, ri + 4) % n_rows
            cols = np.arange(ci - 3, ci + 4) % n_cols
            allowed[np.ix_(rows, cols)] = False
            if r > n_rows / 2:
                r -= n_rows
            if c > n_cols / 2:
                c -= n_cols
            found.append((-r * grid.angle_step, float(np.exp(-c * grid.log_step))))
        return found

    def coarse(self, frame: np.ndarray, *, n_peaks: int = 3) -> np.ndarray:
        """Stages 1 and 2: the correction matrix (frame -> template).

        Every candidate rotation and scale (the best ``n_peaks`` of stage 1,
        each also turned by 180 degrees, and no rotation/scale at all), kept
        when inside the ranges, is applied to a reduced copy of the frame
        and phase-correlated with the template; the highest peak wins.
        """
        return self.coarse_search(frame, n_peaks=n_peaks)[0]

    def coarse_search(
        self, frame: np.ndarray, *, n_peaks: int = 3
    ) -> tuple[np.ndarray, list[np.ndarray], str]:
        """:meth:`coarse`, the correction matrices of the distinct runner-ups
        that scored within :data:`~._ambiguity.AMBIGUITY_SIGMA` of it (closest
        first, at most :data:`~._ambiguity.MAX_RIVALS`), and why the choice is
        ambiguous on this evidence alone ("" when it is not; see :mod:`._ambiguity`)."""
        frame = np.ascontiguousarray(frame, dtype=np.float32)
        tol = self.grid.angle_step
        pairs = []
        for angle, scale in self.rotation_scale(frame, n_peaks):
            pairs += [(angle, scale), (angle + 180.0, scale)]
        pairs.append((0.0, 1.0))
        lo, hi = self.scale_range
        candidates = [
            (a, sc)
            for a, sc in pairs
            if _angle_in_range(a, self.angle_range, tol) and lo / (1 + tol) <= sc <= hi * (1 + tol)
        ]
        if not candidates:  # only possible with slack at the range edges
            candidates = pairs[:1]
        small = frame
        for _ in range(self.search_level):
            small = cv2.pyrDown(small)
        f = 2.0**self.search_level
        down = np.diag([1.0 / f, 1.0 / f, 1.0])
        up = np.diag([f, f, 1.0])
        tried: list[tuple[float, float, Peak]] = []
        surfaces = []
        for a, sc in candidates:
            m_small = down @ similarity_matrix(a, sc, self.center) @ up
            corr = self._search.surface(small, m_small)
            r, c, value = subpixel_peak(corr)
            surfaces.append((corr, r, c))
            tried.append((a, sc, Peak.at(r, c, value, corr.shape)))
        k_best = int(np.argmax([p.value for _, _, p in tried]))
        # only the winner's surface is analysed further (its noise and second maximum)
        corr, r, c = surfaces[k_best]
        a, sc, _ = tried[k_best]
        best = analyse_surface(corr, r, c, tried[k_best][2].value)
        tried[k_best] = (a, sc, best)
        runner_ups = contenders(tried, small.shape)
        dy, dx = best.dy * f, best.dx * f
        note = coarse_note(runner_ups, (a, sc, (dy, dx)), f)
        rivals = [
            similarity_matrix(ra, rs, self.center, (ry * f, rx * f)) for ra, rs, ry, rx, _ in runner_ups[:MAX_RIVALS]
        ]
        a = _wrap_angle(a)
        if self._full is not None:
            dy, dx, _ = self._full.shift(frame, similarity_matrix(a, sc, self.center))
        return similarity_matrix(a, sc, self.center, (dy, dx)), rivals, note

    def estimate(self, frame: np.ndarray, initial: np.ndarray | None = None) -> FrameResult:
        """Register one frame.

        Parameters
        ----------
        frame : ndarray (Y, X)
            Same shape as the template.
        initial : ndarray (3, 3), optional
            A correction matrix to start the refinement from (skips stages
            1 and 2).
        """
        frame = np.ascontiguousarray(frame, dtype=np.float32)
        if frame.shape != self.shape:
            raise ValueError(f"frame shape {frame.shape} differs from the template's {self.shape}.")
        problem = _frame_problem(frame)
        if problem:
            return FrameResult(np.eye(3), np.nan, problem)
        note, rivals = "", []
        if initial is None:
            m, rivals, note = self.coarse_search(frame)
        else:
            m = np.asarray(initial, dtype=np.float64)
        if self.refiner is None:
            ncc, overlap = self.score(frame, m)
            return FrameResult(m, ncc, _overlap_problem(overlap), ambiguity=note)
        res = self.refiner.refine(frame, np.linalg.inv(m))
        if not np.isfinite(res.ncc):
            return FrameResult(m, np.nan, "refinement diverged", ambiguity=note)
        correction, note = np.linalg.inv(res.matrix), ""
        if rivals:
            # close runner-ups: refine them too and decide on the refined success scores
            refined = [res] + [self.refiner.refine(frame, np.linalg.inv(r)) for r in rivals]
            refined = [r for r in refined if np.isfinite(r.ncc) and r.overlap >= MIN_OVERLAP] or [res]
            solutions = [(np.linalg.inv(r.matrix), r.ncc, r.overlap, r.predicted_error) for r in refined]
            k, note = refined_choice(
                solutions, self.shape, self.sigma, symmetric=self._paired(frame) if self.symmetry else None
            )
            res, correction = refined[k], solutions[k][0]
        alternatives: list[tuple[np.ndarray, float, float]] = []
        if self.symmetry and not note:
            res, correction, note, alternatives = self._symmetric(frame, res, correction)
        return FrameResult(
            correction, res.ncc, _overlap_problem(res.overlap), res.predicted_error, note, alternatives
        )

    def _symmetric(
        self, frame: np.ndarray, res: RefineResult, correction: np.ndarray
    ) -> tuple[RefineResult, np.ndarray, str, list[tuple[np.ndarray, float, float]]]:
        """The winner against its images under the template's symmetries: the close ones are refined and
        the best kept; the note says why the choice is ambiguous ("" when it is not), and the refined
        poses compared (correction, success, predicted error), for the stack to choose among by its motion.

        A rival that wins is checked the same way once more (its own images may hold a better pose still,
        e.g. one that covers more of the template); when that one would move again the frame is flagged.
        """
        seen: list[tuple[np.ndarray, float, float]] = []
        for round_ in range(SYMMETRY_ROUNDS):
            own, rivals = self.symmetry.rivals(frame, correction)
            close = close_rivals(
                own, rivals, self.shape, self.sigma, best=res.ncc, score=lambda m: self.score(frame, m),
                min_overlap=MIN_OVERLAP,
            )
            refined, syms = [res], [None]
            for rv in close:
                # the rival's pose is already precise (the winner's, moved by a measured symmetry): full
                # resolution only (a lattice's coarse levels can alias and walk away)
                r = self.refiner.refine(frame, np.linalg.inv(rv.correction), start_level=0)
                if np.isfinite(r.ncc) and r.overlap >= MIN_OVERLAP:
                    refined.append(r)
                    syms.append(rv.symmetry)
            if len(refined) == 1:
                return res, correction, "", seen
            solutions = [(np.linalg.inv(r.matrix), r.ncc, r.overlap, r.predicted_error) for r in refined]
            seen.extend((m, float(ncc), float(err)) for m, ncc, _, err in (solutions if not seen else solutions[1:]))
            k, note = symmetric_choice(solutions, syms, self.shape, self.sigma, self._common(frame))
            if note or k == 0:
                return refined[k], solutions[k][0], note, seen
            res, correction = refined[k], solutions[k][0]
            moved = syms[k]
        return res, correction, (
            f"ambiguous: the template matches itself {moved.describe()}, and the frame's best pose moved under "
            f"its symmetries {SYMMETRY_ROUNDS} times without settling"
        ), seen

    def _common(self, frame: np.ndarray):
        """``common(m_a, m_b)``: both success scores of ``frame`` over the pixels both poses cover
        (:func:`~._symmetry.common_scores`)."""
        smooth = cv2.GaussianBlur(frame, (0, 0), self.sigma, borderType=cv2.BORDER_REFLECT_101)
        margin = int(np.ceil(3 * self.sigma)) + 1
        return lambda m_a, m_b: common_scores(smooth, self._tpl_smooth, m_a, m_b, margin)

    def _paired(self, frame: np.ndarray):
        """``paired(m_a, m_b)``: :meth:`_common` for two poses that differ by a template symmetry, else None."""
        common = self._common(frame)
        return lambda m_a, m_b: common(m_a, m_b) if self.symmetry.relates(m_a, m_b) else None

    def score(self, frame: np.ndarray, correction: np.ndarray) -> tuple[float, float]:
        """Success score (see the module docstring) and overlap share of a
        correction, without refining it."""
        h, w = self.shape
        frame = np.ascontiguousarray(frame, dtype=np.float32)
        cvm = _rc_to_cv(correction)
        warped = cv2.warpAffine(frame, cvm, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        warped = cv2.GaussianBlur(warped, (0, 0), self.sigma, borderType=cv2.BORDER_REFLECT_101)
        margin = int(np.ceil(3 * self.sigma)) + 1
        inner = np.zeros((h, w), np.uint8)
        inner[margin : h - margin, margin : w - margin] = 1
        covered = cv2.warpAffine(inner, cvm, (w, h), flags=cv2.INTER_NEAREST, borderValue=0).astype(bool)
        covered &= inner.astype(bool)
        if covered.sum() < 64:
            return np.nan, float(covered.mean())
        ncc = float(np.corrcoef(warped[covered], self._tpl_smooth[covered])[0, 1])
        return ncc, float(covered.mean())


class _Correlator:
    """Phase correlation of resampled frames with one fixed image (the
    template, or a reduced copy of it) whose apodised spectrum is kept."""

    def __init__(self, template: np.ndarray) -> None:
        self.shape = template.shape
        self.fft_shape = (
            sfft.next_fast_len(template.shape[0], real=True),
            sfft.next_fast_len(template.shape[1], real=True),
        )
        self.window = apodization_window(template.shape)
        self.spec = self.spectrum(template)
        # a Gaussian low-pass on the whitened cross-power keeps
        # noise-dominated frequencies from making the peak
        ky = sfft.fftfreq(self.fft_shape[0])[:, None]
        kx = sfft.rfftfreq(self.fft_shape[1])[None, :]
        self.lowpass = np.exp(-(ky**2 + kx**2) / (2 * 0.2**2)).astype(np.float32)

    def spectrum(self, img: np.ndarray) -> np.ndarray:
        x = (img - np.float32(img.mean())) * self.window
        return sfft.rfft2(x, s=self.fft_shape, workers=1)

    def shift(self, image: np.ndarray, correction: np.ndarray) -> tuple[float, float, float]:
        """Resample ``image`` with ``correction`` ((row, col) matrix, forward)
        and phase-correlate it with the template: the remaining shift
        (dy, dx) and the height of the correlation peak."""
        corr = self.surface(image, correction)
        r, c, value = subpixel_peak(corr)
        hf, wf = self.fft_shape
        dy = r - hf if r > hf / 2 else r
        dx = c - wf if c > wf / 2 else c
        return float(dy), float(dx), value

    def surface(self, image: np.ndarray, correction: np.ndarray) -> np.ndarray:
        """The (periodic) phase-correlation surface of ``image`` resampled with ``correction``
        against the template (its peak is the remaining shift, see :meth:`shift`)."""
        h, w = self.shape
        warped = cv2.warpAffine(
            image, _rc_to_cv(correction), (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
            borderValue=float(image.mean()),
        )
        cross = self.spec * np.conj(self.spectrum(warped))
        cross /= np.abs(cross) + 1e-30
        cross *= self.lowpass
        return sfft.irfft2(cross, s=self.fft_shape, workers=1)


def _frame_problem(frame: np.ndarray) -> str:
    if not np.all(np.isfinite(frame)):
        return "NaN or infinite values"
    if float(frame.std()) == 0.0:
        return "constant frame"
    return ""


def _check_frame_usable(frame: np.ndarray, what: str) -> None:
    problem = _frame_problem(frame)
    if problem == "constant frame":
        raise ValueError(f"{what} is constant (no structure to register on): choose another template.")
    if problem:
        raise ValueError(f"{what} contains NaN or infinite values: replace them (e.g. with 0) first.")


def _overlap_problem(overlap: float) -> str:
    if overlap < MIN_OVERLAP:
        return f"frame covers only {overlap:.0%} of the template"
    return ""
