"""Electron-microscopy files through RosettaSciIO (``rsciio``, HyperSpy's I/O library).

Digital Micrograph ``.dm3``/``.dm4``, EMD (Velox and Berkeley) ``.emd``, FEI
TIA ``.ser``/``.emi`` and ``.mrc`` files are opened lazily with the format's
``rsciio`` reader. Each file gives one or more *signals* (a dict with
``data``, ``axes``, ``metadata`` and ``original_metadata``); an image series
is a signal with two signal axes (rows, columns) and one navigation axis
(the frames). The calibration of the signal axes becomes the pixel size and
unit; a navigation axis in seconds becomes the frame interval.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np

from ..files import jsonable
from ..layouts import STACK_AXES
from ._axes import normalise_axes, plan_axes
from ._formats import require
from ._lazy import decide_lazy, frames_per_chunk, is_dask
from ._meta import normalise_unit
from ._stackdata import StackData

__all__ = ["RSCIIO_PLUGINS", "image_signals", "read_rsciio", "signal_axes_plan"]

#: the rsciio plugin module per suffix (``.hspy`` and ``.zspy`` for tests and scripts; read_stack reads
#: ``.hspy`` with h5py, which needs no extra)
RSCIIO_PLUGINS = {
    ".dm3": "digitalmicrograph",
    ".dm4": "digitalmicrograph",
    ".emd": "emd",
    ".ser": "tia",
    ".emi": "tia",
    ".mrc": "mrc",
    ".hspy": "hspy",
    ".zspy": "zspy",
}
#: navigation axis letters in array order (never P, which means position)
_NAV_LETTERS = "TQRUVW"
_TIME_UNITS = {"s": 1.0, "ms": 1e-3, "µs": 1e-6, "us": 1e-6, "ns": 1e-9, "min": 60.0, "h": 3600.0}
#: arrays in original_metadata larger than this are summarised, not copied into the layer metadata
_MAX_META_ARRAY = 256


def _open_signals(path: Path, plugin: str) -> list[dict]:
    """Call the plugin's ``file_reader`` lazily; any failure becomes a ValueError naming the file."""
    module = importlib.import_module(f"rsciio.{plugin}")
    try:
        signals = module.file_reader(str(path), lazy=True)
    except (OSError, ValueError, KeyError, IndexError, TypeError, EOFError, AttributeError) as exc:
        raise ValueError(
            f"cannot read {path}: rsciio's {plugin} reader failed ({type(exc).__name__}: {exc}). The file may be "
            "truncated or corrupt, or a variant of the format rsciio does not read."
        ) from exc
    if isinstance(signals, dict):
        signals = [signals]
    return list(signals)


def _ordered_axes(signal: dict) -> list[dict]:
    """The signal's axes in array order (rsciio lists them so; ``index_in_array`` wins when present)."""
    axes = list(signal.get("axes") or [])
    if axes and all("index_in_array" in a for a in axes):
        axes = sorted(axes, key=lambda a: int(a["index_in_array"]))
    return axes


def _title(signal: dict, index: int) -> str:
    general = (signal.get("metadata") or {}).get("General") or {}
    return str(general.get("title") or f"signal {index}")


def image_signals(signals: list[dict]) -> list[tuple[int, dict]]:
    """The (index, signal) pairs that hold images: two or more signal (non-navigation) axes (a 3-D signal,
    as Berkeley EMD files give, is read as a series of its last two axes)."""
    found = []
    for i, signal in enumerate(signals):
        axes = _ordered_axes(signal)
        n_signal = sum(not bool(a.get("navigate", False)) for a in axes)
        if len(axes) == np.ndim(signal["data"]) and n_signal >= 2:
            found.append((i, signal))
    return found


def _describe(signals: list[tuple[int, dict]]) -> str:
    return ", ".join(f"{i}: '{_title(s, i)}' {tuple(int(n) for n in s['data'].shape)}" for i, s in signals)


def _choose(signals: list[dict], dataset: str | None, path: Path) -> dict:
    images = image_signals(signals)
    if dataset is not None:
        for i, signal in enumerate(signals):
            if dataset == str(i) or dataset == _title(signal, i):
                return signal
        raise ValueError(
            f"{path} has no signal named {dataset!r}. Signals in the file (index: title shape): "
            f"{_describe(list(enumerate(signals)))}. Pass dataset=TITLE or dataset=INDEX."
        )
    if not images:
        raise ValueError(
            f"{path} holds no image signal (two signal axes): its signals are {_describe(list(enumerate(signals)))}. "
            f"Registration needs a time series of images {STACK_AXES}."
        )
    stacks = [(i, s) for i, s in images if np.ndim(s["data"]) > 2]
    if len(images) == 1:
        return images[0][1]
    if len(stacks) == 1:
        return stacks[0][1]
    raise ValueError(
        f"{path} holds several image signals: {_describe(stacks or images)}. Name one with dataset=TITLE or "
        "dataset=INDEX (command line: --dataset)."
    )


def signal_axes_plan(axes: list[dict]) -> tuple[str, dict[str, float], str | None]:
    """Axis letters (navigation axes ``T``, ``Q``, ...; signal axes ``Y``, ``X``), the step per letter and the
    pixel unit, from rsciio axis dicts in array order.

    The last two signal axes are the rows and columns; any other axis steps
    through the frames. The pixel size is kept only when they carry a spatial unit;
    a navigation axis counts as a frame interval (in seconds) only when its
    unit is a time unit.
    """
    nav = iter(_NAV_LETTERS)
    spatial = iter("YX")
    letters = []
    scale: dict[str, float] = {}
    units = None
    signal_dims = [d for d, axis in enumerate(axes) if not bool(axis.get("navigate", False))]
    image_dims = set(signal_dims[-2:])  # a 3-D signal's first axis steps through the images
    for d, axis in enumerate(axes):
        if d not in image_dims:
            letter = next(nav)
            unit = str(axis.get("units") or "").strip()
            if unit in _TIME_UNITS and "scale" in axis:
                scale[letter] = float(axis["scale"]) * _TIME_UNITS[unit]
        else:
            letter = next(spatial)
            unit = normalise_unit(axis.get("units"))
            if unit and "scale" in axis:
                scale[letter] = float(axis["scale"])
                units = units or unit
        letters.append(letter)
    if units is None:
        scale = {k: v for k, v in scale.items() if k not in "YX"}
    return "".join(letters), scale, units


def _pruned(value: Any, depth: int = 0) -> Any:
    """``value`` with large arrays summarised, so metadata stays small enough for layers and TIFF descriptions."""
    if isinstance(value, dict):
        return {str(k): _pruned(v, depth + 1) for k, v in value.items()} if depth < 12 else "<nested too deep>"
    if isinstance(value, (list, tuple)) and len(value) > _MAX_META_ARRAY:
        return f"<{len(value)} values>"
    if isinstance(value, np.ndarray) and value.size > _MAX_META_ARRAY:
        return f"<array {value.shape} {value.dtype}>"
    if is_dask(value):
        return f"<array {tuple(value.shape)} {value.dtype}>"
    return value


def read_rsciio(
    path: Path,
    *,
    dataset: str | None = None,
    axes: str | None = None,
    lazy: bool | None = None,
    memory_fraction: float,
) -> StackData:
    """Read an image series with RosettaSciIO (see :func:`~napari_stackalign.io.read_stack`).

    Parameters
    ----------
    path : pathlib.Path
        A ``.dm3``, ``.dm4``, ``.emd``, ``.ser``, ``.emi``, ``.mrc``,
        ``.hspy`` or ``.zspy`` file.
    dataset : str, optional
        The signal to read, by title or index, when the file holds several
        image signals (a Velox file with HAADF and BF detectors, an ``.emi``
        with several ``.ser`` files).
    axes : str, optional
        The array's axis order when the file's navigation axes do not say it.
    lazy, memory_fraction
        As for :func:`~napari_stackalign.io.read_stack`.

    Raises
    ------
    ImportError
        When rosettasciio is not installed (the message names the extra).
    ValueError
        Unreadable files, files without an image series, several candidate
        signals without ``dataset``.
    """
    suffix = path.suffix.lower()
    plugin = RSCIIO_PLUGINS[suffix]
    require(path, "rsciio", "em", "rosettasciio")
    signal = _choose(_open_signals(path, plugin), dataset, path)
    array = signal["data"]
    axis_dicts = _ordered_axes(signal)
    letters, scale_by_axis, units = signal_axes_plan(axis_dicts)
    file_axes = normalise_axes(axes, np.ndim(array), what="axes") if axes is not None else letters
    if file_axes != letters:  # the user's order: keep the pixel size only where Y and X did not move
        scale_by_axis = {k: v for k, v in scale_by_axis.items() if k in "YX" and file_axes.find(k) == letters.find(k)}
    plan = plan_axes(file_axes, tuple(int(n) for n in array.shape), source=str(path))
    nbytes = int(np.prod(array.shape, dtype=np.int64)) * np.dtype(array.dtype).itemsize
    is_lazy = decide_lazy(nbytes, lazy, memory_fraction)
    data = plan.apply(array)
    if is_lazy and is_dask(data):
        frame_nbytes = int(np.prod(data.shape[1:], dtype=np.int64)) * np.dtype(data.dtype).itemsize
        data = data.rechunk((frames_per_chunk(frame_nbytes),) + tuple(int(n) for n in data.shape[1:]))
    elif not is_lazy:
        try:
            data = np.asarray(data.compute() if is_dask(data) else data)
        except (OSError, ValueError, EOFError) as exc:
            raise ValueError(f"cannot read the pixels of {path}: the file is truncated or corrupt ({exc}).") from exc
    scale = None
    if scale_by_axis:
        scale = plan.map_values(scale_by_axis)
    metadata = {
        "rsciio": {
            "reader": plugin,
            "title": _title(signal, 0),
            "axes": jsonable(axis_dicts),
            "metadata": jsonable(_pruned(signal.get("metadata") or {})),
            "original_metadata": jsonable(_pruned(signal.get("original_metadata") or {})),
        }
    }
    if "T" in scale_by_axis:
        metadata["rsciio"]["frame_interval_s"] = scale_by_axis["T"]
    return StackData(
        data=data,
        axes=plan.out_axes,
        channel_axis=plan.channel_axis,
        scale=scale,
        units=units,
        metadata=metadata,
        path=path,
        lazy=is_lazy,
    )
