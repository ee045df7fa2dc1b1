"""What a Fourier mask does to one frame and one pair: for interactive design.

:func:`mask_preview` returns, for frames i and j, the log power spectrum of
frame i (mean-subtracted and Hann-windowed, as the correlation sees it) with
the mask on the same centred grid, and the masked correlation of the pair
around zero shift, with its brightest pixel. It runs the same code as
:func:`~napari_stackalign.core.pairwise.register_pairwise` on two frames
(a 512 x 512 pair takes a few tens of milliseconds).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import fft as sfft

from ._masks import centered_mask
from ._options import PAIRWISE_DEFAULTS, PairwiseOptions
from ._peaks import pair_correlation_map
from ._register import pairwise_spectra_for
from ._spectra import hann2d

__all__ = ["MaskPreview", "mask_preview"]


@dataclass
class MaskPreview:
    """Arrays for the mask-design preview.

    Attributes
    ----------
    spectrum : ndarray (Hp, Wp)
        ``log10(1 + power / median power)`` of frame i, centred.
    mask : ndarray (Hp, Wp)
        The mask on the same grid, centred.
    correlation : ndarray (2 R + 1, 2 R' + 1)
        The masked correlation of frames i and j around zero shift (centre
        pixel = zero shift).
    peak : (float, float)
        Brightest pixel of the correlation as a shift ``(dy, dx)`` (the
        displacement of frame j relative to frame i, whole pixels).
    padded : (int, int)
        FFT grid.
    """

    spectrum: np.ndarray
    mask: np.ndarray
    correlation: np.ndarray
    peak: tuple[float, float]
    padded: tuple[int, int]


def mask_preview(
    frame_i: Any,
    frame_j: Any,
    *,
    mask: Any = PAIRWISE_DEFAULTS.mask,
    n: float = PAIRWISE_DEFAULTS.n,
    n2: float | None = PAIRWISE_DEFAULTS.n2,
    theta: float = PAIRWISE_DEFAULTS.theta,
    correlation: str = PAIRWISE_DEFAULTS.correlation,
    radius: int | None = None,
    options: PairwiseOptions | None = None,
) -> MaskPreview:
    """Spectrum of ``frame_i`` with the mask, and the masked correlation of the pair.

    Parameters
    ----------
    frame_i, frame_j : array_like (Y, X)
        Two frames of the same shape.
    mask, n, n2, theta, correlation
        As in :func:`~napari_stackalign.core.pairwise.register_pairwise`.
    radius : int, optional
        Half-size of the correlation crop (default: a quarter of the frame,
        at most 64 px).
    options : PairwiseOptions, optional
        The options of the registration (only the mask and the correlation
        are used); keywords given as well replace its values.
    """
    opts = PairwiseOptions.merge(options, mask=mask, n=n, n2=n2, theta=theta, correlation=correlation)
    fi = np.asarray(frame_i, dtype=np.float32)
    fj = np.asarray(frame_j, dtype=np.float32)
    if fi.ndim != 2 or fi.shape != fj.shape:
        raise ValueError("the preview needs two 2-D frames of the same shape.")
    pair = np.stack([fi, fj])
    spec, half, _ = pairwise_spectra_for(pair, opts, workers=1)
    hp, wp = spec.padded
    h, w = fi.shape
    windowed = (fi - fi.mean()) * hann2d((h, w))
    power = np.abs(sfft.fft2(windowed, s=(hp, wp))) ** 2
    power = np.fft.fftshift(power)
    spectrum = np.log10(1.0 + power / max(float(np.median(power)), 1e-30)).astype(np.float32)
    corr = pair_correlation_map(spec, 0, 1)
    if radius is None:
        radius = int(min(64, max(4, min(h, w) // 4)))
    ry = min(int(radius), hp // 2 - 1)
    rx = min(int(radius), wp // 2 - 1)
    cy, cx = hp // 2, wp // 2
    crop = corr[cy - ry : cy + ry + 1, cx - rx : cx + rx + 1]
    k = int(np.argmax(crop))
    peak = (float(k // crop.shape[1] - ry), float(k % crop.shape[1] - rx))
    return MaskPreview(
        spectrum=spectrum,
        mask=centered_mask(half, (hp, wp)),
        correlation=crop.astype(np.float32),
        peak=peak,
        padded=(hp, wp),
    )
