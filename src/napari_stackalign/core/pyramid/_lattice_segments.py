"""Runs of frames the motion does not link, placed by the defects the other frames hold.

With the motion prior (:func:`._periodic.resolve_periodic`), a step the
motion cannot tell from the same step one lattice vector longer (its cost
differs by less than the margin) leaves the frames after it as a run whose
lattice site only the non-repeating content decides. Judged against the
template, each run matches its own copy: on a weak lattice with many such
steps (grid seed 1008, case 24: a 6 px hexagonal lattice at SNR 0.45 whose
steps reach 3-4 px, half a lattice vector) the resolver left six runs of 4
to 18 frames one or more lattice vectors off each other, 36 frames marked ok.

:func:`check_runs` cuts the path into those runs, places the longest, and
then, round by round, compares every other run's mean with the mean of the
runs placed so far (never with frames of its own), at every lattice offset,
in two bands whose log-likelihoods add:

- the background: the low-passed images of the resolver (a blur of 0.6
  lattice vectors), over the region every frame covers at every offset, with
  their blobs as the independent samples (as :mod:`._lattice_blocks` does);
- the defects, at full resolution with the lattice taken out: each frame
  filtered by ``1 - mean_k cos(2 pi f . v_k)`` over the six nearest lattice
  vectors ``v_k`` (zero at every reciprocal lattice point: a lattice moved by
  a lattice vector is the same image, and only vacancies and dopants remain),
  smoothed at an atom (0.15 of the shortest vector) and without the
  background band, then windowed, and moved by exact Fourier phases (a
  bilinear move blurs each offset differently). Its samples are
  ``(sum g**2)**2 / sum g**4`` over the filter's spectrum, times the
  window's share of the frame. One band for both overstated the background:
  a smooth background seen at that many samples moved right runs by 16-21 of
  log-likelihood (``test_lattice_blocks.py``'s stacks).

Each band's log-likelihood of an offset is ``-(dof/2) log(1 - r**2)``; the
motion's cost at a run's ends with placed neighbours is added. A run joins
at its best offset when that wins over every other by ``margin`` (plus the
log of the other offsets when it moves the run). Runs that never join are
reported, and the caller flags their frames: before this check they were
marked ok, though two runs at different sites cannot both be right.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import fft as sfft

from ._lattice_blocks import moved_low, offset_correlations

__all__ = [
    "ATOM_FACTOR",
    "MAX_SPECTRA_BYTES",
    "SELF_SIMILAR",
    "Fine",
    "KeptSpectra",
    "RunCheck",
    "check_runs",
    "fine_loglik",
    "runs_of",
    "self_correlation",
    "shifted_sums",
]

#: the filtered images are smoothed by a Gaussian of this share of the shortest lattice vector (an atom)
ATOM_FACTOR = 0.15
#: the runs' spectra are kept within this many bytes (beyond it, only the background band is compared; a
#: round holds them twice: the streamed paths cap their memory at 1 GiB by default)
MAX_SPECTRA_BYTES = 96 * 2**20
#: the defects band needs a window of at least this many pixels per axis inside its zero border
MIN_FINE = 16
#: the defects band says nothing of an offset at which the placed frames' filtered mean correlates with
#: itself by this much or more. Random defects give about -0.3 at the nearest lattice vectors (the notch
#: leaves each defect a ghost of -1/6 at its six neighbours); the sites of a centred square lattice, whose
#: detected vectors are its half-diagonals, +0.9 at the true lattice vectors (grid seed 1004, case 8: a run
#: moved there by 62 of log-likelihood, 12 frames wrong and ok)
SELF_SIMILAR = 0.5


@dataclass
class RunCheck:
    """The runs' outcome: ``positions`` (n, 2) with the runs moved; per frame, the run it belongs to
    (``run``), that run's margin (``margin``: log-likelihood of its site over the best other offset)
    and that offset (``rival`` px); ``runs`` the (start, stop) of each run; ``moves`` one dict per
    move."""

    positions: np.ndarray
    run: np.ndarray
    margin: np.ndarray
    rival: np.ndarray
    runs: list[tuple[int, int]]
    moves: list[dict]


def _step_cost(d: np.ndarray, sigma: float, cap: float) -> np.ndarray:
    """The motion's cost of steps ``d`` (..., 2): ``min(|d|**2 / (2 sigma**2), cap)``."""
    return np.minimum((d[..., 0] ** 2 + d[..., 1] ** 2) / (2.0 * sigma**2), cap)


def runs_of(positions: np.ndarray, offsets: np.ndarray, sigma: float, margin: float) -> list[tuple[int, int]]:
    """The runs ``[start, stop)`` of frames between steps the motion does not single out: a step ``d``
    for which some ``d + o`` (``o`` a nonzero lattice offset) is less than ``margin`` less likely, by the
    Gaussian steps alone. (With the path's cap on a step's cost, every step beyond about 5 ``sigma``
    was as likely as a jump: a 1.9 px step at ``sigma`` 0.4 px on an 8 px lattice cut a right path in two.)
    """
    pos = np.asarray(positions, np.float64)
    nonzero = offsets[np.hypot(offsets[:, 0], offsets[:, 1]) > 0.5]
    cuts = [0]
    for t in range(1, len(pos)):
        d = pos[t] - pos[t - 1]
        here = float(_step_cost(d, sigma, np.inf))
        other = float(_step_cost(d[None] + nonzero, sigma, np.inf).min()) if nonzero.size else np.inf
        if not other - here >= margin:
            cuts.append(t)
    cuts.append(len(pos))
    return [(a, b) for a, b in zip(cuts[:-1], cuts[1:])]


class Fine:
    """The defects band: frames filtered by the lattice notch (``1 - mean_k cos(2 pi f . v_k)``, the six
    nearest lattice vectors), smoothed
    at an atom and without the background band, on a tapered window, moved by exact Fourier phases."""

    def __init__(self, shape: tuple[int, int], vectors: np.ndarray, lowpass_sigma: float) -> None:
        h, w = shape
        basis = np.asarray(vectors, np.float64)
        shortest = float(np.min(np.hypot(basis[:, 0], basis[:, 1])))
        fy = np.fft.fftfreq(h)[:, None]
        fx = np.fft.rfftfreq(w)[None, :]
        # the six nearest lattice vectors: +-a, +-b and the shorter of +-(a - b), +-(a + b) (zero at every
        # reciprocal lattice point all the same; the shortest reach, so the least border lost)
        third = min((basis[0] - basis[1], basis[0] + basis[1]), key=lambda v: float(np.hypot(*v)))
        near = np.array([basis[0], basis[1], third, -basis[0], -basis[1], -third])
        notch = 1.0 - np.mean([np.cos(2 * np.pi * (fy * v[0] + fx * v[1])) for v in near], axis=0)
        f2 = fy**2 + fx**2
        atom = ATOM_FACTOR * shortest
        background = np.exp(-2.0 * np.pi**2 * lowpass_sigma**2 * f2)  # the band the low-passed images hold
        gain = notch * np.exp(-2.0 * np.pi**2 * atom**2 * f2) * (1.0 - background)
        self.fy, self.fx = fy, fx
        self.gain = gain.astype(np.float32)
        self.shape = (h, w)
        #: what the band depends on: spectra computed with an equal key are interchangeable
        self.key = ((h, w), basis.tobytes(), float(lowpass_sigma))
        # rfft counts the columns other than 0 (and Nyquist) twice
        weight = np.full(w // 2 + 1, 2.0)
        weight[0] = 1.0
        if w % 2 == 0:
            weight[-1] = 1.0
        self.weight = weight.astype(np.float32)
        edge = int(np.ceil(float(np.max(np.hypot(near[:, 0], near[:, 1]))) + 2.0 * atom)) + 1
        # a taper of two atoms: the filtered image is that smooth already (tapers of an eighth of the side
        # left 64 px frames too little to place their runs: grid 1011/13 29 of 47 frames ok, 36 with this)
        taper = max(2, int(np.ceil(2.0 * atom)))
        self.window = np.outer(_taper(h, edge, taper), _taper(w, edge, taper)).astype(np.float32)
        self.usable = min(h, w) - 2 * edge >= MIN_FINE
        # independent samples of the correlation of two such (white-noise) images: (sum g^2)^2 / sum g^4
        # over the spectrum, times the share of the frame the window keeps (weighted as it weighs)
        g2 = gain**2 * weight[None, :]
        spectral = float(g2.sum() ** 2 / max((g2 * gain**2).sum(), 1e-30))
        win2 = self.window.astype(np.float64) ** 2
        self.dof = spectral * float(win2.sum() ** 2 / (win2.size * max((win2**2).sum(), 1e-30)))

    def of(self, image: np.ndarray, shift: np.ndarray) -> np.ndarray:
        """The spectrum of ``image`` filtered, windowed and moved to the template (``out[p] = image[p +
        shift]``). Filtered before it is windowed: a window's taper multiplies the lattice into a pattern
        the notch does not remove (a tenth of a side's taper left a third of the lattice there); the
        window's zero border drops where the filter wrapped around. The window moves with the frame:
        only the background band, compared elsewhere, would gain from a larger overlap."""
        return (self.unshifted(image) * self.phase(shift)).astype(np.complex64)

    def unshifted(self, image: np.ndarray) -> np.ndarray:
        """:meth:`of` at shift 0 (complex64)."""
        img = np.asarray(image, np.float32)
        filtered = sfft.irfft2(sfft.rfft2(img - np.float32(img.mean()), workers=1) * self.gain, s=self.shape, workers=1)
        return sfft.rfft2(filtered.astype(np.float32) * self.window, workers=1)

    def phase(self, shift: np.ndarray) -> np.ndarray:
        """The Fourier phases that move an image by ``shift`` (``out[p] = image[p + shift]``)."""
        along_y, along_x = self.phase_factors(shift)
        return along_y[:, None] * along_x[None, :]

    def phase_factors(self, shift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`phase` as its two factors, along y (h,) and along x (w // 2 + 1,): the phases are
        separable (their outer product; 0.5 -> 0.02 ms at 256x256 instead of one exponential per
        frequency)."""
        along_y = np.exp(2j * np.pi * self.fy[:, 0] * float(shift[0])).astype(np.complex64)
        along_x = np.exp(2j * np.pi * self.fx[0] * float(shift[1])).astype(np.complex64)
        return along_y, along_x

    def energy(self, spectrum: np.ndarray) -> float:
        """The image's energy (Parseval, on the rfft grid)."""
        return float((np.abs(spectrum) ** 2 * self.weight[None, :]).sum()) / float(self.shape[0] * self.shape[1])


class KeptSpectra:
    """Frames' defects-band spectra at shift 0 (:meth:`Fine.unshifted`), kept by frame index for a later check
    in the same band (within ``MAX_SPECTRA_BYTES``): the runs' check and then the check of every frame
    (:func:`._lattice_frames.check_frames`) read and filter each frame once instead of twice (on the
    anchors stack lattice-256x100, 34 runs: 80 -> 41 ms for the second check)."""

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._spectra: dict[int, np.ndarray] = {}
        self._bytes = 0

    def of(self, fine: Fine, t: int, read: Callable[[], np.ndarray], shift: np.ndarray) -> np.ndarray:
        """``fine.of(read(), shift)``, from frame ``t``'s kept spectrum when ``fine`` is the band it was kept
        in (kept now when there is room; the first band seen is the one kept)."""
        if self._key is None:
            self._key = fine.key
        if fine.key != self._key:
            return fine.of(read(), shift)
        base = self._spectra.get(int(t))
        if base is None:
            base = fine.unshifted(read())
            if self._bytes + base.nbytes <= MAX_SPECTRA_BYTES:
                self._spectra[int(t)] = base
                self._bytes += base.nbytes
        return (base * fine.phase(shift)).astype(np.complex64)


def _taper(n: int, edge: int, taper: int) -> np.ndarray:
    """A window of ``n`` samples: 0 within ``edge`` of either end (where the filter wrapped around),
    then cosine tapers of ``taper`` samples, 1 inside."""
    out = np.zeros(n)
    inner = n - 2 * edge
    if inner <= 0:
        return out
    k = max(1, min(taper, inner // 2))
    out[edge : n - edge] = 1.0
    ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(k) + 0.5) / k)
    out[edge : edge + k] = ramp
    out[n - edge - k : n - edge] = ramp[::-1]
    return out


class _Coarse:
    """The background band: the low-passed images (``_LowPass.low``) moved bilinearly, compared over
    the region every frame covers at every offset, with the low-passed images' blobs as samples (as the
    block fix does, :mod:`._lattice_blocks`)."""

    def __init__(self, shape: tuple[int, int], step: int, blobs: float, reach: float) -> None:
        h, w = shape
        m = int(np.ceil(reach / step)) + 1
        self.step = step
        self.usable = h - 2 * m >= 4 and w - 2 * m >= 4
        self.inside = (slice(m, h - m), slice(m, w - m))
        self.dof = blobs * max(h - 2 * m, 0) * max(w - 2 * m, 0) / float(h * w)

    def correlations(self, run: np.ndarray, reference: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """The correlation of the run's mean moved by each offset with the reference's, over ``inside``."""
        return offset_correlations(reference, run, offsets, self.step, self.inside)


def _loglik(r: np.ndarray, dof: float) -> np.ndarray:
    r = np.clip(r, 0.0, 0.999)
    return -0.5 * dof * np.log1p(-(r**2))


def self_correlation(fine: Fine, power: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """An image's correlation with itself moved by each of ``offsets`` (k,), unnormalised, from its
    weighted power spectrum ``power`` (the spectrum times ``fine.weight``)."""
    return shifted_sums(fine, np.asarray(power).astype(np.complex64)[None], offsets)[0]


def shifted_sums(fine: Fine, spectra: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """``Re sum(spectrum * fine.phase(o))`` (m, k) of each of m spectra (m, h, w // 2 + 1) at each of
    ``offsets``: the phases are separable, so it is one matrix product over x for every offset at once
    (one BLAS call, 3-6x faster than a product per offset), then a sum over y."""
    factors = [fine.phase_factors(o) for o in offsets]
    along_y = np.stack([f[0] for f in factors], axis=1)  # (h, k)
    along_x = np.stack([f[1] for f in factors], axis=1)  # (w', k)
    m, h, w = spectra.shape
    rows = (spectra.reshape(m * h, w) @ along_x).reshape(m, h, len(offsets))
    return np.real(np.einsum("myk,yk->mk", rows, along_y))


def fine_loglik(
    fine: Fine,
    cross: np.ndarray,
    energy: np.ndarray,
    ref_energy: float | np.ndarray,
    ref_power: np.ndarray,
    offsets: np.ndarray,
    zero: int,
) -> np.ndarray:
    """The defects band's log-likelihood (m, k) of each of m images at each of ``offsets`` against a
    reference.

    ``cross`` (m, h, w // 2 + 1): each image's spectrum (:meth:`Fine.of`) times the reference's
    conjugate and ``fine.weight``; ``energy`` (m,) the images' energies and ``ref_energy`` the
    reference's (one, or one per image); ``ref_power`` the reference's weighted power spectrum (its
    correlation with itself decides the offsets it repeats at). Offset ``o``'s correlation is that of
    the image moved by ``o`` (``fine.phase(o)``). An offset under which the reference's own filtered
    content repeats by ``SELF_SIMILAR`` or more (a sublattice the detected vectors do not span, a
    superlattice) is not told from ``zero`` by this band: it gets the zero offset's value.
    """
    m = len(cross)
    num = shifted_sums(fine, np.asarray(cross, np.complex64), offsets)
    own = self_correlation(fine, ref_power, offsets)
    num /= float(fine.shape[0] * fine.shape[1])
    scale = np.sqrt(np.maximum(np.asarray(energy, np.float64) * np.asarray(ref_energy, np.float64), 1e-30))
    ll = _loglik(num / np.broadcast_to(scale, (m,))[:, None], fine.dof)
    repeats = own / max(float(own[zero]), 1e-30) >= SELF_SIMILAR
    ll[:, repeats] = ll[:, zero : zero + 1]
    return ll


def check_runs(
    image: Callable[[int], np.ndarray],
    lows: list[np.ndarray],
    positions: np.ndarray,
    vectors: np.ndarray,
    offsets: np.ndarray,
    *,
    sigma: float,
    cap: float,
    bound: tuple[float, float],
    margin: float,
    step: int,
    blobs: float,
    lowpass_sigma: float,
    kept: KeptSpectra | None = None,
) -> RunCheck | None:
    """Place the runs of frames the motion does not link by the non-repeating content of the placed ones.

    The longest run is placed first. Then, in rounds, every other run is compared with the mean of the
    runs placed so far at each lattice offset, in two bands (the background of the low-passed images,
    and the defects at full resolution), with the motion's cost at its ends with placed neighbours
    added; a run whose best offset wins over every other by ``margin`` (plus the log of the other
    offsets when that offset moves it) joins them there. Runs that never do are ambiguous: their
    ``margin`` is below ``margin``.

    Parameters
    ----------
    image : callable
        ``image(k)``: frame ``k``'s prepared image (full resolution), read once each.
    lows : list of ndarray
        Each frame low-passed beyond the lattice (``_LowPass.low``, at ``1 / step`` scale).
    positions : ndarray (n, 2)
        Each frame's shift ``s`` (``frame[p + s] ~ template[p]``), px.
    vectors : ndarray (2, 2)
        The lattice vectors (rows, px).
    offsets : ndarray (k, 2)
        The lattice offsets a run may move by (px; the zero offset among them).
    sigma, cap : float
        The motion's step spread (px) and the cap of a step's cost.
    bound : (float, float)
        ``max_movement`` (px): no frame is moved beyond it.
    margin : float
        Log-likelihood a run's site must win by.
    step, blobs, lowpass_sigma
        The low-passed images' downsampling, independent blobs (of a whole image) and blur (full
        resolution px).
    kept : KeptSpectra, optional
        Where each frame's defects-band spectrum is kept for a later check in the same band.

    Returns
    -------
    RunCheck or None
        One run, placed, when the motion links every frame (only the whole path could then move,
        which leaves the frames as they are to each other); None when no band can compare the runs
        (no region every frame covers at every offset, frames too small for the defects band).
    """
    pos = np.asarray(positions, np.float64).copy()
    n = len(pos)
    offs = np.asarray(offsets, np.float64)
    runs = runs_of(pos, offs, sigma, margin)
    if len(runs) < 2:
        # the motion links every frame: only the whole path could move, which leaves the frames as they
        # are to each other
        return RunCheck(pos, np.zeros(n, np.int64), np.full(n, np.inf), np.zeros((n, 2)), runs, [])
    # the comparisons are relative: the frames are moved about their median position (less border lost)
    centre = np.median(pos, axis=0)
    reach = float(np.abs(pos - centre).max() + np.abs(offs).max())
    first = np.asarray(image(0))
    fine = Fine(first.shape, vectors, lowpass_sigma)
    fine.usable = fine.usable and len(runs) * fine.gain.size * 8 <= MAX_SPECTRA_BYTES
    coarse = _Coarse(lows[0].shape, step, blobs, reach)
    if not (fine.usable or coarse.usable):
        return None
    run_of = np.empty(n, np.int64)
    spectra = np.zeros((len(runs), *fine.gain.shape), np.complex64) if fine.usable else None
    for r, (a, b) in enumerate(runs):
        run_of[a:b] = r
        if spectra is not None:
            for t in range(a, b):
                if kept is None:
                    spectra[r] += fine.of(first if t == 0 else image(t), pos[t] - centre)
                else:
                    read = (lambda: first) if t == 0 else (lambda t=t: image(t))
                    spectra[r] += kept.of(fine, t, read, pos[t] - centre)

    def low_sum(q: int) -> np.ndarray:
        a, b = runs[q]
        return np.sum([moved_low(lows[t], (pos[t] - centre) / step) for t in range(a, b)], axis=0)

    low_sums = [low_sum(q) for q in range(len(runs))]
    k = len(offs)
    zero = int(np.argmin(np.hypot(offs[:, 0], offs[:, 1])))
    energy = np.array([fine.energy(g) for g in spectra]) if spectra is not None else None
    placed = np.zeros(len(runs), bool)
    placed[int(np.argmax([b - a for a, b in runs]))] = True
    run_margin = np.full(len(runs), -np.inf)
    rival = np.zeros((len(runs), 2))
    moves: list[dict] = []
    look_elsewhere = float(np.log(max(k - 1, 1)))
    while not placed.all():
        left = np.flatnonzero(~placed)
        ll = np.zeros((len(left), k))
        if spectra is not None:
            ref = spectra[placed].sum(axis=0)
            weight = fine.weight[None, :]
            cross = spectra[left] * (np.conj(ref) * weight)[None]
            ll += fine_loglik(fine, cross, energy[left], fine.energy(ref), np.abs(ref) ** 2 * weight, offs, zero)
        if coarse.usable:
            ref_low = np.sum([low_sums[q] for q in np.flatnonzero(placed)], axis=0)
            for row, q in enumerate(left):
                ll[row] += _loglik(coarse.correlations(low_sums[q], ref_low, offs), coarse.dof)
        for row, q in enumerate(left):
            a, b = runs[q]
            moved = pos[a:b, None, :] + offs[None]
            outside = ((np.abs(moved[..., 0]) > bound[0]) | (np.abs(moved[..., 1]) > bound[1])).any(axis=0)
            outside[zero] = False
            ll[row, outside] = -np.inf
            # the motion links it to a placed neighbour (weakly: that is why it is a run of its own)
            if a > 0 and placed[run_of[a - 1]]:
                d = pos[a] - pos[a - 1]
                ll[row] -= _step_cost(d[None] + offs, sigma, cap)
            if b < n and placed[run_of[b]]:
                d = pos[b] - pos[b - 1]
                ll[row] -= _step_cost(d[None] - offs, sigma, cap)
        rows = np.arange(len(left))
        best = np.argmax(ll, axis=1)
        others = ll.copy()
        others[rows, best] = -np.inf
        second = np.argmax(others, axis=1)
        win = ll[rows, best] - others[rows, second]
        joins = win >= margin + np.where(best == zero, 0.0, look_elsewhere)
        # where it stands now: its margin over the best other offset (for the reason of those left out)
        run_margin[left] = ll[:, zero] - np.where(best == zero, others[rows, second], ll[rows, best])
        rival[left] = np.where((best == zero)[:, None], offs[second], offs[best])
        if not joins.any():
            break
        for row in np.flatnonzero(joins):
            q = int(left[row])
            a, b = runs[q]
            if best[row] != zero:
                by = offs[best[row]]
                pos[a:b] += by
                if spectra is not None:
                    spectra[q] *= fine.phase(by)
                low_sums[q] = low_sum(q)
                moves.append({"from": int(a), "to": int(b), "by": by.round(2).tolist(), "gain": round(float(win[row]), 1)})
            placed[q] = True
    run_margin[placed] = np.inf
    return RunCheck(
        positions=pos,
        run=run_of,
        margin=run_margin[run_of],
        rival=rival[run_of],
        runs=runs,
        moves=moves,
    )
