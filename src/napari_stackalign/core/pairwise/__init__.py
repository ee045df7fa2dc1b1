"""Pairwise Fourier-masked averaging: all-pairs correlation, outlier rejection, shift solve, average, report."""

from ._io import read_pairwise_tiff, save_pairwise_tiff, save_registered_tiff
from ._masks import fourier_mask
from ._options import (
    AVERAGES,
    CORRELATIONS,
    MASK_KINDS,
    MAXIMA,
    PAIRWISE_DEFAULTS,
    WEIGHTS,
    PairwiseOptions,
)
from ._plots import draw_shift_matrix, symmetric_limit
from ._preview import MaskPreview, mask_preview
from ._register import register_pairwise
from ._report import save_pairwise_report
from ._result import PairwiseResult

__all__ = [
    "AVERAGES",
    "CORRELATIONS",
    "MASK_KINDS",
    "MAXIMA",
    "PAIRWISE_DEFAULTS",
    "WEIGHTS",
    "MaskPreview",
    "PairwiseOptions",
    "PairwiseResult",
    "draw_shift_matrix",
    "fourier_mask",
    "mask_preview",
    "read_pairwise_tiff",
    "register_pairwise",
    "save_pairwise_report",
    "save_pairwise_tiff",
    "save_registered_tiff",
    "symmetric_limit",
]
