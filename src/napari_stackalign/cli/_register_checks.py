"""The checks of ``stackalign register`` that only the command line makes.

The files (output format from the extension and ``--save_as_tif``, nothing
overwritten by accident, the input never the output), the mask file, and
the ROI against the frame once it is known. The options' own values are
checked by :class:`~napari_stackalign.core.pyramid.PyramidOptions`.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tifffile

from ..core.checks import check_mask, check_roi
from ..core.pyramid import PyramidOptions
from ..io import TIFF_SUFFIXES, WRITE_SUFFIXES, same_file
from ..io._formats import suffix_of
from ..io._zarr import ZARR_WRITE_SUFFIXES
from ._register_common import RegisterPaths
from ._safety import Output, check_outputs

__all__ = ["check_paths", "read_mask", "resolve_output_format", "with_region"]

#: the HDF5 extensions the output may have
HDF5_SUFFIXES = tuple(s for s in WRITE_SUFFIXES if s not in TIFF_SUFFIXES + ZARR_WRITE_SUFFIXES)
#: extensions of files that are surely not the output stack (a table, an image, a HyperSpy file)
NOT_OUTPUT_SUFFIXES = (".csv", ".json", ".png", ".gif", ".jpg", ".jpeg", ".hspy")


def resolve_output_format(output: str | os.PathLike, save_as_tif: int | None) -> tuple[Path, str, str | None]:
    """Decide the output file and format from OUT's extension and ``--save_as_tif``.

    Returns
    -------
    (path, fmt, note)
        ``fmt`` is ``"tiff"``, ``"hdf5"`` or ``"zarr"`` (an OME-Zarr folder); ``note`` tells the user about a
        file name that was completed (None otherwise).

    Raises
    ------
    ValueError
        When the extension and ``--save_as_tif`` disagree, or the extension
        is neither TIFF nor HDF5.
    """
    if not str(output).strip():
        raise ValueError("-o: the output name is empty: give a file name ending in .h5 or .tif.")
    path = Path(output).expanduser()
    if suffix_of(path) in ZARR_WRITE_SUFFIXES:
        if save_as_tif is not None:
            raise ValueError(
                f"--save_as_tif {save_as_tif} does not apply to the OME-Zarr output {path.name}: drop the flag "
                "(the extension decides)."
            )
        return Path(str(output).rstrip("/" + os.sep)).expanduser(), "zarr", None
    if str(output).endswith(("/", os.sep)) or path.is_dir():
        raise ValueError(f"-o {path} is a folder: give a file name ending in .h5 or .tif, e.g. {path / 'out.h5'}.")
    suffix = path.suffix.lower()
    if suffix in TIFF_SUFFIXES or suffix in HDF5_SUFFIXES:
        fmt = "tiff" if suffix in TIFF_SUFFIXES else "hdf5"
        if save_as_tif is not None and (save_as_tif == 1) != (fmt == "tiff"):
            wanted = "TIFF" if save_as_tif == 1 else "HDF5"
            fix = ".tif" if save_as_tif == 1 else ".h5"
            raise ValueError(
                f"--save_as_tif {save_as_tif} asks for {wanted} but the output {path.name} is "
                f"{'TIFF' if fmt == 'tiff' else 'HDF5'} by its extension: name the output *{fix}, "
                "or drop --save_as_tif (the extension decides)."
            )
        return path, fmt, None
    if suffix:  # an unknown extension is refused (out.npy never becomes out.npy.h5)
        raise ValueError(
            f"the output {path.name} must be a TIFF (.tif, .tiff) or HDF5 (.h5, .hdf5, .hd5) file or an OME-Zarr "
            f"folder (.ome.zarr), not {suffix}: "
            f"name it {path.stem}.h5 or {path.stem}.tif."
        )
    fmt = "tiff" if save_as_tif == 1 else "hdf5"
    completed = Path(str(path) + (".tif" if fmt == "tiff" else ".h5"))
    note = f"the output name has no TIFF or HDF5 extension: writing {fmt.upper()} to {completed}"
    return completed, fmt, note


def check_paths(args: argparse.Namespace, say: Callable[..., None]) -> RegisterPaths:
    """Check the files of a run before anything is read (``say`` tells about a completed output name).

    Raises
    ------
    FileNotFoundError
        When the input does not exist.
    ValueError
        When the output is the input, a file would be replaced without
        ``--overwrite``, the table is not ``.csv``/``.json``, or the
        compression does not exist for the output's format.
    """
    in_path = Path(args.input).expanduser()
    out_path, fmt, note = resolve_output_format(args.output, args.save_as_tif)
    if note:
        say(f"stackalign register: {note}")
    if not in_path.exists():
        raise FileNotFoundError(f"input {in_path} does not exist: check the path.")
    if same_file(in_path, out_path) or in_path.resolve() == out_path.resolve():
        raise ValueError(
            f"the output {out_path} is the input file: choose another output name (the input is never overwritten)."
        )
    if out_path.exists() and not args.overwrite:
        raise ValueError(f"{out_path} already exists: pass --overwrite to replace it, or choose another name.")
    table = Path(args.transforms).expanduser() if args.transforms else None
    if table is not None:
        if table.suffix.lower() not in (".csv", ".json"):
            raise ValueError(f"--transforms {table.name}: the table is written as .csv (or .json); name it *.csv.")
        if table.resolve() in (in_path.resolve(), out_path.resolve()):
            raise ValueError("--transforms must name a file other than the input and the output.")
        if table.exists() and not args.overwrite:
            raise ValueError(f"{table} already exists: pass --overwrite to replace it, or choose another name.")
    if args.compression == "lzf" and fmt in ("tiff", "zarr"):
        raise ValueError(
            f"--compression lzf exists for HDF5 output only: use zlib (or none) for {'TIFF' if fmt == 'tiff' else 'OME-Zarr'}."
        )
    outputs = [Output("-o", str(out_path), TIFF_SUFFIXES + HDF5_SUFFIXES + ZARR_WRITE_SUFFIXES)]
    outputs.append(Output("--transforms", args.transforms, (".csv", ".json")))
    check_outputs([in_path, args.mask, args.apply_transforms], outputs, overwrite=args.overwrite, say=say)
    return RegisterPaths(input=in_path, output=out_path, fmt=fmt, table=table)


def read_mask(path: str | os.PathLike, shape: tuple[int, int]) -> np.ndarray:
    """Read a 2-D mask image the size of a frame: nonzero = compare.

    Raises
    ------
    FileNotFoundError
        When the file does not exist.
    ValueError
        When it is not a TIFF, not the size of a frame, or all zero.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"mask {path} does not exist: check the path.")
    try:
        image = np.squeeze(tifffile.imread(path))
    except Exception as exc:  # tifffile raises many types for non-TIFF files
        raise ValueError(f"cannot read the mask {path} as a TIFF image: {exc}") from exc
    try:
        return check_mask(image != 0, shape)
    except ValueError as exc:
        raise ValueError(
            f"--mask {path.name} (one 2-D image the size of a frame, nonzero = compared): {exc}"
        ) from exc


def with_region(options: PyramidOptions, mask_path: str | None, frame_shape: tuple[int, int]) -> PyramidOptions:
    """The options with the ROI checked against the frame and the ``--mask`` file read.

    Raises
    ------
    ValueError
        When the ROI does not fit the frame or the mask file is not a mask of it.
    """
    if options.roi is not None:
        try:
            check_roi(options.roi, frame_shape)
        except ValueError as exc:
            raise ValueError(f"--roi: {exc}") from exc
    if mask_path is None:
        return options
    return options.replace(mask=read_mask(mask_path, frame_shape))
