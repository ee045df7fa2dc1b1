"""Light-microscopy files through bioio and its plugins: Nikon ``.nd2``, Zeiss ``.czi``,
Leica ``.lif``, OME-TIFF (every series) and OME-Zarr.

bioio gives each scene (series, position, field of view) as a lazy dask
array with named dimensions (``TCZYX``, plus ``S`` for RGB samples). One
scene gives (T, Y, X) or (T, C, Y, X); several scenes of one shape are
stacked along a leading position axis ``P``: (P, T, Y, X) or (P, T, C, Y, X).
``position=`` picks one scene instead. The full-resolution level is read;
pixel sizes come from bioio's ``physical_pixel_sizes`` (micrometres unless
the file names another unit).
"""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path
from typing import Any

import numpy as np

from ..files import jsonable
from ._axes import plan_axes
from ._formats import BIOIO_PLUGINS, require, suffix_of
from ._lazy import decide_lazy, frames_per_chunk, is_dask
from ._meta import normalise_unit
from ._stackdata import StackData

__all__ = ["open_bioimage", "read_bioio", "scene_index"]


def open_bioimage(path: Path) -> Any:
    """A ``bioio.BioImage`` of ``path`` read by the plugin of its suffix.

    Raises
    ------
    ImportError
        When bioio or the plugin is missing (the message names the extra).
    ValueError
        When the plugin cannot read the file.
    """
    suffix = suffix_of(path)
    if path.is_dir():
        suffix = ".zarr"
    plugin = BIOIO_PLUGINS[suffix]
    require(path, "bioio", "bio")
    require(path, plugin, "bio", plugin.replace("_", "-"))
    from bioio import BioImage

    reader = importlib.import_module(plugin).Reader
    try:
        return BioImage(path, reader=reader)
    except Exception as exc:
        raise ValueError(
            f"cannot read {path}: {plugin.replace('_', '-')} failed ({type(exc).__name__}: {exc}). The file may be "
            "truncated or corrupt, or a variant of the format the plugin does not read."
        ) from exc


def scene_index(scenes: tuple[str, ...], position: int | str, path: Path) -> int:
    """The index of ``position`` (an index or a scene name) among ``scenes``."""
    if isinstance(position, (int, np.integer)) and not isinstance(position, bool):
        if 0 <= int(position) < len(scenes):
            return int(position)
    elif isinstance(position, str):
        if position in scenes:
            return scenes.index(position)
        if position.isdigit() and int(position) < len(scenes):
            return int(position)
    listed = ", ".join(f"{i}: {name!r}" for i, name in enumerate(scenes))
    raise ValueError(f"{path} has no position {position!r}: its positions (scenes) are {listed}.")


def _scene_array(image: Any, index: int) -> tuple[Any, str]:
    image.set_scene(index)
    return image.dask_data, str(image.dims.order)


#: what bioio readers raise for metadata their format does not hold: the readers' base class raises
#: NotImplementedError for properties a plugin does not provide (not unfinished code here), others an
#: AttributeError, KeyError or TypeError on incomplete metadata
_METADATA_ABSENT = (AttributeError, NotImplementedError, KeyError, TypeError)


def _calibration(image: Any, is_zarr: bool) -> tuple[dict[str, float], str | None]:
    """Pixel size per axis letter (Y, X, and T when bioio knows the frame interval) and the unit."""
    sizes = image.physical_pixel_sizes
    scale: dict[str, float] = {}
    for letter in "YX":
        value = getattr(sizes, letter, None)
        if value is not None and np.isfinite(float(value)) and float(value) > 0:
            scale[letter] = float(value)
    unit = None
    try:
        unit = normalise_unit(getattr(image.dimension_properties.Y, "unit", None))
    except _METADATA_ABSENT:
        unit = None
    if unit is None and scale and not is_zarr:
        unit = "µm"  # bioio's physical_pixel_sizes are micrometres for these readers
    # an OME-Zarr without units keeps its pixel size in the file's (unnamed) unit: units stay None
    try:
        interval = image.time_interval
    except (*_METADATA_ABSENT, ValueError):
        interval = None
    if isinstance(interval, (int, float, np.number)) and np.isfinite(float(interval)) and float(interval) > 0:
        scale["T"] = float(interval)
    if not ("Y" in scale or "X" in scale) and scale.get("T", 1.0) == 1.0:
        scale = {}  # nothing calibrated: no scale rather than ones
    return scale, unit


def _standard_metadata(image: Any) -> dict:
    try:
        standard = image.standard_metadata
    except Exception:  # noqa: BLE001 - optional and reader-specific; its absence is not an error
        return {}
    if dataclasses.is_dataclass(standard):
        return jsonable(dataclasses.asdict(standard))
    return jsonable(standard) if isinstance(standard, dict) else {}


def read_bioio(
    path: Path,
    *,
    position: int | str | None = None,
    axes: str | None = None,
    lazy: bool | None = None,
    memory_fraction: float,
) -> StackData:
    """Read an ``.nd2``, ``.czi``, ``.lif``, OME-TIFF or OME-Zarr time series with bioio.

    Parameters
    ----------
    path : pathlib.Path
        The file (or the ``.zarr`` folder).
    position : int or str, optional
        One scene (position, series) by index or name. Default: every scene,
        stacked along a leading ``P`` axis when there are several.
    axes : str, optional
        Refused: these files name their axes.
    lazy, memory_fraction
        As for :func:`~napari_stackalign.io.read_stack`.

    Raises
    ------
    ImportError
        When bioio or the format's plugin is missing (the message names the extra).
    ValueError
        Unreadable files, scenes of different shapes without ``position``,
        volumes over time, single images.
    """
    if axes is not None:
        raise ValueError(f"axes= does not apply to {path.name}: the file names its axes (bioio reads them as TCZYX).")
    image = open_bioimage(path)
    scenes = tuple(str(s) for s in image.scenes)
    chosen = [scene_index(scenes, position, path)] if position is not None else list(range(len(scenes)))
    image.set_scene(chosen[0])  # the calibration of the first chosen scene, before any other scene is visited
    scale_by_axis, units = _calibration(image, suffix_of(path).endswith("zarr") or path.is_dir())
    arrays, orders = zip(*(_scene_array(image, i) for i in chosen))
    order = orders[0]
    first = arrays[0]
    if any(a.shape != first.shape or a.dtype != first.dtype or o != order for a, o in zip(arrays, orders)):
        listed = ", ".join(f"{scenes[i]!r} {tuple(a.shape)} {a.dtype}" for i, a in zip(chosen, arrays))
        raise ValueError(
            f"{path} holds positions of different sizes or types ({order}: {listed}): they cannot share a P axis. "
            "Read one with position=INDEX or position=NAME."
        )
    if len(arrays) > 1:
        import dask.array as da

        raw: Any = da.stack(arrays)
        file_axes = "P" + order
    else:
        raw, file_axes = first, order
    plan = plan_axes(file_axes, tuple(int(n) for n in raw.shape), source=str(path))
    nbytes = int(np.prod(raw.shape, dtype=np.int64)) * np.dtype(raw.dtype).itemsize
    is_lazy = decide_lazy(nbytes, lazy, memory_fraction)
    data = plan.apply(raw)
    if is_lazy and is_dask(data):
        lead = 2 if plan.out_axes.startswith("P") else 1
        frame_nbytes = int(np.prod(data.shape[lead:], dtype=np.int64)) * np.dtype(data.dtype).itemsize
        chunks = (1,) * (lead - 1) + (frames_per_chunk(frame_nbytes),) + tuple(int(n) for n in data.shape[lead:])
        data = data.rechunk(chunks)
    elif not is_lazy:
        data = np.asarray(data.compute() if is_dask(data) else data)
    scale = plan.map_values(scale_by_axis) if scale_by_axis else None
    metadata = {
        "bioio": {
            "reader": type(image.reader).__module__.split(".")[0],
            "dims": order,
            "scenes": [scenes[i] for i in chosen],
            "channel_names": jsonable(list(image.channel_names or [])),
            "standard_metadata": _standard_metadata(image),
        }
    }
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
