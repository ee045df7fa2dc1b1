"""The pairwise averaging's options: one definition of each (name, default, range, help).

This module is the leaf of the package: the choice lists (mask kinds, peak
finders, correlations, weights, averages) and the checks of single values
live here, and every other module of the package imports them from here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar

import numpy as np

from ..options import Options, option

__all__ = [
    "AVERAGES",
    "CORRELATIONS",
    "FIXED_MASK_DEFAULT",
    "MASK_KINDS",
    "MAXIMA",
    "OUTLIER_OPTIONS",
    "PAIRWISE_DEFAULTS",
    "WEIGHTS",
    "PairwiseOptions",
    "canonical_mask_kind",
    "check_frame_list",
    "check_mask_option",
    "check_mask_size",
    "validate_option",
]

#: Mask kinds: "auto" is chosen from the stack's spectrum by ``register_pairwise``
#: (:mod:`~napari_stackalign.core.pairwise._automask`); the others are made by
#: :func:`~napari_stackalign.core.pairwise.fourier_mask` ("user": a centred array,
#: passed as the array itself to ``register_pairwise``).
MASK_KINDS = ("auto", "bandpass", "lowpass", "hann", "hamming", "blackman", "gaussian", "none", "elliptical", "user")

#: the default of :func:`~napari_stackalign.core.pairwise.fourier_mask`, which makes the fixed kinds only
FIXED_MASK_DEFAULT = "hann"

#: other spellings users may type
MASK_ALIASES = {"elliptical gaussian": "elliptical", "elliptical_gaussian": "elliptical", "eg": "elliptical"}

#: peak location methods
MAXIMA = ("newton", "pixel", "gf", "dft")

#: correlation kind -> exponent p of the per-frame normalisation |F|**p
#: ("cc" plain cross-correlation, "mc" mutual correlation, "pc" phase correlation)
CORRELATIONS = {"cc": 0.0, "mc": 0.5, "pc": 1.0}

#: weighting of the least-squares shift solve
WEIGHTS = ("quality", "equal")

#: averaging methods
AVERAGES = ("fourier", "warp")

#: the options :meth:`~napari_stackalign.core.pairwise.PairwiseResult.reevaluate` changes
OUTLIER_OPTIONS = ("threshold", "maxpaths", "max_shift", "bad_frames", "weights")


def canonical_mask_kind(kind: Any) -> str:
    """The mask kind ``kind`` names (case and aliases resolved), one of :data:`MASK_KINDS`."""
    key = str(kind).strip().lower()
    key = MASK_ALIASES.get(key, key)
    if key not in MASK_KINDS:
        raise ValueError(f"mask kind must be one of {MASK_KINDS}, got {kind!r}.")
    return key


def check_mask_size(value: Any, name: str = "n") -> float:
    """A mask size in px (``n``, ``n2``): a number of at least 1."""
    try:
        size = float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a number of pixels (>= 1), got {value!r}.") from exc
    if not np.isfinite(size) or size < 1.0:
        raise ValueError(
            f"{name} must be >= 1 pixel (features smaller than about {name} px are ignored), got {value!r}."
        )
    return size


def check_mask_option(mask: Any) -> Any:
    """``mask`` of :func:`register_pairwise`: a kind name (kept as given) or a centred 2-D array."""
    if isinstance(mask, str):
        if canonical_mask_kind(mask) == "user":
            raise ValueError("for a user mask pass the (centred) mask array itself as mask=...")
        return mask
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise ValueError(f"mask must be one of {MASK_KINDS[:-1]} or a centred 2-D array, got {type(mask).__name__}.")
    return mask


def check_frame_list(frames: Iterable[Any]) -> tuple[int, ...]:
    """Frame indices as a sorted tuple without repeats (the stack's length is checked later)."""
    try:
        return tuple(sorted({int(i) for i in frames}))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"bad_frames must be a list of frame indices, got {frames!r}.") from exc


def validate_option(name: str, value: Any) -> Any:
    """One option's value checked and converted as :class:`PairwiseOptions` does it
    (for public functions that take a single option, such as ``fourier_mask``)."""
    return PairwiseOptions.specs()[name].validate(name, value)


def _same_value(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return a is b or (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and np.array_equal(a, b))
    return bool(a == b)


@dataclass(frozen=True, eq=False)
class PairwiseOptions(Options):
    """Options of :func:`~napari_stackalign.core.pairwise.register_pairwise`, also read
    by :func:`~napari_stackalign.core.pairwise.mask_preview` (the mask and the
    correlation) and :meth:`~napari_stackalign.core.pairwise.PairwiseResult.reevaluate`
    (the outlier settings).

    Build it once (``PairwiseOptions(n=2, maxima="dft")``: every value is
    checked here) and pass it as ``options=``; see ``register_pairwise`` for
    what each option does. Checks that need the stack (the Gaussian fit
    window inside the frame, bad frames inside the stack, a user mask of the
    frame's shape, a mask that keeps some frequency) are made when the stack
    is known.
    """

    method: ClassVar[str] = "pairwise"

    mask: Any = option(  # noqa: RUF009 - option() makes a dataclasses.Field
        "auto",
        f"Fourier mask: one of {', '.join(MASK_KINDS[:-1])} (auto: weights from the stack's own power spectrum, "
        "Bragg peaks of periodic content found), or a centred 2-D array the size of a frame",
        check=check_mask_option,
    )
    n: float = option(
        4.0, "mask cutoff of the fixed kinds (not auto): features smaller than about n px are ignored", kind="float", minimum=1,
        check=check_mask_size,
    )
    n2: float | None = option(
        None, "elliptical mask: size along the second axis in px, n when not given", kind="float", minimum=1,
        optional=True, check=partial(check_mask_size, name="n2"),
    )
    theta: float = option(0.0, "elliptical mask: angle of the first axis in degrees", kind="float")
    correlation: str = option(
        "cc", "cc: cross-correlation, mc: mutual correlation, pc: phase correlation", kind="str",
        choices=tuple(CORRELATIONS),
    )
    maxima: str = option(
        "newton",
        "peak location: newton (each pair's peak to a pixel, then every frame's shift refined by Newton steps "
        "on the exact masked correlation with all the others), "
        "brightest pixel, Gaussian fits of the brightest distinct peaks (gf, guards against "
        "unit-cell hops), or upsampled DFT",
        kind="str",
        choices=MAXIMA,
    )
    num_peaks: int = option(
        3, "distinct correlation peaks compared per pair", kind="int", minimum=1, maximum=20, label="peaks compared"
    )
    sigma_guess: float = option(
        2.0,
        "expected correlation peak width in px, also the least distance between distinct peaks",
        kind="float",
        minimum=0,
        maximum=100,
        exclusive_minimum=True,
    )
    window_radius: int = option(
        6, "Gaussian fit window radius in px: keep neighbouring lattice peaks out", kind="int", minimum=2,
        maximum=50,
    )
    upsample: int = option(20, "maxima dft: resolution of 1/upsample px", kind="int", minimum=1, maximum=1000)
    threshold: float | None = option(
        2.0,
        "transitivity threshold in px, the largest median path discrepancy of a pair; none turns the check off",
        kind="float",
        minimum=0,
        maximum=1e6,
        exclusive_minimum=True,
        optional=True,
    )
    maxpaths: int = option(
        5, "transitivity: intermediate frames per pair", kind="int", minimum=1, maximum=1000, label="max paths"
    )
    max_shift: float | None = option(
        None,
        "nearest-neighbour smoothness threshold in px, the largest jump between matrix neighbours; none turns the check off",
        kind="float",
        minimum=0,
        maximum=1e6,
        exclusive_minimum=True,
        optional=True,
    )
    bad_frames: tuple[int, ...] = option((), "frames to leave out entirely, by index", check=check_frame_list)
    weights: str = option(
        "quality", "least-squares weights of the pairs: their peak quality, or all equal", kind="str",
        choices=WEIGHTS,
    )
    average: str | None = option(
        "fourier",
        "average with sub-pixel Fourier shifts (periodic) or the bilinear warp; none measures and solves only",
        kind="str",
        choices=AVERAGES,
        optional=True,
    )
    registered: bool = option(False, "also return the registered stack", kind="bool")

    def __post_init__(self) -> None:
        if self.bad_frames is None:  # None reads as "no bad frames", as it always did
            object.__setattr__(self, "bad_frames", ())
        super().__post_init__()

    def __eq__(self, other: object) -> bool:
        # field by field; a user mask array compares by its values
        if type(other) is not type(self):
            return NotImplemented
        return all(_same_value(getattr(self, f.name), getattr(other, f.name)) for f in dataclasses.fields(self))

    __hash__ = None  # type: ignore[assignment]  # a user mask array is not hashable


#: the defaults, for the signatures of the public functions (``n: float = PAIRWISE_DEFAULTS.n``)
PAIRWISE_DEFAULTS = PairwiseOptions()
