"""Similarity stacking: rotation, scale and translation (log-polar plus refinement), one channel drives all."""

from ._estimator import SimilarityEstimator
from ._logpolar import SCALE_LIMITS
from ._options import (
    EXAMPLE_ANGLE_RANGE,
    EXAMPLE_SCALE_RANGE,
    FALLBACKS,
    SIMILARITY_DEFAULTS,
    TEMPLATES,
    SimilarityOptions,
)
from ._register import fill_failed, register_similarity

__all__ = [
    "EXAMPLE_ANGLE_RANGE",
    "EXAMPLE_SCALE_RANGE",
    "FALLBACKS",
    "SCALE_LIMITS",
    "SIMILARITY_DEFAULTS",
    "TEMPLATES",
    "SimilarityEstimator",
    "SimilarityOptions",
    "fill_failed",
    "register_similarity",
]
