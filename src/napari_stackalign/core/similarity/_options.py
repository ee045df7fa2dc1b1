"""The similarity registration's options: one definition of each (name, default, range, help)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..options import Options, option
from ._logpolar import SCALE_LIMITS

__all__ = [
    "EXAMPLE_ANGLE_RANGE",
    "EXAMPLE_SCALE_RANGE",
    "FALLBACKS",
    "SIMILARITY_DEFAULTS",
    "TEMPLATES",
    "SimilarityOptions",
    "check_angle_range",
    "check_scale_range",
    "check_template",
]

#: the named templates (a frame index is allowed too)
TEMPLATES = ("middle", "first", "mean")
#: what replaces a flagged frame's transform
FALLBACKS = ("interpolate", "identity")
#: limits to suggest when a user restricts the search (help texts, the widget's boxes)
EXAMPLE_ANGLE_RANGE = (-30.0, 30.0)
EXAMPLE_SCALE_RANGE = (0.8, 1.25)


def check_template(template: Any) -> str | int:
    """``template`` as one of :data:`TEMPLATES` or an int; the index is checked against the stack later."""
    if isinstance(template, str):
        if template not in TEMPLATES:
            raise ValueError(f"template must be one of {TEMPLATES} or a frame index, got {template!r}.")
        return template
    if isinstance(template, (bool, np.bool_)) or not isinstance(template, (int, np.integer)):
        raise ValueError(  # noqa: TRY004 - the house rule: bad values raise ValueError
            f"template must be one of {TEMPLATES} or a frame index, got {template!r}."
        )
    return int(template)


def _check_pair(value: Any, name: str) -> tuple[float, float]:
    """A ``(min, max)`` pair of finite numbers with ``min <= max``."""
    if isinstance(value, str):
        raise ValueError(f"{name} must be a (min, max) pair of numbers, got {value!r}.")  # noqa: TRY004
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a (min, max) pair of numbers, got {value!r}.") from exc
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo > hi:
        raise ValueError(f"{name} must be (min, max) with min <= max, got {value!r}.")
    return lo, hi


def check_angle_range(value: Any) -> tuple[float, float] | None:
    """``angle_range`` as two floats; a range of a full turn or more is None (any angle)."""
    lo, hi = _check_pair(value, "angle_range")
    return None if hi - lo >= 360 else (lo, hi)


def check_scale_range(value: Any) -> tuple[float, float]:
    """``scale_range`` as two positive floats within :data:`SCALE_LIMITS`."""
    lo, hi = _check_pair(value, "scale_range")
    if lo <= 0:
        raise ValueError(f"scale_range must hold positive scales, got {value!r}.")
    if lo < SCALE_LIMITS[0] or hi > SCALE_LIMITS[1]:
        raise ValueError(
            f"scale_range must lie within {SCALE_LIMITS[0]}..{SCALE_LIMITS[1]} (the log-polar method cannot "
            f"measure larger scale changes), got {(lo, hi)}."
        )
    return lo, hi


def _span(pair: tuple[float, float], between: str = "..") -> str:
    """``(0.5, 2.0)`` as ``"0.5..2"`` for the help texts."""
    return f"{pair[0]:g}{between}{pair[1]:g}"


@dataclass(frozen=True)
class SimilarityOptions(Options):
    """Options of :func:`~napari_stackalign.core.similarity.register_similarity`.

    Build it once (``SimilarityOptions(template="mean", angle_range=(-30, 30))``:
    every value is checked here) and pass it as ``options=``; see
    ``register_similarity`` for what each option does. Checks that need the
    stack (a template index inside it, the channel) are made when the stack
    is known. The channel, the thread count and the progress callback are
    not options: they choose the data and how the work runs, not the method.
    """

    method: ClassVar[str] = "similarity"

    template: str | int = option(
        "middle",
        "the reference: middle (frame T // 2), first, mean (two passes, leave-one-out) or a frame number",
        check=check_template,
    )
    angle_range: tuple[float, float] | None = option(
        None,
        f"allowed correction angle in degrees, from min to max (e.g. {_span(EXAMPLE_ANGLE_RANGE, ' to ')}); "
        "unset: any angle",
        optional=True,
        check=check_angle_range,
    )
    scale_range: tuple[float, float] | None = option(
        None,
        f"allowed correction scale, from min to max within {_span(SCALE_LIMITS)} "
        f"(e.g. {_span(EXAMPLE_SCALE_RANGE, ' to ')}); unset: {_span(SCALE_LIMITS)}",
        optional=True,
        check=check_scale_range,
    )
    min_success: float | None = option(
        None,
        "flag frames whose success score (correlation with the template after registration) is below this; "
        "unset (auto): half the median score, at least 0.1",
        kind="float",
        minimum=-1,
        maximum=1,
        optional=True,
        label="min. success",
    )
    fallback: str = option(
        "interpolate",
        "what flagged frames get: interpolate (between good neighbours) or identity (no correction)",
        kind="str",
        choices=FALLBACKS,
        label="failed frames",
    )
    refine: bool = option(
        True, "run the Gauss-Newton refinement (off: the peak estimate, about 10x less accurate)", kind="bool"
    )
    sigma: float = option(
        1.0,
        "Gaussian smoothing in px of the refinement and the success score",
        kind="float",
        minimum=0,
        maximum=10,
        exclusive_minimum=True,
    )
    chunk_size: int = option(32, "frames read at a time", kind="int", minimum=1)


#: the defaults, for the signatures of the public functions (``template: str | int = SIMILARITY_DEFAULTS.template``)
SIMILARITY_DEFAULTS = SimilarityOptions()
