"""Positions (a ``P`` axis): each position of a multi-position file is registered on its own.

:func:`open_stack` is how the subcommands read their input: ``read_stack``
with the run's ``--max-memory``, and, when the run is one position of a
multi-position file (``args.position``), that position only.

A ``P`` axis is taken wherever it shows: in the axes ``read_stack`` reports
(readers that know positions), or in ``--axes`` (``PTYX``, ``TPCYX``, ...)
for files that do not say it. In the second case, when ``read_stack`` does
not take the ``P`` letter itself, HDF5 and TIFF files are read here one
position at a time (into memory; the metadata and calibration of the file
are not carried over).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from ..io import HDF5_SUFFIXES, TIFF_SUFFIXES, StackData, read_stack
from ..io._axes import normalise_axes, plan_axes

__all__ = ["POSITION_AXIS", "count_positions", "open_stack"]

#: the letter of the position axis
POSITION_AXIS = "P"


def open_stack(
    path: str | Path,
    args: argparse.Namespace,
    *,
    dataset: str | None = None,
    axes: str | None = None,
    volumes: bool = False,
) -> StackData:
    """The input of a run: ``read_stack`` under ``--max-memory``, one position when ``args.position`` says so.
    ``volumes``: read volumes over time as (T, [C,] Z, Y, X) (see :func:`~napari_stackalign.read_stack`).

    Raises
    ------
    ValueError
        When the file has several positions and the run did not choose one
        (a single file with a ``P`` axis runs as a batch, see ``cli/_batch.py``).
    """
    position = getattr(args, "position", None)
    max_memory = getattr(args, "max_memory", None)
    if not _names_positions(axes):
        data = read_stack(path, dataset=dataset, axes=axes, max_memory=max_memory, volumes=volumes)
        if POSITION_AXIS not in data.axes:
            if position not in (None, 0):
                data.close()
                raise ValueError(f"{Path(path).name} has no position axis: there is no position {position}.")
            return data
        return _one_position(data, position, path)
    try:
        data = read_stack(path, dataset=dataset, axes=axes, max_memory=max_memory, volumes=volumes)
    except ValueError:
        # this reader does not know the P letter: read the position here
        return _read_position(Path(path), dataset, axes or "", position)
    return _one_position(data, position, path)


def count_positions(path: str | Path, *, dataset: str | None = None, axes: str | None = None) -> int:
    """How many positions the input holds (1 when it has no ``P`` axis)."""
    try:
        data = read_stack(path, dataset=dataset, axes=axes, lazy=True)
    except ValueError:
        if not _names_positions(axes):
            raise
        raw, close = _raw_array(Path(path), dataset)
        try:
            letters = normalise_axes(axes or "", len(raw.shape), what="--axes")
            return int(raw.shape[letters.index(POSITION_AXIS)])
        finally:
            close()
    try:
        if POSITION_AXIS not in data.axes:
            return 1
        return int(data.data.shape[data.axes.index(POSITION_AXIS)])
    finally:
        data.close()


def _names_positions(axes: str | None) -> bool:
    return axes is not None and POSITION_AXIS in axes.upper()


def _one_position(data: StackData, position: int | None, path: str | Path) -> StackData:
    """Position ``position`` of a stack whose axes hold ``P`` (its other axes, scale and channel axis kept)."""
    p = data.axes.index(POSITION_AXIS)
    n = int(data.data.shape[p])
    if position is None:
        if n == 1:
            position = 0
        else:
            data.close()
            raise ValueError(
                f"{Path(path).name} holds {n} positions: give -o a folder, each position is written there."
            )
    if not 0 <= position < n:
        data.close()
        raise ValueError(f"{Path(path).name} has {n} positions (0-{n - 1}): there is no position {position}.")
    index = (slice(None),) * p + (int(position),)
    channel_axis = data.channel_axis
    if channel_axis is not None and channel_axis > p:
        channel_axis -= 1
    scale = None if data.scale is None else tuple(s for i, s in enumerate(data.scale) if i != p)
    return dataclasses.replace(
        data,
        data=data.data[index],
        axes=data.axes.replace(POSITION_AXIS, ""),
        channel_axis=channel_axis,
        scale=scale,
        metadata={**dict(data.metadata), "position": int(position)},
    )


def _read_position(path: Path, dataset: str | None, axes: str, position: int | None) -> StackData:
    """One position of an HDF5 or TIFF file whose ``--axes`` hold ``P``, read into memory."""
    raw, close = _raw_array(path, dataset)
    try:
        letters = normalise_axes(axes, len(raw.shape), what="--axes")
        p = letters.index(POSITION_AXIS)
        n = int(raw.shape[p])
        if position is None:
            if n != 1:
                raise ValueError(f"{path.name} holds {n} positions: give -o a folder, each position is written there.")
            position = 0
        if not 0 <= position < n:
            raise ValueError(f"{path.name} has {n} positions (0-{n - 1}): there is no position {position}.")
        frames = np.asarray(raw[(slice(None),) * p + (int(position),)])
    finally:
        close()
    rest = letters.replace(POSITION_AXIS, "")
    plan = plan_axes(rest, frames.shape, source=f"{path.name} position {position}")
    stack = plan.apply(frames)
    return StackData(
        data=stack,
        axes=plan.out_axes,
        channel_axis=plan.channel_axis,
        metadata={"position": int(position)},
        path=path,
        lazy=False,
    )


def _raw_array(path: Path, dataset: str | None) -> tuple[Any, Any]:
    """The stored array of an HDF5 dataset (opened, not read) or a TIFF's first series, and how to close it."""
    suffix = path.suffix.lower()
    if suffix in HDF5_SUFFIXES:
        import h5py

        fh = h5py.File(path, "r")
        try:
            name = dataset or _only_dataset(fh, path)
            return fh[name], fh.close
        except Exception:
            fh.close()
            raise
    if suffix in TIFF_SUFFIXES:
        import tifffile

        return tifffile.imread(path), lambda: None
    raise ValueError(f"{path.name}: a P axis named by --axes can be read from HDF5 and TIFF files only.")


def _only_dataset(fh: Any, path: Path) -> str:
    """``image_data``, or the only numeric dataset with 3 or more dimensions."""
    if "image_data" in fh:
        return "image_data"
    found: list[str] = []
    fh.visititems(lambda name, obj: found.append(name) if getattr(obj, "ndim", 0) >= 3 else None)
    if len(found) != 1:
        raise ValueError(
            f"{path.name} holds {len(found)} candidate datasets ({', '.join(found)}): name one with --dataset."
        )
    return found[0]
