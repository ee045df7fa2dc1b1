"""The particle method's options: one object per step, each option written once.

The method runs in steps that a user tunes separately, so each step has its
own options object (name, default, allowed range and one line of help):

- :class:`FitOptions`: the Gaussian fit of one spot
  (:func:`~napari_stackalign.fit_gaussian`, ``fit_gaussians``);
- :class:`TrackOptions`: following the particles through the stack
  (:func:`~napari_stackalign.track_particles`); tracking *is* fitting at
  predicted positions, so it holds every fit option too (a ``TrackOptions``
  is a ``FitOptions``) and hands itself to the fits;
- :class:`OutlierOptions`: flagging particles that moved on their own
  (:func:`~napari_stackalign.core.particles.flag_outliers`);
- :class:`RigidOptions`: the per-frame rotation + translation
  (:func:`~napari_stackalign.rigid_from_tracks`);
- :class:`DriftOptions`: the drift over the chosen particles and its plot
  (``drift_summary``, ``plot_trajectories``);
- :class:`ValidationOptions`: the re-fit on the aligned stack
  (:func:`~napari_stackalign.validate_alignment`).

Checks that need the data (a box inside the frame, a reference frame inside
the stack, particle numbers) stay with the function that has the data.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..options import Options, option

__all__ = [
    "BOUND_DEFAULTS",
    "BOX_LIMITS",
    "DARK_VALUES",
    "DRIFT_DEFAULTS",
    "FIT_DEFAULTS",
    "INTERPOLATIONS",
    "MIN_SIGMA",
    "NOISE_MODELS",
    "OUTLIER_DEFAULTS",
    "RIGID_DEFAULTS",
    "SPOT_TYPES",
    "STATISTICS",
    "TRACK_DEFAULTS",
    "VALIDATION_DEFAULTS",
    "BoundOptions",
    "DriftOptions",
    "FitOptions",
    "OutlierOptions",
    "RigidOptions",
    "TrackOptions",
    "ValidationOptions",
    "box_shape",
    "check_box",
    "check_dark",
    "spot_type",
]

#: smallest and largest box side (px)
BOX_LIMITS = (5, 255)
#: px; narrower "spots" are single hot or dead pixels
MIN_SIGMA = 0.5
#: how frames with too few particle fits are filled
INTERPOLATIONS = ("linear", "spline")
#: the noise models of the fit: "poisson" weights pixels by a variance that grows with the signal
NOISE_MODELS = ("poisson", "gaussian")
#: the drift over the chosen particles
STATISTICS = ("median", "mean")
#: spot types by name (command line, widget) and the ``dark`` value each means
SPOT_TYPES = {"auto": None, "bright": False, "dark": True}
#: what ``dark`` accepts, in words (every message about it)
DARK_VALUES = "dark must be None (detect), True (dark spot), False (bright spot), or one such value per box"

#: the goodness-of-fit range: R^2 in [-1, 1)
_R2_RANGE: dict[str, Any] = {
    "kind": "float",
    "minimum": -1.0,
    "maximum": 1.0,
    "exclusive_maximum": True,
}


def box_shape(box: Any) -> tuple[int, int]:
    """``box`` (an int, or a (rows, cols) pair) as (rows, cols); raises ``ValueError`` outside 5..255 px."""
    if np.ndim(box) == 0:
        box = (box, box)
    try:
        h, w = (int(box[0]), int(box[1]))
    except (TypeError, ValueError, IndexError) as exc:
        raise ValueError(
            f"box must be an integer size in px (e.g. 15) or a (rows, cols) pair, got {box!r}."
        ) from exc
    low, high = BOX_LIMITS
    if h < low or w < low or h > high or w > high:
        raise ValueError(
            f"box must be between {low} and {high} px on each side, got {box!r}: use about 3-4 spot widths."
        )
    return h, w


def check_box(box: Any) -> int | tuple[int, int]:
    """``box`` checked: an int for a square box, a (rows, cols) tuple otherwise."""
    shape = box_shape(box)
    return shape if np.ndim(box) != 0 else shape[0]


def check_dark(dark: Any) -> bool | tuple[bool | None, ...] | None:
    """``dark`` checked: None, a bool, or a tuple of those (one per box)."""
    if dark is None or isinstance(dark, (bool, np.bool_)):
        return None if dark is None else bool(dark)
    if isinstance(dark, (str, bytes)) or np.ndim(dark) != 1:
        raise ValueError(f"{DARK_VALUES}; got {dark!r}.")
    values = []
    for v in dark:
        if v is not None and not isinstance(v, (bool, np.bool_)):
            raise ValueError(f"{DARK_VALUES}; got {v!r}.")
        values.append(None if v is None else bool(v))
    return tuple(values)


def spot_type(dark: bool | None) -> str:
    """The name in :data:`SPOT_TYPES` of a ``dark`` value."""
    return next(name for name, value in SPOT_TYPES.items() if value is dark)


def _same_option(options: type[Options], name: str) -> Any:
    """A field declared exactly like ``options``'s field ``name`` (one definition, two steps)."""
    source = next(f for f in dataclasses.fields(options) if f.name == name)
    return dataclasses.field(
        default=source.default, compare=source.compare, metadata=source.metadata
    )


@dataclass(frozen=True)
class FitOptions(Options):
    """Options of the 2-D Gaussian fit of a spot (:func:`~napari_stackalign.fit_gaussian` and its batches).

    Build it once (``FitOptions(box=11, min_r2=0.7)``: every value is checked
    here) and pass it as ``options=``. ``box`` is an int (a square box) or a
    (rows, cols) pair.
    """

    method: ClassVar[str] = "particles"

    box: int | tuple[int, int] = option(
        15, "fit box in px, about 3-4 spot widths, 5-255 px a side", check=check_box
    )
    min_r2: float = option(
        0.5, "goodness-of-fit gate: fits with a lower R\u00b2 are rejected", **_R2_RANGE
    )
    max_sigma: float | None = option(
        None,
        "largest accepted spot width (sigma, px); None: a third of the box",
        kind="float",
        minimum=MIN_SIGMA,
        exclusive_minimum=True,
        optional=True,
    )
    dark: bool | tuple[bool | None, ...] | None = option(
        None,
        "spot polarity: None (auto) detects a dark or a bright spot, True dark spots, False bright spots",
        optional=True,
        check=check_dark,
    )
    max_iter: int = option(
        60,
        "iteration limit of the Levenberg-Marquardt fit (fits still moving fail)",
        kind="int",
        minimum=1,
    )
    noise: str = option(
        "poisson",
        "noise model: poisson weights each pixel by 1 / its variance, var = k * signal + v0 fitted to the "
        "residuals (shot noise, any gain or camera offset; reaches the Cramér-Rao bound), gaussian is plain "
        "least squares (equal weights)",
        kind="str",
        choices=NOISE_MODELS,
    )

    @property
    def box_shape(self) -> tuple[int, int]:
        """The box as (rows, cols)."""
        return box_shape(self.box)

    def width_limit(self, box: tuple[int, int]) -> float:
        """The widest accepted spot (px) in boxes of ``box``: ``max_sigma`` or a third of the box."""
        return float(min(box) / 3.0 if self.max_sigma is None else self.max_sigma)


@dataclass(frozen=True)
class TrackOptions(FitOptions):
    """Options of :func:`~napari_stackalign.track_particles`: the fit's options and how to follow.

    A ``TrackOptions`` is a :class:`FitOptions` (tracking fits every particle
    in every frame), plus the search for jumps, the mis-lock gate and the
    reading. ``dark`` is one value for all particles here (None decides at
    each particle's pick and keeps it).
    """

    search: int | None = option(
        None,
        "radius (px) of the cross-correlation search when every particle is lost in a frame; "
        "None: twice the box, 0: off",
        kind="int",
        minimum=0,
        optional=True,
    )
    max_jump: float | None = option(
        None,
        "with 3+ particles found, a fit whose step differs from the median step by more (px) is a mis-lock; "
        "None: a third of the box",
        kind="float",
        minimum=0,
        exclusive_minimum=True,
        optional=True,
    )
    chunk_size: int = option(64, "frames read at a time", kind="int", minimum=1)

    def check(self) -> None:
        """One polarity for all particles."""
        if isinstance(self.dark, tuple):
            raise ValueError(  # noqa: TRY004 - the house rule: bad values raise ValueError
                f"dark must be None (detect at each particle's pick), True or False for tracking, got {self.dark!r}."
            )

    @property
    def search_radius(self) -> int:
        """``search`` in px (twice the box when None)."""
        return 2 * max(self.box_shape) if self.search is None else int(self.search)

    @property
    def jump_limit(self) -> float:
        """``max_jump`` in px (a third of the box when None)."""
        return (
            max(self.box_shape) / 3.0 if self.max_jump is None else float(self.max_jump)
        )


@dataclass(frozen=True)
class RigidOptions(Options):
    """Options of :func:`~napari_stackalign.rigid_from_tracks` (which particles is a separate argument)."""

    method: ClassVar[str] = "particles"

    allow_rotation: bool = option(
        True, "estimate rotation + translation (False: translation only)", kind="bool"
    )
    min_particles: int = option(
        2,
        "frames with fewer good fits are interpolated from their neighbours and flagged",
        kind="int",
        minimum=1,
    )
    reference_frame: int = option(0, "frame left unchanged", kind="int", minimum=0)
    interpolation: str = option(
        "linear",
        "how flagged frames are filled; spline needs 4 good frames",
        kind="str",
        choices=INTERPOLATIONS,
    )
    weighted: bool = option(
        True, "weight particles by 1 / (their median centre error)\u00b2", kind="bool"
    )
    iterations: int = option(
        3,
        "generalised-Procrustes refinements of the reference positions",
        kind="int",
        minimum=0,
    )


@dataclass(frozen=True)
class OutlierOptions(Options):
    """Options of :func:`~napari_stackalign.core.particles.flag_outliers`."""

    method: ClassVar[str] = "particles"

    allow_rotation: bool = _same_option(RigidOptions, "allow_rotation")
    k: float = option(
        3.5,
        "robust z-score limit (median + k x 1.4826 x MAD of the scores)",
        kind="float",
        minimum=0,
        exclusive_minimum=True,
    )
    min_px: float = option(
        0.5, "scores (px) below this are never flagged", kind="float", minimum=0
    )


@dataclass(frozen=True)
class DriftOptions(Options):
    """Options of the drift over the chosen particles (``drift_summary``, ``plot_trajectories``)."""

    method: ClassVar[str] = "particles"

    statistic: str = option(
        "median",
        "drift statistic over the chosen particles",
        kind="str",
        choices=STATISTICS,
    )
    reference_frame: int = option(
        RigidOptions.default("reference_frame"),
        "displacements are measured from this frame",
        kind="int",
        minimum=0,
    )


@dataclass(frozen=True)
class ValidationOptions(Options):
    """Options of :func:`~napari_stackalign.validate_alignment`."""

    method: ClassVar[str] = "particles"

    min_r2: float | None = option(
        None,
        "goodness-of-fit gate of the re-fits on the aligned stack; None: the tracking's",
        optional=True,
        **_R2_RANGE,
    )


def _check_optional_box(box: Any) -> int | tuple[int, int] | None:
    return None if box is None else check_box(box)


@dataclass(frozen=True)
class BoundOptions(Options):
    """Options of the Cramér-Rao bounds (``position_bound``, ``rigid_bound``): the camera and the fit box.

    Pixel values are converted to photons as ``(value - offset) * photons_per_count``;
    the defaults (1 and 0) mean the values are photon counts.
    """

    method: ClassVar[str] = "particles"

    box: int | tuple[int, int] | None = option(
        None,
        "fit box (px) the information is summed over; None: the tracking's box (15 without tracks)",
        optional=True,
        check=_check_optional_box,
    )
    photons_per_count: float = option(
        1.0,
        "photons (photo-electrons) per count of the pixel values; 1: the values are photon counts",
        kind="float",
        minimum=0,
        exclusive_minimum=True,
    )
    offset: float = option(
        0.0,
        "camera baseline (counts) subtracted before the conversion to photons",
        kind="float",
    )
    read_noise: float = option(
        0.0,
        "camera read noise, RMS in photo-electrons (0: pure Poisson)",
        kind="float",
        minimum=0,
    )

    @property
    def box_shape(self) -> tuple[int, int]:
        """The box as (rows, cols) (15 px when None)."""
        return box_shape(FitOptions().box if self.box is None else self.box)


#: the defaults, for the signatures of the public functions (``box: int = FIT_DEFAULTS.box``)
FIT_DEFAULTS = FitOptions()
TRACK_DEFAULTS = TrackOptions()
RIGID_DEFAULTS = RigidOptions()
OUTLIER_DEFAULTS = OutlierOptions()
DRIFT_DEFAULTS = DriftOptions()
VALIDATION_DEFAULTS = ValidationOptions()
BOUND_DEFAULTS = BoundOptions()
