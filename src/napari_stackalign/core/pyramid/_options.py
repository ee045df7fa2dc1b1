"""The pyramid registration's options: one definition of each (name, default, range, help)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..checks import check_roi_format
from ..options import Options, option
from ..smoothing import DEFAULT_POLYORDER, DEFAULT_WINDOW_LENGTH, check_savgol_settings
from ._lucas_kanade import DEFAULT_KERNEL, KERNELS

__all__ = [
    "CHAINED_MODES",
    "DEFAULT_RATES",
    "PYRAMID_DEFAULTS",
    "REFERENCE_MODES",
    "TEMPLATE_MODES",
    "PyramidOptions",
    "check_frame_range",
    "check_rates",
    "check_reference_image",
    "check_roi_format",
]

#: the reference tool's default pyramid
DEFAULT_RATES = (1 / 8, 1 / 4, 1 / 2, 1)


#: what each frame can be registered to (``reference_mode``)
REFERENCE_MODES = ("template", "frames", "previous", "running", "image")
#: the modes with one fixed template for the whole stack
TEMPLATE_MODES = ("template", "frames", "image")
#: the modes that register frame after frame against what came before (sequential)
CHAINED_MODES = ("previous", "running")


def check_frame_range(frames: Any) -> tuple[int, int]:
    """``reference_frames`` as two integers ``(start, stop)``, ``0 <= start < stop`` (``stop`` excluded)."""
    text = f"reference_frames must be two integers (start, stop) with 0 <= start < stop (stop excluded), got {frames!r}."
    if isinstance(frames, (str, bytes)):
        raise ValueError(text)  # noqa: TRY004 - the house rule: bad values raise ValueError
    try:
        values = [int(v) for v in frames]
        exact = all(not isinstance(v, (bool, np.bool_)) and float(v) == int(v) for v in frames)
    except (TypeError, ValueError) as exc:
        raise ValueError(text) from exc
    if len(values) != 2 or not exact or not 0 <= values[0] < values[1]:
        raise ValueError(text)
    return values[0], values[1]


def check_reference_image(image: Any) -> np.ndarray:
    """``reference`` as a numeric (Y, X) image, or a (Z, Y, X) volume for volumes over time (its shape is
    checked against the stack later)."""
    arr = np.asarray(image)
    if arr.ndim not in (2, 3) or arr.dtype.kind not in "biuf":
        raise ValueError(
            f"reference must be one (Y, X) image of numbers (a (Z, Y, X) volume for volumes over time), got an "
            f"array of shape {arr.shape} and dtype {arr.dtype}."
        )
    return arr


def check_rates(rates: Any) -> tuple[float, ...]:
    """``downsample_rates`` as a tuple of floats, strictly increasing, each in (0, 1]."""
    if isinstance(rates, (str, bytes)) or not isinstance(rates, (Sequence, np.ndarray)):
        raise ValueError(  # noqa: TRY004 - the house rule: bad values raise ValueError
            f"downsample_rates must be a sequence of numbers like (1/8, 1/4, 1/2, 1), got {rates!r}."
        )
    try:
        values = tuple(float(r) for r in rates)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"downsample_rates must hold numbers, got {rates!r}.") from exc
    if not values:
        raise ValueError("downsample_rates is empty; give at least one rate, e.g. (1/8, 1/4, 1/2, 1).")
    if not all(np.isfinite(r) and 0 < r <= 1 for r in values):
        raise ValueError(f"every downsample rate must be in (0, 1] (1 = full resolution), got {list(values)}.")
    if any(b <= a for a, b in itertools.pairwise(values)):
        raise ValueError(
            f"downsample_rates must increase strictly (coarse to fine, e.g. (1/8, 1/4, 1/2, 1)), got {list(values)}."
        )
    return values


@dataclass(frozen=True)
class PyramidOptions(Options):
    """Options of :func:`~napari_stackalign.core.pyramid.register_pyramid` and its
    streaming (:func:`~napari_stackalign.core.pyramid.register_file`) and cluster
    (:func:`~napari_stackalign.core.pyramid.register_pyramid_distributed`) paths.

    Build it once (``PyramidOptions(num_frames=50, iterate=2)``: every value is
    checked here) and pass it as ``options=``; see ``register_pyramid`` for what
    each option does. Checks that need the stack (the ROI inside the frame, the
    mask's shape, a smoothing window no longer than the stack, levels large
    enough) are made when the stack is known.
    """

    method: ClassVar[str] = "pyramid"

    num_frames: int = option(
        100, "frames at the start of the stack that build the template", kind="int", minimum=1, label="template frames"
    )
    reference_mode: str = option(
        "template",
        "what each frame is registered to: 'template' (registered mean of the first num_frames frames), "
        "'frames' (registered mean of the frames reference_frames), 'previous' (the frame before, the "
        "shifts chained), 'running' (mean of the last running_frames registered frames), 'image' (the "
        "reference image)",
        kind="str",
        choices=REFERENCE_MODES,
        label="reference",
    )
    reference_frames: tuple[int, int] | None = option(
        None,
        "frames (start, stop), stop excluded, whose registered mean is the template (reference_mode 'frames')",
        optional=True,
        check=check_frame_range,
        label="reference frames",
    )
    running_frames: int = option(
        10,
        "registered frames averaged into the running template (reference_mode 'running')",
        kind="int",
        minimum=1,
        label="running template frames",
    )
    keyframe_every: int = option(
        5,
        "reference_mode 'previous': every this many frames, register a frame to the frame this many frames back "
        "instead (bounds the chain's drift; 1: always the previous frame)",
        kind="int",
        minimum=1,
        label="keyframe every",
    )
    reference: np.ndarray | None = option(  # noqa: RUF009 - an array field, like mask
        None,
        "a (Y, X) image every frame is registered to (reference_mode 'image')",
        optional=True,
        check=check_reference_image,
        compare=False,
        label="reference image",
    )
    downsample_rates: tuple[float, ...] = option(
        DEFAULT_RATES,
        "pyramid levels, coarse to fine, each in (0, 1] (1 = full resolution)",
        check=check_rates,
    )
    max_movement: float = option(
        0.5,
        "largest motion searched, as a fraction of the frame size split over +/- (0.5 = +/-25 %)",
        kind="float",
        minimum=0,
        maximum=1,
        exclusive_minimum=True,
    )
    iterate: int = option(1, "registration passes, each against a template refined by the last", kind="int", minimum=1)
    smooth: bool = option(False, "smooth the offsets with a Savitzky-Golay filter", kind="bool")
    window_length: int = option(DEFAULT_WINDOW_LENGTH, "smoothing window in frames (odd)", kind="int", minimum=1)
    polyorder: int = option(DEFAULT_POLYORDER, "smoothing polynomial order (below window_length)", kind="int", minimum=0)
    roi: tuple[int, int, int, int] | None = option(
        None, "compare only this rectangle (row_start, row_stop, col_start, col_stop)", optional=True,
        check=check_roi_format,
    )
    mask: np.ndarray | None = option(
        None, "compare only the True pixels of this (Y, X) boolean array", optional=True, compare=False
    )
    normalize: bool = option(
        True, "compare frames up to a gain and an offset (robust to bleaching)", kind="bool"
    )
    kernel: str = option(DEFAULT_KERNEL, "interpolation in the sub-pixel step", kind="str", choices=tuple(KERNELS))
    chunk_size: int = option(64, "frames read and processed at a time (memory stays flat)", kind="int", minimum=1)

    def check(self) -> None:
        """Smoothing settings that do not fit each other, and a reference mode without what it needs.

        A ``reference_frames`` range or a ``reference`` image given with the
        default mode ``'template'`` selects mode ``'frames'`` or ``'image'``.
        """
        if self.smooth:
            check_savgol_settings(self.window_length, self.polyorder)
        mode = self.reference_mode
        if mode == "template" and self.reference_frames is not None and self.reference is not None:
            raise ValueError("give either reference_frames or a reference image, not both.")
        if mode == "template" and self.reference_frames is not None:
            mode = "frames"
        elif mode == "template" and self.reference is not None:
            mode = "image"
        object.__setattr__(self, "reference_mode", mode)
        if mode == "frames" and self.reference_frames is None:
            raise ValueError("reference_mode 'frames' needs reference_frames=(start, stop).")
        if mode != "frames" and self.reference_frames is not None:
            raise ValueError(f"reference_frames applies to reference_mode 'frames', not {mode!r}.")
        if mode == "image" and self.reference is None:
            raise ValueError("reference_mode 'image' needs a reference image (reference=, --reference-image FILE).")
        if mode != "image" and self.reference is not None:
            raise ValueError(f"a reference image applies to reference_mode 'image', not {mode!r}.")
        if mode in CHAINED_MODES and self.iterate > 1:
            raise ValueError(
                f"iterate refines a fixed template; reference_mode {mode!r} registers each frame to what came "
                "before it: use iterate=1."
            )

    @property
    def chained(self) -> bool:
        """Whether frames are registered one after the other (``'previous'``, ``'running'``)."""
        return self.reference_mode in CHAINED_MODES


#: the defaults, for the signatures of the public functions (``num_frames: int = PYRAMID_DEFAULTS.num_frames``)
PYRAMID_DEFAULTS = PyramidOptions()
