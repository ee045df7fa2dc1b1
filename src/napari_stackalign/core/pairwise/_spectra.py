"""Per-frame spectra for all-pairs correlation, computed once per frame.

Each frame is mean-subtracted, multiplied by a real-space Hann window
``sin(pi r / H)**2 sin(pi c / W)**2`` (so its borders do not correlate),
zero-padded to a fast FFT size and transformed with :func:`scipy.fft.rfft2`.

The correlation of frames i and j under a mask ``M`` is the inverse FFT of
``M F_j conj(F_i)`` (optionally normalised, see
:data:`~napari_stackalign.core.pairwise._options.CORRELATIONS`). Because
``M >= 0`` and the normalisations are per-frame, the product factorises::

    M F_j conj(F_i) / (|F_j| |F_i|)**p  =  G_j conj(G_i),   G = sqrt(M) F / |F|**p

so each frame's ``G`` is computed once. A mask is zero (or negligible) above
its cutoff, so only the rectangular *band* of frequencies where it is not
zero is kept: for ``n = 4`` that is about a quarter of each axis, and every
pair's product and inverse FFT work on that band only (see
:mod:`~napari_stackalign.core.pairwise._peaks`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import fft as sfft

from ...progress import ProgressCallback, report
from ..scaling import WorkingScale, to_float32, working_scale
from ._newton import make_sparse, sparse_indices
from ._options import CORRELATIONS, validate_option

__all__ = ["BandSpectra", "band_limits", "band_sparse", "compute_band_spectra", "hann2d", "read_frames", "stack_scale", "windowed_spectra"]

#: mask values below this fraction of the mask's maximum are treated as zero
BAND_TOL = 1e-4


@dataclass
class BandSpectra:
    """The masked, normalised band of every frame's spectrum.

    Attributes
    ----------
    spectra : ndarray, complex64, shape (T, len(ky), len(kx))
        ``G`` of every frame on the band (rows in FFT order ``0..K, -K..-1``).
    energy : ndarray, float64, shape (T,)
        ``sum |G|**2`` over the full plane: the zero-shift autocorrelation,
        used to normalise peak heights into a correlation coefficient.
    usable : ndarray of bool, shape (T,)
        False for frames with no signal in the band (constant frames).
    ky, kx : ndarray of int
        Row (signed) and column frequency indices of the band on the padded grid.
    precision : SparseSpectra or None
        The spectra on the precision mask's frequencies (``maxima="newton"``,
        :mod:`~napari_stackalign.core.pairwise._newton`).
    single_peak : bool
        The mask's correlation has one dominant peak (the ``"auto"`` choice mask
        without Bragg peaks inside it): ``maxima="newton"`` takes the brightest sample.
    col_weight : ndarray of float, shape (len(kx),)
        Hermitian weight of each column (1 for DC and Nyquist, else 2).
    padded : (int, int)
        FFT shape the frames were padded to.
    frame_shape : (int, int)
        Original frame shape.
    """

    spectra: np.ndarray
    energy: np.ndarray
    usable: np.ndarray
    ky: np.ndarray
    kx: np.ndarray
    col_weight: np.ndarray
    padded: tuple[int, int]
    frame_shape: tuple[int, int]
    precision: Any = None
    single_peak: bool = False


def hann2d(shape: tuple[int, int]) -> np.ndarray:
    """Real-space periodic Hann window ``sin(pi r/H)**2 sin(pi c/W)**2`` (float32)."""
    h, w = shape
    wy = np.sin(np.pi * np.arange(h) / h) ** 2
    wx = np.sin(np.pi * np.arange(w) / w) ** 2
    return np.outer(wy, wx).astype(np.float32)


def band_limits(mask_half: np.ndarray) -> tuple[int, int]:
    """Half-widths ``(K_rows, K_cols)`` of the frequency box holding the mask.

    ``K_rows``: largest ``|ky|`` with a non-negligible mask value;
    ``K_cols``: largest ``kx``. Raises ``ValueError`` when the mask keeps
    nothing but DC (which carries no shift information).
    """
    m = np.asarray(mask_half)
    h = m.shape[0]
    peak = float(m.max()) if m.size else 0.0
    if not np.isfinite(peak) or peak <= 0:
        raise ValueError("the Fourier mask is zero everywhere: choose another mask or a smaller n.")
    keep = m > BAND_TOL * peak
    keep_no_dc = keep.copy()
    keep_no_dc[0, 0] = False
    if not keep_no_dc.any():
        raise ValueError(
            "the Fourier mask keeps no frequency but DC for this frame size: lower n "
            "(features smaller than about n px are ignored) or use larger frames."
        )
    rows = np.flatnonzero(keep.any(axis=1))
    ky = np.where(rows <= h // 2, rows, rows - h)
    cols = np.flatnonzero(keep.any(axis=0))
    return int(np.abs(ky).max()), int(cols.max())


def read_frames(stack: Any, start: int, stop: int, scale: WorkingScale | None = None) -> np.ndarray:
    """Frames ``start:stop`` as a new float32 array (never a view of the
    input, which callers modify), with a clear error for NaN/inf; ``scale``
    (:func:`~napari_stackalign.core.scaling.working_scale`) brings data far
    from the usual range into it (for estimating only: it changes the units)."""
    chunk = np.asarray(stack[start:stop])
    if chunk.dtype.kind == "c":
        raise ValueError("complex-valued stacks are not supported: take the magnitude or real part first.")
    chunk = to_float32(chunk) if scale is None else to_float32(chunk, scale)
    if not np.all(np.isfinite(chunk)):
        bad = start + int(np.flatnonzero(~np.isfinite(chunk).reshape(chunk.shape[0], -1).all(axis=1))[0])
        raise ValueError(
            f"frame {bad} contains NaN or infinite values: replace them (e.g. with the frame mean) before "
            "registering."
        )
    return chunk


def band_sparse(spec: BandSpectra) -> Any:
    """The band spectra as :class:`~napari_stackalign.core.pairwise._newton.SparseSpectra` (their
    non-zero frequencies), for the Newton refinement on the (choice) mask itself."""
    hp = spec.padded[0]
    t = spec.spectra.shape[0]
    rows = np.repeat(spec.ky % hp, spec.kx.size)
    cols = np.tile(spec.kx, spec.ky.size)
    values = spec.spectra.reshape(t, -1)
    keep = np.abs(values).max(axis=0) > 0
    keep &= ~((rows == 0) & (cols == 0))
    return make_sparse(np.ascontiguousarray(values[:, keep]), rows[keep], cols[keep], spec.padded, spec.frame_shape)


def stack_scale(stack: Any) -> WorkingScale:
    """The working scale of ``stack`` (from its first, middle and last frames)."""
    n_frames = int(stack.shape[0])
    return working_scale(np.stack([np.asarray(stack[i]) for i in sorted({0, n_frames // 2, n_frames - 1})]))


def _windowed_chunk(
    stack: Any, start: int, stop: int, padded: tuple[int, int], scale: WorkingScale, window: np.ndarray, workers: int
) -> np.ndarray:
    chunk = read_frames(stack, start, stop, scale)
    chunk -= chunk.mean(axis=(1, 2), keepdims=True)
    chunk *= window
    return sfft.rfft2(chunk, s=padded, axes=(1, 2), workers=workers)


def windowed_spectra(stack: Any, padded: tuple[int, int], *, chunk_size: int = 16, workers: int = 1) -> np.ndarray:
    """Every frame mean-subtracted, Hann-windowed, zero-padded to ``padded`` and
    transformed (:func:`scipy.fft.rfft2`): (T, Hp, Wp // 2 + 1) complex64."""
    n_frames, h, w = (int(v) for v in stack.shape[:3])
    window = hann2d((h, w))
    scale = stack_scale(stack)
    out = np.empty((n_frames, padded[0], padded[1] // 2 + 1), dtype=np.complex64)
    for start in range(0, n_frames, chunk_size):
        stop = min(start + chunk_size, n_frames)
        out[start:stop] = _windowed_chunk(stack, start, stop, padded, scale, window, workers)
    return out


def compute_band_spectra(
    stack: Any,
    mask_half: np.ndarray,
    padded: tuple[int, int],
    *,
    correlation: str,
    precision_half: np.ndarray | None = None,
    full_spectra: np.ndarray | None = None,
    chunk_size: int = 16,
    workers: int = 1,
    progress: ProgressCallback | None = None,
) -> BandSpectra:
    """Compute ``G`` (see the module docstring) of every frame, on the mask's band.

    Parameters
    ----------
    stack : array-like, shape (T, Y, X)
        Frames, read ``chunk_size`` at a time.
    mask_half : ndarray, shape (padded[0], padded[1] // 2 + 1)
        The Fourier mask on the padded grid (rfft layout).
    padded : (int, int)
        FFT shape (at least the frame shape).
    correlation : {"cc", "mc", "pc"}
        Normalisation (see :data:`~napari_stackalign.core.pairwise._options.CORRELATIONS`).
    precision_half : ndarray, optional
        A second mask (same layout): the spectra are also sampled, times its
        square root, on the frequencies it keeps (``BandSpectra.precision``).
    full_spectra : ndarray (T, Hp, Wp // 2 + 1), optional
        The frames' spectra, already made by :func:`windowed_spectra` (not made again).
    chunk_size, workers, progress
        Frames per FFT batch, FFT threads, progress callback.
    """
    power = CORRELATIONS[validate_option("correlation", correlation)]
    n_frames = int(stack.shape[0])
    h, w = int(stack.shape[1]), int(stack.shape[2])
    hp, wp = padded
    kr, kc = band_limits(mask_half)
    rows = np.concatenate([np.arange(0, kr + 1), np.arange(hp - kr, hp)]) if 2 * kr + 1 < hp else np.arange(hp)
    ky = np.where(rows <= hp // 2, rows, rows - hp)
    kx = np.arange(0, kc + 1)
    col_weight = np.where((kx == 0) | ((wp % 2 == 0) & (kx == wp // 2)), 1.0, 2.0)
    sqrt_mask = np.sqrt(np.asarray(mask_half, dtype=np.float32)[rows][:, : kc + 1])
    window = hann2d((h, w))
    spectra = np.empty((n_frames, rows.size, kx.size), dtype=np.complex64)
    energy = np.empty(n_frames, dtype=np.float64)
    sparse = None if precision_half is None else sparse_indices(precision_half)
    sampled = None if sparse is None else np.empty((n_frames, sparse[0].size), dtype=np.complex64)
    report(progress, 0, n_frames, "spectra")
    scale = stack_scale(stack)
    for start in range(0, n_frames, chunk_size):
        stop = min(start + chunk_size, n_frames)
        if full_spectra is None:
            full = _windowed_chunk(stack, start, stop, (hp, wp), scale, window, workers)
        else:
            full = full_spectra[start:stop]
        band = full[:, rows][:, :, : kc + 1]
        if sampled is not None:
            sampled[start:stop] = full[:, sparse[0], sparse[1]] * sparse[2]
        if power:
            mag = np.abs(band)
            floor = 1e-6 * mag.max(axis=(1, 2), keepdims=True)
            floor = np.where(floor > 0, floor, 1.0)
            band = band / (np.maximum(mag, floor) ** power)
        band *= sqrt_mask
        spectra[start:stop] = band
        energy[start:stop] = (np.abs(band) ** 2 * col_weight).sum(axis=(1, 2))
        report(progress, stop, n_frames, "spectra")
    scale = float(np.median(energy[energy > 0])) if np.any(energy > 0) else 1.0
    usable = energy > 1e-10 * scale
    return BandSpectra(
        spectra=spectra,
        energy=energy,
        usable=usable,
        ky=ky.astype(np.int64),
        kx=kx.astype(np.int64),
        col_weight=col_weight,
        padded=(hp, wp),
        frame_shape=(h, w),
        precision=None if sampled is None else make_sparse(sampled, sparse[0], sparse[1], (hp, wp), (h, w)),
    )
