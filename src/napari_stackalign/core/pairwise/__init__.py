"""Pairwise Fourier-masked averaging: all-pairs correlation, outlier rejection, shift solve, average, report."""

from ._io import read_pairwise_tiff, save_pairwise_tiff, save_registered_tiff
from ._masks import MASK_KINDS, fourier_mask
from ._plots import draw_shift_matrix, symmetric_limit
from ._preview import MaskPreview, mask_preview
from ._register import PairwiseResult, register_pairwise
from ._report import save_pairwise_report

__all__ = ["MASK_KINDS", "MaskPreview", "PairwiseResult", "draw_shift_matrix", "fourier_mask", "mask_preview", "read_pairwise_tiff", "register_pairwise", "save_pairwise_report", "save_pairwise_tiff", "save_registered_tiff", "symmetric_limit"]
