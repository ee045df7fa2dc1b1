"""The public entry points: :func:`read_stack` and :func:`write_stack`."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..files import atomic_folder, atomic_path, check_writable_dir
from ..layouts import CHANNEL_STACK_AXES, STACK_AXES
from ..parsing import parse_byte_size
from ..progress import ProgressCallback
from ..textfiles import check_regular_file
from ..transforms import FrameTransforms
from ._asd import read_asd
from ._bioio import read_bioio
from ._folder import FRAME_SUFFIXES, frame_files, frame_kind, read_frames
from ._formats import (
    ASD_SUFFIXES,
    BIOIO_SUFFIXES,
    IMAGE_SUFFIXES,
    INPUT_FORMATS,
    OME_TIFF_SUFFIXES,
    RSCIIO_SUFFIXES,
    find_spec_safe,
    is_ome_zarr,
    suffix_of,
)
from ._gif import GIF_SUFFIXES, read_gif
from ._hdf5 import HDF5_SUFFIXES, read_hdf5, write_hdf5
from ._images import read_image_file
from ._lazy import MEMORY_FRACTION, check_memory_fraction, fraction_for_max_memory, process_memory
from ._meta import (
    SOURCE_KEY,
    check_transforms_length,
    jsonable,
    make_block,
    normalise_unit,
    per_axis_scale,
)
from ._rsciio import read_rsciio
from ._stackdata import StackData
from ._tiff import TIFF_SUFFIXES, open_tiff, read_tiff, write_tiff
from ._zarr import ZARR_WRITE_SUFFIXES, restore_zarr_block, write_ome_zarr

__all__ = ["COMPRESSIONS", "READ_SUFFIXES", "WRITE_SUFFIXES", "read_stack", "same_file", "write_stack"]

#: File extensions :func:`read_stack` understands (plus folders of frames and OME-Zarr folders);
#: see :data:`~napari_stackalign.io.INPUT_FORMATS` for the library and extra of each.
READ_SUFFIXES = tuple(dict.fromkeys(suffix for fmt in INPUT_FORMATS for suffix in fmt.suffixes))
#: File extensions :func:`write_stack` writes.
WRITE_SUFFIXES = TIFF_SUFFIXES + (".h5", ".hdf5", ".hd5") + ZARR_WRITE_SUFFIXES
#: Accepted ``compression`` values of :func:`write_stack`.
COMPRESSIONS = ("auto", "none", "zlib", "deflate", "gzip", "lzf")

PathLike = str | os.PathLike


def _suffix_error(path: Path, allowed: Sequence[str], verb: str) -> ValueError:
    return ValueError(
        f"cannot {verb} {path.name}: unknown file extension {path.suffix or '(none)'!r}. "
        f"Use one of {', '.join(allowed)}" + (" or a folder of frames." if verb == "read" else ".")
    )


def read_stack(
    path: PathLike | Sequence[PathLike],
    *,
    dataset: str | None = None,
    axes: str | None = None,
    lazy: bool | None = None,
    memory_fraction: float = MEMORY_FRACTION,
    position: int | str | None = None,
    max_memory: int | str | None = None,
    volumes: bool = False,
) -> StackData:
    """Read a time series from a file or a folder of frames (formats: :data:`INPUT_FORMATS`, docs/formats.md).

    Parameters
    ----------
    path : str or path-like, or a sequence of them
        - A multi-page TIFF (plain, ImageJ hyperstack, or OME-TIFF). An
          OME-TIFF whose series all have one shape is read with bioio, the
          series stacked along a ``P`` (position) axis; otherwise its first
          series (with a warning when there are more).
        - An HDF5 file (``.h5``, ``.hdf5``, ``.hd5``, HyperSpy ``.hspy``):
          the dataset ``image_data`` if present, otherwise the only numeric
          dataset with 3 or more dimensions, otherwise the one named by
          ``dataset``. A ``metadata`` group's attributes (JSON text) become
          :attr:`StackData.metadata`; a ``transforms`` group becomes
          :attr:`StackData.transforms`.
        - An animated GIF or PNG (always read into memory).
        - Electron microscopy, with RosettaSciIO (extra ``em``): Digital
          Micrograph ``.dm3``/``.dm4``, EMD ``.emd`` (Velox, Berkeley), FEI
          TIA ``.ser``/``.emi``, ``.mrc``. Pixel size, unit and metadata are
          kept.
        - High-speed AFM ``.asd`` movies, with libasd (extra ``afm``):
          heights in nm, pixel size from the scanning range.
        - Light microscopy, with bioio (extra ``bio``): ``.nd2``, ``.czi``,
          ``.lif``, OME-TIFF and OME-Zarr (a ``.zarr`` folder). Several
          scenes (positions) of one shape become a leading ``P`` axis.
        - A folder of single-frame TIFF, PNG, JPEG or BMP files, stacked in
          natural order (``frame2`` before ``frame10``), or a list of such
          files (in the order given).
    dataset : str, optional
        HDF5: path of the dataset inside the file (e.g. ``"imaging"`` or
        ``"Experiments/movie/data"``). EM files read with RosettaSciIO: the
        title or index of the signal (e.g. one detector of a Velox file).
        Needed when several qualify; the error then lists them.
    axes : str, optional
        The file's axis order when the file does not say it or says it wrong,
        one letter per dimension of the stored array: ``T`` time, ``C``
        channel, ``Y`` rows, ``X`` columns (``Z`` for depth, ``P`` for
        positions). For example an HDF5 dataset stored as (rows, cols,
        frames) is read with ``axes="YXT"``. Without it the order comes from
        the file (TIFF axes, HDF5 dimension labels or an ``axes`` attribute,
        HyperSpy and RosettaSciIO axes, bioio dimensions); an unlabelled 3-D
        HDF5 dataset is taken as (T, Y, X), with a warning when its shape
        makes that doubtful.
    lazy : bool, optional
        True: return a dask array chunked by frames that reads on demand
        (the file stays open; see :meth:`StackData.close`). False: read
        everything into memory. None (default): lazy when the uncompressed
        stack is larger than ``memory_fraction`` of this machine's RAM.
    memory_fraction : float
        Share of RAM (0 < f <= 1) above which ``lazy=None`` opens lazily.
    position : int or str, optional
        Files read with bioio (``.nd2``, ``.czi``, ``.lif``, OME-TIFF,
        OME-Zarr): read one scene (position), by index or name, instead of
        all of them along a ``P`` axis.
    max_memory : int or str, optional
        The memory (bytes, or a text such as ``"2G"``, ``"500M"``) the work on
        the stack may use in all, this process included. With ``lazy=None``
        it replaces ``memory_fraction``: the stack is loaded whole only when
        ``LOADED_COPIES`` copies of it (the input and a result of the same
        size) fit beside what the process uses already; otherwise it is
        opened lazily, and streamed by the code that works on it.
    volumes : bool
        Read volumes over time (a ``Z`` axis next to the time axis: an ImageJ
        hyperstack, an OME-TIFF, an HDF5 dataset with ``axes="TZYX"``, ...)
        as (T, Z, Y, X) or (T, C, Z, Y, X) (``axes`` "TZYX" / "TCZYX"; the
        Z step is in ``scale``, from ImageJ's ``spacing``). TIFF and HDF5
        only. Off by default: a volume is then refused, so 2-D code never
        takes its planes for channels.

    Returns
    -------
    StackData
        ``data`` is (T, Y, X) or (T, C, Y, X) (``channel_axis`` 1), or with a
        leading position axis (P, T, Y, X) or (P, T, C, Y, X) (``channel_axis``
        2) for multi-position files; :attr:`StackData.axes` says which. With
        the pixel size, units, metadata and transforms the file holds.

    Raises
    ------
    ValueError
        For a single 2-D image (a time series is needed), a volume over time
        (not supported: pick a plane), truncated or corrupt files, an HDF5 file
        without a usable dataset (or with several: the message lists them),
        an unknown extension, or bad options. Each message says what to do.
    ImportError
        When the library a format needs is not installed; the message names
        the extra to install (``pip install "napari-stackalign[em]"``).
    FileNotFoundError
        When ``path`` does not exist.
    """
    check_memory_fraction(memory_fraction)
    if lazy not in (None, True, False):
        raise ValueError(f"lazy must be True, False or None (decide by size), got {lazy!r}.")
    if max_memory is not None and lazy is None:
        fraction = fraction_for_max_memory(parse_byte_size(max_memory, what="max_memory"), process_memory())
        if fraction <= 0.0:
            lazy = True
        else:
            memory_fraction = fraction
    if not isinstance(path, (str, os.PathLike)):
        paths = [Path(p).expanduser() for p in path]
        if not paths:
            raise ValueError("no files given: pass a file, a folder or a list of frame files.")
        if len(paths) > 1:
            _reject_dataset(dataset, paths[0])
            _reject_position(position, paths[0])
            _check_frame_list(paths)
            result = read_frames(paths, source=paths[0].parent, axes=axes, lazy=lazy, memory_fraction=memory_fraction)
            return _checked(result)
        path = paths[0]
    path = Path(path).expanduser()
    _check_exists(path)
    if path.is_dir():
        if is_ome_zarr(path):
            _reject_dataset(dataset, path)
            result = read_bioio(path, position=position, axes=axes, lazy=lazy, memory_fraction=memory_fraction)
            return _checked(restore_zarr_block(result, path))
        _reject_dataset(dataset, path)
        _reject_position(position, path)
        return _checked(
            read_frames(frame_files(path), source=path, axes=axes, lazy=lazy, memory_fraction=memory_fraction)
        )
    suffix = suffix_of(path)
    if suffix in BIOIO_SUFFIXES or (suffix in OME_TIFF_SUFFIXES and _read_ome_with_bioio(path, position)):
        _reject_dataset(dataset, path)
        return _checked(read_bioio(path, position=position, axes=axes, lazy=lazy, memory_fraction=memory_fraction))
    _reject_position(position, path)
    if suffix in OME_TIFF_SUFFIXES:
        suffix = path.suffix.lower()
    if suffix in HDF5_SUFFIXES:
        result = read_hdf5(
            path, dataset=dataset, axes=axes, lazy=lazy, memory_fraction=memory_fraction, volumes=volumes
        )
    elif suffix in TIFF_SUFFIXES:
        _reject_dataset(dataset, path)
        result = read_tiff(path, axes=axes, lazy=lazy, memory_fraction=memory_fraction, volumes=volumes)
    elif suffix in RSCIIO_SUFFIXES:
        result = read_rsciio(path, dataset=dataset, axes=axes, lazy=lazy, memory_fraction=memory_fraction)
    elif suffix in GIF_SUFFIXES:
        _reject_dataset(dataset, path)
        if axes is not None:
            raise ValueError(f"axes= does not apply to GIF files (they are always {STACK_AXES} or RGB).")
        result = read_gif(path)
    elif suffix in IMAGE_SUFFIXES:
        _reject_dataset(dataset, path)
        result = read_image_file(path, axes=axes)
    elif suffix in ASD_SUFFIXES:
        _reject_dataset(dataset, path)
        result = read_asd(path, axes=axes)
    else:
        raise _suffix_error(path, READ_SUFFIXES, "read")
    return _checked(result)


def _check_frame_list(paths: list[Path]) -> None:
    """A list of files is one frame per file: TIFF, PNG, JPEG or BMP, all of one type."""
    for p in paths:
        _check_exists(p)
        if p.suffix.lower() not in FRAME_SUFFIXES or p.is_dir():
            raise ValueError(
                f"a list of files is read as one frame per file, which works for TIFF, PNG, JPEG and BMP frames "
                f"only; {p.name} is not one. Open it on its own."
            )
    kinds = {frame_kind(p) for p in paths}
    if len(kinds) > 1:
        raise ValueError(
            f"the list mixes frame types ({', '.join(sorted(kinds))}): give files of one type, one frame each."
        )


def _read_ome_with_bioio(path: Path, position: int | str | None) -> bool:
    """Whether an ``.ome.tif`` goes to bioio: a ``position`` was asked for, or it holds several series of one
    shape (a P axis). Otherwise tifffile reads its first series (warning when there are others)."""
    if position is not None:
        return True
    with open_tiff(path) as tif:
        series = [(tuple(s.shape), s.dtype, s.axes) for s in tif.series] if tif.is_ome else []
    if len(series) < 2:
        return False
    if len(set(series)) == 1:
        if find_spec_safe("bioio") and find_spec_safe("bioio_ome_tiff"):
            return True
        hint = 'install the bio extra (pip install "napari-stackalign[bio]") to read all of them as a P axis'
    else:
        hint = "pass position=INDEX to read another one"
    warnings.warn(
        f"{path.name} holds {len(series)} OME series; only the first is read: {hint}.", UserWarning, stacklevel=4
    )
    return False


def _reject_position(position: int | str | None, path: Path) -> None:
    if position is not None:
        raise ValueError(
            f"position= applies to multi-position files read with bioio (.nd2, .czi, .lif, OME-TIFF, OME-Zarr), "
            f"not to {path.name}."
        )


def _check_exists(path: Path) -> None:
    """Missing: FileNotFoundError; a FIFO, socket or device (which could block forever): ValueError."""
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: check the path.")
    if not path.is_dir():
        check_regular_file(path, "stack file")


def _reject_dataset(dataset: str | None, path: Path) -> None:
    if dataset is not None:
        raise ValueError(f"dataset= applies to HDF5 files only (and to EM files read with rsciio), not to {path.name}.")


def _checked(result: StackData) -> StackData:
    if any(int(n) == 0 for n in result.data.shape):
        result.close()
        raise ValueError(f"{result.path} holds an empty stack (shape {result.shape}): there are no pixels to align.")
    return result


def _normalise_compression(compression: str | None, fmt: str) -> str | None:
    value = "none" if compression is None else str(compression).lower()
    if value not in COMPRESSIONS:
        raise ValueError(f"compression must be one of {COMPRESSIONS} or None, got {compression!r}.")
    if value == "auto":
        return None if fmt == "tiff" else "zlib"
    if value == "lzf" and fmt == "zarr":
        raise ValueError("lzf compression exists for HDF5 only: use compression='zlib' for OME-Zarr.")
    if value in ("deflate", "gzip", "zlib"):
        return "zlib"
    if value == "lzf":
        if fmt == "tiff":
            raise ValueError("lzf compression exists for HDF5 only: use compression='zlib' for TIFF.")
        return "lzf"
    return None


def same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def _writable_data(data: Any) -> Any:
    if not hasattr(data, "shape") or not hasattr(data, "dtype") or not hasattr(data, "__getitem__"):
        data = np.asarray(data)
    dtype = np.dtype(data.dtype)
    if dtype.kind not in "uif":
        raise ValueError(
            f"cannot write data of type {dtype}: use an integer or floating-point stack "
            "(convert booleans to uint8 first)."
        )
    return data


def write_stack(
    path: PathLike,
    data: Any,
    *,
    metadata: Mapping | None = None,
    transforms: FrameTransforms | Mapping | None = None,
    scale: float | Sequence[float] | None = None,
    units: str | None = None,
    axes: str | None = None,
    overwrite: bool = False,
    force: bool = False,
    source_path: PathLike | None = None,
    compression: str | None = "auto",
    progress: ProgressCallback | None = None,
) -> Path:
    """Write a (T, Y, X) or (T, C, Y, X) stack to TIFF, HDF5 or OME-Zarr, atomically.

    The data are streamed chunk by chunk (numpy, memmap, h5py and dask
    inputs; a dask array is never computed whole) into a temporary file
    beside ``path``, which is renamed onto ``path`` only when complete: an
    error or a cancellation leaves any existing file untouched and no
    temporary file behind.

    Parameters
    ----------
    path : str or path-like
        Output file. ``.tif``/``.tiff``: an ImageJ-compatible hyperstack
        (axes, pixel size and unit in ImageJ's own fields). ImageJ holds only
        uint8, uint16, int16 and float32; other types (float64, int32, ...)
        and files over 4 GiB are written as plain (Big)TIFF, which
        tifffile-based readers and this package read back fully.
        ``.h5``/``.hdf5``/``.hd5``: dataset ``image_data`` chunked by frames
        and compressed, a ``metadata`` group and a ``transforms`` table.
        ``.ome.zarr``/``.zarr``: an OME-Zarr (NGFF 0.4) folder, one
        full-resolution level chunked per frame, axes with types and units
        and a ``scale`` transformation from the pixel size (TYX and TCYX
        only). Every format also stores metadata, scale, units and
        transforms as JSON (the TIFF description, the Zarr group's
        ``stackalign`` attribute) so :func:`read_stack` restores them.
    data : array_like or StackData
        Frames first. A :class:`StackData` also supplies the defaults of
        ``metadata``, ``transforms``, ``scale``, ``units``, ``axes`` and
        ``source_path``.
    metadata : mapping, optional
        JSON-serialisable metadata (numpy values are converted, other objects
        stored as text).
    transforms : FrameTransforms or dict, optional
        One transform per frame, stored as a table.
    scale : float or sequence of float, optional
        The pixel size (one number for rows and columns), a (row, col) pair,
        or one value per axis.
    units : str, optional
        Unit of the pixel size, e.g. ``"µm"`` or ``"nm"``.
    axes : {"TYX", "TCYX", "TZYX", "TCZYX"}, optional
        Default: ``"TYX"`` for 3-D data, ``"TCYX"`` for 4-D data. Volumes
        over time must be named (``"TZYX"``, ``"TCZYX"``); TIFF writes them
        as an ImageJ hyperstack (TZCYX order, the Z step as ``spacing``).
    overwrite : bool
        Replace an existing file. Without it, an existing ``path`` is refused.
    force : bool
        Also allow writing over ``source_path`` (implies ``overwrite``).
    source_path : str or path-like, optional
        The file the data was read from. Writing onto it is refused unless
        ``force=True``: save under a new name instead.
    compression : {"auto", "none", "zlib", "lzf"} or None
        ``"auto"``: none for TIFF (fast, memory-mappable, readable
        everywhere), gzip level 4 for HDF5. ``"zlib"`` (alias ``"deflate"``,
        ``"gzip"``) works for both; ``"lzf"`` for HDF5 only.
    progress : callable, optional
        ``progress(done, total, stage)`` called per chunk of frames; raising
        :class:`~napari_stackalign.Cancelled` from it stops the write and
        leaves no file behind.

    Returns
    -------
    pathlib.Path
        The written file.

    Raises
    ------
    ValueError
        For bad data (2-D image, volumes, unsupported type), an unknown
        extension, an existing file without ``overwrite``, the source file
        without ``force``, or an output folder that is missing or not
        writable; each message says what to do.
    """
    target = Path(path).expanduser()
    if isinstance(data, StackData):
        metadata = data.metadata if metadata is None else metadata
        transforms = data.transforms if transforms is None else transforms
        scale = data.scale if scale is None else scale
        units = data.units if units is None else units
        axes = data.axes if axes is None else axes
        if source_path is None and data.path is not None and Path(data.path).exists():
            source_path = data.path
        data = data.data
    fmt = _write_format(target)
    data = _writable_data(data)
    axes = _write_axes(data.shape, axes)
    transforms = _write_transforms(transforms, int(data.shape[0]))
    meta = _write_metadata(metadata)
    full_scale = per_axis_scale(scale, axes)
    units = normalise_unit(units)
    codec = _normalise_compression(compression, fmt)
    _check_target(target, source_path, overwrite=overwrite, force=force)

    _write_file(
        target,
        fmt,
        data,
        axes=axes,
        scale=full_scale,
        units=units,
        metadata=meta,
        transforms=transforms,
        compression=codec,
        progress=progress,
    )
    return target


def _write_file(
    target: Path,
    fmt: str,
    data: Any,
    *,
    axes: str,
    scale: tuple[float, ...] | None,
    units: str | None,
    metadata: dict,
    transforms: FrameTransforms | None,
    compression: str | None,
    progress: ProgressCallback | None,
) -> None:
    """Write the checked data into a temporary file renamed onto ``target`` when complete."""
    stage = f"writing {target.name}"
    if fmt == "zarr":
        with atomic_folder(target) as tmp:
            write_ome_zarr(
                tmp,
                data,
                axes=axes,
                scale=scale,
                units=units,
                metadata=metadata,
                transforms=transforms,
                compression=compression,
                progress=progress,
                stage=stage,
                name=target.name.removesuffix(".zarr").removesuffix(".ome"),
            )
        return
    with atomic_path(target) as tmp:
        if fmt == "tiff":
            block = make_block(axes=axes, scale=scale, units=units, metadata=metadata, transforms=transforms)
            write_tiff(
                tmp,
                data,
                axes=axes,
                scale=scale,
                units=units,
                block=block,
                compression=compression,
                progress=progress,
                stage=stage,
            )
        else:
            write_hdf5(
                tmp,
                data,
                axes=axes,
                scale=scale,
                units=units,
                metadata=metadata,
                transforms=transforms,
                compression=compression,
                progress=progress,
                stage=stage,
            )


def _write_format(target: Path) -> str:
    """``"tiff"``, ``"hdf5"`` or ``"zarr"``, from the file extension."""
    suffix = target.suffix.lower()
    if suffix_of(target) in ZARR_WRITE_SUFFIXES:
        return "zarr"
    if suffix in TIFF_SUFFIXES:
        return "tiff"
    if suffix in WRITE_SUFFIXES:
        return "hdf5"
    raise _suffix_error(target, WRITE_SUFFIXES, "write")


def _write_axes(shape: tuple[int, ...], axes: str | None) -> str:
    """The axes to write (``"TYX"`` or ``"TCYX"``), checked against the data's shape."""
    ndim = len(shape)
    if ndim == 2:
        raise ValueError(
            f"data is a single 2-D image, not a time series: write_stack needs {STACK_AXES} or "
            f"{CHANNEL_STACK_AXES} frames."
        )
    if axes is None:
        if ndim not in (3, 4):
            raise ValueError(
                f"data has {ndim} dimensions: write_stack needs {STACK_AXES} or {CHANNEL_STACK_AXES}, or volumes "
                "over time named with axes='TZYX' or 'TCZYX'."
            )
        axes = "TYX" if ndim == 3 else "TCYX"
    axes = str(axes).upper()
    if axes not in ("TYX", "TCYX", "TZYX", "TCZYX"):
        hint = " (a multi-position stack: write one position at a time, e.g. stack.position(p))" if axes.startswith("P") else ""
        raise ValueError(
            f"axes must be 'TYX', 'TCYX' or, for volumes over time, 'TZYX' or 'TCZYX', got {axes!r}{hint}."
        )
    if len(axes) != ndim:
        raise ValueError(f"axes={axes!r} needs {len(axes)}-D data but the data has shape {tuple(shape)}.")
    if any(int(n) == 0 for n in shape):
        raise ValueError(f"data is empty (shape {tuple(shape)}): nothing to write.")
    return axes


def _write_transforms(transforms: FrameTransforms | Mapping | None, n_frames: int) -> FrameTransforms | None:
    """``transforms`` as a :class:`FrameTransforms` of ``n_frames`` (or None)."""
    if transforms is None:
        return None
    if not isinstance(transforms, FrameTransforms):
        transforms = FrameTransforms.from_dict(dict(transforms))
    check_transforms_length(transforms, n_frames, source="write_stack")
    return transforms


def _write_metadata(metadata: Mapping | None) -> dict:
    """The metadata as JSON-ready values, without the reader's source path."""
    if metadata is not None and not isinstance(metadata, Mapping):
        raise ValueError(f"metadata must be a dict, got {type(metadata).__name__}.")
    return {k: v for k, v in jsonable(dict(metadata or {})).items() if k != SOURCE_KEY}


def _check_target(target: Path, source_path: PathLike | None, *, overwrite: bool, force: bool) -> None:
    """Refuse a missing or read-only folder, a folder as target, the source file and (without
    ``overwrite``) an existing file."""
    check_writable_dir(target)
    if suffix_of(target) in ZARR_WRITE_SUFFIXES:
        _check_folder_target(target, source_path, overwrite=overwrite, force=force)
        return
    if target.is_dir():
        raise ValueError(f"{target} is a folder: give a file name ending in {target.suffix.lower()}.")
    if source_path is not None and same_file(target, Path(source_path).expanduser()) and not force:
        raise ValueError(
            f"refusing to write over {target}: it is the file this data was read from. Save under a new "
            "name (recommended), or pass force=True to replace it."
        )
    if target.exists() and not (overwrite or force):
        raise ValueError(f"{target} already exists: pass overwrite=True to replace it, or choose another name.")


def _check_folder_target(target: Path, source_path: PathLike | None, *, overwrite: bool, force: bool) -> None:
    """An OME-Zarr output is a folder: refuse a file in its place, the source, and (without ``overwrite``)
    an existing folder; a folder that is not a Zarr is never replaced."""
    if target.exists() and not target.is_dir():
        raise ValueError(f"{target} is a file, not an OME-Zarr folder: remove it or choose another name.")
    if source_path is not None:
        source = Path(source_path).expanduser()
        if same_file(target, source) or (target.exists() and source.resolve().is_relative_to(target.resolve())):
            if not force:
                raise ValueError(
                    f"refusing to write over {target}: it holds the data being written. Save under a new name "
                    "(recommended), or pass force=True to replace it."
                )
            raise ValueError(
                f"cannot replace {target} with data read from it: the data would be removed while it is read. "
                "Save under a new name."
            )
    if target.exists():
        if not (overwrite or force):
            raise ValueError(f"{target} already exists: pass overwrite=True to replace it, or choose another name.")
        if not is_ome_zarr(target) or not ((target / ".zattrs").is_file() or (target / "zarr.json").is_file()):
            raise ValueError(f"{target} is a folder that is not a Zarr: it is not replaced. Choose another name.")
