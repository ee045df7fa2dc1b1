"""Each frame's lattice site checked by the defects of all the other frames (no motion prior, or a path
the runs' check cut into several runs: the motion then links only the frames within a run).

When the steps of a lattice stack are too large for the motion to link its
frames (:func:`._periodic.resolve_periodic`: no motion prior), each frame's
site is decided by its background (the low-passed images) against the
template. A weak background can still single out a site one lattice vector
off by a clear margin (grid seed 1012, case 18: a 1024 px square lattice at
SNR 0.26 stepping 30-60 px a frame; one frame 8 px off with a margin above
the bar, marked ok).

:func:`check_frames` compares each frame, in the defects band of
:mod:`._lattice_segments` (the lattice notched out, full resolution, moved by
exact Fourier phases), with the sum of the other trusted frames at their
sites, at every lattice offset: how much its best offset beats its own site
(``gain``) and its own site every other offset (``support``). The resolver
(``_periodic._defects_band``) decides from those: it confirms, moves or flags.

When too few frames can be trusted, :func:`agree_frames` lets the frames
agree among themselves in that band (two halves apart, which must agree with
each other) and judges each against the half it did not help place.

The band is notched again at the superlattice when the trusted frames' sum
repeats at lattice offsets (a centred square lattice detected by its
half-diagonals), and not used when it still does (``PERIODIC_RESIDUE``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ._lattice_consensus import MAX_WALK, lattice_points
from ._lattice_segments import MAX_SPECTRA_BYTES, Fine, KeptSpectra, fine_loglik, self_correlation

__all__ = ["MAX_ROUNDS", "MIN_REFERENCE", "PERIODIC_RESIDUE", "FrameCheck", "agree_frames", "check_frames"]

#: the defects band needs at least this many other trusted frames to compare a frame with
MIN_REFERENCE = 3
#: at most this many rounds of a half's frames against the others of the half (:func:`agree_frames`)
MAX_ROUNDS = 8
#: the band is not used when the trusted frames' filtered sum correlates with itself by this much or more
#: at a nonzero lattice offset: a periodic residue the notch left (a centred square lattice, whose detected
#: vectors are its half-diagonals: +0.40 at four offsets, and every offset correlates by about 0.2, so a
#: frame whose site lies beyond the offsets compared still found one of them best by 20 of log-likelihood:
#: grid seed 1001, case 22, two frames 27 and 43 px off marked ok). Random defects give -0.3 to +0.17.
#: 0.25 until stop 39: grid seed 2015, case 5 (a 6 px square lattice drifting 58 px at SNR 2) keeps 0.263
#: after the second notch, and one frame 64 px off stayed ok without the band; with it, that frame is
#: flagged as unsupported. Grid, 68 seeds, the 226 lattice stacks without the motion prior: wrong and ok
#: 2 -> 1, right and ok 5,968 -> 6,016 (seed 1005, case 9: 0 -> 48 of 49)
PERIODIC_RESIDUE = 0.3


@dataclass
class FrameCheck:
    """Per frame: the best offset (px, 0 for its own site), by how much its log-likelihood beats its
    own site's (``gain``, 0 when its own site is best) and by how much its own site beats every other
    offset (``support``, negative when another is better)."""

    best: np.ndarray
    gain: np.ndarray
    support: np.ndarray
    look_elsewhere: float


def check_frames(
    image: Callable[[int], np.ndarray],
    positions: np.ndarray,
    trusted: np.ndarray,
    vectors: np.ndarray,
    offsets: np.ndarray,
    *,
    bound: tuple[float, float],
    lowpass_sigma: float,
    kept: KeptSpectra | None = None,
) -> FrameCheck | None:
    """Each frame against the other trusted frames, in the defects band, at every lattice offset.

    Parameters
    ----------
    image : callable
        ``image(k)``: frame ``k``'s prepared image (full resolution), read once each (twice when the
        band is notched again at a superlattice).
    positions : ndarray (n, 2)
        Each frame's shift ``s`` (``frame[p + s] ~ template[p]``), px.
    trusted : ndarray of bool (n,)
        The frames whose sites make the reference (each frame is compared with the others only).
    vectors : ndarray (2, 2)
        The lattice vectors (rows, px).
    offsets : ndarray (k, 2)
        The lattice offsets a frame may move by (px; the zero offset among them).
    bound : (float, float)
        ``max_movement`` (px): no frame is moved beyond it.
    lowpass_sigma : float
        The resolver's background blur (full-resolution px), left out of the band.
    kept : KeptSpectra, optional
        The frames' spectra an earlier check kept in the same band (the runs' check): not computed again.

    Returns
    -------
    FrameCheck or None
        None when the band cannot compare them: fewer than ``MIN_REFERENCE`` trusted frames besides
        any one, frames too small for the band, their spectra over ``MAX_SPECTRA_BYTES``, or a
        periodic residue in the band (``PERIODIC_RESIDUE``).
    """
    pos = np.asarray(positions, np.float64)
    trusted = np.asarray(trusted, bool)
    if int(trusted.sum()) - 1 < MIN_REFERENCE:
        return None
    offs = np.asarray(offsets, np.float64)
    band = _band(image, pos, trusted, vectors, offs, lowpass_sigma, kept)
    if band is None:
        return None
    return _judge(_against(band, trusted, offs), pos, offs, bound)


def agree_frames(
    image: Callable[[int], np.ndarray],
    positions: np.ndarray,
    vectors: np.ndarray,
    offsets: np.ndarray,
    *,
    bound: tuple[float, float],
    lowpass_sigma: float,
    margin: float,
) -> tuple[np.ndarray, FrameCheck, dict] | None:
    """The frames' sites agreed among themselves in the defects band, when none can be trusted yet.

    As :func:`._lattice_consensus.consensus_sites` does in the background band: the even and the odd
    frames agree apart, each half from its middle frame (each frame at its best offset against the
    seed, then, until none moves, against the sum of the others of its half; sites within
    ``MAX_WALK`` lattice vectors of its own); the halves' sums must then match at one relative offset
    better than at any other by ``margin`` beyond the log of the offsets compared (frames of noise
    agree on a pattern of their own, two halves of noise do not agree with each other). Joined there,
    each frame is judged against the other half, at ``offsets`` (as :func:`check_frames` judges). The
    sites are returned moved by the one offset that leaves most frames where they were.

    Returns
    -------
    (positions, check, info) or None
        The agreed sites, each frame's check there against the other half, and what was measured
        (the halves' margin); None when the band cannot compare the frames or the halves do not agree.
    """
    pos = np.asarray(positions, np.float64).copy()
    n = len(pos)
    if n < 2 * (MIN_REFERENCE + 1):
        return None
    offs = np.asarray(offsets, np.float64)
    everyone = np.ones(n, bool)
    band = _band(image, pos, everyone, vectors, offs, lowpass_sigma)
    if band is None:
        return None
    halves = (np.arange(0, n, 2), np.arange(1, n, 2))
    basis = np.asarray(vectors, np.float64)
    walk = MAX_WALK * float(np.max(np.hypot(basis[:, 0], basis[:, 1])))
    reachable = lattice_points(basis, walk)  # the search put frames several lattice vectors off
    for half in halves:
        _agree_half(band, pos, half, reachable, bound)
    # the halves' sums at every relative offset (each half is relative to its own seed)
    relative = lattice_points(basis, 2.0 * walk)
    first, second = band.spectra[halves[0]].sum(axis=0), band.spectra[halves[1]].sum(axis=0)
    weight = band.fine.weight[None, :]
    cross = (second * np.conj(first) * weight)[None]
    ll = fine_loglik(
        band.fine, cross, np.array([band.fine.energy(second)]), band.fine.energy(first),
        np.abs(first) ** 2 * weight, relative, _zero(relative),
    )[0]
    order = np.argsort(ll)[::-1]
    gain = float(ll[order[0]] - ll[order[1]] - np.log(len(relative)))
    info = {"halves_margin": round(gain, 1)}
    if gain < margin:
        return None
    join = relative[order[0]]
    moved = pos[halves[1]] + join
    if (np.abs(moved[:, 0]) > bound[0]).any() or (np.abs(moved[:, 1]) > bound[1]).any():
        return None
    pos[halves[1]] = moved
    band.spectra[halves[1]] *= band.fine.phase(join)[None]
    # the common offset that leaves most frames where they were (the sites are relative to each other)
    given = np.asarray(positions, np.float64)
    stays = [(np.hypot(*(pos + o - given).T) < 0.5).sum() for o in reachable]
    pos += reachable[int(np.argmax(stays))]
    # each frame judged against the other half, which it did not help place (against all the others,
    # frames put off together agreed with each other: grid seed 1008, case 4, 20 frames wrong and ok)
    ll = np.empty((n, len(offs)))
    for half, other in ((halves[0], halves[1]), (halves[1], halves[0])):
        reference = np.zeros(n, bool)
        reference[other] = True
        ll[half] = _against(band, reference, offs, half)
    check = _judge(ll, pos, offs, bound)
    return pos, check, info


@dataclass
class _Band:
    """The frames' spectra in the defects band (:class:`~._lattice_segments.Fine`), moved to their
    sites (about the median site, so the window loses the least)."""

    fine: Fine
    spectra: np.ndarray  # (n, h, w // 2 + 1) complex64


def _band(
    image: Callable[[int], np.ndarray], pos: np.ndarray, trusted: np.ndarray, vectors: np.ndarray,
    offs: np.ndarray, lowpass_sigma: float, kept: KeptSpectra | None = None,
) -> _Band | None:
    """The frames in the defects band, notched at the lattice, or at the superlattice the trusted frames'
    sum repeats at (None when the band cannot be used); ``kept``: spectra already computed in that band."""
    n = len(pos)
    zero = _zero(offs)
    centre = np.median(pos, axis=0)
    first = np.asarray(image(0))  # read once: its shape decides the band
    basis = np.asarray(vectors, np.float64)
    for _ in range(2):
        fine = Fine(first.shape, basis, lowpass_sigma)
        if not fine.usable or n * fine.gain.size * 8 > MAX_SPECTRA_BYTES:
            return None
        spectra = np.empty((n, *fine.gain.shape), np.complex64)
        for t in range(n):
            if kept is None:
                spectra[t] = fine.of(first if t == 0 else image(t), pos[t] - centre)
            else:
                spectra[t] = kept.of(fine, t, (lambda: first) if t == 0 else (lambda t=t: image(t)), pos[t] - centre)
        total = spectra[trusted].sum(axis=0)
        repeats = self_correlation(fine, np.abs(total) ** 2 * fine.weight[None, :], offs)
        repeats = (repeats >= PERIODIC_RESIDUE * repeats[zero]) & (np.arange(len(offs)) != zero)
        if not repeats.any():
            return _Band(fine, spectra)
        # the notch left a lattice of its own (the sites of a centred square lattice are told apart by
        # their brightness): notched at the shortest offsets it repeats at instead
        basis = _spanning(offs[repeats])
        if basis is None:
            return None
    return None


def _against(band: _Band, reference: np.ndarray, offs: np.ndarray, frames: np.ndarray | None = None) -> np.ndarray:
    """Log-likelihood (m, k) of each of ``frames`` (default all) at each offset against the sum of the
    ``reference`` frames other than itself."""
    fine = band.fine
    rows = np.arange(len(band.spectra)) if frames is None else np.asarray(frames)
    spectra = band.spectra[rows]
    total = band.spectra[reference].sum(axis=0)
    weight = fine.weight[None, :]
    cross = spectra * (np.conj(total) * weight)[None]
    size = float(fine.shape[0] * fine.shape[1])
    with_total = np.real(cross.reshape(len(rows), -1).sum(axis=1)) / size
    inside = np.asarray(reference, bool)[rows]
    # each frame's cross-spectrum with the sum, less its own share when it is in it
    cross[inside] -= (np.abs(spectra[inside]) ** 2 * weight[None]).astype(np.complex64)
    energy = np.array([fine.energy(s) for s in spectra])
    # the reference's energy without the frame: |R - F|^2 = |R|^2 - 2 Re <F, R> + |F|^2
    total_energy = fine.energy(total)
    ref_energy = np.where(inside, total_energy - 2.0 * with_total + energy, total_energy)
    return fine_loglik(fine, cross, energy, ref_energy, np.abs(total) ** 2 * weight, offs, _zero(offs))


def _judge(ll: np.ndarray, pos: np.ndarray, offs: np.ndarray, bound: tuple[float, float]) -> FrameCheck:
    """Each frame's best offset, its gain over its own site and its own site's support (offsets beyond
    ``bound`` excluded)."""
    n = len(ll)
    zero = _zero(offs)
    ll = _within(ll, pos, offs, bound)
    rows = np.arange(n)
    best = np.argmax(ll, axis=1)
    others = ll.copy()
    others[:, zero] = -np.inf
    gain = np.where(best == zero, 0.0, ll[rows, best] - ll[:, zero])
    support = ll[:, zero] - others.max(axis=1)
    return FrameCheck(
        best=np.where((best == zero)[:, None], 0.0, offs[best]),
        gain=gain,
        support=support,
        look_elsewhere=float(np.log(max(len(offs) - 1, 1))),
    )


def _zero(offs: np.ndarray) -> int:
    """The index of the zero offset."""
    return int(np.argmin(np.hypot(offs[:, 0], offs[:, 1])))


def _within(ll: np.ndarray, pos: np.ndarray, offs: np.ndarray, bound: tuple[float, float]) -> np.ndarray:
    """``ll`` with the offsets that move a frame beyond ``bound`` at -inf (its own site kept)."""
    zero = _zero(offs)
    moved = pos[:, None, :] + offs[None]
    outside = (np.abs(moved[..., 0]) > bound[0]) | (np.abs(moved[..., 1]) > bound[1])
    outside[:, zero] = False
    out = ll.copy()
    out[outside] = -np.inf
    return out


def _agree_half(band: _Band, pos: np.ndarray, half: np.ndarray, offs: np.ndarray, bound: tuple[float, float]) -> None:
    """Move the frames ``half`` (in ``pos`` and ``band.spectra``, in place) to their sites agreed from
    the middle one: each at its best offset against it, then, until none moves, against the others."""
    seed = int(half[len(half) // 2])
    alone = np.zeros(len(pos), bool)
    alone[seed] = True
    rest = half[half != seed]
    _move(band, pos, rest, _within(_against(band, alone, offs, rest), pos[rest], offs, bound), offs)
    members = np.zeros(len(pos), bool)
    members[half] = True
    for _ in range(MAX_ROUNDS):
        ll = _within(_against(band, members, offs, half), pos[half], offs, bound)
        if not _move(band, pos, half, ll, offs):
            break


def _move(band: _Band, pos: np.ndarray, rows: np.ndarray, ll: np.ndarray, offs: np.ndarray) -> bool:
    """Move each of ``rows`` by its best offset of ``ll`` (m, k); whether any moved."""
    best = np.argmax(ll, axis=1)
    zero = _zero(offs)
    moved = False
    for row, k in zip(rows, best):
        if k != zero:
            pos[row] += offs[k]
            band.spectra[row] *= band.fine.phase(offs[k])
            moved = True
    return moved


def _spanning(points: np.ndarray) -> np.ndarray | None:
    """The shortest of ``points`` (m, 2) and the shortest one at least 30 degrees from it (None when
    they are all collinear)."""
    order = np.argsort(np.hypot(points[:, 0], points[:, 1]))
    a = points[order[0]]
    for k in order[1:]:
        b = points[k]
        if abs(float(a[0] * b[1] - a[1] * b[0])) >= 0.5 * float(np.hypot(*a) * np.hypot(*b)):
            return np.array([a, b])
    return None
