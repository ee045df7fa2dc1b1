"""HDF5 reading (``image_data``, any single >= 3-D dataset, a named one, HyperSpy
``.hspy``) and writing (``image_data`` + ``metadata`` group + ``transforms`` table)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .._version import __version__
from .._volume_transforms import VolumeTransforms
from ..files import jsonable, raise_if_interrupted
from ..layouts import STACK_AXES
from ..progress import ProgressCallback, report
from ..textfiles import check_regular_file
from ..transforms import NUMERIC_COLUMNS, FrameTransforms
from ._axes import AxesPlan, normalise_axes, plan_axes
from ._h5sink import hdf5_writer, write_failed
from ._incomplete import incomplete_error, locked_error
from ._lazy import decide_lazy, frame_chunked_dask, frames_per_chunk, iter_frame_chunks
from ._meta import check_transforms_length, decode_json_value, normalise_unit
from ._stackdata import StackData

__all__ = ["FORMAT_NAME", "HDF5_SUFFIXES", "declared_axes", "open_hdf5", "read_hdf5", "stack_candidates", "update_hdf5", "write_hdf5"]

HDF5_SUFFIXES = (".h5", ".hdf5", ".hd5", ".hspy")
FORMAT_NAME = "napari-stackalign stack"
#: attribute values longer than this go into a string dataset (HDF5 object headers hold 64 KiB)
_MAX_ATTR_BYTES = 32 * 1024
_LABEL_LETTERS = {
    "t": "T",
    "time": "T",
    "frame": "T",
    "frames": "T",
    "z": "Z",
    "c": "C",
    "ch": "C",
    "channel": "C",
    "channels": "C",
    "y": "Y",
    "x": "X",
    "s": "S",
    "p": "P",
    "position": "P",
    "positions": "P",
    "scene": "P",
}


def open_hdf5(path: Path, chunk_cache: int | None = None) -> h5py.File:
    """Open an HDF5 file read-only, turning format errors into a clear ValueError (a file
    locked by another program, truncated, a FIFO or device: each said so).

    ``chunk_cache``: bytes of HDF5's chunk cache per dataset (None: the library's default).
    """
    path = check_regular_file(path, "HDF5 file")
    try:
        return h5py.File(path, "r") if chunk_cache is None else h5py.File(path, "r", rdcc_nbytes=int(chunk_cache))
    except OSError as exc:
        message = str(exc)
        if "unable to lock file" in message:
            raise locked_error(path, exc) from exc
        if "truncated file" in message:
            raise incomplete_error(path, message) from exc
        raise ValueError(
            f"cannot read {path}: it is not a valid HDF5 file or it is truncated/corrupt ({exc}). "
            "Check the file (copy or export it again)."
        ) from exc


def _all_datasets(f: h5py.File) -> list[tuple[str, h5py.Dataset]]:
    found: list[tuple[str, h5py.Dataset]] = []

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset):
            found.append((name, obj))

    f.visititems(visit)
    return found


def stack_candidates(f: h5py.File) -> list[tuple[str, tuple[int, ...], np.dtype]]:
    """Datasets that could hold a stack: 3 or more dimensions, numeric."""
    return [
        (name, tuple(ds.shape), ds.dtype)
        for name, ds in _all_datasets(f)
        if ds.ndim >= 3 and ds.dtype.kind in "biuf" and name.split("/")[0] != "transforms"
    ]


def _describe(cands: list[tuple[str, tuple[int, ...], np.dtype]]) -> str:
    return ", ".join(f"'{name}' {shape} {dtype}" for name, shape, dtype in cands) or "none"


def choose_dataset(f: h5py.File, dataset: str | None, path: Path) -> h5py.Dataset:
    """The dataset holding the stack, by the rules of :func:`read_stack`."""
    cands = stack_candidates(f)
    if dataset is not None:
        obj = f.get(dataset.strip("/") or "/")
        if not isinstance(obj, h5py.Dataset):
            others = [(n, tuple(ds.shape), ds.dtype) for n, ds in _all_datasets(f)]
            raise ValueError(f"{path} has no dataset named {dataset!r}. Datasets in the file: {_describe(others)}.")
        return obj
    if isinstance(f.get("image_data"), h5py.Dataset):
        return f["image_data"]
    if len(cands) == 1:
        return f[cands[0][0]]
    if not cands:
        others = [(n, tuple(ds.shape), ds.dtype) for n, ds in _all_datasets(f)]
        images = [c for c in others if len(c[1]) == 2 and c[2].kind in "biuf" and min(c[1]) > 1]
        if images:
            raise ValueError(
                f"{path} holds a single 2-D image ({_describe(images)}), not a time series: registration needs "
                f"several frames {STACK_AXES}. Open a file with a stack of frames."
            )
        raise ValueError(
            f"{path} has no usable image stack: no 'image_data' dataset and no numeric dataset with 3 or more "
            f"dimensions (datasets found: {_describe(others)}). Save the stack as a {STACK_AXES} dataset named "
            "'image_data'."
        )
    raise ValueError(
        f"{path} holds several datasets that could be the stack: {_describe(cands)}. Name one with "
        "dataset=NAME (command line: --dataset NAME)."
    )


def _hyperspy_axes(ds: h5py.Dataset) -> tuple[str, dict[str, float], str | None] | None:
    """Axes letters, scale and unit from HyperSpy ``axis-<i>`` groups beside the dataset."""
    parent = ds.parent
    groups = [parent.get(f"axis-{i}") for i in range(ds.ndim)]
    if not all(isinstance(g, h5py.Group) for g in groups):
        return None
    letters = []
    nav_letters = iter("TQRUVW")  # never P, which means position
    sig_letters = iter("YX") if sum(not bool(g.attrs.get("navigate", False)) for g in groups) == 2 else None
    scale: dict[str, float] = {}
    units = None
    for g in groups:
        if bool(g.attrs.get("navigate", False)) or sig_letters is None:
            letter = next(nav_letters)
        else:
            letter = next(sig_letters)
            unit = normalise_unit(g.attrs.get("units"))
            if unit:
                units = unit
        letters.append(letter)
        if "scale" in g.attrs:
            scale[letter] = float(g.attrs["scale"])
    if units is None:
        scale = {k: v for k, v in scale.items() if k not in "YX"}
    return "".join(letters), scale, units


def _group_to_dict(group: h5py.Group, depth: int = 0) -> dict:
    out: dict[str, Any] = {k: decode_json_value(v) for k, v in group.attrs.items()}
    if depth < 6:
        for key, obj in group.items():
            if isinstance(obj, h5py.Group):
                out[key] = _group_to_dict(obj, depth + 1)
    return out


def _label_axes(ds: h5py.Dataset) -> str | None:
    try:
        labels = [str(d.label) for d in ds.dims]
    except (RuntimeError, ValueError, TypeError, OSError):  # exotic dimension scales
        return None
    letters = [_LABEL_LETTERS.get(label.strip().lower()) for label in labels]
    if all(letters) and len(set(letters)) == len(letters):
        return "".join(letters)
    return None


def _default_axes(ds: h5py.Dataset, path: Path, name: str) -> str:
    shape = tuple(ds.shape)
    if ds.ndim == 2:
        return "YX"
    if ds.ndim == 3:
        if shape[2] < min(shape[0], shape[1]) / 2:
            warnings.warn(
                f"{path}: dataset '{name}' {shape} has no axis labels and was read as {STACK_AXES} with {shape[0]} "
                f"frames; its last axis ({shape[2]}) is much shorter than the others. If the frames are along "
                "the last axis, pass axes='YXT'.",
                UserWarning,
                stacklevel=5,
            )
        return "TYX"
    raise ValueError(
        f"{path}: dataset '{name}' has shape {shape} and no axis labels, so its axis order is unknown. "
        "Name it with axes= (e.g. axes='TCYX' for channels; a volume over time, TZYX, is not supported: "
        "pick a plane first)."
    )


def _read_json_entries(group: h5py.Group) -> dict:
    out: dict[str, Any] = {k: decode_json_value(v) for k, v in group.attrs.items()}
    for key, obj in group.items():
        if isinstance(obj, h5py.Dataset) and obj.shape == ():
            out[key] = decode_json_value(obj[()])
    return out


def _read_transforms(group: h5py.Group, path: Path) -> FrameTransforms:
    try:
        cols = {k: np.asarray(group[k][()]) for k in NUMERIC_COLUMNS if k in group}
        reason = None
        if "reason" in group:
            reason = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in group["reason"][()]]
        extra = _read_json_entries(group)
        volume = {"dz": np.asarray(group["dz"][()])} if "dz" in group else {}
        return (VolumeTransforms if volume else FrameTransforms)(
            **volume,
            dy=cols["dy"],
            dx=cols["dx"],
            angle=cols.get("angle"),
            scale=cols.get("scale"),
            quality=cols.get("quality"),
            ok=cols.get("ok"),
            reason=reason,
            center=tuple(extra.get("center", (0.0, 0.0))),
            method=str(extra.get("method", "")),
            params=extra.get("params") or {},
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: the 'transforms' table is unreadable ({exc}).") from exc


def read_hdf5(
    path: Path,
    *,
    dataset: str | None = None,
    axes: str | None = None,
    lazy: bool | None = None,
    memory_fraction: float,
    volumes: bool = False,
) -> StackData:
    """Read a stack from an HDF5 file (see :func:`read_stack` for the rules)."""
    f = open_hdf5(path)
    keep_open = False
    try:
        ds = choose_dataset(f, dataset, path)
        name = ds.name.lstrip("/")
        hs = _hyperspy_axes(ds) if str(f.attrs.get("file_format", "")) == "HyperSpy" or path.suffix == ".hspy" else None
        file_axes = _file_axes(ds, axes, hs, path, name)
        plan = plan_axes(file_axes, tuple(ds.shape), source=f"{path} (dataset '{name}')", volumes=volumes)
        scale_by_axis, units = _calibration(ds, file_axes, hs)
        metadata = _file_metadata(f, ds, name, hs)
        raw, is_lazy = _pixels(ds, plan, lazy, memory_fraction, path, name)
        keep_open = is_lazy
        data = plan.apply(raw)
        transforms = None
        if isinstance(f.get("transforms"), h5py.Group):
            transforms = _read_transforms(f["transforms"], path)
            check_transforms_length(transforms, int(data.shape[0]), source=str(path))
    finally:
        if not keep_open:
            f.close()
    return StackData(
        data=data,
        axes=plan.out_axes,
        channel_axis=plan.channel_axis,
        scale=_output_scale(plan, scale_by_axis, units),
        units=units,
        metadata=metadata,
        transforms=transforms,
        path=path,
        lazy=is_lazy,
        _handles=[f] if keep_open else [],
    )


def declared_axes(f: h5py.File, ds: h5py.Dataset) -> str | None:
    """The axis order the file itself declares for ``ds`` (our ``axes`` attribute, the
    dimension labels or HyperSpy's axes), or None when the file does not say."""
    stored_axes = ds.attrs.get("axes")
    if isinstance(stored_axes, bytes):
        stored_axes = stored_axes.decode()
    if isinstance(stored_axes, str) and len(stored_axes) == ds.ndim:
        return stored_axes.upper()
    labelled = _label_axes(ds)
    if labelled is not None:
        return labelled
    is_hyperspy = str(f.attrs.get("file_format", "")) == "HyperSpy" or Path(f.filename).suffix == ".hspy"
    hs = _hyperspy_axes(ds) if is_hyperspy else None
    return hs[0] if hs is not None else None


def _file_axes(ds: h5py.Dataset, axes: str | None, hs: tuple | None, path: Path, name: str) -> str:
    """The dataset's axis order: ``axes`` if given, else ours (the ``axes`` attribute), the
    dimension labels, HyperSpy's axes, or the default for its number of dimensions."""
    file_axes = axes if axes is not None else declared_axes(ds.file, ds)
    if file_axes is None:
        file_axes = _default_axes(ds, path, name)
    return normalise_axes(file_axes, ds.ndim, what="axes")


def _calibration(ds: h5py.Dataset, file_axes: str, hs: tuple | None) -> tuple[dict[str, float], str | None]:
    """Pixel size per axis letter and its unit: ours, HyperSpy axes, or ``element_size_um``."""
    if "scale" in ds.attrs and len(np.atleast_1d(ds.attrs["scale"])) == ds.ndim:
        scale_by_axis = {a: float(v) for a, v in zip(file_axes, np.atleast_1d(ds.attrs["scale"]))}
        return scale_by_axis, normalise_unit(ds.attrs.get("units"))
    if hs is not None and file_axes == hs[0]:
        return hs[1], hs[2]
    if "element_size_um" in ds.attrs:
        sizes = np.atleast_1d(ds.attrs["element_size_um"]).astype(float)
        space = [a for a in file_axes if a not in "TCS"]
        if len(sizes) == len(space):
            return dict(zip(space, sizes)), "µm"
    return {}, None


def _file_metadata(f: h5py.File, ds: h5py.Dataset, name: str, hs: tuple | None) -> dict[str, Any]:
    """The ``metadata`` group; for files not written by this package also HyperSpy's metadata
    and the dataset's name and attributes."""
    metadata: dict[str, Any] = {}
    if "metadata" in f and isinstance(f["metadata"], h5py.Group):
        metadata = _read_json_entries(f["metadata"])
    if f.attrs.get("format") != FORMAT_NAME:
        if hs is not None:
            parent = ds.parent
            if isinstance(parent.get("metadata"), h5py.Group):
                metadata["hyperspy"] = _group_to_dict(parent["metadata"])
        info: dict[str, Any] = {"dataset": name}
        attrs = {k: decode_json_value(v) for k, v in ds.attrs.items() if k != "DIMENSION_LABELS"}
        if attrs:
            info["attrs"] = attrs
        metadata["hdf5"] = info
    return metadata


def _pixels(
    ds: h5py.Dataset, plan: AxesPlan, lazy: bool | None, memory_fraction: float, path: Path, name: str
) -> tuple[Any, bool]:
    """The dataset's pixels in the file's axis order, and whether they are read lazily (the
    file must then stay open)."""
    nbytes = int(np.prod(ds.shape, dtype=np.int64)) * ds.dtype.itemsize
    if decide_lazy(nbytes, lazy, memory_fraction):
        return frame_chunked_dask(ds, frame_dim=plan.frame_dim), True
    try:
        return ds[()], False
    except OSError as exc:
        raise ValueError(
            f"cannot read dataset '{name}' of {path}: the file is truncated or corrupt ({exc}). "
            "Copy or export it again."
        ) from exc


def _output_scale(plan: AxesPlan, scale_by_axis: dict[str, float], units: str | None) -> tuple[float, ...] | None:
    """The scale per output axis, when the file gives a pixel size (or a frame step)."""
    has_space = "Y" in scale_by_axis or "X" in scale_by_axis
    if scale_by_axis and (has_space or units):
        return plan.map_values(scale_by_axis)
    if "T" in scale_by_axis and scale_by_axis["T"] != 1.0:
        return plan.map_values(scale_by_axis)
    return None


def _compression_kwargs(compression: str | None) -> dict[str, Any]:
    if compression == "zlib":
        return {"compression": "gzip", "compression_opts": 4, "shuffle": True}
    if compression == "lzf":
        return {"compression": "lzf", "shuffle": True}
    return {}


def _put_json(group: h5py.Group, key: str, value: Any) -> None:
    text = json.dumps(jsonable(value), ensure_ascii=False)
    if len(text.encode("utf-8")) > _MAX_ATTR_BYTES:
        group.create_dataset(key, data=text, dtype=h5py.string_dtype("utf-8"))
    else:
        group.attrs[key] = text


def write_hdf5(
    target: Path,
    data: Any,
    *,
    axes: str,
    scale: tuple[float, ...] | None,
    units: str | None,
    metadata: dict,
    transforms: FrameTransforms | None,
    compression: str | None,
    progress: ProgressCallback | None,
    stage: str,
) -> None:
    """Stream ``data`` (frames first) into ``target`` as ``image_data`` with metadata and transforms."""
    shape = tuple(int(n) for n in data.shape)
    dtype = np.dtype(data.dtype)
    frame_nbytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
    per_chunk = min(shape[0], frames_per_chunk(frame_nbytes, 2 * 2**20))
    total = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    with hdf5_writer(target, total) as f:
        _write_hdf5_file(f, data, shape, dtype, per_chunk, axes, scale, units, metadata, transforms, compression,
                         progress, stage)


def _write_hdf5_file(
    f: h5py.File,
    data: Any,
    shape: tuple[int, ...],
    dtype: np.dtype,
    per_chunk: int,
    axes: str,
    scale: tuple[float, ...] | None,
    units: str | None,
    metadata: dict,
    transforms: FrameTransforms | None,
    compression: str | None,
    progress: ProgressCallback | None,
    stage: str,
) -> None:
    """The body of :func:`write_hdf5`, stopping at a full disk or an interrupt."""
    f.attrs["format"] = FORMAT_NAME
    f.attrs["version"] = 1
    f.attrs["writer"] = f"napari-stackalign {__version__}"
    ds = f.create_dataset(
        "image_data",
        shape=shape,
        dtype=dtype,
        chunks=(max(1, per_chunk),) + shape[1:],
        **_compression_kwargs(compression),
    )
    ds.attrs["axes"] = axes
    for dim, letter in zip(ds.dims, axes):
        dim.label = letter.lower()
    if scale is not None:
        ds.attrs["scale"] = np.asarray(scale, dtype=np.float64)
    if units is not None:
        ds.attrs["units"] = units
    for start, stop, chunk in iter_frame_chunks(data):
        raise_if_interrupted()
        if write_failed(f):
            break
        report(progress, start, shape[0], stage)
        ds[start:stop] = chunk
    raise_if_interrupted()
    report(progress, shape[0], shape[0], stage)
    _write_tables(f, metadata, transforms)


def _write_tables(f: h5py.File, metadata: dict, transforms: FrameTransforms | None) -> None:
    """The ``metadata`` group and the ``transforms`` table (replacing earlier ones)."""
    for name in ("metadata", "transforms"):
        if name in f:
            del f[name]
    group = f.create_group("metadata")
    for key, value in metadata.items():
        _put_json(group, str(key), value)
    if transforms is not None:
        table = f.create_group("transforms")
        for col, values in transforms.to_table().items():
            if col == "reason":
                values = np.array([str(v) for v in values], dtype=h5py.string_dtype())
            table.create_dataset(col, data=np.asarray(values))
        table.attrs["format"] = "napari-stackalign transforms"
        _put_json(table, "center", list(transforms.center))
        _put_json(table, "method", transforms.method)
        _put_json(table, "params", transforms.params)


def update_hdf5(
    target: Path,
    patches: Any,
    *,
    metadata: dict,
    transforms: FrameTransforms | None,
) -> int:
    """Rewrite frames of a file :func:`write_hdf5` wrote, then its metadata and transforms.

    Parameters
    ----------
    target : Path
        The (temporary) file.
    patches : iterable of (int, ndarray)
        ``(start, frames)``: frames ``start:start + len(frames)`` of
        ``image_data`` are replaced.
    metadata, transforms
        Replace the ``metadata`` group and the ``transforms`` table.

    Returns
    -------
    int
        Frames rewritten.
    """
    rewritten = 0
    with hdf5_writer(target, update=True) as f:
        ds = f["image_data"]
        for start, frames in patches:
            raise_if_interrupted()
            if write_failed(f):
                break
            ds[start : start + len(frames)] = frames
            rewritten += len(frames)
        raise_if_interrupted()
        _write_tables(f, metadata, transforms)
    return rewritten
