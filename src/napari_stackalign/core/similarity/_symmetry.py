"""Poses at which the template matches itself: its symmetries, and the rivals they give a frame.

A hexagonal lattice looks the same turned by 60 degrees, a square one by 90,
any lattice one lattice vector away, a point-symmetric scene turned by 180
degrees. A frame of such content matches the template equally well at its
true pose ``C`` and at ``S @ C`` for every symmetry ``S`` of the template
(``T(S y) = T(y)``), up to what breaks the symmetry (defects, the edges,
noise). The candidate search can pick the wrong one by a wide margin, or
never try the right one; the margin test of :mod:`._ambiguity` then sees no
runner-up. So the template's own symmetries are found once, and each frame's
winner is compared with its images under them.

Detection (once per template, cheap): the template, smoothed, band-passed
(minus a Gaussian of :data:`BACKGROUND_PX`) and apodised, is correlated (one
FFT product per angle, all shifts at once) with itself turned by 180, 90 and
60 degrees about its centre, and with itself (the autocorrelation:
translation symmetries). A symmetry is kept when the best correlation over
the shifts reaches :data:`MIN_ROTATION` (a rotation) or
:data:`MIN_TRANSLATION` (a shift away from the main lobe); the template's
self-match at the identity is 1, lattices and point-symmetric scenes reach
0.4-1 (less at very low SNR), the generator's textures and beads at 256 px
stay below 0.25 (a small frame of a few beads, or a natural image, can
reach 0.4-0.6 at 180 degrees by chance: that costs one cheap comparison per
frame and flags nothing unless a frame really matches its turn). Angles that
``angle_range`` rules out for any pair of poses are not tried.

Per frame (only for templates with symmetries):
:meth:`SymmetryRivals.rivals` gives the winner's images ``S @ C``; for a
lattice each turned pose is correlated with the template at every shift
(divided by the overlap of the apodised images), and its best
:data:`PEAKS_PER_POSE` shifts, and those of the winner's own pose away from
its main lobe (a lattice vector), are the rivals. :func:`close_rivals` keeps
those near the winner on the cheap correlation and then on the success
score, :func:`symmetric_choice` decides on the refined ones, compared over
the frame pixels both bring inside the template (:func:`common_scores`),
with the paired spread of :func:`~._ambiguity.paired_spread`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
from scipy import fft as sfft

from ._ambiguity import AMBIGUITY_SIGMA, _corner_distance, paired_spread, score_spread
from ._logpolar import apodization_window, subpixel_peak
from ._refine import _rc_to_cv, similarity_matrix

__all__ = [
    "MAX_SYMMETRY_RIVALS",
    "MIN_ROTATION",
    "MIN_TRANSLATION",
    "Rival",
    "Symmetry",
    "SymmetryRivals",
    "close_rivals",
    "common_scores",
    "find_symmetries",
    "symmetric_choice",
]

#: a rotation's self-correlation (the identity's is 1) must reach this to count as a symmetry
MIN_ROTATION = 0.35
#: ... and a translation's (the autocorrelation's best peak off its main lobe)
MIN_TRANSLATION = 0.4
#: the base rotations tried (their multiples follow from them)
BASE_ANGLES = (180.0, 90.0, 60.0)
#: the band-pass: the smoothing's low-pass, minus a Gaussian of this many px (slow gradients would match anything)
BACKGROUND_PX = 12.0
#: local maxima of the autocorrelation within this many px of the origin are its main lobe
MAIN_LOBE_PX = 2.5
#: two corrections differ by a template rotation when their turn is within this many degrees of it ...
SAME_ANGLE = 1.5
#: ... and their scales by less than this (log)
SAME_SCALE = 0.01
#: a lattice's rivals are searched among the shifts where the apodised images overlap by this share at least
MIN_OVERLAP_SHARE = 0.3


@dataclass(frozen=True)
class Symmetry:
    """One way the template matches itself.

    Attributes
    ----------
    angle : float
        Rotation in degrees (0 for a translation).
    matrix : ndarray (3, 3)
        Template -> template (row, col) matrix ``S`` with ``T(S y) ~ T(y)``.
    strength : float
        Normalised correlation of the template with its image under ``S``
        (1 for a perfect symmetry of noise-free content).
    """

    angle: float
    matrix: np.ndarray
    strength: float

    def describe(self) -> str:
        """The symmetry in words (for a flag's reason)."""
        if self.angle == 0.0:
            shift = self.matrix[:2, 2]
            return f"shifted by ({shift[0]:.1f}, {shift[1]:.1f}) px"
        return f"turned by {self.angle:g} deg"


class _SelfCorrelator:
    """Normalised correlation of images with one fixed one, all circular shifts at once.

    Both are apodised and band-passed in the Fourier domain (a Gaussian of
    ``sigma`` px minus one of :data:`BACKGROUND_PX`): one real FFT per image.
    """

    def __init__(self, image: np.ndarray, sigma: float) -> None:
        self.shape = image.shape
        h, w = image.shape
        self.window = apodization_window(image.shape).astype(np.float32)
        ky = sfft.fftfreq(h)[:, None]
        kx = sfft.rfftfreq(w)[None, :]
        k2 = 2.0 * np.pi**2 * (ky**2 + kx**2)
        self.band = (np.exp(-k2 * sigma**2) - np.exp(-k2 * BACKGROUND_PX**2)).astype(np.float32)
        # Parseval over a half spectrum: the columns other than 0 (and the Nyquist one) count twice
        weight = np.full(self.band.shape[1], 2.0, np.float32)
        weight[0] = 1.0
        if w % 2 == 0:
            weight[-1] = 1.0
        self.weight = weight[None, :] / np.float32(h * w)
        self.spec, self.norm = self.prepare(image)

    def prepare(self, img: np.ndarray) -> tuple[np.ndarray, float]:
        """The band-passed spectrum of the apodised ``img`` and its norm (of the image it stands for)."""
        x = np.ascontiguousarray(img, dtype=np.float32)
        x = (x - np.float32(x.mean())) * self.window
        spec = sfft.rfft2(x, workers=1) * self.band
        return spec, float(np.sqrt((self.weight * (spec.real**2 + spec.imag**2)).sum()))

    def surface(self, img: np.ndarray) -> np.ndarray:
        """Correlation at every circular shift ``d`` of ``T(y)`` with ``img(y - d)``, normalised (1: the same)."""
        spec, norm = self.prepare(img)
        if not norm * self.norm > 0:
            return np.zeros(self.shape, np.float64)
        return sfft.irfft2(self.spec * np.conj(spec), s=self.shape, workers=1) / (norm * self.norm)

    def value(self, img: np.ndarray) -> float:
        """The :meth:`surface` at shift 0 only (no inverse FFT)."""
        spec, norm = self.prepare(img)
        if not norm * self.norm > 0:
            return 0.0
        dot = (self.weight * (self.spec.real * spec.real + self.spec.imag * spec.imag)).sum()
        return float(dot) / (norm * self.norm)


def _signed(r: float, n: int) -> float:
    return r - n if r > n / 2 else r


def _peaks(
    corr: np.ndarray, count: int, *, radius: float = 0.0, usable: np.ndarray | None = None
) -> list[tuple[float, float, float]]:
    """The ``count`` highest local maxima of a periodic surface (sub-pixel row, col, value), best first,
    farther than ``radius`` px from the origin and among the ``usable`` shifts (all by default)."""
    h, w = corr.shape
    c32 = corr.astype(np.float32)
    padded = np.pad(c32, 1, mode="wrap")
    allowed = cv2.dilate(padded, np.ones((3, 3), np.uint8))[1:-1, 1:-1] == c32
    if radius > 0:
        dr = np.minimum(np.arange(h), h - np.arange(h))
        dc = np.minimum(np.arange(w), w - np.arange(w))
        allowed &= (dr[:, None] ** 2 + dc[None, :] ** 2) > radius**2
    if usable is not None:
        allowed &= usable
    flat = np.flatnonzero(allowed)
    if flat.size == 0:
        return []
    values = corr.ravel()[flat]
    out = []
    for idx in flat[np.argsort(-values)[:count]]:
        one = np.zeros_like(allowed)
        one.flat[idx] = True
        out.append(subpixel_peak(corr, one))
    return out


def _rotation_allowed(angle: float, angle_range: tuple[float, float] | None) -> bool:
    """Whether two correction angles inside ``angle_range`` can differ by ``angle`` (mod 360)."""
    if angle_range is None:
        return True
    width = angle_range[1] - angle_range[0]
    turn = abs(float(np.mod(angle + 180.0, 360.0) - 180.0))
    return width >= turn or width >= 360.0 - turn


def find_symmetries(
    template: np.ndarray,
    sigma: float = 1.0,
    *,
    angle_range: tuple[float, float] | None = None,
    min_rotation: float = MIN_ROTATION,
    min_translation: float = MIN_TRANSLATION,
) -> list[Symmetry]:
    """The template's strong self-symmetries: rotations about some point and translations.

    Parameters
    ----------
    template : ndarray (Y, X)
        The reference frame.
    sigma : float
        Smoothing (px) before the comparison (the success score's).
    angle_range : (float, float), optional
        The allowed correction angles; rotations no two of them can differ
        by are not looked for.
    min_rotation, min_translation : float
        The smallest normalised self-correlation kept (see :data:`MIN_ROTATION`).

    Returns
    -------
    list of Symmetry
        The rotations strongest first (angles in (-180, 180]), then the
        translation and its negative. A rotation by 60 degrees brings its
        multiples (120, 180, -120, -60), one by 90 degrees 180 and -90, each
        with the shift that maps the template onto itself. Empty for content
        without a strong symmetry.
    """
    tpl = np.ascontiguousarray(template, dtype=np.float32)
    h, w = tpl.shape
    center = ((h - 1) / 2.0, (w - 1) / 2.0)
    cor = _SelfCorrelator(tpl, sigma)
    fill = float(tpl.mean())
    found: dict[float, Symmetry] = {}

    def rotated(angle: float) -> Symmetry | None:
        """The best self-match of the template turned by ``angle`` (any shift)."""
        rot = similarity_matrix(angle, 1.0, center)
        # sample the template at R y: img(y) = T(R y)
        img = cv2.warpAffine(
            tpl, _rc_to_cv(rot), (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_CONSTANT, borderValue=fill,
        )
        corr = cor.surface(img)
        r, c, value = subpixel_peak(corr)
        if not value >= min_rotation:
            return None
        # T(y) ~ img(y - d) = T(R (y - d)): S = R @ shift(-d)
        d = np.array([_signed(r, h), _signed(c, w)])
        shift = np.eye(3)
        shift[:2, 2] = -d
        return Symmetry(angle, rot @ shift, float(value))

    for base in BASE_ANGLES:
        if not _rotation_allowed(base, angle_range) or base in found:  # 180 is found with 90 or 60
            continue
        sym = rotated(base)
        if sym is None:
            continue
        for k in range(1, int(round(360.0 / base))):
            angle = float(np.mod(k * base + 180.0, 360.0) - 180.0)
            angle = 180.0 if angle == -180.0 else angle
            if angle in found or not _rotation_allowed(angle, angle_range):
                continue
            multiple = sym if k == 1 else rotated(k * base)
            if multiple is not None:
                found[angle] = Symmetry(angle, multiple.matrix, multiple.strength)
    # translations: the autocorrelation's best peak away from its main lobe
    auto = sfft.irfft2(cor.spec * np.conj(cor.spec), s=(h, w), workers=1) / cor.norm**2
    r, c, value = (_peaks(auto, 1, radius=MAIN_LOBE_PX) or [(0.0, 0.0, -np.inf)])[0]
    out = sorted(found.values(), key=lambda s: -s.strength)
    if value >= min_translation:
        d = np.array([_signed(r, h), _signed(c, w)])
        for sign in (1.0, -1.0):
            m = np.eye(3)
            m[:2, 2] = sign * d
            out.append(Symmetry(0.0, m, float(value)))
    return out


@dataclass(frozen=True)
class Rival:
    """A frame's pose under a template symmetry: the correction matrix, the
    symmetry, and its normalised correlation (on the scale of the winner's)."""

    correction: np.ndarray
    symmetry: Symmetry
    value: float


class SymmetryRivals:
    """A template's symmetries and, per frame, the rivals of a winning correction.

    Parameters
    ----------
    template : ndarray (Y, X)
        The reference frame.
    sigma : float
        Smoothing of the comparison (px).
    angle_range : (float, float), optional
        Allowed correction angles: a rival outside them (``tol`` degrees of
        slack) is no rival, and rotations no two allowed angles differ by are
        not looked for.
    tol : float
        Slack on ``angle_range`` (degrees).
    """

    def __init__(
        self, template: np.ndarray, sigma: float = 1.0, *, angle_range: tuple[float, float] | None = None,
        tol: float = 0.0,
    ) -> None:
        self.symmetries = find_symmetries(template, sigma, angle_range=angle_range)
        self.shape = template.shape
        self.angle_range = angle_range
        self.tol = float(tol)
        self._cor = _SelfCorrelator(template, sigma) if self.symmetries else None
        self._overlap = None
        if any(sym.angle == 0.0 for sym in self.symmetries):
            # a lattice's surfaces have a peak at every lattice vector; their heights fall with the
            # overlap of the two apodised images, so they are divided by it (where it is at least half)
            # and the peak where the defects line up wins, not the one nearest the origin
            win = sfft.rfft2(self._cor.window, workers=1)
            auto = sfft.irfft2(win * np.conj(win), s=self.shape, workers=1)
            auto /= auto[0, 0]
            self._overlap = np.where(auto >= MIN_OVERLAP_SHARE, auto, np.inf)

    def __bool__(self) -> bool:
        return bool(self.symmetries)

    def relates(self, m_a: np.ndarray, m_b: np.ndarray) -> bool:
        """Whether two corrections differ by a symmetry of the template: a rotation it has (within
        :data:`SAME_ANGLE` degrees, the same scale) or, for a lattice, a shift."""
        rel = m_b @ np.linalg.inv(m_a)
        scale = float(np.sqrt(abs(np.linalg.det(rel[:2, :2]))))
        if not abs(np.log(scale)) < SAME_SCALE:
            return False
        turn = float(np.degrees(np.arctan2(rel[1, 0], rel[0, 0])))
        angles = [sym.angle for sym in self.symmetries if sym.angle != 0.0]
        if abs(turn) < SAME_ANGLE:
            return any(sym.angle == 0.0 for sym in self.symmetries)
        return any(abs(np.mod(turn - a + 180.0, 360.0) - 180.0) < SAME_ANGLE for a in angles)

    def rivals(self, frame: np.ndarray, correction: np.ndarray) -> tuple[float, list[Rival]]:
        """The winner's own correlation and the rivals of ``correction`` (frame -> template), best first.

        A rotation symmetry ``S`` gives ``S @ correction``; when the template
        also has a translation symmetry (a lattice) that pose's best shift is
        searched too (all shifts at once), and the identity gives the best
        peak away from the winner (a lattice vector).
        """
        from ._estimator import _angle_in_range  # the estimator imports this module

        cor = self._cor
        if cor is None:
            return float("nan"), []
        h, w = self.shape
        frame = np.ascontiguousarray(frame, dtype=np.float32)
        fill = float(frame.mean())

        def warped(m: np.ndarray) -> np.ndarray:
            return cv2.warpAffine(
                frame, _rc_to_cv(m), (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                borderValue=fill,
            )

        def surface(m: np.ndarray) -> np.ndarray:
            return cor.surface(warped(m)) / self._overlap

        def shifted(m: np.ndarray, r: float, c: float) -> np.ndarray:
            # surface peak at d: T(y) ~ img(y - d) with img(y) = frame(m^-1 y): correction shift(d) @ m
            t = np.eye(3)
            t[:2, 2] = (_signed(r, h), _signed(c, w))
            return t @ m

        translations = [s for s in self.symmetries if s.angle == 0.0]
        out: list[Rival] = []
        if translations:
            base = surface(correction)
            own = float(base[0, 0])
            usable = np.isfinite(self._overlap)
            for r, c, value in _peaks(base, PEAKS_PER_POSE, radius=MAIN_LOBE_PX, usable=usable):
                out.append(Rival(shifted(correction, r, c), translations[0], float(value)))
        else:
            own = cor.value(warped(correction))
        for sym in self.symmetries:
            if sym.angle == 0.0:
                continue
            m = sym.matrix @ correction
            angle = float(np.degrees(np.arctan2(m[1, 0], m[0, 0])))
            if not _angle_in_range(angle, self.angle_range, self.tol):
                continue
            if translations:
                for r, c, value in _peaks(surface(m), PEAKS_PER_POSE, usable=usable):
                    out.append(Rival(shifted(m, r, c), sym, float(value)))
            else:
                out.append(Rival(m, sym, cor.value(warped(m))))
        return own, sorted(out, key=lambda rv: -rv.value)


#: symmetry rivals refined at most per frame (the closest first)
MAX_SYMMETRY_RIVALS = 2
#: a lattice's rivals: the best shifts of each rotated pose kept (the lattice vectors tie but for its defects)
PEAKS_PER_POSE = 2
#: a rival that matches better replaces the winner only if it covers at least this share of the winner's overlap
KEEP_OVERLAP = 0.8
#: a rival is refined when its correlation is within this share of the winner's, plus the noise (see :func:`close_rivals`)
RIVAL_SLACK = 0.1


def _bar(value: float, shape: tuple[int, int], sigma: float) -> float:
    """What a rival must reach to be looked at further, against a winner's ``value``: ``2 * AMBIGUITY_SIGMA``
    standard deviations of the score difference and :data:`RIVAL_SLACK` of the value below it."""
    spread = np.sqrt(2.0) * score_spread(value, 1.0, shape, sigma)
    return value - 2.0 * AMBIGUITY_SIGMA * spread - RIVAL_SLACK * abs(value)


def close_rivals(
    own: float,
    rivals: list[Rival],
    shape: tuple[int, int],
    sigma: float,
    *,
    best: float,
    score: Callable[[np.ndarray], tuple[float, float]],
    min_overlap: float = 0.25,
) -> list[Rival]:
    """The rivals worth refining, closest first, at most :data:`MAX_SYMMETRY_RIVALS`.

    A rival must come near the winner twice: on the comparison's own scale
    (``own`` against its value, cheap), then on the success score itself
    (``score(correction) -> (success, overlap)``, unrefined, against the
    refined winner's ``best``; Pearson's r over the pixels both cover, so a
    pose turned by 60 degrees is not penalised for covering less), each
    within :func:`_bar`. The rivals are ranked by the success score.
    """
    if not own > 0:
        return []
    kept = []
    for rv in rivals:
        if rv.value < _bar(own, shape, sigma):
            continue
        success, overlap = score(rv.correction)
        if np.isfinite(success) and overlap >= min_overlap and success >= _bar(best, shape, sigma):
            kept.append((success, rv))
    kept.sort(key=lambda sr: -sr[0])
    return [rv for _, rv in kept[:MAX_SYMMETRY_RIVALS]]


def common_scores(
    frame_smooth: np.ndarray, template_smooth: np.ndarray, m_a: np.ndarray, m_b: np.ndarray, margin: int
) -> tuple[float, float, float]:
    """Both success scores of two corrections of one frame over the frame pixels both bring inside the
    template, and their share of the frame.

    Pearson's r of the smoothed frame and the smoothed template sampled at
    ``m_a x`` / ``m_b x``, over the same frame pixels: a pose that covers less
    of the template is not favoured for leaving out the defects that tell
    the poses apart (the success score of each is taken over its own
    overlap). NaN when fewer than 64 pixels are shared.
    """
    h, w = frame_smooth.shape
    inner = np.zeros((h, w), np.uint8)
    inner[margin : h - margin, margin : w - margin] = 1
    common = inner.astype(bool)
    sampled = []
    for m in (m_a, m_b):
        cvm = _rc_to_cv(m)
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        sampled.append(cv2.warpAffine(template_smooth, cvm, (w, h), flags=flags, borderMode=cv2.BORDER_REFLECT_101))
        common &= cv2.warpAffine(inner, cvm, (w, h), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
                                 borderValue=0).astype(bool)
    n = int(common.sum())
    if n < 64:
        return float("nan"), float("nan"), n / float(h * w)
    f = frame_smooth[common].astype(np.float64)
    return (
        float(np.corrcoef(f, sampled[0][common])[0, 1]),
        float(np.corrcoef(f, sampled[1][common])[0, 1]),
        n / float(h * w),
    )


def symmetric_choice(
    solutions: list[tuple[np.ndarray, float, float, float]],
    symmetries: list[Symmetry | None],
    shape: tuple[int, int],
    sigma: float,
    common: Callable[[np.ndarray, np.ndarray], tuple[float, float, float]],
    *,
    min_sigma: float = AMBIGUITY_SIGMA,
) -> tuple[int, str]:
    """The best of the winner (first, symmetry None) and its refined symmetry rivals, and why it is ambiguous.

    Parameters
    ----------
    solutions : list of (correction, success, overlap, predicted_error)
        The refined winner first, then the refined rivals (full resolution).
    symmetries : list of Symmetry or None
        The symmetry each solution came from (None for the winner).
    shape : (int, int)
        Frame shape.
    sigma : float
        The smoothing of the success score.
    common : callable
        ``common(m_a, m_b) -> (r_a, r_b, share)``: both scores over the frame
        pixels both poses share (:func:`common_scores`).
    min_sigma : float
        The margin needed, in standard deviations of the score difference.

    Returns
    -------
    (index of the best, note)
        The best wins every comparison over shared pixels (the winner is kept
        unless a rival beats it there and covers at least :data:`KEEP_OVERLAP`
        of its overlap; one that beats it on less flags the frame); solutions within ``max(1, 3 *
        predicted error)`` px of it at every frame corner are the same
        solution; the note ("" when the best wins each by ``min_sigma``
        :func:`~._ambiguity.paired_spread`) names the symmetry of the closest
        other one.
    """
    def same(k: int, j: int) -> bool:
        e = solutions[k][3]
        return _corner_distance(solutions[k][0], solutions[j][0], shape) <= (max(1.0, 3.0 * e) if np.isfinite(e)
                                                                            else 1.0)

    k_best, unsure = 0, ""
    for k in range(1, len(solutions)):
        if same(k_best, k):
            continue
        r_best, r_k, _ = common(solutions[k_best][0], solutions[k][0])
        if not (np.isfinite(r_k) and r_k > r_best):
            continue
        o_best, o_k = solutions[k_best][2], solutions[k][2]
        if o_k >= KEEP_OVERLAP * o_best:
            k_best = k
        elif not unsure:
            # better on fewer pixels: a small patch of a lattice can miss the defects that would tell
            what = _rival_pose(symmetries, k, k_best)
            unsure = (
                f"ambiguous: the template matches itself {what}, and the frame matches that pose better on the "
                f"pixels both cover ({r_k:.3f} against {r_best:.3f}) while covering less of the template "
                f"({o_k:.0%} against {o_best:.0%})"
            )
    if unsure:
        return k_best, unsure
    m0 = solutions[k_best][0]
    note, closest = "", np.inf
    for k, (m, _, _, _) in enumerate(solutions):
        if k == k_best or same(k_best, k):
            continue
        r0, r, share = common(m0, m)
        if not (np.isfinite(r0) and np.isfinite(r)):
            continue
        spread = paired_spread(r0, r, share, shape, sigma)
        margin = (r0 - r) / spread if spread > 0 else (np.inf if r0 > r else 0.0)
        if margin < min_sigma and margin < closest:
            closest = margin
            what = _rival_pose(symmetries, k, k_best)
            note = (
                f"ambiguous: the template matches itself {what}, and the frame matches that pose within "
                f"{max(margin, 0.0):.1f} sigma of the best (success {r:.3f} against {r0:.3f} on the pixels both "
                f"cover; at least {min_sigma:g} sigma needed)"
            )
    return k_best, note


def _rival_pose(symmetries: list[Symmetry | None], k: int, k_best: int) -> str:
    """How the template matches itself between the best solution ``k_best`` and its rival ``k``."""
    sym = symmetries[k] or symmetries[k_best]
    return sym.describe() if sym is not None else "at another pose"
