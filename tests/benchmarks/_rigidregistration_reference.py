"""A plain-numpy re-implementation of the rigidregistration pipeline, for benchmarks.

Written here from the description in ``shared/reference/seeds-analysis.md``
section 5 (our own code, not the package's): it does what the package does,
the way it does it, so that speed and accuracy can be compared on the same
data in the same run. Stack layout here is (T, Y, X); rows are the
package's "x".

1. ``get_ffts``: each frame mean-subtracted, times the real-space Hann window
   ``sin(pi r/H)**2 sin(pi c/W)**2``, full complex ``numpy.fft.fft2``
   (complex128), all frames kept in memory.
2. ``make_mask``: the package's formulas on its integer index grid
   ``arange(-N//2, N//2)`` (square, even frames only), fftshifted.
3. ``find_shifts``: for every pair i < j, one full-size inverse FFT,
   ``cc = |ifft2(mask F_j conj(F_i))|``; then the brightest pixel (``"pixel"``)
   or ``"gf"``: the ``num_peaks`` brightest *pixels* of the fftshifted map
   (repeated argmax, zeroing each), windows of ``2 r + 1`` skipped on the
   edge, a 7-parameter rotated Gaussian fitted with
   ``scipy.optimize.curve_fit`` (start: value at the centre, sigma_guess,
   theta 0, offset 0; a failed fit keeps its start), the fit with the largest
   offset + amplitude wins. Indices above N/2 wrap to negative.
4. ``get_outliers``: transitivity scores over ``getpaths`` paths (chains
   of intermediate frames between i and j, shortest first, extended outward
   in time), summed and divided by ``maxpaths``.
5. ``correct_and_solve``: masked entries filled from path sums in repeated
   sweeps (the package's loop, capped here so a benchmark cannot hang),
   then the row mean of the matrices (diagonal zero included).
6. ``average``: each good frame shifted by a phase ramp on the fftshifted
   spectrum, ``abs()`` of the inverse FFT, mean, crop.
"""

from __future__ import annotations

import itertools
import math
import time
import warnings
from typing import Any

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit


def get_ffts(stack: np.ndarray) -> np.ndarray:
    t, h, w = stack.shape
    rr, cc = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    window = (np.sin(np.pi * rr / h) * np.sin(np.pi * cc / w)) ** 2
    out = np.zeros((t, h, w), dtype=np.complex128)
    for k in range(t):
        frame = stack[k].astype(np.float64)
        out[k] = np.fft.fft2((frame - frame.mean()) * window)
    return out


def make_mask(shape: tuple[int, int], kind: str = "hann", n: float = 4) -> np.ndarray:
    h, w = shape
    kx, ky = np.meshgrid(np.arange(-int(h / 2), int(h / 2)), np.arange(-int(w / 2), int(w / 2)), indexing="ij")
    kr = np.sqrt(kx**2 + ky**2)
    ny = float(w)
    k_max = ny / n / 2
    if kind == "bandpass":
        m = (kr < k_max) * np.sin(2 * n * np.pi * kr / ny) ** 2
    elif kind in ("hann", "lowpass"):
        m = (kr < k_max) * np.cos(n * np.pi * kr / ny) ** 2
    elif kind == "none":
        m = np.ones_like(kr)
    else:
        raise ValueError(kind)
    return np.fft.fftshift(m)


def _gauss2d(xy: tuple[np.ndarray, np.ndarray], amp, x0, y0, sx, sy, theta, offset):
    x, y = xy
    a = np.cos(theta) ** 2 / (2 * sx**2) + np.sin(theta) ** 2 / (2 * sy**2)
    b = -np.sin(2 * theta) / (4 * sx**2) + np.sin(2 * theta) / (4 * sy**2)
    c = np.sin(theta) ** 2 / (2 * sx**2) + np.cos(theta) ** 2 / (2 * sy**2)
    g = offset + np.abs(amp) * np.exp(-(a * (x - x0) ** 2 + 2 * b * (x - x0) * (y - y0) + c * (y - y0) ** 2))
    return g.ravel()


def _gf_shift(cc: np.ndarray, num_peaks: int, sigma_guess: float, r: int) -> tuple[float, float]:
    data = np.fft.fftshift(cc)
    work = data.copy()
    h, w = data.shape
    cands = []
    for _ in range(num_peaks):
        k = int(np.argmax(work))
        cands.append((k // w, k % w))
        work[k // w, k % w] = 0
    fits = []
    for x0, y0 in cands:
        if x0 - r < 0 or y0 - r < 0 or x0 + r + 1 >= h or y0 + r + 1 >= w:
            continue
        cut = data[x0 - r : x0 + r + 1, y0 - r : y0 + r + 1]
        xs, ys = np.meshgrid(range(cut.shape[0]), range(cut.shape[1]))
        p0 = (cut[r, r], r, r, sigma_guess, sigma_guess, 0.0, 0.0)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", OptimizeWarning)
                popt, _ = curve_fit(_gauss2d, (xs, ys), cut.ravel(), p0=p0)
        except RuntimeError:
            popt = np.array(p0, dtype=float)
        popt = np.array(popt, dtype=float)
        # fitted (x, y) are (column, row) of the cut-out: back to (row, col) of the map
        row, col = popt[2] + x0 - r, popt[1] + y0 - r
        fits.append((popt[6] + popt[0], row, col))
    if not fits:
        raise IndexError("every Gaussian-fit candidate lies on the edge")  # the package crashes here too
    _, row, col = max(fits, key=lambda f: f[0])
    return row - h / 2.0, col - w / 2.0


def _pixel_shift(cc: np.ndarray) -> tuple[float, float]:
    h, w = cc.shape
    k = int(np.argmax(cc))
    x, y = k // w, k % w
    return (x if x < h / 2 else x - h), (y if y < w / 2 else y - w)


def pair_shift(ffts: np.ndarray, mask: np.ndarray, i: int, j: int, maxima: str, gf: dict) -> tuple[float, float]:
    cc = np.abs(np.fft.ifft2(mask * ffts[j] * np.conj(ffts[i])))
    if maxima == "pixel":
        return _pixel_shift(cc)
    return _gf_shift(cc, gf["num_peaks"], gf["sigma_guess"], gf["window_radius"])


def find_shifts(
    ffts: np.ndarray, mask: np.ndarray, maxima: str = "gf", pairs: list | None = None, **gf: Any
) -> tuple[np.ndarray, np.ndarray]:
    n = ffts.shape[0]
    gf = {"num_peaks": 3, "sigma_guess": 2.0, "window_radius": 6, **gf}
    X = np.zeros((n, n))
    Y = np.zeros((n, n))
    todo = pairs if pairs is not None else [(i, j) for i in range(n - 1) for j in range(i + 1, n)]
    for i, j in todo:
        X[i, j], Y[i, j] = pair_shift(ffts, mask, i, j, maxima, gf)
        X[j, i], Y[j, i] = -X[i, j], -Y[i, j]
    return X, Y


def _chain(seq: list[int]) -> list[tuple[int, int]]:
    return [(seq[k + 1], seq[k]) for k in range(len(seq) - 1)]


def getpaths(i: int, j: int, maxpaths: int, nz: int) -> list[list[tuple[int, int]]]:
    """The package's path order, rebuilt: chains through frames between i and j
    (shorter first), then extended outward alternately before i and after j.
    (Like the package, this can index outside the stack for short stacks.)"""
    if i > j:
        i, j = j, i
    if j - i < 2:
        seq = [[i, j]]
    else:
        inner = range(i + 1, j)
        combos = itertools.chain(*(itertools.combinations(inner, k) for k in range(1, len(inner) + 1)))
        seq = [[i, *c, j] for c in itertools.islice(combos, maxpaths)]
    a = b = 0
    while len(seq) < maxpaths:
        if i - a <= 0:
            b += 1
        elif j + b >= nz - 1:
            a += 1
        elif a % 2:
            b += 1
        else:
            a += 1
        i0, j0 = i - a, j + b
        n1, n2 = range(i - 1, i0, -1), range(j0 - 1, i + 1, -1)
        c1 = itertools.chain(*(itertools.combinations(n1, k) for k in range(len(n1), 0, -1)))
        c2 = itertools.chain(*(itertools.combinations(n2, k) for k in range(len(n2), 0, -1)))
        s1 = [list(c) for c in itertools.islice(c1, maxpaths)] + [[]]
        s2 = [list(c) for c in itertools.islice(c2, maxpaths)] + [[]]
        for p in s1:
            for q in s2:
                mid = ([i0] if i != i0 else []) + ([j0] if j != j0 else [])
                seq.append([i, *p, *mid, *q, j])
    return [_chain(s) for s in seq[:maxpaths]]


def get_outliers(X: np.ndarray, Y: np.ndarray, threshold: float, maxpaths: int = 5) -> np.ndarray:
    n = X.shape[0]
    scores = np.zeros((n, n))
    for i in range(n - 1):
        for j in range(i + 1, n):
            for path in getpaths(i, j, maxpaths, n):
                px = sum(X[e] for e in path)
                py = sum(Y[e] for e in path)
                scores[i, j] += math.hypot(px - X[j, i], py - Y[j, i])
    scores /= maxpaths
    scores = scores + scores.T
    return scores < threshold  # True = good


def correct_and_solve(X: np.ndarray, Y: np.ndarray, good: np.ndarray, max_sweeps: int = 50) -> np.ndarray:
    n = X.shape[0]
    Xc = np.where(good, X, np.nan)
    Yc = np.where(good, Y, np.nan)
    maxpaths = 5
    sweeps = 0
    while np.isnan(Xc).any() and sweeps < max_sweeps:
        for i in range(n - 1):
            for j in range(i + 1, n):
                if np.isnan(Xc[i, j]):
                    xs, ys = [], []
                    for path in getpaths(i, j, maxpaths, n):
                        vals = [(Xc[e], Yc[e]) for e in path]
                        if all(np.isfinite(v[0]) for v in vals):
                            xs.append(sum(v[0] for v in vals))
                            ys.append(sum(v[1] for v in vals))
                    if xs:
                        Xc[i, j], Xc[j, i] = -np.mean(xs), np.mean(xs)
                        Yc[i, j], Yc[j, i] = -np.mean(ys), np.mean(ys)
        sweeps += 1
    Xc = np.nan_to_num(Xc)
    Yc = np.nan_to_num(Yc)
    return np.stack([Xc.mean(axis=1), Yc.mean(axis=1)], axis=1)


def shifted_frame(frame: np.ndarray, sx: float, sy: float) -> np.ndarray:
    h, w = frame.shape
    rx, ry = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    ramp = -np.exp(-2j * np.pi * (sx * rx / h + sy * ry / w))
    return np.abs(np.fft.ifft2(np.fft.ifftshift(np.fft.fftshift(np.fft.fft2(frame)) * ramp)))


def average(stack: np.ndarray, shifts: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    total = np.zeros(stack.shape[1:])
    for k in range(stack.shape[0]):
        total += shifted_frame(stack[k].astype(np.float64), shifts[k, 0], shifts[k, 1])
    avg = total / stack.shape[0]
    h, w = stack.shape[1:]
    x0 = math.ceil(max(shifts[:, 0].max(), 0))
    x1 = math.floor(min(shifts[:, 0].min(), 0)) or h
    y0 = math.ceil(max(shifts[:, 1].max(), 0))
    y1 = math.floor(min(shifts[:, 1].min(), 0)) or w
    x1 = x1 if x1 > 0 else h + x1
    y1 = y1 if y1 > 0 else w + y1
    return avg[x0:x1, y0:y1], (x0, x1, y0, y1)


def run(
    stack: np.ndarray,
    *,
    mask: str = "hann",
    n: float = 4,
    maxima: str = "gf",
    threshold: float = 10.0,
    maxpaths: int = 5,
    pair_subset: int | None = None,
    matrices: tuple[np.ndarray, np.ndarray] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """The whole pipeline with per-stage timings.

    With ``pair_subset``, only that many random pairs are correlated and the
    pair stage is extrapolated to all pairs; the later stages then run on
    ``matrices`` (same size, e.g. another method's) since their cost does not
    depend on the values.
    """
    t_all = {}
    t0 = time.perf_counter()
    ffts = get_ffts(stack)
    m = make_mask(stack.shape[1:], mask, n)
    t_all["ffts"] = time.perf_counter() - t0
    nfr = stack.shape[0]
    all_pairs = [(i, j) for i in range(nfr - 1) for j in range(i + 1, nfr)]
    t0 = time.perf_counter()
    if pair_subset is not None and pair_subset < len(all_pairs):
        rng = np.random.default_rng(seed)
        pick = [all_pairs[k] for k in rng.choice(len(all_pairs), pair_subset, replace=False)]
        find_shifts(ffts, m, maxima, pairs=pick)
        t_all["pairs"] = (time.perf_counter() - t0) * len(all_pairs) / pair_subset
        t_all["pairs_extrapolated_from"] = pair_subset
        if matrices is None:
            raise ValueError("pass matrices= to time the later stages with a pair subset")
        X, Y = matrices
    else:
        X, Y = find_shifts(ffts, m, maxima)
        t_all["pairs"] = time.perf_counter() - t0
    del ffts
    t0 = time.perf_counter()
    good = get_outliers(X, Y, threshold, maxpaths) if nfr >= 6 else np.ones((nfr, nfr), dtype=bool)
    shifts = correct_and_solve(X, Y, good)
    t_all["outliers_solve"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    avg, crop = average(stack, shifts)
    t_all["average"] = time.perf_counter() - t0
    t_all["total"] = t_all["ffts"] + t_all["pairs"] + t_all["outliers_solve"] + t_all["average"]
    return {"X": X, "Y": Y, "shifts": shifts, "average": avg, "crop": crop, "times": t_all}
