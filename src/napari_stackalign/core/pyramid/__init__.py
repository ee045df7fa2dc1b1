"""Pyramid registration: coarse-to-fine translation, in memory, streamed to disk or on a dask cluster."""

from ._distributed import register_pyramid_distributed
from ._options import DEFAULT_RATES, PYRAMID_DEFAULTS, PyramidOptions
from ._register import register_pyramid
from ._register_apply import AlignedStack, register_and_apply
from ._to_file import (
    RegisteredFile,
    register_file,
    register_stack_to_file,
    suggest_output_path,
)

__all__ = [
    "DEFAULT_RATES",
    "PYRAMID_DEFAULTS",
    "AlignedStack",
    "PyramidOptions",
    "RegisteredFile",
    "register_and_apply",
    "register_file",
    "register_pyramid",
    "register_pyramid_distributed",
    "register_stack_to_file",
    "suggest_output_path",
]
