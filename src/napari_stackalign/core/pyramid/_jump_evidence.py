"""Jumps a frame's own match vouches for.

The jump test (:func:`~._trust.jumps`) flags a trustworthy frame far from
its neighbours on both sides. That catches frames matched at the wrong
place, but it also flags frames that moved. Gaussian jitter of 0.4 px has
outliers: on anchors.py's motion model, 19 % of 1000-frame stacks had at
least one frame beyond the limit on the true motion itself. Such a frame,
interpolated from its neighbours, becomes wrong by its jitter: 1.3-2.1 px on
anchors.py `beads-512x1000-medium` (seed 4243), whose estimates were all
within 0.023 px.

A frame matched at the wrong place matched the template where the content
matches itself ``d`` px away, ``d`` the misplacement. So its correlation is
about ``q rho(d)``, with ``rho`` the autocorrelation of the template's
signal. A frame keeps its jump (:func:`vouched_jumps`) when all hold:

- it matches the template as well as its trustworthy neighbours do (within
  :data:`KEEP_SCATTERS` of the frame-to-frame scatter of the quality);
- no misplacement onto a second peak of ``rho`` (a lattice vector, a
  repeated structure) explains it: no such peak high enough to keep the
  quality within :data:`DROP_SCATTERS` of the scatter lies within
  :data:`ALIAS_REACH` of where the jump would put it. Where the frame
  belongs is known to the motion's jitter, so the jump is measured from
  either side's median and from each neighbour. (On a 64x96 square lattice
  with a 16 px period and 1.5 px of jitter, the jump from the nearer side's
  median lay 1.5 px from a lattice vector: ``rho`` 0.5 there, 0.97 at the
  vector.)
- the refinement, which climbs the central peak, would not have stopped
  this far from its top by noise: a misplacement by the jump (from the
  nearer side's median) would have cost a drop beyond :data:`DROP_SCATTERS`
  of that scatter.

None is vouched for in a stack where fewer than
:data:`MIN_TRUSTED_FRACTION` of the frames were trustworthy before the jump
test: there the neighbours may be wrong too (grid seed 1007, case 5, a
64x64 square lattice at SNR 0.32 with 9 frames wrong and ok already: two
more frames, one period off, were vouched for from neighbours 4-16 px off).

So on periodic content a frame one period off stays flagged. At low SNR the
drop is within the scatter, so a precision-limited frame stays flagged too.
A frame of another scene matches worse than its neighbours.

The signal's autocorrelation comes from the template's power spectrum less
its white-noise floor (the mean power of the outermost ring of frequencies,
as the median over ln 2: the power of noise at one frequency is
exponential). The template's noise decorrelates at every lag but 0, so
leaving it in would predict drops larger than the content gives.
"""

from __future__ import annotations

import numpy as np
import scipy.fft as sfft

from ._template import Template

__all__ = ["ALIAS_REACH", "DROP_SCATTERS", "KEEP_SCATTERS", "SignalAutocorrelation", "vouched_jumps"]

#: a jumping frame's quality is at least its neighbours' median less this many scatters ...
KEEP_SCATTERS = 3.0
#: ... and a misplacement by its jump would lower the quality by more than this many scatters
DROP_SCATTERS = 6.0
#: a second peak of the autocorrelation this close (px) to a jump's misplacement explains it
ALIAS_REACH = 1.5
#: a second peak is one where the autocorrelation dips by this much between it and the centre
PEAK_DIP = 0.1
#: second peaks are sought where the template overlaps itself by at least this fraction
MIN_OVERLAP = 0.25
#: the least fraction of a stack's frames trustworthy before the jump test: where more failed, the
#: neighbours may be wrong too, and do not say where a frame belongs
MIN_TRUSTED_FRACTION = 0.8
#: trustworthy frames the quality's scatter needs
MIN_FRAMES = 8
#: trustworthy frames on each side a jumping frame is compared with (the jump test's ``JUMP_WINDOW``)
SIDE_FRAMES = 3


class SignalAutocorrelation:
    """The normalised autocorrelation of a template's signal over the overlap, at any lag.

    The engine's quality is a correlation over the part of the template a
    frame overlaps, normalised there. So ``rho(d)`` is the template's
    correlation with itself moved by ``d``, over their overlap: the linear
    (zero-padded) autocorrelation divided by the number of overlapping
    valid pixels. A cyclic autocorrelation would add the wrap-around of the
    template's edges, which does not correlate: on a 64x96 template of a
    lattice with a 16 px period it gives 0.64 one period away, where the
    overlap gives about 1, and would vouch for frames one period off.

    ``rho`` is evaluated exactly at fractional lags, as the cosine sum of the
    padded power spectrum: interpolating a sampled autocorrelation would
    lower it between pixels, most at a lattice's peaks (a cosine of period
    8 px: 0.97 instead of 0.997 at 0.1 px from a period). The overlap count
    is smooth, and interpolated bilinearly. Second peaks are sought on the
    whole-pixel table, near the lags asked about.

    Computed on the first call (a jump to judge), not before: two FFTs of
    the padded template and a noise floor, measured 9, 43 and 181 ms at
    256x256, 512x512 and 1024x1024 on this project's 2-core machine.

    Parameters
    ----------
    template : Template
        The template (zero-mean where valid, 0 elsewhere).
    """

    def __init__(self, template: Template) -> None:
        self._template = template
        self._ready = False

    def _prepare(self) -> None:
        image = np.asarray(self._template.image, np.float32)
        h, w = image.shape
        self._shape = (h, w)
        spectrum = sfft.rfft2(image, s=(2 * h, 2 * w), workers=-1)
        power = spectrum.real**2 + spectrum.imag**2
        fy = np.fft.fftfreq(2 * h)
        fx = np.fft.rfftfreq(2 * w)
        outer = np.hypot(fy[:, None], fx[None, :]) >= 0.45  # near the Nyquist frequency: noise for microscopy
        # white noise's power at one frequency is exponential: its mean is the median / ln 2
        floor = float(np.median(power[outer])) / np.log(2.0)
        # not clipped at 0: the noise's excess over its mean would stay in, a third of it
        signal = power - np.float32(floor)
        signal[0, 0] = 0.0
        # whole-pixel lags (lag (dy, dx) at [dy % 2h, dx % 2w]); irfft2 divides by the number of frequencies
        self._table = sfft.irfft2(signal, s=(2 * h, 2 * w), workers=-1) * np.float32(4.0 * h * w)
        # the real FFT holds one of each pair of conjugate frequencies, but the first and the Nyquist
        # columns once
        weight = np.full(signal.shape[1], 2.0, np.float32)
        weight[0] = weight[-1] = 1.0
        signal *= weight[None, :]
        self._signal = signal
        self._fy, self._fx = fy, fx
        valid = self._template.valid
        # overlapping valid pixels at each whole lag (None: the whole template, in closed form)
        self._overlap = None
        if valid is not None:
            m = sfft.rfft2(np.asarray(valid, np.float32), s=(2 * h, 2 * w), workers=-1)
            self._overlap = np.rint(sfft.irfft2(m.real**2 + m.imag**2, s=(2 * h, 2 * w), workers=-1))
        self._full = float(self._overlap_whole(np.zeros(1, int), np.zeros(1, int))[0])
        self._zero = float(self._table[0, 0]) / self._full if self._full > 0 else 0.0
        self._ready = True

    def _overlap_whole(self, dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
        """Overlapping valid pixels at whole lags (broadcast ``dy`` and ``dx``)."""
        h, w = self._shape
        if self._overlap is None:
            return (np.clip(h - np.abs(dy), 0, None) * np.clip(w - np.abs(dx), 0, None)).astype(np.float64)
        return self._overlap[dy % (2 * h), dx % (2 * w)]

    def _signal_at(self, lags: np.ndarray) -> np.ndarray:
        """The signal's linear autocorrelation (unnormalised) at each lag."""
        ey = np.exp(2j * np.pi * lags[:, :1] * self._fy[None, :])  # (k, 2h)
        ex = np.exp(2j * np.pi * lags[:, 1:] * self._fx[None, :])  # (k, w + 1)
        return np.real(np.sum((ey @ self._signal) * ex, axis=1))

    def _overlap_at(self, lags: np.ndarray) -> np.ndarray:
        """Overlapping valid pixels at each lag (bilinear between whole lags)."""
        return _bilinear(self._overlap_whole, lags[:, 0], lags[:, 1])

    def __call__(self, lags: np.ndarray) -> np.ndarray:
        """``rho`` at each lag ``(dy, dx)`` of ``lags`` (k, 2), full-resolution px (1 at 0; 0 for a
        template without signal, or a lag without overlap)."""
        lags = np.asarray(lags, np.float64).reshape(-1, 2)
        if not self._ready:
            self._prepare()
        out = np.zeros(len(lags))
        if not self._zero > 0:
            return out
        overlap = self._overlap_at(lags)
        has = overlap >= 1.0
        out[has] = self._signal_at(lags[has]) / overlap[has] / self._zero
        return out

    def second_peaks(self, min_rho: float, reach: float) -> np.ndarray:
        """Whole-pixel lags (k, 2) of the second peaks with ``rho >= min_rho`` within ``reach`` px (each
        axis) of lag 0.

        A second peak is a local maximum other than the centre, where the
        template overlaps itself by :data:`MIN_OVERLAP` or more, with a dip
        of :data:`PEAK_DIP` between it and the centre (a bump of noise on the
        central peak's shoulder is none).
        """
        if not self._ready:
            self._prepare()
        h, w = self._shape
        ry = int(min(np.ceil(reach) + 1, h - 1))
        rx = int(min(np.ceil(reach) + 1, w - 1))
        if not self._zero > 0 or ry < 1 or rx < 1:
            return np.zeros((0, 2))
        dy = np.arange(-ry, ry + 1)[:, None]
        dx = np.arange(-rx, rx + 1)[None, :]
        overlap = self._overlap_whole(dy, dx)
        enough = overlap >= MIN_OVERLAP * self._full
        rho = np.where(enough, self._table[dy % (2 * h), dx % (2 * w)] / np.maximum(overlap, 1.0) / self._zero, -np.inf)
        padded = np.pad(rho, 1, constant_values=-np.inf)
        top = np.max(
            [padded[1 + a : padded.shape[0] - 1 + a, 1 + b : padded.shape[1] - 1 + b]
             for a in (-1, 0, 1) for b in (-1, 0, 1)],
            axis=0,
        )
        peak = enough & (rho == top) & (rho >= min_rho)
        peak[ry, rx] = False
        rows, cols = np.nonzero(peak)
        if not rows.size:
            return np.zeros((0, 2))
        values = rho[rows, cols]
        # the dip: the table along the segment to the centre, interpolated
        table = np.where(enough, rho, 0.0)
        steps = np.linspace(0.0, 1.0, 17)[1:-1]
        py = ry + steps[None, :] * (rows[:, None] - ry)
        px = rx + steps[None, :] * (cols[:, None] - rx)
        along = _bilinear(lambda y, x: table[y, x], py, px, upper=(2 * ry - 1, 2 * rx - 1))
        second = along.min(axis=1) < values - PEAK_DIP
        return np.stack([rows[second] - ry, cols[second] - rx], 1).astype(np.float64)


def _bilinear(at, y: np.ndarray, x: np.ndarray, upper: tuple[int, int] | None = None) -> np.ndarray:
    """Bilinear interpolation of ``at(rows, cols)`` (whole-pixel values) at ``(y, x)``; ``upper``: the
    largest corner rows and columns (the sample points lie within the table)."""
    y0, x0 = np.floor(y).astype(int), np.floor(x).astype(int)
    if upper is not None:
        y0, x0 = np.clip(y0, 0, upper[0]), np.clip(x0, 0, upper[1])
    ty, tx = y - y0, x - x0
    return (
        at(y0, x0) * (1 - ty) * (1 - tx)
        + at(y0 + 1, x0) * ty * (1 - tx)
        + at(y0, x0 + 1) * (1 - ty) * tx
        + at(y0 + 1, x0 + 1) * ty * tx
    )


def _side_median(values: np.ndarray, idx: np.ndarray, lo: int, hi: int) -> np.ndarray | None:
    """The median of ``values[idx[lo:hi]]`` (None when empty)."""
    lo, hi = max(lo, 0), min(hi, idx.size)
    return None if hi <= lo else np.median(values[idx[lo:hi]], axis=0)


def vouched_jumps(
    far: np.ndarray,
    shifts: np.ndarray,
    quality: np.ndarray,
    trusted: np.ndarray,
    rho: SignalAutocorrelation,
) -> np.ndarray:
    """Which ``far`` frames (flagged by the jump test) their own match vouches for (see the module notes).

    Parameters
    ----------
    far : ndarray of bool (T,)
        The frames the jump test flags (trustworthy otherwise).
    shifts : ndarray (T, 2)
        Every frame's shift (px).
    quality : ndarray (T,)
        Every frame's correlation with the template.
    trusted : ndarray of bool (T,)
        The frames trustworthy before the jump test (``far`` among them).
    rho : SignalAutocorrelation
        The template's.

    Returns
    -------
    ndarray of bool (T,)
    """
    keep = np.zeros(len(shifts), bool)
    usable = np.asarray(trusted, bool) & np.isfinite(quality)
    idx = np.flatnonzero(usable)
    if idx.size < MIN_FRAMES or idx.size < MIN_TRUSTED_FRACTION * len(shifts) or not np.any(far):
        return keep
    # frame-to-frame scatter of the quality (consecutive differences: slow trends such as bleaching do not count)
    scatter = 1.4826 * float(np.median(np.abs(np.diff(quality[idx])))) / np.sqrt(2.0)
    if not scatter > 0:
        return keep
    shifts = np.asarray(shifts, np.float64)
    for j in np.flatnonzero(far):
        pos = int(np.searchsorted(idx, j))
        after = pos + int(pos < idx.size and idx[pos] == j)
        around = np.r_[idx[max(0, pos - SIDE_FRAMES) : pos], idx[after : after + SIDE_FRAMES]]
        if not around.size:
            continue
        q_ref = float(np.median(quality[around]))
        if not quality[j] >= q_ref - KEEP_SCATTERS * scatter:
            continue
        # where the frame may belong: at either side's median or at any of its neighbours (the motion's jitter)
        sides = [_side_median(shifts, idx, pos - SIDE_FRAMES, pos), _side_median(shifts, idx, after, after + SIDE_FRAMES)]
        sides = [c for c in sides if c is not None]
        misplacements = shifts[j] - np.array(sides + list(shifts[around]))
        reach = float(np.abs(misplacements).max()) + ALIAS_REACH
        aliases = rho.second_peaks(1.0 - DROP_SCATTERS * scatter / q_ref, reach)
        if aliases.size:
            apart = np.hypot(*(misplacements[:, None, :] - aliases[None, :, :]).transpose(2, 0, 1))
            if float(apart.min()) <= ALIAS_REACH:
                continue
        # not stopped short of the central peak's top: a misplacement by the jump would have cost a clear drop
        jump = min((shifts[j] - c for c in sides), key=lambda v: float(np.hypot(*v)))
        keep[j] = q_ref * (1.0 - float(rho(jump)[0])) > DROP_SCATTERS * scatter
    return keep
