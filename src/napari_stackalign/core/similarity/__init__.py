"""Similarity stacking: rotation, scale and translation (log-polar plus refinement), one channel drives all."""

from ._register import FALLBACKS, register_similarity

__all__ = ["FALLBACKS", "register_similarity"]
