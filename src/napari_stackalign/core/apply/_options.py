"""The options of applying transforms: one definition of each (name, default, range, help).

:class:`ApplyOptions` holds what :func:`~napari_stackalign.core.apply.apply_transforms`
(and :class:`~napari_stackalign.core.apply.WarpedFrames`) take besides the data.
The fields other steps share (interpolation order, chunk size, threads) are
made by the ``*_option`` functions below, so a sibling options object
(:class:`~napari_stackalign.core.average.AverageOptions`) declares them with the
same default and help without writing them again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import cv2
import numpy as np

from ...transforms import FAILED_POLICIES
from ..checks import check_chunk_size
from ..frames import CHUNK_FRAMES
from ..options import Options, option
from ..workers import check_workers

__all__ = [
    "APPLY_DEFAULTS",
    "BORDERS",
    "ORDERS",
    "ApplyOptions",
    "check_border",
    "check_order",
    "check_warp_options",
    "chunk_size_option",
    "failed_option",
    "order_option",
    "workers_option",
]

#: interpolation order -> OpenCV flag
ORDERS = {0: cv2.INTER_NEAREST, 1: cv2.INTER_LINEAR, 3: cv2.INTER_CUBIC}
#: border name -> OpenCV border mode
BORDERS = {
    "constant": cv2.BORDER_CONSTANT,
    "nan": cv2.BORDER_CONSTANT,
    "edge": cv2.BORDER_REPLICATE,
    "reflect": cv2.BORDER_REFLECT_101,
}


def check_order(order: Any) -> Any:
    """``order`` if it is an interpolation order OpenCV has (0, 1 or 3), else ``ValueError``."""
    if order not in ORDERS:
        raise ValueError(
            f"order must be one of {sorted(ORDERS)} (0 nearest, 1 linear, 3 cubic), got {order!r}."
        )
    return order


def check_border(border: Any) -> Any:
    """``border`` if it is one of :data:`BORDERS`, else ``ValueError``."""
    if border not in BORDERS:
        raise ValueError(f"border must be one of {sorted(BORDERS)}, got {border!r}.")
    return border


def check_warp_options(order: int, border: str) -> None:
    """Check an interpolation order and a border mode (cheap enough to call per frame)."""
    check_order(order)
    check_border(border)


def _check_number(value: Any) -> float:
    """A fill value: any real number (NaN and infinities included)."""
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"cval must be a number, got {value!r}.") from exc


def _check_dtype(value: Any) -> np.dtype:
    try:
        return np.dtype(value)
    except TypeError as exc:
        raise ValueError(
            f"output_dtype must be a numpy dtype such as 'float32' or 'uint16', got {value!r}."
        ) from exc


def failed_option() -> Any:
    """The ``failed`` field: what becomes of a failed frame's estimate."""
    return option(
        "interpolate",
        "failed frames (ok=False): interpolate their transform from the trustworthy frames, "
        "leave them unshifted (identity), or apply the estimate anyway (apply)",
        kind="str",
        choices=FAILED_POLICIES,
    )


def order_option() -> Any:
    """The ``order`` field: interpolation of the resampling."""
    return option(
        1,
        "interpolation: 0 nearest, 1 bilinear, 3 bicubic",
        kind="int",
        choices=tuple(ORDERS),
        check=check_order,
    )


def chunk_size_option(what: str = "read, resampled and written") -> Any:
    """The ``chunk_size`` field: frames handled at a time (at least 1)."""
    return option(
        CHUNK_FRAMES,
        f"frames {what} at a time (at least 1)",
        kind="int",
        check=check_chunk_size,
    )


def workers_option() -> Any:
    """The ``workers`` field: threads (None = every core)."""
    return option(
        None,
        "threads (default: every core)",
        kind="int",
        optional=True,
        check=check_workers,
    )


@dataclass(frozen=True)
class ApplyOptions(Options):
    """Options of :func:`~napari_stackalign.core.apply.apply_transforms`.

    Build it once (``ApplyOptions(order=3, border="nan")``: every value is
    checked here) and pass it as ``options=``; see ``apply_transforms`` for
    what each option does.
    """

    method: ClassVar[str] = "apply"

    order: int = order_option()
    border: str = option(
        "constant",
        "what fills pixels from outside the frame: cval, NaN, the nearest edge pixel or a mirror image",
        kind="str",
        choices=tuple(BORDERS),
        check=check_border,
    )
    cval: float = option(0.0, "fill value for border='constant'", check=_check_number)
    output_dtype: Any = option(  # noqa: RUF009 - option() makes a dataclasses.field
        None,
        "output type (default: the input's; integers are rounded and clipped)",
        optional=True,
        check=_check_dtype,
    )
    failed: str = failed_option()
    chunk_size: int = chunk_size_option()
    workers: int | None = workers_option()


#: the defaults, for the signatures of the public functions (``order: int = APPLY_DEFAULTS.order``)
APPLY_DEFAULTS = ApplyOptions()
