"""Periodic content (lattices): no frame one lattice vector off without a flag.

On a lattice, matches one lattice vector apart are nearly equally good, so
the final pass (which picks the match nearest the shift of the frames
before it, :mod:`._trajectory`) can put a frame a whole number of lattice
vectors off, with a high quality (a jump of the stage, a batch of frames
that lost the match). After the final pass, :func:`resolve_periodic`:

1. detects the lattice in the template (:func:`detect_lattice`: the peaks of
   its high-passed autocorrelation; two vectors ``a``, ``b``, refined by a
   least-squares fit over every peak and reduced to the shortest pair).
   Without one it returns at once (one FFT of the template, a few ms);
2. gives every frame the candidates ``s + i a + j b`` (``|i|, |j| <= 2``,
   within ``max_movement``) around its estimate ``s`` and, with the motion
   prior (step 3), around the *unwrapped* path too (each frame moved to the
   lattice site nearest the median of the 3 frames before it: estimates put
   whole lattice vectors off in blocks can be beyond the reach of their
   own candidates), and scores them with evidence that the lattice
   does not repeat: the correlation of the frame and the template *low-passed
   beyond the lattice* (a Gaussian of 0.6 times the longest lattice vector:
   the background, thickness and defects, which do not repeat). Its
   log-likelihood is ``-(n/2) log(1 - r**2)`` with ``n`` the independent
   blobs of the low-passed image over the template pixels every candidate
   of the frame covers (:meth:`_LowPass.common_costs`: counting the whole
   frame made far candidates win on noise, counting each candidate's own
   overlap moved frames towards 0, where the overlap is larger);
3. links the frames by their motion: consecutive frames' positions differ
   by a step of Gaussian spread ``sigma`` (the median step, measured), the
   cost of a step capped at ``STEP_CAP`` (a stage move is not forbidden).
   The most likely path (Viterbi) uses both the frames before and after a
   frame, so it does not favour the template frames. When ``sigma`` exceeds
   ``WRAP_SIGMA`` of the shortest lattice vector, or when the steps are not
   more likely under a motion than under none by ``MIN_MARGIN``
   (:func:`_step_evidence`: a median of few steps can fall low by chance),
   steps cross half a lattice
   vector too often for the shortest lattice-equivalent step to be the step
   made: the motion then links nothing and the non-repeating content alone
   decides (``params["lattice"]["motion_prior"]`` False). The template then
   held the template frames' content at every site the search put them, so
   their sites are first agreed among themselves from a seed frame, the even
   and the odd frames apart, and kept when the two halves agree with each
   other (:func:`._lattice_consensus.consensus_sites`); the template is
   rebuilt from them;
4. when the unwrapped path moves template frames, the template held their
   non-repeating content at several offsets (each block of frames matches
   its own copy): it is rebuilt along the unwrapped path before step 2-3.
   When the chosen path moves template frames (elsewhere), it is rebuilt
   from the resolved template frames and step 2-3 run once more against it.
   With the motion prior, blocks of consecutive frames one lattice vector
   off each other are then looked for by comparing the block means, not each
   frame with the template (:func:`._lattice_blocks.fix_blocks`: a block
   matches its own copy in the template, never in the other block); when a
   block is moved the template is rebuilt and step 2-3 run again. Then the
   path is cut at every step the motion cannot tell from a lattice vector
   longer, and those runs are placed one by one against the runs placed
   before them, by their background and their defects at full resolution
   with the lattice taken out (:func:`._lattice_segments.check_runs`); a run
   that no offset places by ``MIN_MARGIN`` is flagged;
5. re-refines every moved frame at the last level from its new position; a
   move whose match there is clearly worse than before is not made (and the
   frame is flagged);
6. flags each frame whose best candidate wins by less than ``MIN_MARGIN``
   (log-likelihood, max-marginals of the path): ``"lattice ambiguity: ..."``,
   and each frame that the non-repeating content matches better at another
   of its lattice sites (any ``i, j`` within ``max_movement``: beyond the
   candidates, or where the motion held it), by more than ``MIN_MARGIN``
   once the look-elsewhere allowance (the log of the sites compared) is
   taken off;
7. without the motion prior and without the template frames' consensus,
   flags each template frame whose site the *other* template frames do not
   single out by ``MIN_MARGIN`` (:func:`._lattice_confirm.confirm_sites`:
   against a template that holds the frame, its own copy always agrees);
8. flags each frame rotated or deformed against the template so much that
   the frame-wide lattice match is not its centre's
   (:mod:`._lattice_regions`: the residual shifts of its regions, fitted by
   a translation plus a linear field; long stacks are screened first);
9. without the motion prior, or with it where the runs check cut the path
   into more than one run (the motion does not link every frame), checks
   each frame's site against the other trusted frames' defects at full
   resolution with the lattice taken out (:func:`_defects_band`,
   :mod:`._lattice_frames`): confirmed, moved where both bands favour
   another site, or flagged.

Shifts are the engine's ``s`` (``frame[p + s] ~ template[p]``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

import cv2
import numpy as np
from scipy import fft as sfft
from scipy import ndimage

from ._engine import (
    FLAG_FAILED,
    FLAG_UNUSABLE,
    FramePreparer,
    FrameResults,
    PyramidEstimator,
    Template,
    TemplateAccumulator,
    background_neff,
)
from ._lattice_blocks import fix_blocks
from ._lattice_confirm import confirm_sites
from ._lattice_consensus import consensus_sites
from ._lattice_frames import MIN_REFERENCE, agree_frames, check_frames
from ._lattice_geometry import nearest_lattice_point
from ._lattice_regions import (
    CENTRE_TOLERANCE,
    SCREEN_FRAMES,
    SPREAD_LIMIT,
    RegionCheck,
    centre_error,
    off_centre,
    screen,
    turned_frames,
)
from ._lattice_segments import KeptSpectra, check_runs
from ._ncc_search import NCCSearch

__all__ = [
    "LOWPASS_FACTOR",
    "MIN_CONTRAST",
    "MIN_MARGIN",
    "STEP_CAP",
    "Lattice",
    "detect_lattice",
    "resolve_periodic",
]

#: the template is high-passed (minus its Gaussian blur of this sigma, px) before its autocorrelation
HIGHPASS_SIGMA = 8.0
#: the autocorrelation is that of the template's central square of at most this side (px)
AUTOCORRELATION_SIZE = 256
#: the template's white-noise level is the median power beyond this frequency (cycles/px, either axis)
NOISE_BAND = 0.35
#: the template's high-passed power above its noise must exceed this many spreads of the noise's
MIN_SIGNAL_SIGMA = 5.0
#: a lattice vector's autocorrelation (of the high-passed template, 1 at zero lag) is at least this
MIN_CONTRAST = 0.4
#: shortest lattice vector detected (px)
MIN_PERIOD = 3.0
#: longest lattice vector looked for (px; also at most a quarter of the frame)
MAX_PERIOD = 40.0
#: the evidence that does not repeat: low-pass of this many times the longest lattice vector (Gaussian sigma)
LOWPASS_FACTOR = 0.6
#: the motion links the frames only while the typical step (Rayleigh sigma) is at most this share of the
#: shortest lattice vector. A step then still crosses half of it with probability up to exp(-2), 13 %
#: (``exp(-(1/2)**2 / (2 * 0.25**2))``): the candidates around the unwrapped path and the non-repeating
#: content must correct those steps, and the path's margins flag where they do not
WRAP_SIGMA = 0.25
#: candidates s + i a + j b with |i|, |j| <= this
REACH = 2
#: with the motion prior, each frame's candidates surround the lattice site nearest the median of this
#: many frames before it (unwrapped)
UNWRAP_WINDOW = 3
#: a frame's candidates are compared over the template pixels they all cover, when that region is at
#: least this many low-passed pixels per axis (else each over its own overlap)
MIN_COMMON = 4
#: ... and at least this share of the template: the frames all see the same small region, so a chance
#: match of its content at another lattice site repeats in every frame and the path sums it (grid seed 17,
#: case 10: a 192x96 hexagonal 10 px lattice whose candidates spanned 2 lattice vectors, left 18 of 32
#: low-passed columns in common; every frame preferred v1 - v2 there by about 3, the path moved twice by
#: it, and the far-site test then flagged 54 right frames)
MIN_COMMON_SHARE = 0.5
#: the other lattice sites compared with the chosen one reach at most this many lattice vectors
MAX_SITES_REACH = 40
#: a step's cost (-log-likelihood) is capped here: a stage move is possible, only unlikely
STEP_CAP = 12.0
#: the share of steps the motion allows to be anything (hops, stage moves), when weighing the evidence
#: that the steps are a motion at all (:func:`_step_evidence`)
STEP_OUTLIERS = 0.1
#: smallest step spread (px)
MIN_STEP_SIGMA = 0.3
#: a frame whose best candidate wins by less than this (log-likelihood) is ambiguous: odds of 400 to 1.
#: At 4 (55 to 1) the grid's lattice frames (6 seeds, 1858 frames) kept 5 more wrong frames marked ok
#: (10 against 5) for 27 more right ones
MIN_MARGIN = 6.0
#: without the motion prior, where the defects band singles out the trusted frames' sites by this median
#: margin or more, a trusted frame it does not single out (by ``MIN_MARGIN``) is flagged. Right frames: 80
#: to 500 on the grid's stacks where it decides; frames far off: -1.2 to 0.2
STRONG_SUPPORT = 30.0
#: ... and a frame's margin below this share of that median is of chance's size, not support: a frame whose
#: site lies beyond the offsets compared still finds one of them best by up to 10-20 (fresh grid seed 2040,
#: case 4: a 1024 px hexagonal lattice drifting 144 px at SNR 4.9, one frame 86 px off at 12.9 where the
#: other frames had 8,500-39,000). A right frame 10x dimmer than the others (in amplitude) would fall there too
CHANCE_SHARE = 0.01
#: a move is made only when the match at the new position is at most this much (relative) worse
SWITCH_TOLERANCE = 0.1


@dataclass(frozen=True)
class Lattice:
    """Two lattice vectors (rows, ``(dy, dx)`` px) and their autocorrelation contrast."""

    vectors: np.ndarray
    contrast: float

    @property
    def longest(self) -> float:
        return float(np.max(np.hypot(self.vectors[:, 0], self.vectors[:, 1])))

    def offsets(self, reach: int = REACH) -> tuple[np.ndarray, np.ndarray]:
        """(integer coefficients (k, 2), offsets ``i a + j b`` (k, 2) px); the zero offset first."""
        ij = np.array([(i, j) for i in range(-reach, reach + 1) for j in range(-reach, reach + 1)])
        ij = ij[np.argsort(np.abs(ij).sum(axis=1), kind="stable")]
        return ij, ij @ self.vectors


@lru_cache(maxsize=8)
def _highpass(h: int, w: int) -> np.ndarray:
    """The squared gain of "minus a Gaussian blur of ``HIGHPASS_SIGMA``" on an (h, w) rfft grid (float32):
    the background and thickness, which do not repeat, are left out of the autocorrelation."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    keep = 1.0 - np.exp(-2.0 * np.pi**2 * HIGHPASS_SIGMA**2 * (fy**2 + fx**2))
    return (keep**2).astype(np.float32)


def _autocorrelation(template: Template, reach: int) -> np.ndarray:
    """The high-passed template's circular autocorrelation at lags ``-reach..reach`` (1 at zero lag, which
    sits at the centre), from its central ``AUTOCORRELATION_SIZE`` square at most (a lattice repeats)."""
    img = template.image
    valid = template.valid
    h, w = img.shape
    ch, cw = min(h, AUTOCORRELATION_SIZE), min(w, AUTOCORRELATION_SIZE)
    r0, c0 = (h - ch) // 2, (w - cw) // 2
    crop = img[r0 : r0 + ch, c0 : c0 + cw].astype(np.float32)
    if valid is not None:
        crop = np.where(valid[r0 : r0 + ch, c0 : c0 + cw], crop, np.float32(0))
    spec = sfft.rfft2(crop - np.float32(crop.mean()), workers=1)
    power = spec.real**2 + spec.imag**2
    # the template's noise (white: a template of few or weak frames holds much of it) adds only to the
    # zero lag and would drown the lattice's peaks there: its level, the median power beyond
    # NOISE_BAND cycles/px (a lattice's sparse peaks barely move a median), is taken out
    fy = np.abs(np.fft.fftfreq(ch))[:, None]
    fx = np.fft.rfftfreq(cw)[None, :]
    outer = (fy > NOISE_BAND) | (fx > NOISE_BAND)
    floor = float(np.median(power[outer])) if outer.any() else 0.0
    gain = _highpass(ch, cw)
    signal = float(((power - floor) * gain).sum())
    # the noise's own spread: each frequency's power is exponential, so the sum over the weighted
    # frequencies has the spread floor * sqrt(sum(gain**2)); a signal within a few of it is none
    if not signal > MIN_SIGNAL_SIGMA * floor * float(np.sqrt(np.square(gain).sum())):
        return np.zeros((2 * reach + 1, 2 * reach + 1))
    power -= np.float32(floor)
    power *= gain
    ac = sfft.irfft2(power, s=(ch, cw), workers=1)
    if not ac[0, 0] > 0:
        return np.zeros((2 * reach + 1, 2 * reach + 1))
    lags = np.arange(-reach, reach + 1)
    return ac[np.ix_(lags % ch, lags % cw)] / ac[0, 0]


def _subpixel(ac: np.ndarray, y: int, x: int) -> np.ndarray:
    """Parabolic peak position around the integer maximum ``(y, x)``."""
    out = [float(y), float(x)]
    for axis, (lo, mid, hi) in enumerate(
        ((ac[y - 1, x], ac[y, x], ac[y + 1, x]), (ac[y, x - 1], ac[y, x], ac[y, x + 1]))
    ):
        den = lo - 2 * mid + hi
        if den < 0:
            out[axis] += float(np.clip(0.5 * (lo - hi) / den, -0.5, 0.5))
    return np.array(out)


def detect_lattice(template: Template) -> Lattice | None:
    """The template's lattice, or None when it has none.

    Peaks of the high-passed autocorrelation of at least ``MIN_CONTRAST``,
    between ``MIN_PERIOD`` and ``MAX_PERIOD`` px from zero: ``a`` is the
    shortest, ``b`` the shortest at least 30 degrees from it, and ``a - b``
    must be a peak too. Both are refined by least squares over every peak
    within reach (each an integer combination of them).
    """
    h, w = template.image.shape
    reach = int(min(MAX_PERIOD, h // 4, w // 4))
    if reach < 2 * MIN_PERIOD:
        return None
    win = _autocorrelation(template, reach)
    is_peak = (win == ndimage.maximum_filter(win, 3)) & (win >= MIN_CONTRAST)
    is_peak[[0, -1], :] = False
    is_peak[:, [0, -1]] = False
    found = np.argwhere(is_peak)
    if not found.size:
        return None
    vecs = np.array([_subpixel(win, y, x) for y, x in found]) - reach
    length = np.hypot(vecs[:, 0], vecs[:, 1])
    keep = length >= MIN_PERIOD
    vecs, length, found = vecs[keep], length[keep], found[keep]
    if len(vecs) < 4:
        return None
    order = np.argsort(length, kind="stable")
    vecs, length = vecs[order], length[order]
    basis = _basis(win, vecs, length, reach)
    if basis is None:
        return None
    coef = np.linalg.solve(basis.T, vecs.T).T
    ints = np.rint(coef)
    fits = np.hypot(*(ints @ basis - vecs).T) < 0.15 * length[0] + 0.5
    if fits.sum() >= 3:
        basis = np.linalg.lstsq(ints[fits], vecs[fits], rcond=None)[0]
    basis = _reduced(basis)
    contrast = float(min(win[tuple(np.rint(v).astype(int) + reach)] for v in basis))
    return Lattice(basis, contrast)


def _reduced(basis: np.ndarray) -> np.ndarray:
    """The same lattice's shortest basis (Lagrange-Gauss reduction): ``a`` the shortest vector, ``b``
    the shortest not parallel to it. A basis found through a longer peak (``_basis``) spans the lattice
    too, but its candidates ``i a + j b`` (``|i|, |j| <= REACH``) would miss near sites."""
    a, b = np.asarray(basis[0], np.float64), np.asarray(basis[1], np.float64)
    if a @ a > b @ b:
        a, b = b, a
    for _ in range(32):
        k = float(np.rint((a @ b) / (a @ a)))
        b = b - k * a
        if b @ b >= a @ a:
            break
        a, b = b, a
    return np.array([a, b])


def _basis(win: np.ndarray, vecs: np.ndarray, length: np.ndarray, reach: int) -> np.ndarray | None:
    """The first pair ``(a, b)`` of peaks (``vecs``, by increasing ``length``) that spans a lattice:
    ``b`` the shortest at least 30 degrees from ``a``, and ``a - b`` a peak too.

    ``a`` is the shortest peak that has such a ``b``: a weak second sublattice (the centred site of a
    square cell) gives peaks at half a diagonal that, on one diagonal only, pass ``MIN_CONTRAST``; they
    span no lattice and are passed over (before, the lattice was then not found at all).
    """
    peak_max = ndimage.maximum_filter(win, 3)
    for first in range(len(vecs)):
        a = vecs[first]
        cross = np.abs(a[0] * vecs[:, 1] - a[1] * vecs[:, 0])
        second = np.flatnonzero(cross >= 0.5 * length[first] * length)
        if not second.size:
            continue
        b = vecs[second[0]]
        diff = np.rint(a - b).astype(int) + reach
        if not (0 <= diff[0] < win.shape[0] and 0 <= diff[1] < win.shape[1]):
            continue
        if peak_max[diff[0], diff[1]] >= MIN_CONTRAST:
            return np.array([a, b])
    return None


# ----------------------------------------------------------------- evidence
def _bilinear_correlations(low: np.ndarray, t: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """The normalised correlation of the zero-mean ``t`` (H, W) with ``low`` sampled bilinearly over
    ``[c, c + (H, W))`` for each corner ``c`` of ``corners`` (k, 2) (fractional ``low`` px): what warping
    ``low`` by each corner with ``cv2.warpAffine`` (bilinear) and correlating gives (to 1e-7), without
    warping.

    A bilinear sample is linear in the image, so its product with ``t`` is the four whole-pixel
    correlations around the corner, weighted (one FFT correlation for every corner); its sum and sum of
    squares are the image's and its neighbour products' box sums, weighted (summed-area tables). The
    whole resolver on the anchors lattice stacks of 100 frames, 38 candidates a frame: 383 -> 365 ms at
    256x256, 625 -> 475 ms at 512x512 (best of 5, the same result). A corner whose samples leave ``low``
    (beyond ``max_movement``: never chosen) is warped with edge replication, as before.
    """
    big_h, big_w = low.shape
    h, w = t.shape
    img = low.astype(np.float64)
    img -= img.mean()  # sums of squares without cancellation
    t_norm = float(np.sqrt((t * t).sum()))
    q = np.asarray(corners, np.float64)
    whole = np.floor(q).astype(np.int64)
    a, b = q[:, 0] - whole[:, 0], q[:, 1] - whole[:, 1]
    span_y, span_x = big_h - h, big_w - w  # the largest whole corner with every sample inside
    inside = (
        (whole[:, 0] >= 0) & (whole[:, 1] >= 0)
        & (whole[:, 0] + (a > 0) <= span_y) & (whole[:, 1] + (b > 0) <= span_x)
    )
    out = np.zeros(len(q))
    if inside.any():
        wy, wx = whole[inside, 0], whole[inside, 1]
        ai, bi = a[inside], b[inside]
        y1, x1 = np.minimum(wy + 1, span_y), np.minimum(wx + 1, span_x)  # weight 0 where clipped
        # products with t at every whole corner (no wrap-around: corners stay within the spans)
        size = (sfft.next_fast_len(big_h, real=True), sfft.next_fast_len(big_w, real=True))
        cross = sfft.irfft2(sfft.rfft2(img, s=size) * np.conj(sfft.rfft2(t, s=size)), s=size)
        # the four whole corners around each corner (00, 01, 10, 11) and their bilinear weights
        ys, xs = np.stack([wy, wy, y1, y1]), np.stack([wx, x1, wx, x1])
        w00, w01, w10, w11 = (1 - ai) * (1 - bi), (1 - ai) * bi, ai * (1 - bi), ai * bi
        cov = w00 * cross[wy, wx] + w01 * cross[wy, x1] + w10 * cross[y1, wx] + w11 * cross[y1, x1]
        zero = np.zeros_like(img)

        def neighbours(dy: int, dx: int) -> np.ndarray:
            """``img[p] * img[p + (dy, dx)]`` where both exist, 0 elsewhere (dy 0 or 1, dx -1 .. 1)."""
            prod = zero.copy()
            x_lo, x_hi = max(0, -dx), big_w - max(0, dx)
            prod[: big_h - dy, x_lo:x_hi] = img[: big_h - dy, x_lo:x_hi] * img[dy:, x_lo + dx : x_hi + dx]
            return prod

        # box sums over (H, W) of the image and of its products with itself and its neighbours to the
        # right, below, below right and below left, at each whole corner: (6, 4, k)
        images = (img, img * img, neighbours(0, 1), neighbours(1, 0), neighbours(1, 1), neighbours(1, -1))
        tables = np.stack([cv2.integral(im, sdepth=cv2.CV_64F) for im in images])
        box = tables[:, ys + h, xs + w] - tables[:, ys, xs + w] - tables[:, ys + h, xs] + tables[:, ys, xs]
        total, same, across, down, diagonal, anti = box
        s1 = w00 * total[0] + w01 * total[1] + w10 * total[2] + w11 * total[3]
        s2 = (
            w00 * w00 * same[0] + w01 * w01 * same[1] + w10 * w10 * same[2] + w11 * w11 * same[3]
            + 2 * (w00 * w01 * across[0] + w10 * w11 * across[2])
            + 2 * (w00 * w10 * down[0] + w01 * w11 * down[1])
            + 2 * w00 * w11 * diagonal[0] + 2 * w01 * w10 * anti[1]
        )
        var = s2 - s1 * s1 / (h * w)
        denom = t_norm * np.sqrt(np.maximum(var, 0.0))
        out[inside] = np.where(denom > 0, cov / np.where(denom > 0, denom, 1.0), 0.0)
    if not inside.all():
        src = np.ascontiguousarray(low, dtype=np.float32)
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        for k in np.flatnonzero(~inside):
            m = np.array([[1.0, 0.0, corners[k, 1]], [0.0, 1.0, corners[k, 0]]])
            moved = cv2.warpAffine(src, m, (w, h), flags=flags, borderMode=cv2.BORDER_REPLICATE).astype(np.float64)
            moved -= moved.mean()
            denom = t_norm * float(np.sqrt((moved * moved).sum()))
            out[k] = float((moved * t).sum()) / denom if denom > 0 else 0.0
    return out


class _LowPass:
    """The correlation of frames with the template, both low-passed beyond the lattice."""

    def __init__(self, template: Template, lattice: Lattice, bound: tuple[float, float]) -> None:
        self.sigma = LOWPASS_FACTOR * lattice.longest
        self.step = max(1, int(self.sigma / 1.5))
        low = self.low(template.image)
        h, w = low.shape
        reach = lattice.longest * (REACH + 0.5)
        self.radius = (
            int(min(np.ceil((bound[0] + reach) / self.step), h - 1)),
            int(min(np.ceil((bound[1] + reach) / self.step), w - 1)),
        )
        self.template_low = low - np.float32(low.mean())
        self.search = NCCSearch(self.template_low, self.radius, min_overlap=0.1)
        #: independent blobs of a low-passed image
        self.blobs = h * w / (4 * np.pi * (self.sigma / self.step) ** 2)

    def low(self, image: np.ndarray) -> np.ndarray:
        """``image`` area-averaged by ``step`` and blurred (a Gaussian of ``sigma`` full-resolution px)."""
        img = image.astype(np.float32, copy=False)
        if self.step > 1:
            h, w = img.shape
            img = cv2.resize(img, (w // self.step, h // self.step), interpolation=cv2.INTER_AREA)
        return cv2.GaussianBlur(img, (0, 0), self.sigma / self.step)

    def surface(self, low: np.ndarray) -> np.ndarray:
        """The correlation of a frame (its :meth:`low` image) at every shift of the window (-1: undefined)."""
        scores = self.search.scores(low - np.float32(low.mean()))
        return np.where(np.isfinite(scores), scores, -1.0)

    def costs(self, scores: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """``-log-likelihood`` of a frame (its :meth:`surface`) at each of ``positions`` (k, 2) px:
        the independent blobs counted over the overlap there (a small overlap holds fewer, and its
        correlation is noisier: counting the whole frame's made far candidates win on noise)."""
        at = positions / self.step + np.array(self.radius, float)
        r = ndimage.map_coordinates(scores, at.T, order=1, cval=-1.0)
        r = np.clip(r, 0.0, 0.999)
        frac = ndimage.map_coordinates(self.search.overlap_fraction(), at.T, order=1, cval=0.0)
        return 0.5 * self.blobs * np.clip(frac, 0.0, 1.0) * np.log1p(-(r**2))

    def common_costs(self, low: np.ndarray, positions: np.ndarray, usable: np.ndarray) -> np.ndarray | None:
        """``-log-likelihood`` of a frame (its :meth:`low` image) at each of ``positions`` (k, 2) px, all
        compared over the same template pixels: those the frame covers at every ``usable`` position. So
        no position wins by its overlap (the whole frame's blobs favour small overlaps, which are noisier;
        the blobs of each overlap favour the positions nearest 0). None when that region is too small."""
        h, w = self.template_low.shape
        at = np.asarray(positions, np.float64) / self.step  # frame[p + s] ~ template[p], level px
        use = at[usable] if np.any(usable) else at
        y0, y1 = max(0, int(np.ceil(-use[:, 0].min()))), min(h, int(np.floor(h - 1 - use[:, 0].max())))
        x0, x1 = max(0, int(np.ceil(-use[:, 1].min()))), min(w, int(np.floor(w - 1 - use[:, 1].max())))
        if y1 - y0 < MIN_COMMON or x1 - x0 < MIN_COMMON or (y1 - y0) * (x1 - x0) < MIN_COMMON_SHARE * h * w:
            return None
        t = self.template_low[y0:y1, x0:x1].astype(np.float64)
        t = t - t.mean()
        r = _bilinear_correlations(low, t, at + np.array([y0, x0], np.float64))
        r = np.clip(r, 0.0, 0.999)
        frac = (y1 - y0) * (x1 - x0) / float(h * w)
        return 0.5 * self.blobs * frac * np.log1p(-(r**2))

    def best_site(
        self, scores: np.ndarray, chosen: np.ndarray, vectors: np.ndarray, bound: tuple[float, float]
    ) -> tuple[float, np.ndarray, int]:
        """The best match of the non-repeating content among the other lattice sites of ``chosen``
        (``chosen + i a + j b``, any ``i, j`` within ``bound``): where the lattice matches as well.

        Returns ``(cost, position, sites)``: its ``-log-likelihood`` (:meth:`costs`, the blobs of the
        overlap), its position (px) and the number of sites it was the best of (inf cost when none).
        """
        basis = np.asarray(vectors, np.float64)
        shortest = float(np.min(np.hypot(basis[:, 0], basis[:, 1])))
        reach = int(min(np.ceil(2.0 * max(bound) / shortest) + 1, MAX_SITES_REACH))
        i, j = np.meshgrid(np.arange(-reach, reach + 1), np.arange(-reach, reach + 1), indexing="ij")
        ij = np.column_stack([i.ravel(), j.ravel()])
        ij = ij[np.any(ij != 0, axis=1)]
        sites = np.asarray(chosen, np.float64)[None, :] + ij @ basis
        sites = sites[(np.abs(sites[:, 0]) <= bound[0]) & (np.abs(sites[:, 1]) <= bound[1])]
        if not len(sites):
            return float("inf"), np.array(chosen, float), 0
        cost = self.costs(scores, sites)
        k = int(np.argmin(cost))
        return float(cost[k]), sites[k], len(sites)


def _unwrapped(shifts: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """``shifts`` (n, 2), each moved by the lattice vector that puts it nearest the median of the
    ``UNWRAP_WINDOW`` unwrapped frames before it (a continuous path: steps shorter than half a
    lattice vector, as the motion prior assumes), then all by the one lattice vector that keeps the
    path's median where the shifts' median is (the template frames' position)."""
    basis = np.asarray(vectors, np.float64)
    inverse = np.linalg.inv(basis.T)
    out = np.asarray(shifts, np.float64).copy()
    for t in range(1, len(out)):
        expected = np.median(out[max(0, t - UNWRAP_WINDOW) : t], axis=0)
        out[t] = shifts[t] + nearest_lattice_point(expected - shifts[t], basis, inverse)
    common = nearest_lattice_point(np.median(out - shifts, axis=0), basis, inverse)
    return out - common


def _step_sigma(shifts: np.ndarray, offsets: np.ndarray) -> float:
    """Typical step (px): the median of the shortest lattice-equivalent steps, as a Rayleigh sigma."""
    if len(shifts) < 2:
        return 1.0
    steps = np.diff(shifts, axis=0)
    nearest = np.min(np.hypot(*(steps[:, None, :] + offsets[None]).transpose(2, 0, 1)), axis=1)
    return max(MIN_STEP_SIGMA, float(np.median(nearest)) / np.sqrt(2 * np.log(2)))


def _step_evidence(shifts: np.ndarray, offsets: np.ndarray, vectors: np.ndarray, sigma: float) -> float:
    """Log-likelihood ratio of the shortest lattice-equivalent steps between a motion and no motion
    information.

    A motion: an isotropic Gaussian step of spread ``sigma`` (the robust, median-based
    :func:`_step_sigma`), truncated to the lattice cell, mixed with ``STEP_OUTLIERS`` of steps uniform
    over the cell (hops, stage moves: a spread fitted to every step made the slowest drifts look like
    no motion). No information: every step uniform over the cell (steps of any length, seen modulo the
    lattice).

    The typical step alone is a median of few steps: 16 frames of 384 px (an 8 px lattice) stepping
    9 px at random, some of them along one axis only, had a median lattice-equivalent step of 0.28
    lattice vectors, under ``WRAP_SIGMA``; the motion then held all 16 one or more lattice vectors off,
    marked ok (evidence 2.3; four such stacks: -0.8 to 2.3). The anchors lattice stacks that drift
    slowly give 11 to 216 (seed 7), bench_lattice_drift's stack 0 (hops in its raw estimates) 180.
    """
    if len(shifts) < 3:
        return 0.0
    steps = np.diff(np.asarray(shifts, np.float64), axis=0)
    cand = steps[:, None, :] + np.asarray(offsets, np.float64)[None]
    r2 = np.min(cand[..., 0] ** 2 + cand[..., 1] ** 2, axis=1)
    var = max(float(sigma), MIN_STEP_SIGMA) ** 2  # per axis
    basis = np.asarray(vectors, np.float64)
    area = abs(float(np.linalg.det(basis)))
    inradius = 0.5 * float(np.min(np.hypot(basis[:, 0], basis[:, 1])))
    inside = 1.0 - np.exp(-(inradius**2) / (2 * var))  # the Gaussian's mass within the cell (its inscribed disc)
    gaussian = np.exp(-r2 / (2 * var)) / (2 * np.pi * var * inside)
    return float(np.sum(np.log((1.0 - STEP_OUTLIERS) * gaussian * area + STEP_OUTLIERS)))


def _path(positions: np.ndarray, costs: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(best candidate per frame, its margin over the next best, the next best) of the chain of frames.

    ``positions`` (n, k, 2) px, ``costs`` (n, k) ``-log-likelihood``; steps
    cost ``min(d**2 / (2 sigma**2), STEP_CAP)``. Margins are max-marginals
    (forward plus backward minimum costs).
    """
    n, k = costs.shape

    def step(t: int) -> np.ndarray:  # (k_t, k_{t-1})
        d = positions[t][:, None, :] - positions[t - 1][None, :, :]
        return np.minimum((d**2).sum(-1) / (2 * sigma**2), STEP_CAP)

    fwd = np.empty((n, k))
    fwd[0] = costs[0]
    for t in range(1, n):
        fwd[t] = costs[t] + (fwd[t - 1][None, :] + step(t)).min(axis=1)
    bwd = np.zeros((n, k))
    for t in range(n - 2, -1, -1):
        bwd[t] = ((costs[t + 1] + bwd[t + 1])[:, None] + step(t + 1)).min(axis=0)
    total = fwd + bwd
    # the decoded path (consistent choices), then each frame's max-marginal margin
    best = np.empty(n, np.int64)
    best[-1] = int(np.argmin(total[-1]))
    for t in range(n - 1, 0, -1):
        best[t - 1] = int(np.argmin(fwd[t - 1] + step(t)[best[t]]))
    chosen = total[np.arange(n), best]
    others = total.copy()
    others[np.arange(n), best] = np.inf
    return best, others.min(axis=1) - chosen, np.argmin(others, axis=1)


@dataclass
class _Choice:
    positions: np.ndarray  # (n, 2) chosen
    margin: np.ndarray  # (n,)
    runner_up: np.ndarray  # (n, 2) offset of the runner-up to the chosen (px)
    farther: np.ndarray  # (n, 2) offset of the best match beyond the candidates (px)
    far_margin: np.ndarray  # (n,) how much more likely that match is, less the look-elsewhere allowance


def _choose(
    lows: list[np.ndarray], centres: list[np.ndarray], offsets: np.ndarray, evidence: _LowPass, sigma: float,
    bound: tuple[float, float], vectors: np.ndarray,
) -> _Choice:
    """The most likely path through the candidates ``centre + offsets`` of every set of ``centres``
    (each (n, 2): the estimates, the path the motion implies); a candidate repeated by a later set
    is never chosen (nor the runner-up)."""
    positions = np.concatenate([c[:, None, :] + offsets[None] for c in centres], axis=1)
    outside = (np.abs(positions[..., 0]) > bound[0]) | (np.abs(positions[..., 1]) > bound[1])
    surfaces = [evidence.surface(low) for low in lows]
    costs = np.empty(positions.shape[:2])
    for t, (low, sc, pos) in enumerate(zip(lows, surfaces, positions)):
        common = evidence.common_costs(low, pos, ~outside[t])
        costs[t] = evidence.costs(sc, pos) if common is None else common
    costs[outside] = 1e6  # beyond max_movement: never chosen
    k = offsets.shape[0]
    for j in range(k, positions.shape[1]):
        gap = np.hypot(*(positions[:, :j] - positions[:, j : j + 1]).transpose(2, 0, 1))
        costs[(gap < 0.5).any(axis=1), j] = 1e6  # the same candidate twice
    best, margin, second = _path(positions, costs, sigma)
    n = len(lows)
    chosen = positions[np.arange(n), best]
    # a frame the motion holds against its content, or put beyond the candidates' reach, is seen by a
    # better match of the non-repeating content at another of its lattice sites, by more than chance
    farther = np.zeros((n, 2))
    far_margin = np.full(n, -np.inf)
    for t in range(n):
        cost, pos, sites = evidence.best_site(surfaces[t], chosen[t], vectors, bound)
        if np.isfinite(cost):
            here = float(evidence.costs(surfaces[t], chosen[t][None])[0])  # on the same scale as the sites'
            far_margin[t] = here - cost - float(np.log(sites))
            farther[t] = pos - chosen[t]
    return _Choice(chosen, margin, positions[np.arange(n), second] - chosen, farther, far_margin)


class _Defects(NamedTuple):
    """What the defects band made of the frames (:func:`_defects_band`)."""

    check: Any  # the check against the trusted frames (None when none was made)
    doubted: np.ndarray  # the frames whose sites it doubts
    unsupported: np.ndarray  # ... of them, those it does not single out where it singles out the others
    typical: float  # the trusted frames' median margin (NaN without a check)
    moved: bool  # whether any frame was moved


def _defects_band(
    read: Callable[[int], np.ndarray], lows: list[np.ndarray], choice: _Choice, unconfirmed: np.ndarray, confirm_margin: np.ndarray,
    evidence: _LowPass, lattice: Lattice, offsets: np.ndarray, bound: tuple[float, float], info: dict[str, Any],
    kept: KeptSpectra | None = None,
) -> _Defects:
    """The frames' sites (no motion prior, or a path of several runs) checked in the defects band
    (:mod:`._lattice_frames`).

    With enough trusted frames, each frame is compared with them: an untrusted frame whose site the
    defects single out is confirmed (the background favoured that site too), and a site the defects
    beat by ``MIN_MARGIN`` is given up for theirs when both bands together favour it by the margin
    beyond the offsets compared (:func:`_pair_costs`), else doubted. With too few, the frames agree
    among themselves in that band (:func:`~._lattice_frames.agree_frames`), and those whose agreed
    site the other half singles out are placed there. ``choice`` and ``unconfirmed`` are updated in
    place; ``info["defects"]`` says what was done.

    Where the defects single out the trusted frames' sites by far (median margin at least
    ``STRONG_SUPPORT``), a trusted frame they do not single out (margin below ``MIN_MARGIN``) is doubted
    too: its site may lie beyond the offsets compared.

    Returns
    -------
    _Defects
    """
    trusted = (choice.margin >= MIN_MARGIN) & ~(choice.far_margin > MIN_MARGIN) & ~unconfirmed
    doubted = np.zeros(len(trusted), bool)
    if int(trusted.sum()) - 1 < MIN_REFERENCE:
        # none (or too few) to compare with: the frames agree among themselves in that band, or not
        agreed = agree_frames(
            read, choice.positions, lattice.vectors, offsets, bound=bound, lowpass_sigma=evidence.sigma,
            margin=MIN_MARGIN,
        )
        if agreed is None:
            return _Defects(None, doubted, doubted, float("nan"), False)
        sites, check, found = agreed
        shifted = np.hypot(*(sites - choice.positions).T) > 0.5
        # a frame the agreement moves must win beyond the offsets it was compared at
        sure = check.support >= MIN_MARGIN + np.where(shifted, check.look_elsewhere, 0.0)
        # where the band singles out most sites by far, a margin of chance's size is not support
        sure &= ~_chance_sized(check.support, float(np.median(check.support[sure])) if sure.any() else 0.0)
        choice.positions[sure] = sites[sure]
        choice.margin[sure] = np.inf
        choice.far_margin[sure] = -np.inf
        unconfirmed &= ~sure
        info["defects"] = found | {"agreed": int(sure.sum()), "moved": int((sure & shifted).sum())}
        return _Defects(None, doubted, doubted, float("nan"), bool((sure & shifted).any()))
    defects = check_frames(
        read, choice.positions, trusted, lattice.vectors, offsets, bound=bound, lowpass_sigma=evidence.sigma,
        kept=kept,
    )
    if defects is None:
        return _Defects(None, doubted, doubted, float("nan"), False)
    # the background favoured the site (the frame's best, or within the margin of the other frames'
    # best), so both bands together favour it by at least the defects' support plus that
    confirmed = ~trusted & (choice.margin + defects.support >= MIN_MARGIN) & ~(choice.far_margin > MIN_MARGIN)
    confirmed &= ~unconfirmed | (confirm_margin + defects.support >= MIN_MARGIN)
    confirmed &= defects.support >= MIN_MARGIN
    choice.margin[confirmed] = np.inf
    unconfirmed &= ~confirmed
    # a site the defects beat by the margin contradicts the background's: the frame goes there when
    # both bands together favour it by the margin beyond the offsets compared, else it is doubted
    doubted = defects.gain >= MIN_MARGIN
    hops = 0
    for t in np.flatnonzero(doubted):
        here = choice.positions[t]
        there = here + defects.best[t]
        background = _pair_costs(evidence, lows[t], np.array([here, there]))
        combined = float(defects.gain[t] + background[0] - background[1])
        if combined >= MIN_MARGIN + defects.look_elsewhere:
            choice.positions[t] = there
            choice.margin[t] = combined
            doubted[t] = False
            hops += 1
    # where the defects single out the trusted frames' sites by far, a trusted frame whose site they do
    # not single out lies beyond the offsets compared (grid seed 2014, case 8: three frames 51-162 px off,
    # marked ok, at -1.2 to 0.2 where the others had 81 to 125)
    typical = float(np.median(defects.support[trusted]))
    weak = (defects.support < MIN_MARGIN) & (typical >= STRONG_SUPPORT)
    unsupported = trusted & (defects.gain < MIN_MARGIN) & (weak | _chance_sized(defects.support, typical))
    doubted |= unsupported
    info["defects"] = {
        "confirmed": int(confirmed.sum()), "moved": hops, "doubted": int(doubted.sum()),
        "unsupported": int(unsupported.sum()), "typical_support": round(typical, 1),
    }
    return _Defects(defects, doubted, unsupported, typical, hops > 0)


def _chance_sized(support: np.ndarray, typical: float) -> np.ndarray:
    """The frames whose defects-band margin is below ``CHANCE_SHARE`` of ``typical`` (the median margin of
    the frames that count), where ``typical`` is at least ``STRONG_SUPPORT`` (none otherwise)."""
    if not typical >= STRONG_SUPPORT:
        return np.zeros(len(support), bool)
    return support < CHANCE_SHARE * typical


def _pair_costs(evidence: _LowPass, low: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """``-log-likelihood`` of a frame (its low-passed image) at each of ``positions``, compared over the
    template pixels it covers at all of them (over each one's overlap when that region is too small)."""
    common = evidence.common_costs(low, positions, np.ones(len(positions), bool))
    return evidence.costs(evidence.surface(low), positions) if common is None else common


def _holds(est: Any, start: tuple[float, float], quality_before: float) -> bool:
    """Whether a moved frame's refinement from ``start`` kept the match, about as good as before."""
    if est.flags & (FLAG_UNUSABLE | FLAG_FAILED) or np.hypot(est.shift[0] - start[0], est.shift[1] - start[1]) >= 1.0:
        return False
    return not (np.isfinite(quality_before) and est.quality < quality_before - SWITCH_TOLERANCE * abs(quality_before))


def resolve_periodic(
    stack: Any,
    job: Any,
    state: Any,
    results: FrameResults,
    *,
    preparer: FramePreparer,
    estimator: PyramidEstimator,
) -> tuple[FrameResults, list[str] | None, dict[str, Any]]:
    """Resolve the lattice-vector ambiguity of every frame (see the module docstring).

    Parameters
    ----------
    stack : array-like (T, Y, X)
        The frames (read once more, one at a time, when the template holds a lattice).
    job, state
        The :class:`~._stages.PyramidJob` and :class:`~._stages.TemplateState`.
    results : FrameResults
        Every frame's estimate (final pass), in frame order.
    preparer, estimator
        Those of the final pass.

    Returns
    -------
    (results, notes, params)
        ``results`` with the moved frames re-refined, ``notes`` a reason per
        frame ('' for none; None without a lattice) and ``params`` for the
        result's ``params`` (``{"lattice": ...}``; empty without a lattice).
    """
    lattice = detect_lattice(state.template)
    if lattice is None:
        return results, None, {}
    h, w = job.crop_shape
    bound = (job.options.max_movement * h / 2.0, job.options.max_movement * w / 2.0)
    ij, offsets = lattice.offsets()
    near = np.hypot(offsets[:, 0], offsets[:, 1]) <= (REACH + 0.01) * lattice.longest
    ij, offsets = ij[near], offsets[near]
    usable = (results.flags & (FLAG_UNUSABLE | FLAG_FAILED)) == 0
    idx = np.flatnonzero(usable)
    info: dict[str, Any] = {"vectors": lattice.vectors.round(3).tolist(), "contrast": round(lattice.contrast, 3)}
    notes = [""] * len(results.shifts)
    if idx.size < 2:
        return results, notes, {"lattice": info | {"moved_frames": 0, "ambiguous_frames": 0}}
    evidence = _LowPass(state.template, lattice, bound)
    # the frames low-passed once (the same for a rebuilt template)
    raw = results.shifts[idx]
    shortest = float(np.min(np.hypot(lattice.vectors[:, 0], lattice.vectors[:, 1])))
    # frames rotated or deformed against the template (checked below); a long stack is screened first
    regions = RegionCheck(state.template.image, state.template.valid, lattice.longest)
    check_regions = regions.usable and len(idx) <= SCREEN_FRAMES
    if regions.usable and not check_regions:
        for k in screen(results.quality[idx]):
            residual = regions.residuals(preparer(np.asarray(stack[int(idx[k])])).image, (raw[k, 0], raw[k, 1]))
            if off_centre(centre_error(residual, regions.centres, lattice.vectors), shortest, 0.5):
                check_regions = True
                break
    frames, region_residuals = [], []
    for k, t in enumerate(idx):
        image = preparer(np.asarray(stack[int(t)])).image
        frames.append(evidence.low(image))
        if check_regions:
            region_residuals.append(regions.residuals(image, (float(raw[k, 0]), float(raw[k, 1]))))
    sigma = _step_sigma(raw, offsets)
    step_evidence = _step_evidence(raw, offsets, lattice.vectors, sigma)
    motion_prior = bool(sigma <= WRAP_SIGMA * shortest and step_evidence >= MIN_MARGIN)
    info["step_evidence"] = round(step_evidence, 1)
    if not motion_prior:
        # steps this large cross half a lattice vector often: the shortest lattice-equivalent step is then
        # not the step made, and the motion says nothing; the non-repeating content alone decides
        sigma = float("inf")
    # the candidates surround the path the motion implies: frames put whole lattice vectors off in
    # blocks (a template of few frames, a search that settled on a farther site) can be more than
    # REACH lattice vectors from it
    centres = _unwrapped(raw, lattice.vectors) if motion_prior else raw
    member = job.in_template()[idx]

    def rebuild(positions: np.ndarray) -> Template:
        acc = TemplateAccumulator(job.crop_shape, job.options.normalize, job.options.kernel)
        for t, pos in zip(np.flatnonzero(member), positions[member]):
            acc.add(acc.register(preparer(np.asarray(stack[int(idx[t])])), (float(pos[0]), float(pos[1]))))
        return acc.template()

    rebuilt_template = None
    if not motion_prior:
        # nothing links the frames: each is decided by its content against the template, which holds the
        # template frames' content at every site the search put them. Agreed among the template frames
        # from a seed frame instead (two halves apart, which must agree with each other)
        lows_t = [frames[t] for t in np.flatnonzero(member)]
        found = consensus_sites(lows_t, raw[member], lattice.vectors, evidence.step, bound, evidence.blobs, MIN_MARGIN)
        if found is not None:
            agreed = raw.copy()
            agreed[member] = found[0]
            moved_t = int((np.hypot(*(agreed - raw).T) > 0.5)[member].sum())
            info["consensus"] = found[1] | {"moved": moved_t}
            if moved_t:
                centres = agreed
                rebuilt_template = rebuild(agreed)
                evidence = _LowPass(rebuilt_template, lattice, bound)
    if motion_prior and (np.hypot(*(centres - raw).T) > 0.5)[member].any():
        # the template frames hop by whole lattice vectors along their path: the template holds their
        # non-repeating content at several offsets and each block matches its own copy. Rebuilt along
        # the continuous path first, the evidence does not favour the hops
        rebuilt_template = rebuild(centres)
        evidence = _LowPass(rebuilt_template, lattice, bound)
    choice = _choose(frames, [raw, centres], offsets, evidence, sigma, bound, lattice.vectors)
    moved = np.hypot(*(choice.positions - raw).T) > 0.5
    if (moved & member).any() and (rebuilt_template is None or (np.hypot(*(choice.positions - centres).T) > 0.5)[member].any()):
        # the template held the lattice at several offsets: rebuild it from the resolved frames, decide again
        rebuilt_template = rebuild(choice.positions)
        choice = _choose(
            frames, [choice.positions, raw], offsets, _LowPass(rebuilt_template, lattice, bound), sigma, bound,
            lattice.vectors,
        )
        moved = np.hypot(*(choice.positions - raw).T) > 0.5
    if motion_prior:
        # blocks of consecutive frames one lattice vector off each other match their own copies in the
        # template: compared block mean against block mean instead, they cannot agree with themselves
        fixed, fixes = fix_blocks(frames, choice.positions, offsets, evidence.step, evidence.blobs, bound, MIN_MARGIN)
        if fixes:
            info["block_moves"] = fixes
            rebuilt_template = rebuild(fixed)
            choice = _choose(
                frames, [fixed, raw], offsets, _LowPass(rebuilt_template, lattice, bound), sigma, bound,
                lattice.vectors,
            )
            moved = np.hypot(*(choice.positions - raw).T) > 0.5
    runs = None
    # the frames' defects-band spectra, computed once for the runs' check and the frames' check below
    kept = KeptSpectra() if motion_prior else None
    if motion_prior:
        # runs of frames between steps the motion cannot tell from a lattice vector longer: each placed by
        # the defects and background of all the other frames, at full resolution with the lattice taken out
        runs = check_runs(
            lambda k: preparer(np.asarray(stack[int(idx[k])])).image, frames, choice.positions, lattice.vectors,
            offsets, sigma=sigma, cap=STEP_CAP, bound=bound, margin=MIN_MARGIN, step=evidence.step,
            blobs=evidence.blobs, lowpass_sigma=evidence.sigma, kept=kept,
        )
        if runs is not None:
            info["runs"] = {"count": len(runs.runs), "moves": runs.moves}
            # a placed run's site won against the frames placed before it (not against a template that holds
            # its own copy), and the motion links its frames: the path's margins (that template's) give way
            choice.margin[np.isinf(runs.margin)] = np.inf
            if runs.moves:
                shifted = np.hypot(*(runs.positions - choice.positions).T) > 0.5
                choice.positions = runs.positions
                choice.margin[shifted] = np.inf  # the path's margins were those of the old sites
                choice.far_margin[shifted] = -np.inf
                moved = np.hypot(*(choice.positions - raw).T) > 0.5
                if (shifted & member).any():
                    rebuilt_template = rebuild(choice.positions)
    if not motion_prior and "consensus" in info:
        # nothing holds a frame where it is, and the template frames agree among themselves: a frame whose
        # content matches another of its lattice sites better, beyond chance, goes there (re-refined below,
        # and kept only where it matches the template as well as before)
        far = np.flatnonzero(choice.far_margin > MIN_MARGIN)
        if far.size:
            choice.positions[far] = choice.positions[far] + choice.farther[far]
            choice.margin[far] = choice.far_margin[far]
            choice.far_margin[far] = -np.inf
            moved = np.hypot(*(choice.positions - raw).T) > 0.5
            info["consensus"]["far_moves"] = int(far.size)
    unconfirmed = np.zeros(len(idx), bool)
    confirm_best = np.zeros((len(idx), 2))
    confirm_margin = np.full(len(idx), np.inf)
    if not motion_prior and "consensus" not in info:
        # nothing links the frames and the template frames did not agree among themselves: each template
        # frame's site was decided against a template holding its own copy. The other frames must confirm it
        mem = np.flatnonzero(member)
        checked = confirm_sites([frames[t] for t in mem], choice.positions[mem], offsets, evidence.step, evidence.blobs)
        if checked is not None:
            confirm_margin[mem], confirm_best[mem] = checked
            unconfirmed[mem] = checked[0] < MIN_MARGIN
            info["unconfirmed"] = int(unconfirmed.sum())
    doubted = np.zeros(len(idx), bool)
    unsupported = doubted
    defects = None
    typical = float("nan")
    # with the motion prior, a path cut into several runs links only the frames within a run: a run of one
    # frame is placed by the runs' check alone (grid seed 2027, case 12: a 768 px square lattice at SNR
    # 0.33 cut into 9 runs, two single frames one and two lattice vectors off, marked ok; the check below
    # moved both back). Grid, 68 seeds, the 114 lattice stacks with several runs: wrong and ok 2 -> 0,
    # right and ok 4,631 -> 4,632; bench_lattice_runs 1 -> 0 (seed 1), bench_lattice_drift 0-60 unchanged
    several_runs = motion_prior and runs is not None and len(runs.runs) > 1
    if not several_runs:
        kept = None
    if not motion_prior or several_runs:
        # nothing links the frames (or not all of them) and the background decided each site: the defects of
        # the other trusted frames, at full resolution with the lattice taken out, must not put it elsewhere
        now = _LowPass(rebuilt_template if rebuilt_template is not None else state.template, lattice, bound)
        outcome = _defects_band(
            lambda k: preparer(np.asarray(stack[int(idx[k])])).image, frames, choice, unconfirmed,
            confirm_margin, now, lattice, offsets, bound, info, kept,
        )
        kept = None  # the spectra are not needed again
        defects, doubted, unsupported, typical = outcome.check, outcome.doubted, outcome.unsupported, outcome.typical
        if outcome.moved:
            moved = np.hypot(*(choice.positions - raw).T) > 0.5
            if (moved & member).any():
                rebuilt_template = rebuild(choice.positions)
    # a frame rotated or deformed against the template: on a lattice, the frame-wide match can settle
    # pixels from its centre's displacement (lattice-vector moves above leave the residuals as they are)
    turned, centre_found, centre_spread = turned_frames(region_residuals, len(idx), regions.centres, lattice.vectors)
    if regions.usable:
        info["rotated_frames"] = int(turned.sum()) if check_regions else None
    rebuilt = rebuilt_template is not None
    if rebuilt:
        # every frame is refined against the rebuilt template (the old one favours the frames put off)
        estimator = job.estimator(rebuilt_template)
    out = FrameResults(
        results.shifts.copy(), results.quality.copy(), results.flags.copy(), results.neff.copy(), results.turn.copy()
    )
    last = estimator.active[-1]
    n_moved = 0
    again = np.flatnonzero(moved | rebuilt)
    background = background_neff(estimator, again.size, 2 * job.chunk_size + 4)
    try:
        for t in again:
            frame = int(idx[t])
            start = (float(choice.positions[t, 0]), float(choice.positions[t, 1]))
            prepared = preparer(np.asarray(stack[frame]))
            est, neff = estimator.estimate_deferred(prepared, start, last - 1)
            before = float(results.quality[frame])
            if moved[t] and rebuilt:  # compared against the same template (its quality only)
                before = estimator.estimate_deferred(prepared, (float(raw[t, 0]), float(raw[t, 1])), last - 1)[0].quality
            if moved[t] and not _holds(est, start, before):
                dy, dx = start[0] - raw[t, 0], start[1] - raw[t, 1]
                notes[frame] = (
                    f"lattice ambiguity: the motion and the non-repeating content put it ({dy:+.1f}, {dx:+.1f}) px "
                    "away, where it does not match the template"
                )
                continue
            out.shifts[frame] = est.shift
            out.quality[frame] = est.quality
            out.flags[frame] = est.flags
            out.turn[frame] = est.turn
            out.neff[frame] = np.nan
            if neff is not None and background is not None:
                background.submit(frame, neff)
            elif neff is not None:
                out.neff[frame] = neff()
            if background is not None:
                background.throttle()
            n_moved += int(moved[t])
        if background is not None:
            background.collect(out.neff)
    finally:
        if background is not None:
            background.shutdown()

    def note(frames: np.ndarray, reason: Any) -> None:
        """``reason(t)`` for each frame ``t`` (index into ``idx``) that has no note yet."""
        for t in frames:
            if not notes[int(idx[t])]:
                notes[int(idx[t])] = reason(t)

    note(
        np.flatnonzero(turned),
        lambda t: (
            f"rotated or deformed against the template: its regions depart from one translation by up to "
            f"{centre_spread[t]:.1f} px and put its centre ({centre_found[t][0]:+.1f}, {centre_found[t][1]:+.1f}) "
            f"px from the translation found; on a lattice the frame-wide match is then not the centre's "
            f"(flagged beyond {SPREAD_LIMIT * shortest:.1f} px of departure or {CENTRE_TOLERANCE:g} px at the centre)"
        ),
    )
    note(
        np.flatnonzero(unsupported),
        lambda t: (
            f"lattice ambiguity: the other frames' defects (the lattice taken out) do not single out its site "
            f"(log-likelihood margin {defects.support[t]:.1f} < {MIN_MARGIN:g}, where the other frames' median is "
            f"{typical:.0f}): it may lie beyond the {len(offsets)} lattice offsets compared"
        ),
    )
    note(
        np.flatnonzero(doubted),
        lambda t: (
            f"lattice ambiguity: the other frames' defects (the lattice taken out) match it "
            f"({defects.best[t][0]:+.1f}, {defects.best[t][1]:+.1f}) px away better than where its background "
            f"put it (log-likelihood by {defects.gain[t]:.1f} >= {MIN_MARGIN:g}), and nothing links the frames"
        ),
    )
    note(
        np.flatnonzero(unconfirmed),
        lambda t: (
            f"lattice ambiguity: the other template frames do not confirm its lattice site (the position "
            f"({confirm_best[t][0]:+.1f}, {confirm_best[t][1]:+.1f}) px away matches them within "
            f"{confirm_margin[t]:.1f} < {MIN_MARGIN:g} of log-likelihood), and nothing links the frames"
        ),
    )
    note(
        np.flatnonzero(choice.far_margin > MIN_MARGIN),
        lambda t: (
            f"lattice ambiguity: the non-repeating content matches ({choice.farther[t][0]:+.1f}, "
            f"{choice.farther[t][1]:+.1f}) px away better than here (log-likelihood by "
            f"{choice.far_margin[t]:.1f} beyond chance)"
        ),
    )
    note(
        np.flatnonzero(choice.margin < MIN_MARGIN),
        lambda t: (
            f"lattice ambiguity: the position ({choice.runner_up[t][0]:+.1f}, {choice.runner_up[t][1]:+.1f}) px "
            f"away, one lattice vector off, is nearly as likely (log-likelihood margin {choice.margin[t]:.1f} < "
            f"{MIN_MARGIN:g})"
        ),
    )
    if runs is not None:
        note(
            np.flatnonzero(runs.margin < MIN_MARGIN),
            lambda t: (
                f"lattice ambiguity: frames {int(idx[runs.runs[runs.run[t]][0]])}-"
                f"{int(idx[runs.runs[runs.run[t]][1] - 1])} sit between steps the motion cannot tell from a "
                f"lattice vector longer, and the other frames' defects and background do not single out their "
                f"site (({runs.rival[t][0]:+.1f}, {runs.rival[t][1]:+.1f}) px away is within "
                f"{max(runs.margin[t], 0.0):.1f} < {MIN_MARGIN:g} of log-likelihood)"
            ),
        )
        info["runs"]["ambiguous"] = int(sum(1 for a, _ in runs.runs if runs.margin[a] < MIN_MARGIN))
    info |= {
        "step_sigma": round(sigma, 3) if motion_prior else None,
        "motion_prior": motion_prior,
        "template_rebuilt": rebuilt,
        "moved_frames": n_moved,
        "ambiguous_frames": int(sum(1 for n in notes if n)),
    }
    return out, notes, {"lattice": info}
