"""Correlation peaks of many frame pairs at once, on the mask's frequency band.

For a batch of pairs ``(i, j)`` the cross-power ``P = G_j conj(G_i)`` (see
:mod:`~napari_stackalign.core.pairwise._spectra`) lives on a small frequency
band. Its correlation is a band-limited function, so:

1. **Coarse map.** ``P`` is placed on a small grid (``hs x ws``, about
   :data:`OVERSAMPLE` times the band's Nyquist rate) and inverse-transformed:
   the *exact* correlation sampled every ``H_pad / hs`` pixels, at a
   fraction of the cost of the full-size inverse FFT (for ``n = 4`` a
   256 x 256 transform instead of 512 x 512). When that grid would hold
   more than 45 % of the full one (wide masks, ``n`` of 3 or less) the
   full-size map is made instead, and its windows are simply cut out.
2. **Distinct candidates.** Local maxima of the map (3 x 3, periodic; a
   full-size map is first reduced by block maxima to about the band's
   Nyquist spacing) are ranked and thinned so that no two lie closer than
   ``max(2, sigma_guess, 1.5 x detection spacing)`` px: the ``num_peaks``
   brightest *distinct* peaks, not neighbouring pixels of one peak.
3. **Full-resolution windows.** Around every candidate the correlation is
   evaluated on whole pixels by a matrix-multiply DFT of the band (or cut
   from the map when it is already full resolution).
4. **Peak location** (``maxima``):

   ``"pixel"``  the brightest whole pixel (the reference's argmax);
   ``"gf"``     a 2-D Gaussian (rotated, elliptical, with offset) fitted in a
                ``(2 window_radius + 1)**2`` window around each candidate's
                brightest pixel (:mod:`~napari_stackalign.core.pairwise._gaussfit`:
                a linearised start and a few Levenberg-Marquardt steps,
                all windows of a batch at once); the candidate with the highest fitted peak
                (amplitude + offset) wins and its fitted centre is the shift.
                This is the guard against unit-cell hops on lattices: a true
                peak that falls between pixels looks dimmer than a
                neighbouring lattice peak centred on a pixel, but its fitted
                height is not. A failed fit falls back to the pixel.
   ``"dft"``    each candidate refined by an upsampled DFT to 1/4 px; the
                candidate with the highest refined value wins (the same
                guard, on the exact band-limited correlation) and is refined
                further to ``1 / upsample`` px.
   ``"newton"`` the pair's peak only roughly (the frames' shifts are refined
                after the solve, :mod:`~napari_stackalign.core.pairwise._newton`):
                on the ``"auto"`` choice mask of non-periodic content
                (``BandSpectra.single_peak``) the brightest pixel of the map;
                otherwise the candidates compared as ``"dft"`` does, the
                guard against hops.

The real-space Hann windows make the correlation of two frames shifted by
``d`` weaker by their overlap ``A(d) = A_y(d_y) A_x(d_x)`` (the window's
autocorrelation), which pulls sub-pixel estimates towards zero shift (0.1 px
for a 5 px shift in 96 px frames). Sub-pixel positions (``"gf"``, ``"dft"``)
are therefore found on the correlation divided by ``A``; the *choice* among
candidates uses the undivided heights, as the reference does (the overlap is
part of what makes the true lattice peak the highest).

Peak heights are normalised by ``sqrt(E_i E_j)`` (the zero-shift
autocorrelations), giving a correlation coefficient of the filtered frames:
the per-pair *quality*.

Positions are the correlation peak ``d = p_j - p_i`` (content displacement
from frame i to frame j), in (row, col) pixels of the padded grid, wrapped to
``[-H/2, H/2)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import fft as sfft

from ._gaussfit import fit_peak_gaussians
from ._options import PairwiseOptions
from ._spectra import BandSpectra
from ._window import envelope_table as _envelope_table

__all__ = ["OVERSAMPLE", "PairPeaks", "coarse_grid", "find_pair_peaks", "pair_correlation_map"]

#: the coarse map samples the band at about this many times its Nyquist rate
OVERSAMPLE = 2.0

#: ``"dft"``: every candidate is first refined to 1 / DFT_FIRST_STEP px
DFT_FIRST_STEP = 4


@dataclass
class PairPeaks:
    """Per-pair results (arrays of length P, one entry per pair)."""

    dy: np.ndarray
    dx: np.ndarray
    quality: np.ndarray
    second: np.ndarray
    fit_ok: np.ndarray


def coarse_grid(spec: BandSpectra, oversample: float) -> tuple[int, int]:
    """Size ``(hs, ws)`` of the small inverse-FFT grid for the band."""
    hp, wp = spec.padded
    kr = int(np.abs(spec.ky).max())
    kc = int(spec.kx.max())
    # at least 2 K + 2 samples: no aliasing, and no shared Nyquist row/column
    if spec.ky.size >= hp:
        hs = hp
    else:
        hs = sfft.next_fast_len(max(int(np.ceil(oversample * (2 * kr + 1))), 2 * kr + 2))
    ws = sfft.next_fast_len(max(int(np.ceil(oversample * (2 * kc + 1))), 2 * kc + 2), real=True)
    hs = min(hp, hs)
    ws = min(wp, ws)
    return min(hs, hp), min(ws, wp)


def _coarse_maps(p: np.ndarray, spec: BandSpectra, grid: tuple[int, int]) -> np.ndarray:
    """Correlation maps on the coarse grid (scaled by 1 / (hs ws): multiply
    by ``hs * ws`` for the unnormalised sums)."""
    hs, ws = grid
    small = np.zeros((p.shape[0], hs, ws // 2 + 1), dtype=np.complex64)
    rows = spec.ky % hs
    small[:, rows, : spec.kx.size] = p
    return sfft.irfft2(small, s=(hs, ws), axes=(1, 2), workers=1, overwrite_x=True)


def _dft_windows(
    p: np.ndarray,
    spec: BandSpectra,
    y0: np.ndarray,
    x0: np.ndarray,
    size: int,
    step: float,
) -> np.ndarray:
    """Correlation at ``y0 + step * a, x0 + step * b`` (a, b < size): the real
    part of the band's Fourier series, ``Ey @ P @ Ex`` per candidate.

    ``p`` (B, Ky, Kx) holds one cross-power per pair; ``y0, x0`` (B, K) the
    window origins of K candidates per pair. Returns (B, K, size, size)."""
    hp, wp = spec.padded
    ky = spec.ky.astype(np.float64)
    kx = spec.kx.astype(np.float64)
    offs = step * np.arange(size)
    ey = np.exp(2j * np.pi * y0[..., None] * ky / hp).astype(np.complex64)[:, :, None, :] * np.exp(
        2j * np.pi * np.outer(offs, ky) / hp
    ).astype(np.complex64)
    ex = np.exp(2j * np.pi * x0[..., None] * kx / wp).astype(np.complex64)[:, :, :, None] * (
        spec.col_weight[:, None] * np.exp(2j * np.pi * np.outer(kx, offs) / wp)
    ).astype(np.complex64)
    out = np.matmul(np.matmul(ey, p[:, None]), ex)
    return out.real.astype(np.float64)


def _map_windows(maps: np.ndarray, owner: np.ndarray, cy: np.ndarray, cx: np.ndarray, radius: int) -> np.ndarray:
    """Whole-pixel windows cut (periodically) from full-resolution maps."""
    hs, ws = maps.shape[1:]
    offs = np.arange(-radius, radius + 1)
    rows = (cy[:, None] + offs[None, :]) % hs
    cols = (cx[:, None] + offs[None, :]) % ws
    return maps[owner[:, None, None], rows[:, :, None], cols[:, None, :]].astype(np.float64)


def _local_max_scores(maps: np.ndarray) -> np.ndarray:
    """``maps`` where a pixel is a 3 x 3 local maximum (periodic: FFT layout,
    zero shift at index 0), else -inf."""
    padded = np.pad(maps, ((0, 0), (1, 1), (1, 1)), mode="wrap")
    rows = np.maximum(np.maximum(padded[:, :, :-2], padded[:, :, 1:-1]), padded[:, :, 2:])
    peak = np.maximum(np.maximum(rows[:, :-2], rows[:, 1:-1]), rows[:, 2:])
    return np.where(maps >= peak, maps, -np.inf)


def _pool(maps: np.ndarray, q: int) -> np.ndarray:
    """Block maximum over q x q pixels; a size that q does not divide is
    completed periodically (FFT layout: the map wraps around)."""
    if q <= 1:
        return maps
    _b, h, w = maps.shape
    if h % q or w % q:
        maps = np.pad(maps, ((0, 0), (0, (-h) % q), (0, (-w) % q)), mode="wrap")
        h, w = maps.shape[1:]
    rows = maps[:, 0::q].copy()
    for a in range(1, q):
        np.maximum(rows, maps[:, a::q], out=rows)
    out = rows[:, :, 0::q].copy()
    for c in range(1, q):
        np.maximum(out, rows[:, :, c::q], out=out)
    return out


def _candidates(
    maps: np.ndarray, spacing: tuple[float, float], padded: tuple[int, int], num: int, min_dist: float, pool: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``num`` brightest distinct local maxima of each coarse map.

    ``pool`` > 1 first takes block maxima over pool x pool samples (used on
    full-resolution maps of wide-band masks). Returns signed positions
    (B, num) in padded-grid pixels (rows, cols) and a validity mask
    (B, num); missing candidates repeat the best one and are marked invalid.
    """
    hp, wp = padded
    pooled = _pool(maps, pool)
    b, _hs, ws = pooled.shape
    centre = (pool - 1) / 2.0
    if num == 1:
        # the brightest sample is a local maximum: no thinning needed
        flat = pooled.reshape(b, -1)
        k = np.argmax(flat, axis=1)
        y = ((k // ws) * pool + centre) * spacing[0]
        x = ((k % ws) * pool + centre) * spacing[1]
        span_y, span_x = maps.shape[1] * spacing[0], maps.shape[2] * spacing[1]
        y = ((y + span_y / 2.0) % span_y) - span_y / 2.0
        x = ((x + span_x / 2.0) % span_x) - span_x / 2.0
        return y[:, None], x[:, None], np.isfinite(flat[np.arange(b), k])[:, None]
    score = _local_max_scores(pooled).reshape(b, -1)
    kc = int(min(score.shape[1], 4 * num + 4))
    idx = np.argpartition(-score, kc - 1, axis=1)[:, :kc]
    vals = np.take_along_axis(score, idx, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    idx = np.take_along_axis(idx, order, axis=1)
    vals = np.take_along_axis(vals, order, axis=1)
    m = idx // ws
    l = idx % ws
    full_h, full_w = maps.shape[1:]
    y = (m * pool + centre) * spacing[0]
    x = (l * pool + centre) * spacing[1]
    y = ((y + full_h * spacing[0] / 2.0) % (full_h * spacing[0])) - full_h * spacing[0] / 2.0
    x = ((x + full_w * spacing[1] / 2.0) % (full_w * spacing[1])) - full_w * spacing[1] / 2.0
    kept = np.zeros((b, kc), dtype=bool)
    count = np.zeros(b, dtype=np.int64)
    finite = np.isfinite(vals)
    for c in range(kc):
        if c:
            dyy = np.abs(y[:, :c] - y[:, c : c + 1])
            dxx = np.abs(x[:, :c] - x[:, c : c + 1])
            dyy = np.minimum(dyy, hp - dyy)
            dxx = np.minimum(dxx, wp - dxx)
            close = (kept[:, :c] & (np.hypot(dyy, dxx) < min_dist)).any(axis=1)
        else:
            close = np.zeros(b, dtype=bool)
        ok = finite[:, c] & ~close & (count < num)
        kept[:, c] = ok
        count += ok
    # gather the kept ones first (stable), pad with the best
    rank = np.where(kept, np.arange(kc)[None, :], kc + np.arange(kc)[None, :])
    pick = np.argsort(rank, axis=1, kind="stable")[:, :num]
    valid = np.take_along_axis(kept, pick, axis=1)
    py = np.where(valid, np.take_along_axis(y, pick, axis=1), y[:, :1])
    px = np.where(valid, np.take_along_axis(x, pick, axis=1), x[:, :1])
    return py, px, valid


def _envelope(length: int, pos: np.ndarray) -> np.ndarray:
    """Window-overlap envelope at (fractional) shifts ``pos``, at least 0.05."""
    lags, auto = _envelope_table(int(length))
    return np.maximum(np.interp(pos, lags, auto, left=0.0, right=0.0), 0.05)


def _window_envelope(frame_shape: tuple[int, int], y0: np.ndarray, x0: np.ndarray, size: int, step: float) -> np.ndarray:
    """Envelope on the window grids ``y0 + step * a``, ``x0 + step * b`` (C, size, size)."""
    offs = step * np.arange(size)
    ey = _envelope(frame_shape[0], y0[:, None] + offs[None, :])
    ex = _envelope(frame_shape[1], x0[:, None] + offs[None, :])
    return ey[:, :, None] * ex[:, None, :]


def _argmax_inner(win: np.ndarray, inner: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Brightest pixel of each window within ``inner`` px of its centre.

    Returns (row offset, col offset, value) relative to the window centre."""
    c, size, _ = win.shape
    r = size // 2
    sub = win[:, r - inner : r + inner + 1, r - inner : r + inner + 1].reshape(c, -1)
    k = np.argmax(sub, axis=1)
    side = 2 * inner + 1
    return k // side - inner, k % side - inner, sub[np.arange(c), k]


def _gaussian_peaks(
    win: np.ndarray, oy: np.ndarray, ox: np.ndarray, fit_radius: int, sigma_guess: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fit a Gaussian in the (2 r + 1)**2 window around each brightest pixel.

    Returns (row offset, col offset, fitted height, ok) relative to the
    window centre; failed fits fall back to the pixel and its value."""
    c, size, _ = win.shape
    r = size // 2
    offs = np.arange(-fit_radius, fit_radius + 1)
    rows = (r + oy)[:, None] + offs[None, :]
    cols = (r + ox)[:, None] + offs[None, :]
    boxes = win[np.arange(c)[:, None, None], rows[:, :, None], cols[:, None, :]]
    centre_val = boxes[:, fit_radius, fit_radius]
    fy, fx, height, ok = fit_peak_gaussians(boxes, sigma_guess)
    dy = np.where(ok, oy + np.where(ok, fy, 0.0), oy)
    dx = np.where(ok, ox + np.where(ok, fx, 0.0), ox)
    return dy.astype(np.float64), dx.astype(np.float64), np.where(ok, height, centre_val), ok


@dataclass(frozen=True)
class _Geometry:
    """Sizes of one batch's search, from the band, the grid and the options."""

    padded: tuple[int, int]
    grid: tuple[int, int]
    spacing: tuple[float, float]
    full_res: bool
    num: int
    pool: int
    min_dist: float
    margin: int
    fit_r: int
    radius: int
    size: int


def _geometry(spec: BandSpectra, opts: PairwiseOptions, grid: tuple[int, int]) -> _Geometry:
    hp, wp = spec.padded
    hs, ws = grid
    spacing = (hp / hs, wp / ws)
    # the auto choice mask has one dominant peak (no Bragg peaks): the brightest is the one
    num = 1 if opts.maxima == "newton" and spec.single_peak else max(1, int(opts.num_peaks))
    # detection grid: pool the map down to about the band's Nyquist spacing
    nyquist = min(hp / max(2 * int(np.abs(spec.ky).max()), 1), wp / max(2 * int(spec.kx.max()), 1))
    pool = int(max(1, min(4, np.floor(nyquist / max(spacing) + 1e-9))))
    det = max(spacing) * pool
    min_dist = max(2.0, float(opts.sigma_guess), 1.5 * det)
    margin = int(np.ceil(det / 2.0)) + 1
    fit_r = int(opts.window_radius) if opts.maxima == "gf" else 1
    radius = margin + fit_r
    return _Geometry(
        padded=(hp, wp), grid=(hs, ws), spacing=spacing, full_res=hs == hp and ws == wp, num=num, pool=pool,
        min_dist=min_dist, margin=margin, fit_r=fit_r, radius=radius, size=2 * radius + 1,
    )


def _candidate_windows(
    p: np.ndarray, spec: BandSpectra, geo: _Geometry, chunk: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Whole-pixel candidates ``(cy, cx)`` (B * num,), their validity (B, num) and
    the full-resolution windows around them (B * num, size, size)."""
    b = p.shape[0]
    hs, ws = geo.grid
    num, radius, size = geo.num, geo.radius, geo.size
    parts_y, parts_x, parts_v, parts_w = [], [], [], []
    chunk = max(1, int(chunk))
    for start in range(0, b, chunk):
        sl = slice(start, min(start + chunk, b))
        nb = sl.stop - sl.start
        maps = _coarse_maps(p[sl], spec, geo.grid)
        cy, cx, cvalid = _candidates(maps, geo.spacing, geo.padded, num, geo.min_dist, geo.pool)
        cy = np.rint(cy).astype(np.int64)
        cx = np.rint(cx).astype(np.int64)
        if geo.full_res:
            owner = np.repeat(np.arange(nb), num)
            win = _map_windows(maps, owner, cy.reshape(-1), cx.reshape(-1), radius) * float(hs * ws)
        else:
            win = _dft_windows(
                p[sl], spec, (cy - radius).astype(np.float64), (cx - radius).astype(np.float64), size, 1.0
            ).reshape(nb * num, size, size)
        del maps
        parts_y.append(cy.reshape(-1))
        parts_x.append(cx.reshape(-1))
        parts_v.append(cvalid)
        parts_w.append(win)
    return np.concatenate(parts_y), np.concatenate(parts_x), np.concatenate(parts_v), np.concatenate(parts_w)


def _dft_candidates(
    p: np.ndarray, spec: BandSpectra, iy: np.ndarray, ix: np.ndarray, b: int, num: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every candidate refined to 1/4 px over +-1 px around its brightest pixel."""
    count = b * num
    up1 = DFT_FIRST_STEP
    s1 = 2 * up1 + 1
    w1 = _dft_windows(p, spec, (iy - 1.0).reshape(b, num), (ix - 1.0).reshape(b, num), s1, 1.0 / up1)
    w1 = w1.reshape(count, s1, s1)
    n1 = (w1 / _window_envelope(spec.frame_shape, iy - 1.0, ix - 1.0, s1, 1.0 / up1)).reshape(count, -1)
    w1 = w1.reshape(count, -1)
    k = n1.argmax(axis=1)
    py = iy - 1.0 + (k // s1) / up1
    px = ix - 1.0 + (k % s1) / up1
    return py, px, w1[np.arange(count), k]


def _locate(
    p: np.ndarray,
    spec: BandSpectra,
    geo: _Geometry,
    opts: PairwiseOptions,
    candidates: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sub-pixel position, height and fit flag of every candidate (``maxima``)."""
    cy, cx, win = candidates
    b = p.shape[0]
    oy, ox, val = _argmax_inner(win, geo.margin)
    fit_ok = np.zeros(cy.size, dtype=bool)
    if opts.maxima == "pixel" or (opts.maxima == "newton" and spec.single_peak):
        return (cy + oy).astype(np.float64), (cx + ox).astype(np.float64), val, fit_ok
    if opts.maxima == "gf":
        radius, size = geo.radius, geo.size
        env = _window_envelope(spec.frame_shape, (cy - radius).astype(np.float64), (cx - radius).astype(np.float64), size, 1.0)
        fy, fx, height, fit_ok = _gaussian_peaks(win / env, oy, ox, geo.fit_r, float(opts.sigma_guess))
        py, px = cy + fy, cx + fx
        height = height * _envelope(spec.frame_shape[0], py) * _envelope(spec.frame_shape[1], px)
        return py, px, height, fit_ok
    iy, ix = (cy + oy).astype(np.float64), (cx + ox).astype(np.float64)
    py, px, height = _dft_candidates(p, spec, iy, ix, b, geo.num)
    fit_ok[:] = True
    return py, px, height, fit_ok


def _refine_winner(
    p: np.ndarray, spec: BandSpectra, py: np.ndarray, px: np.ndarray, up: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``"dft"``: the winner to 1/upsample px over +-1/4 px; returns its position and height."""
    b = py.size
    half = int(np.ceil(up / 8.0)) + 1
    s2 = 2 * half + 1
    y2, x2 = py - half / up, px - half / up
    w2 = _dft_windows(p, spec, y2[:, None], x2[:, None], s2, 1.0 / up).reshape(b, s2, s2)
    n2 = (w2 / _window_envelope(spec.frame_shape, y2, x2, s2, 1.0 / up)).reshape(b, -1)
    w2 = w2.reshape(b, -1)
    k = n2.argmax(axis=1)
    py = py - half / up + (k // s2) / up
    px = px - half / up + (k % s2) / up
    return py, px, w2[np.arange(b), k]


def find_pair_peaks(
    spec: BandSpectra,
    pi: np.ndarray,
    pj: np.ndarray,
    opts: PairwiseOptions,
    grid: tuple[int, int],
    *,
    chunk: int = 16,
) -> PairPeaks:
    """Peaks of the correlations of pairs ``(pi[k], pj[k])`` (one batch).

    The correlation maps are made ``chunk`` pairs at a time (their memory is
    bounded); the windows of the whole batch are then fitted together, which
    is where batching pays. See the module docstring. Pairs involving an
    unusable frame get NaN. ``opts`` gives ``maxima``, ``num_peaks``,
    ``sigma_guess``, ``window_radius`` and ``upsample``.
    """
    hp, wp = spec.padded
    geo = _geometry(spec, opts, grid)
    b, num = pi.size, geo.num
    p = spec.spectra[pj] * np.conj(spec.spectra[pi])
    cy, cx, cvalid, win = _candidate_windows(p, spec, geo, chunk)
    py, px, height, fit_ok = _locate(p, spec, geo, opts, (cy, cx, win))
    # the best candidate of each pair
    height = np.where(cvalid.reshape(-1), height, -np.inf).reshape(b, num)
    best = np.argmax(height, axis=1)
    rows = np.arange(b)
    top = height[rows, best]
    py = py.reshape(b, num)[rows, best]
    px = px.reshape(b, num)[rows, best]
    ok = fit_ok.reshape(b, num)[rows, best]
    up = max(int(opts.upsample), 1)
    if opts.maxima == "dft" and up > DFT_FIRST_STEP:
        py, px, top = _refine_winner(p, spec, py, px, up)
    # quality, ambiguity, wrapped positions
    others = height.copy()
    others[rows, best] = -np.inf
    second = others.max(axis=1) if num > 1 else np.full(b, -np.inf)
    norm = np.sqrt(spec.energy[pi] * spec.energy[pj])
    with np.errstate(invalid="ignore", divide="ignore"):
        quality = top / norm
        ratio = np.where(np.isfinite(second), second / height[rows, best], np.nan)
    py = ((py + hp / 2.0) % hp) - hp / 2.0
    px = ((px + wp / 2.0) % wp) - wp / 2.0
    usable = spec.usable[pi] & spec.usable[pj]
    nan = np.full(b, np.nan)
    return PairPeaks(
        dy=np.where(usable, py, nan),
        dx=np.where(usable, px, nan),
        quality=np.where(usable, quality, nan),
        second=np.where(usable, ratio, nan),
        fit_ok=ok & usable,
    )


def pair_correlation_map(spec: BandSpectra, i: int, j: int) -> np.ndarray:
    """The full-resolution correlation of frames ``i`` and ``j`` on the
    padded grid, centred (zero shift at ``(H // 2, W // 2)``), for display."""
    hp, wp = spec.padded
    p = spec.spectra[j] * np.conj(spec.spectra[i])
    full = _coarse_maps(p[None], spec, (hp, wp))[0] * float(hp * wp)
    return np.fft.fftshift(full)
