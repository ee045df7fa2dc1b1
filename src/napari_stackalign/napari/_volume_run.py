"""Volumes over time in the widgets: which layers are (T, Z, Y, X) volumes, what applies to them, the worker task.

How a widget knows a 4-D layer holds volumes rather than channels: its axis
labels. This plugin's reader labels volumes ``t, z, y, x`` and always splits
channels into separate layers, so a 4-D layer from it is a volume over time.
A 4-D layer from elsewhere is read by its labels (a ``c`` or ``channel`` axis:
channels; a ``z`` axis: planes); with napari's unnamed default labels it is
taken as (T, Z, Y, X) when its second axis is longer than
:data:`MAX_UNNAMED_CHANNELS`, and refused with a message saying how to name
the axes otherwise (a short second axis is as likely channels as planes).
A 5-D layer is refused: the reader gives one (T, Z, Y, X) layer per channel;
register one and apply the table to the others.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.apply import apply_transforms
from ..core.pyramid import PyramidOptions, register_pyramid
from ..core.smoothing import smooth_transforms
from ..core.volume import volume_layout
from ..transforms import FrameTransforms

__all__ = [
    "MAX_UNNAMED_CHANNELS",
    "is_labelled_volume",
    "is_volume_transforms",
    "layer_volume_axes",
    "register_volume_task",
    "volume_option_problems",
    "volume_stack",
    "volumes_elsewhere",
]

#: a 4-D layer with unnamed axes whose second axis is at most this long may hold channels: it is not guessed
MAX_UNNAMED_CHANNELS = 4
#: axis labels that name a channel axis
_CHANNEL_LABELS = ("c", "ch", "channel", "channels")


def _labels(layer: Any) -> tuple[str, ...]:
    return tuple(str(a).strip().lower() for a in (getattr(layer, "axis_labels", None) or ()))


def _named(labels: tuple[str, ...]) -> bool:
    """Whether the labels were set by someone (napari's defaults are "-4", "-3", ..., "-1")."""
    return any(not label.removeprefix("-").isdigit() for label in labels)


def layer_volume_axes(layer: Any) -> str | None:
    """``"TZYX"`` when ``layer`` holds volumes over time, None for a (T, Y, X) time series (or a 2-D image).

    Raises
    ------
    ValueError
        For a 4-D layer whose axes are channels (or may be), and for 5-D
        layers; the message says what to do.
    """
    ndim = int(np.ndim(layer.data[0] if getattr(layer, "multiscale", False) else layer.data))
    if ndim <= 3:
        return None
    shape = tuple(int(n) for n in (layer.data[0] if getattr(layer, "multiscale", False) else layer.data).shape)
    labels = _labels(layer)
    if ndim == 4:
        if len(labels) == 4 and _named(labels):
            if any(label in _CHANNEL_LABELS for label in labels):
                raise ValueError(
                    f"layer {layer.name!r} has axes {', '.join(labels)}: it holds channels. Split them "
                    "(right-click the layer > Split Stack), register one channel and apply the table to the others."
                )
            return "TZYX"
        if shape[1] <= MAX_UNNAMED_CHANNELS:
            raise ValueError(
                f"layer {layer.name!r} is 4-D {shape} with unnamed axes: is its second axis ({shape[1]}) channels or "
                "Z planes? Open the file with napari-stackalign (File > Open with Plugin), which names them; or name "
                f"them in the console: viewer.layers[{layer.name!r}].axis_labels = ('t', 'z', 'y', 'x'); or, for "
                "channels, split them (right-click > Split Stack)."
            )
        return "TZYX"
    raise ValueError(
        f"layer {layer.name!r} has {ndim} dimensions {shape}: open the file with napari-stackalign (File > Open "
        "with Plugin), which gives one (T, Z, Y, X) layer per channel; register one and apply the table to the "
        "others with 'Apply to'."
    )


def is_labelled_volume(layer: Any) -> bool:
    """Whether ``layer`` says it holds volumes: 4-D or more with a ``z`` axis label (this plugin's reader's
    volumes), or 5-D. A 4-D layer without one may be (T, C, Y, X), which the 2-D widgets take."""
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    ndim = int(np.ndim(data))
    return ndim >= 5 or (ndim == 4 and "z" in _labels(layer))


def volume_stack(layer: Any) -> Any:
    """The (T, Z, Y, X) data of a volume layer (ValueError when it is not one, or too small to register)."""
    if layer_volume_axes(layer) != "TZYX":
        raise ValueError(f"layer {layer.name!r} is not a (T, Z, Y, X) volume over time.")
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    try:
        volume_layout(data, "TZYX", min_frames=1, what="registration")
    except ValueError as exc:
        raise ValueError(f"layer {layer.name!r}: {exc}") from exc
    return data


def is_volume_transforms(transforms: FrameTransforms | None) -> bool:
    """Whether ``transforms`` hold (dz, dy, dx): they apply to (T, Z, Y, X) layers only."""
    return transforms is not None and getattr(transforms, "dz", None) is not None


def volume_option_problems(*, piecewise: bool, mask_layer: Any) -> str | None:
    """Why the widget's settings cannot register volumes (one sentence saying what to change), or None."""
    if piecewise:
        return (
            "piecewise-rigid registration is for (T, Y, X) stacks: uncheck 'Correct patch by patch' to register the "
            "volumes in 3-D (one dz, dy, dx per volume)."
        )
    if mask_layer is not None:
        return (
            "a mask is not supported for volumes: set 'Mask (Labels)' to empty and draw an ROI rectangle instead "
            "(it crops the rows and columns of every plane)."
        )
    return None


def register_volume_task(
    stack: Any, options: PyramidOptions, *, progress: Any = None
) -> tuple[FrameTransforms, FrameTransforms, Any]:
    """Estimate (dz, dy, dx) per volume, smooth when the options ask, and apply; runs in the worker thread.

    The estimate is made unsmoothed (so the drift plot can show the measured
    points) and then smoothed with :func:`~napari_stackalign.core.smoothing.smooth_transforms`,
    the filter the 3-D pyramid itself applies with ``smooth=True``. A dask
    input gives a lazy registered stack.
    """
    raw = register_pyramid(stack, **options.replace(smooth=False).to_dict(), axes="TZYX", progress=progress)
    final = raw
    if options.smooth:
        final = smooth_transforms(raw, window_length=options.window_length, polyorder=options.polyorder)
    return raw, final, apply_transforms(stack, final, progress=progress)


def volumes_elsewhere(layer: Any, what: str) -> None:
    """Raise a ValueError saying that ``what`` works on (T, Y, X) stacks, and that volumes over time go to the
    Pyramid widget, when ``layer`` has 4 or more dimensions; return otherwise."""
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    if int(np.ndim(data)) < 4 or getattr(layer, "rgb", False):
        return
    shape = tuple(int(n) for n in data.shape)
    pyramid = (
        "Volumes over time (T, Z, Y, X) are registered by the Pyramid widget (Plugins > Stack Align > Pyramid "
        "registration), which estimates dz, dy and dx per volume."
    )
    if is_labelled_volume(layer):
        raise ValueError(
            f"layer {layer.name!r} holds volumes over time {shape}: {what} works on (T, Y, X) stacks. " + pyramid
        )
    raise ValueError(
        f"layer {layer.name!r} has {len(shape)} dimensions {shape}: {what} works on (T, Y, X) stacks. For channels, "
        "split them (right-click > Split Stack) and use one. " + pyramid
    )
