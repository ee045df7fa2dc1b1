"""Our methods as candidates of the independent benchmark ``shared/bench/anchors.py``.

Not collected by pytest. Run from the repository root, with the candidates
importing this checkout's ``src``::

    PYTHONPATH=$PWD/src python ../shared/bench/anchors.py --profile quick --seed 7 \\
        --candidate pyramid=tests/benchmarks/anchors_candidates.py:pyramid \\
        --candidate pairwise=tests/benchmarks/anchors_candidates.py:pairwise \\
        --candidate similarity=tests/benchmarks/anchors_candidates.py:similarity \\
        --candidate pyramid_previous=tests/benchmarks/anchors_candidates.py:pyramid_previous \\
        --candidate-convention correction

The contract (``shared/bench/README.md``): ``fn(stack, apply=...)`` with a
(T, H, W) uint16 stack; each returns a dict with ``shifts`` (T, 2) and
``angles`` (T,) in degrees, plus ``registered`` when ``apply=True``.

Convention: ``--candidate-convention correction`` makes the harness negate
shifts and angles. Our ``FrameTransforms`` hold the correction (frame ->
reference); for a pure translation the negated correction is the content
displacement the harness wants. With a rotation, the displacement is the
*inverse* transform, not just the negation: so every adapter returns
``-inverse`` (the inverse transform about the frame centre, negated), which
the harness's negation turns back into the exact reference -> frame pose.
For translation-only results this is the correction itself.

The methods run with their defaults; failed frames (``ok=False``) are
reported as the transforms ``apply_transforms`` would apply by default
(``resolve_failed("interpolate")``), which is what a user gets.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from napari_stackalign import NoSignalWarning, apply_transforms
from napari_stackalign.core.pairwise import register_pairwise
from napari_stackalign.core.pyramid import register_pyramid
from napari_stackalign.core.similarity import register_similarity
from napari_stackalign.transforms import FrameTransforms

__all__ = ["pairwise", "pyramid", "pyramid_previous", "similarity", "to_harness"]


def to_harness(ft: FrameTransforms, shape: tuple[int, int]) -> dict[str, np.ndarray]:
    """``shifts`` and ``angles`` for ``--candidate-convention correction`` (see the module docstring)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoSignalWarning)
        applied, _ = ft.resolve_failed("interpolate")
    centre = ((shape[0] - 1) / 2.0, (shape[1] - 1) / 2.0)
    inverse = applied.with_center(
        centre
    ).invert()  # reference -> frame, about the centre
    return {"shifts": -inverse.shifts, "angles": -inverse.angle}


def _result(
    ft: FrameTransforms, stack: np.ndarray, apply: bool, **kwargs: Any
) -> dict[str, Any]:
    out: dict[str, Any] = to_harness(ft, stack.shape[1:])
    out["ok"] = np.asarray(ft.ok).copy()
    if apply:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out["registered"] = apply_transforms(
                stack, ft, output_dtype=np.float32, **kwargs
            )
    return out


def pyramid(stack: np.ndarray, apply: bool = False, **params: Any) -> dict[str, Any]:
    """``register_pyramid`` (defaults unless ``params``), applied with ``apply_transforms``."""
    return _result(register_pyramid(stack, **params), stack, apply)


def pyramid_previous(stack: np.ndarray, apply: bool = False, **params: Any) -> dict[str, Any]:
    """``register_pyramid(reference_mode="previous")``: each frame chained to the frame before it."""
    return _result(register_pyramid(stack, reference_mode="previous", **params), stack, apply)


def pairwise(stack: np.ndarray, apply: bool = False, **params: Any) -> dict[str, Any]:
    """``register_pairwise`` (defaults unless ``params``); its registered stack when ``apply``."""
    if apply:
        res = register_pairwise(stack, registered=True, **params)
        out = to_harness(res.transforms, stack.shape[1:])
        out["registered"] = res.registered
        return out
    return _result(register_pairwise(stack, **params).transforms, stack, False)


def similarity(stack: np.ndarray, apply: bool = False, **params: Any) -> dict[str, Any]:
    """``register_similarity`` (defaults unless ``params``), applied with ``apply_transforms``."""
    return _result(register_similarity(stack, **params), stack, apply)
