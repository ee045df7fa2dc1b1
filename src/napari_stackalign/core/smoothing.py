"""Smoothing of per-frame transforms over time (Savitzky-Golay)."""

from __future__ import annotations

import numbers

import numpy as np
from scipy.signal import savgol_filter

from .._volume_transforms import VolumeTransforms
from ..transforms import FrameTransforms

__all__ = ["DEFAULT_POLYORDER", "DEFAULT_WINDOW_LENGTH", "check_savgol", "check_savgol_settings", "smooth_transforms"]

#: the reference tool's smoothing window (frames)
DEFAULT_WINDOW_LENGTH = 11
#: the reference tool's smoothing polynomial order
DEFAULT_POLYORDER = 3


def _largest_odd_window(n_frames: int, polyorder: int) -> int | None:
    """The largest odd window usable on ``n_frames`` frames with ``polyorder``."""
    win = n_frames if n_frames % 2 == 1 else n_frames - 1
    return win if win > polyorder else None


def check_savgol_settings(window_length: int, polyorder: int) -> None:
    """Raise ``ValueError`` unless ``window_length`` and ``polyorder`` fit each
    other (an odd window longer than the polynomial order)."""
    if isinstance(window_length, bool) or not isinstance(window_length, numbers.Integral):
        raise ValueError(f"window_length must be an odd integer, got {window_length!r}.")  # noqa: TRY004
    if isinstance(polyorder, bool) or not isinstance(polyorder, numbers.Integral):
        raise ValueError(f"polyorder must be a non-negative integer, got {polyorder!r}.")  # noqa: TRY004
    window_length, polyorder = int(window_length), int(polyorder)
    if window_length < 1 or window_length % 2 == 0:
        raise ValueError(f"window_length must be a positive odd number of frames, got {window_length}.")
    if polyorder < 0:
        raise ValueError(f"polyorder must be 0 or more, got {polyorder}.")
    if polyorder >= window_length:
        raise ValueError(
            f"polyorder ({polyorder}) must be smaller than window_length ({window_length}); "
            f"use polyorder <= {window_length - 1} or a longer window."
        )


def check_savgol(n_frames: int, window_length: int, polyorder: int) -> None:
    """Raise ``ValueError`` unless a Savitzky-Golay filter with these settings
    can smooth a series of ``n_frames`` values."""
    check_savgol_settings(window_length, polyorder)
    window_length, polyorder = int(window_length), int(polyorder)
    if n_frames < window_length:
        best = _largest_odd_window(n_frames, polyorder)
        hint = (
            f"use an odd window_length of at most {best}" if best is not None
            else f"use a smaller polyorder (below {max(n_frames - (n_frames + 1) % 2, 1)}) and window"
        )
        raise ValueError(
            f"the stack has {n_frames} frames, fewer than the smoothing window_length "
            f"({window_length}): {hint}, or turn smoothing off."
        )


def smooth_transforms(
    transforms: FrameTransforms, *, window_length: int = DEFAULT_WINDOW_LENGTH, polyorder: int = DEFAULT_POLYORDER
) -> FrameTransforms:
    """Smooth each per-frame series (dy, dx, angle, scale; dz of volume transforms) over time.

    A Savitzky-Golay filter (a moving least-squares polynomial fit, as in the
    reference tool's ``--smooth 1``) keeps slow drift and removes frame-to-frame
    jitter. The ends are fitted with the polynomial of the first/last window
    (``mode="interp"``), so they are not pulled towards zero.

    Parameters
    ----------
    transforms : FrameTransforms
        Per-frame transforms of any method.
    window_length : int
        Odd number of frames in the fitting window (at most the number of
        frames).
    polyorder : int
        Polynomial order, smaller than ``window_length``.

    Returns
    -------
    FrameTransforms
        Smoothed copy; ``quality``, ``ok`` and each failed frame's ``reason``
        are kept, and ``params`` gains a ``"smoothing"`` entry.

    Raises
    ------
    ValueError
        If the window is even, not larger than ``polyorder``, or longer than
        the stack (the message suggests a window that fits).
    """
    n = len(transforms)
    check_savgol(n, window_length, polyorder)
    kw = {"window_length": int(window_length), "polyorder": int(polyorder), "mode": "interp"}

    def smooth(values: np.ndarray) -> np.ndarray:
        if np.all(values == values[0]):
            return values.copy()
        if not np.all(np.isfinite(values)):
            raise ValueError("cannot smooth transforms that contain NaN or infinite values.")
        return savgol_filter(values, **kw)

    scale = np.exp(smooth(np.log(transforms.scale)))
    params = dict(transforms.params)
    params["smoothing"] = {"method": "savgol", "window_length": int(window_length), "polyorder": int(polyorder)}
    extra = {"dz": smooth(transforms.dz)} if isinstance(transforms, VolumeTransforms) else {}
    return type(transforms)(
        **extra,
        dy=smooth(transforms.dy),
        dx=smooth(transforms.dx),
        angle=smooth(transforms.angle),
        scale=scale,
        center=transforms.center,
        quality=transforms.quality,
        ok=transforms.ok,
        reason=transforms.reason,
        method=transforms.method,
        params=params,
    )
