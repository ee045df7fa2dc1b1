"""What a volume time series must look like: (T, Z, Y, X) or (T, C, Z, Y, X), axes named."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["VOLUME_AXES", "VolumeLayout", "volume_axes_of", "volume_layout"]

#: the layouts of volume time series the package takes
VOLUME_AXES = ("TZYX", "TCZYX")


class VolumeLayout:
    """The shape of a volume stack: frames, channels (None without a channel axis), (Z, Y, X)."""

    def __init__(self, axes: str, shape: tuple[int, ...]) -> None:
        self.axes = axes
        self.n_frames = int(shape[0])
        self.n_channels = int(shape[1]) if axes == "TCZYX" else None
        self.volume_shape = tuple(int(n) for n in shape[-3:])

    def volume(self, stack: Any, t: int, channel: int | None) -> np.ndarray:
        """Frame ``t`` (the ``channel``'s volume for a TCZYX stack) as a numpy array."""
        if self.n_channels is None:
            return np.asarray(stack[t])
        return np.asarray(stack[t, channel])


def volume_axes_of(stack: Any, axes: str | None) -> str | None:
    """``axes`` (upper-cased), else the stack's own ``axes`` attribute (a StackData), else None."""
    if axes is None:
        axes = getattr(stack, "axes", None)
    return None if axes is None else str(axes).upper()


def volume_layout(
    stack: Any, axes: str, *, channel: int | None = None, min_frames: int = 1, what: str = "volume registration"
) -> VolumeLayout:
    """Check a volume stack against ``axes`` ("TZYX" or "TCZYX") and the ``channel`` to use.

    Raises
    ------
    ValueError
        Not array-like, an axes string other than TZYX / TCZYX, a shape that
        does not match it, too few frames, volumes smaller than 2 planes or
        16x16 px, a channel out of range, or a dtype that is not numbers.
    """
    shape = getattr(stack, "shape", None)
    if shape is None:
        raise ValueError("stack must be an array-like with a shape (numpy, memmap, h5py or dask).")
    shape = tuple(int(n) for n in shape)
    if axes not in VOLUME_AXES:
        raise ValueError(
            f"volume stacks have axes 'TZYX' or 'TCZYX', got {axes!r} (for (T, Y, X) time series leave axes out)."
        )
    if len(shape) != len(axes):
        raise ValueError(f"axes={axes!r} needs {len(axes)}-D data but the stack has shape {shape}.")
    layout = VolumeLayout(axes, shape)
    z, h, w = layout.volume_shape
    if layout.n_frames < min_frames:
        raise ValueError(f"the stack has {layout.n_frames} frame(s): {what} needs at least {min_frames}.")
    if z < 2:
        raise ValueError(f"volumes of {z} plane(s) are not volumes: register them as a (T, Y, X) stack (stack[:, 0]).")
    if h < 16 or w < 16:
        raise ValueError(f"volumes of {z}x{h}x{w} voxels are too small for {what}: at least 16x16 px per plane.")
    dtype = np.dtype(getattr(stack, "dtype", np.float32))
    if dtype.kind not in "biuf":
        raise ValueError(f"cannot use a stack of dtype {dtype} for {what}; use integer or float data.")
    if layout.n_channels is not None:
        if channel is None:
            channel = 0
        if not (isinstance(channel, (int, np.integer)) and 0 <= int(channel) < layout.n_channels):
            raise ValueError(
                f"channel must be one of 0..{layout.n_channels - 1} (the stack has {layout.n_channels}), "
                f"got {channel!r}."
            )
    elif channel not in (None, 0):
        raise ValueError(f"a {axes} stack has no channel axis: leave channel out (got channel={channel!r}).")
    return layout
