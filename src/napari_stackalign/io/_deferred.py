"""Writing a stack whose metadata, transforms and some frames are known only at the end.

The single-read streaming registration (``core.pyramid.register_file``)
warps and writes each chunk as soon as it is estimated, but the transforms
table, the parameters and (rarely) a few frames whose stack-wide verdict
changed are only final once the last frame is in. :func:`write_stack_deferred`
streams the frames into the temporary file as :func:`~napari_stackalign.io.write_stack`
does, then asks ``finish()`` for the final metadata, transforms and frames to
rewrite, and stores them in the same temporary file before it is renamed:

- HDF5: the frames are rewritten in ``image_data`` and the ``metadata`` group
  and ``transforms`` table replaced (written last in any case);
- TIFF (uncompressed): the frames are overwritten in place and the
  description holding the block is replaced (in place, or appended to the
  file with the tag pointing there).

An error or a cancellation at any point leaves no output and no temporary
file, as with :func:`~napari_stackalign.io.write_stack`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..files import atomic_path
from ..progress import ProgressCallback
from ..transforms import FrameTransforms
from ._api import (
    _check_target,
    _normalise_compression,
    _writable_data,
    _write_axes,
    _write_format,
    _write_metadata,
    _write_transforms,
)
from ._hdf5 import update_hdf5, write_hdf5
from ._meta import make_block, normalise_unit, per_axis_scale
from ._tiff import update_tiff, write_tiff

__all__ = ["FinalWrite", "can_write_deferred", "write_stack_deferred"]


@dataclass
class FinalWrite:
    """What :func:`write_stack_deferred`'s ``finish()`` returns once every frame is written.

    Attributes
    ----------
    metadata : mapping, optional
        The final metadata (replaces what was written).
    transforms : FrameTransforms, optional
        The final transforms table.
    patches : iterable of (int, ndarray)
        ``(start, frames)`` blocks that replace frames already written (in
        order; read lazily, so they can be computed one block at a time).
    """

    metadata: Mapping | None
    transforms: FrameTransforms | None
    patches: Iterable[tuple[int, np.ndarray]] = field(default_factory=tuple)


def can_write_deferred(path: str | Path, compression: str | None, ndim: int) -> bool:
    """Whether :func:`write_stack_deferred` can write this output: HDF5 (any compression)
    or uncompressed TIFF, of (T, Y, X) or (T, C, Y, X) frames (OME-Zarr and compressed
    TIFF cannot be rewritten in place)."""
    try:
        fmt = _write_format(Path(path))
        codec = _normalise_compression(compression, fmt)
    except ValueError:
        return False
    return ndim in (3, 4) and (fmt == "hdf5" or (fmt == "tiff" and codec is None))


def write_stack_deferred(
    path: str | Path,
    data: Any,
    finish: Callable[[], FinalWrite],
    *,
    metadata: Mapping | None = None,
    scale: Any = None,
    units: str | None = None,
    axes: str | None = None,
    overwrite: bool = False,
    source_path: str | Path | None = None,
    compression: str | None = "auto",
    progress: ProgressCallback | None = None,
) -> tuple[Path, int]:
    """Stream ``data`` into ``path``, then store what ``finish()`` returns, atomically.

    Parameters
    ----------
    path : str or path-like
        ``.h5``/``.hdf5``/``.hd5`` or uncompressed ``.tif``/``.tiff``
        (see :func:`can_write_deferred`).
    data : array-like (T, Y, X) or (T, C, Y, X)
        Frames first, read ``data[a:b]`` in order.
    finish : callable
        Called once every frame is written; returns a :class:`FinalWrite`.
    metadata, scale, units, axes, overwrite, source_path, compression, progress
        As for :func:`~napari_stackalign.io.write_stack`; ``metadata`` is
        what is written first (``finish()`` gives the final one).

    Returns
    -------
    (path, rewritten)
        The file written and the number of frames ``finish()`` rewrote.

    Raises
    ------
    ValueError
        As :func:`~napari_stackalign.io.write_stack` does, and for an output
        that cannot be rewritten in place (OME-Zarr, compressed TIFF).
    """
    target = Path(path).expanduser()
    fmt = _write_format(target)
    data = _writable_data(data)
    axes = _write_axes(data.shape, axes)
    codec = _normalise_compression(compression, fmt)
    if not can_write_deferred(target, compression, len(data.shape)) or axes not in ("TYX", "TCYX"):
        raise ValueError(
            f"{target.name}: frames can be rewritten in place in HDF5 and uncompressed TIFF files of "
            "(T, Y, X) or (T, C, Y, X) frames only."
        )
    meta = _write_metadata(metadata)
    full_scale = per_axis_scale(scale, axes)
    units = normalise_unit(units)
    _check_target(target, source_path, overwrite=overwrite, force=False)
    stage = f"writing {target.name}"
    n_frames = int(data.shape[0])
    with atomic_path(target) as tmp:
        if fmt == "tiff":
            first = make_block(axes=axes, scale=full_scale, units=units, metadata=meta, transforms=None)
            write_tiff(
                tmp,
                data,
                axes=axes,
                scale=full_scale,
                units=units,
                block=first,
                compression=None,
                progress=progress,
                stage=stage,
            )
        else:
            write_hdf5(
                tmp,
                data,
                axes=axes,
                scale=full_scale,
                units=units,
                metadata=meta,
                transforms=None,
                compression=codec,
                progress=progress,
                stage=stage,
            )
        final = finish()
        final_meta = _write_metadata(final.metadata)
        transforms = _write_transforms(final.transforms, n_frames)
        if fmt == "tiff":
            block = make_block(axes=axes, scale=full_scale, units=units, metadata=final_meta, transforms=transforms)
            rewritten = update_tiff(tmp, final.patches, block=block, written_block=first)
        else:
            rewritten = update_hdf5(tmp, final.patches, metadata=final_meta, transforms=transforms)
    return target, rewritten
