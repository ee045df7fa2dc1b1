"""Turn core results into NEW napari layers that keep the input's geometry."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._version import __version__
from ..core.checks import STACK_AXES
from ..transforms import FrameTransforms
from ._volume_run import volumes_elsewhere

__all__ = ["derived_image_kwargs", "frame_stack", "provenance", "same_layer", "transforms_from_layer"]


def _unwrapped(layer: Any) -> Any:
    """The layer behind napari's proxies (a docked widget's viewer hands out
    ``PublicOnlyProxy`` objects, a new one on every access)."""
    while hasattr(type(layer), "__wrapped__") or "__wrapped__" in dir(type(layer)):
        inner = getattr(layer, "__wrapped__", None)
        if inner is None or inner is layer:
            break
        layer = inner
    return layer


def same_layer(first: Any, second: Any) -> bool:
    """Whether two layer references (plain or proxied) are the same layer.

    Never compare layers with ``is`` in a widget: through the proxy a docked
    widget gets, ``viewer.layers[0] is viewer.layers[0]`` is False.
    """
    if first is None or second is None:
        return first is second
    return _unwrapped(first) is _unwrapped(second)


def provenance(method: str, params: dict, transforms: FrameTransforms | None = None, **extra: Any) -> dict:
    """The ``metadata["stackalign"]`` block every output layer carries."""
    block: dict[str, Any] = {"method": method, "params": dict(params), "version": __version__}
    if transforms is not None:
        block["transforms"] = transforms.to_dict()
    block.update(extra)
    return block


def derived_image_kwargs(layer: Any, suffix: str, stackalign: dict | None = None, *, frame_axis: bool = True) -> dict:
    """Layer kwargs for an image derived from ``layer``.

    Copies scale, translate, units and axis labels (dropping the leading
    time axis when ``frame_axis`` is False, e.g. for an average), keeps the
    input's metadata and adds ``metadata["stackalign"]``.
    """
    ndim = layer.ndim
    keep = slice(None) if frame_axis else slice(1, None)
    kwargs: dict[str, Any] = {
        "name": f"{layer.name} {suffix}",
        "scale": tuple(np.asarray(layer.scale)[keep]),
        "translate": tuple(np.asarray(layer.translate)[keep]),
        "colormap": getattr(layer.colormap, "name", "gray"),
        "blending": layer.blending,
    }
    units = getattr(layer, "units", None)
    if units is not None and len(units) == ndim:
        kwargs["units"] = tuple(str(u) for u in units)[keep]
    labels = getattr(layer, "axis_labels", None)
    if labels is not None and len(labels) == ndim:
        kwargs["axis_labels"] = tuple(labels)[keep]
    metadata = {k: v for k, v in dict(layer.metadata).items() if k != "stackalign"}
    if stackalign is not None:
        metadata["stackalign"] = stackalign
    kwargs["metadata"] = metadata
    return kwargs


def transforms_from_layer(layer: Any) -> FrameTransforms | None:
    """The transforms stored on a layer by this plugin (or None)."""
    block = dict(layer.metadata).get("stackalign")
    if not block or "transforms" not in block:
        return None
    data = block["transforms"]
    if isinstance(data, FrameTransforms):
        return data
    return FrameTransforms.from_dict(data)


def frame_stack(layer: Any, what: str = "this widget") -> Any:
    """The layer's data as a (T, Y, X) frame-indexable array, with a clear error otherwise (for a volume
    over time, that the Pyramid widget registers volumes; ``what`` names the widget in the message)."""
    data = layer.data
    if getattr(layer, "multiscale", False):
        data = data[0]
    if getattr(layer, "rgb", False):
        raise ValueError(f"layer {layer.name!r} is RGB: split its channels first (right-click > Split RGB).")
    if data.ndim == 2:
        raise ValueError(f"layer {layer.name!r} is a single 2-D image: registration needs a time series {STACK_AXES}.")
    volumes_elsewhere(layer, what)
    if data.ndim != 3:
        raise ValueError(
            f"layer {layer.name!r} has {data.ndim} dimensions: pick a {STACK_AXES} layer, or split channels first."
        )
    return data
