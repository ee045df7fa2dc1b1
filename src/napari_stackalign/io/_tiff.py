"""TIFF reading (plain multi-page, ImageJ hyperstack, OME-TIFF first series) and writing."""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import struct
from pathlib import Path
from typing import Any, NamedTuple

import dask
import dask.array as da
import numpy as np
import tifffile

from ..files import jsonable
from ..progress import ProgressCallback, report
from ..textfiles import check_regular_file
from ._axes import plan_axes
from ._incomplete import beyond_end, incomplete_error
from ._lazy import (
    FrameReader,
    decide_lazy,
    frame_chunked_dask,
    frames_per_chunk,
    iter_frame_chunks,
    lazy_array,
)
from ._meta import BLOCK_KEY, block_transforms, normalise_unit, parse_block
from ._stackdata import StackData

__all__ = ["IMAGEJ_DTYPES", "TIFF_SUFFIXES", "TiffHeader", "open_tiff", "read_tiff", "tiff_header", "update_tiff", "write_tiff"]

TIFF_SUFFIXES = (".tif", ".tiff")
#: dtypes an ImageJ hyperstack can hold; others are written as plain TIFF.
IMAGEJ_DTYPES = frozenset(np.dtype(t) for t in (np.uint8, np.uint16, np.int16, np.float32))
#: above this size a file is written as BigTIFF (plain TIFF, not ImageJ).
BIGTIFF_BYTES = 2**32 - 2**25
# ImageJ bookkeeping keys that are not worth keeping as metadata
_IJ_SKIP = {
    "ImageJ",
    "images",
    "channels",
    "slices",
    "frames",
    "hyperstack",
    "mode",
    "loop",
    "unit",
    "min",
    "max",
    "spacing",
    "finterval",
    "Ranges",
    "LUTs",
    "Labels",
    "Properties",
    "Overlays",
    "ROI",
    "Plot",
    BLOCK_KEY,
}
_TO_MICRONS = {"µm": 1.0, "nm": 1e-3, "mm": 1e3, "cm": 1e4, "m": 1e6}


def _corrupt(path: Path, exc: BaseException, what: str = "TIFF") -> ValueError:
    return ValueError(
        f"cannot read {path}: it is not a valid {what} file or it is truncated/corrupt ({exc}). "
        "Check the file (copy or export it again)."
    )


# tifffile logs (rather than raises) these when the chain of image directories is
# damaged, e.g. in a truncated copy; pages are then silently missing, so we raise.
_STRUCTURE_ERRORS = (
    "invalid page offset",
    "invalid offset to page",
    "corrupted tag list",
    "corrupted IFD",
    "circular reference",
)


class _StructureErrors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if any(key in message for key in _STRUCTURE_ERRORS):
            self.messages.append(message)


def _unreadable(path: Path, exc: BaseException) -> ValueError:
    """A truncated file (an offset beyond its end) or a corrupt one."""
    message = str(exc)
    if isinstance(exc, EOFError) or beyond_end(path, message):
        return incomplete_error(path, f"it ends before the image data its header points to: {message}")
    return _corrupt(path, exc)


def open_tiff(path: Path) -> tifffile.TiffFile:
    """Open a TIFF file and parse its first series, turning format errors into a clear ValueError
    (a truncated file, one still being written, a FIFO or device: each said so)."""
    path = check_regular_file(path, "TIFF file")
    log = logging.getLogger("tifffile")
    catcher = _StructureErrors()
    log.addHandler(catcher)
    tif = None
    try:
        tif = tifffile.TiffFile(path)
        series = tif.series
        if series:
            len(series[0].pages)  # walks the page chain of the first series
    except (tifffile.TiffFileError, ValueError, struct.error, IndexError, EOFError, KeyError) as exc:
        if tif is not None:
            tif.close()
        raise _unreadable(path, exc) from exc
    finally:
        log.removeHandler(catcher)
    if catcher.messages:
        tif.close()
        raise _unreadable(path, RuntimeError(catcher.messages[0].split("> ", 1)[-1]))
    if not series:
        tif.close()
        raise ValueError(f"cannot read {path}: the TIFF file holds no image data.")
    return tif


class TiffHeader(NamedTuple):
    """What a TIFF's first series holds, read from its header only."""

    shape: tuple[int, ...]
    dtype: np.dtype
    axes: str
    metadata: dict
    pixel_size: tuple[float, float] | None
    units: str | None


def tiff_header(path: Path, *, with_metadata: bool = True) -> TiffHeader:
    """Shape, dtype, axes (and calibration) of a TIFF's first series, without reading pixels."""
    with open_tiff(path) as tif:
        series = tif.series[0]
        metadata: dict = {}
        pixel_size = units = None
        if with_metadata:
            metadata, scale_by_axis, units, _ = _tiff_metadata(tif, series)
            if "Y" in scale_by_axis and "X" in scale_by_axis:
                pixel_size = (scale_by_axis["Y"], scale_by_axis["X"])
            else:
                units = None
        return TiffHeader(
            tuple(int(n) for n in series.shape), np.dtype(series.dtype), series.axes, metadata, pixel_size, units
        )


def _resolution(page: Any) -> tuple[float, float] | None:
    """(row, col) pixel size in the file's resolution unit, from the resolution tags."""
    tags = page.tags
    if "XResolution" not in tags or "YResolution" not in tags:
        return None
    try:
        xn, xd = tags["XResolution"].value
        yn, yd = tags["YResolution"].value
    except (TypeError, ValueError):
        return None
    if not (xn and yn and xd and yd):
        return None
    return float(yd) / float(yn), float(xd) / float(xn)


def _ome_info(tif: tifffile.TiffFile) -> tuple[dict, dict[str, float], str | None]:
    try:
        tree = tifffile.xml2dict(tif.ome_metadata)
    except (ValueError, SyntaxError, KeyError, TypeError):  # malformed XML: keep the pixels, drop the calibration
        return {}, {}, None
    image = tree.get("OME", {}).get("Image", {})
    if isinstance(image, list):
        image = image[0] if image else {}
    pixels = image.get("Pixels", {}) if isinstance(image, dict) else {}
    scale: dict[str, float] = {}
    units = None
    if pixels.get("PhysicalSizeX") and pixels.get("PhysicalSizeY"):
        units = normalise_unit(pixels.get("PhysicalSizeXUnit", "µm")) or "µm"
        scale["X"] = float(pixels["PhysicalSizeX"])
        y_unit = normalise_unit(pixels.get("PhysicalSizeYUnit", units)) or units
        scale["Y"] = float(pixels["PhysicalSizeY"]) * _TO_MICRONS.get(y_unit, 1.0) / _TO_MICRONS.get(units, 1.0)
    if units and pixels.get("PhysicalSizeZ"):  # the Z step of a volume, in the pixel size's unit
        z_unit = normalise_unit(pixels.get("PhysicalSizeZUnit", units)) or units
        scale["Z"] = float(pixels["PhysicalSizeZ"]) * _TO_MICRONS.get(z_unit, 1.0) / _TO_MICRONS.get(units, 1.0)
    if pixels.get("TimeIncrement"):
        scale["T"] = float(pixels["TimeIncrement"])
    info = {k: jsonable(v) for k, v in pixels.items() if not isinstance(v, (dict, list))}
    if isinstance(image, dict) and image.get("Name"):
        info["Name"] = image["Name"]
    info["series_count"] = len(tif.series)
    return {"ome": info}, scale, units


def _tiff_metadata(tif: tifffile.TiffFile, series: Any) -> tuple[dict, dict[str, float], str | None, dict | None]:
    """(metadata, {axis letter: step}, spatial unit, our block or None)."""
    page = series.pages[0] if series.pages else tif.pages[0]
    metadata: dict[str, Any] = {}
    scale: dict[str, float] = {}
    units: str | None = None
    block = None
    if tif.is_imagej:
        ij = dict(tif.imagej_metadata or {})
        block = parse_block(ij.get(BLOCK_KEY))
        units = normalise_unit(ij.get("unit"))
        res = _resolution(page)
        if units and res:
            scale["Y"], scale["X"] = res
        elif units:
            units = None
        if ij.get("finterval"):
            scale["T"] = float(ij["finterval"])
        if units and res and ij.get("spacing"):
            scale["Z"] = float(ij["spacing"])  # the Z step, in the pixel size's unit
        kept = {k: jsonable(v) for k, v in ij.items() if k not in _IJ_SKIP and isinstance(v, (str, int, float, bool))}
        if kept:
            metadata["imagej"] = kept
    elif tif.is_ome:
        metadata, scale, units = _ome_info(tif)
    else:
        shaped = tif.shaped_metadata
        if shaped:
            info = dict(shaped[0])
            block = parse_block(info.pop(BLOCK_KEY, None))
            info.pop("shape", None)
            if info:
                metadata["tifffile"] = jsonable(info)
        res = _resolution(page)
        unit_tag = page.tags.get("ResolutionUnit")
        if res and unit_tag is not None and int(unit_tag.value) == 3:  # centimetre: a real calibration
            units = "µm"
            scale["Y"], scale["X"] = res[0] * 1e4, res[1] * 1e4
        if not shaped and page.description and page.description.strip():
            metadata["tiff"] = {"description": page.description.strip()[:10000]}
    return metadata, scale, units, block


def _check_complete(path: Path, tif: tifffile.TiffFile, series: Any) -> None:
    """Raise if the image data of the first or last page lies beyond the end of the file,
    or if an ImageJ file holds whole frames more than its header describes (a file
    another program is still writing: ImageJ writers update the header last)."""
    size = os.path.getsize(path)
    end = 0
    if series.dataoffset is not None:
        end = int(series.dataoffset) + int(series.nbytes)
    else:
        pages = series.pages
        for page in (pages[0], pages[-1]):
            if page is None:
                continue
            offsets, counts = page.dataoffsets, page.databytecounts
            if offsets:
                end = max(end, max(int(o) + int(c) for o, c in zip(offsets, counts)))
    if end > size:
        raise incomplete_error(path, f"{size} bytes, the image data needs {end}")
    page = series.pages[0] if len(series.pages) else None
    frame_bytes = 0 if page is None else int(page.nbytes)
    extra_bytes = size - end
    if (
        tif.is_imagej
        and frame_bytes
        and extra_bytes >= max(2 * frame_bytes, 4096)
        and len(tif.pages) == 1  # a finished multi-frame ImageJ file has one directory per frame
    ):
        extra = extra_bytes // frame_bytes
        raise incomplete_error(
            path,
            f"its ImageJ header describes {int(series.nbytes) // frame_bytes} image(s) but the file holds "
            f"about {extra} more after them",
        )


def _lazy_tiff(path: Path, tif: tifffile.TiffFile, series: Any, frame_dim: int) -> tuple[Any, list]:
    """A dask array of the first series in the file's own axis order, and handles to close.

    Uncompressed contiguous data is memory-mapped; anything else is read page
    by page (whole frames per chunk) through tifffile, with the file kept open.
    """
    compressed = any(int(getattr(p, "compression", 1)) != 1 for p in series.pages[:1] if p is not None)
    if series.dataoffset is not None and not compressed:
        try:
            mm = tifffile.memmap(path, series=0, mode="r")
        except ValueError:
            mm = None
        if mm is not None and tuple(mm.shape) == tuple(series.shape):
            tif.close()
            return frame_chunked_dask(mm, frame_dim=frame_dim), []
    page = series.pages[0]
    page_shape = tuple(page.shape)
    lead = tuple(series.shape[: len(series.shape) - len(page_shape)])
    n_pages = int(np.prod(lead, dtype=np.int64)) if lead else 1
    if tuple(series.shape[len(lead) :]) != page_shape or n_pages != len(series.pages):
        # unusual layout: fall back to one read of the whole series on first access
        delayed = dask.delayed(series.asarray)()
        return da.from_delayed(delayed, shape=series.shape, dtype=series.dtype), [tif]

    def read_pages(start: int, stop: int) -> np.ndarray:
        data = tif.asarray(key=range(start, stop), series=0)
        return np.asarray(data).reshape((stop - start,) + page_shape)

    reader = FrameReader((n_pages,) + page_shape, series.dtype, read_pages)
    pages_per_frame = int(np.prod(lead[1:], dtype=np.int64)) if len(lead) > 1 else 1
    page_nbytes = int(np.prod(page_shape, dtype=np.int64)) * np.dtype(series.dtype).itemsize
    per_chunk = frames_per_chunk(page_nbytes * pages_per_frame) * pages_per_frame
    arr = lazy_array(reader, (per_chunk,) + page_shape, name_prefix="stackalign-tiff")
    if lead and len(lead) > 1:
        arr = arr.reshape(lead + page_shape)
    return arr, [tif]


def read_tiff(
    path: Path, *, axes: str | None = None, lazy: bool | None = None, memory_fraction: float, volumes: bool = False
) -> StackData:
    """Read the first series of a TIFF file as frames-first data (see :func:`read_stack`)."""
    tif = open_tiff(path)
    keep_open = False
    try:
        series = tif.series[0]
        shape = tuple(int(n) for n in series.shape)
        metadata, scale_by_axis, units, block = _tiff_metadata(tif, series)
        file_axes = axes or series.axes
        if block is not None and axes is None and len(block["axes"]) == len(shape):
            file_axes = block["axes"]
        _check_complete(path, tif, series)
        plan = plan_axes(file_axes, shape, source=str(path), volumes=volumes)
        nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(series.dtype).itemsize
        is_lazy = decide_lazy(nbytes, lazy, memory_fraction)
        handles: list = []
        if is_lazy:
            raw, handles = _lazy_tiff(path, tif, series, plan.frame_dim)
            keep_open = bool(handles)
        else:
            try:
                raw = series.asarray()
            except (tifffile.TiffFileError, ValueError, struct.error, OSError, EOFError, IndexError) as exc:
                raise _unreadable(path, exc) from exc
            if tuple(raw.shape) != shape:
                raw = raw.reshape(shape)
        data = plan.apply(raw)
    finally:
        if not keep_open:
            tif.close()
    out_scale = plan.map_values(scale_by_axis) if scale_by_axis else None
    transforms = None
    if block is not None:
        metadata = dict(block.get("metadata") or {})
        if block.get("scale") and len(block["scale"]) == len(plan.out_axes):
            out_scale = tuple(float(s) for s in block["scale"])
        units = normalise_unit(block.get("units"))
        transforms = block_transforms(block, int(data.shape[0]), source=str(path))
    return StackData(
        data=data,
        axes=plan.out_axes,
        channel_axis=plan.channel_axis,
        scale=out_scale,
        units=units,
        metadata=metadata,
        transforms=transforms,
        path=path,
        lazy=is_lazy,
        _handles=handles,
    )


def _imagej_unit(units: str | None) -> str | None:
    if units is None:
        return None
    ascii_names = {"µm": "micron", "Å": "angstrom"}
    unit = ascii_names.get(units, units)
    return unit if unit.isascii() else None


def write_tiff(
    target: Path,
    data: Any,
    *,
    axes: str,
    scale: tuple[float, ...] | None,
    units: str | None,
    block: dict,
    compression: str | None,
    progress: ProgressCallback | None,
    stage: str,
) -> None:
    """Stream ``data`` (frames first) into ``target`` as an ImageJ hyperstack (or plain TIFF).

    TCZYX volumes are stored in ImageJ's TZCYX order (the block names the file's order, so
    :func:`read_tiff` puts the axes back)."""
    dtype = np.dtype(data.dtype)
    shape = tuple(int(n) for n in data.shape)
    to_file = None
    if axes == "TCZYX":
        axes, to_file = "TZCYX", (0, 2, 1, 3, 4)
        shape = tuple(shape[i] for i in to_file)
        block = {**block, "axes": "TZCYX"}
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    bigtiff = nbytes > BIGTIFF_BYTES
    imagej = dtype in IMAGEJ_DTYPES and not bigtiff
    n_frames = shape[0]

    def pages():
        for start, stop, chunk in iter_frame_chunks(data):
            report(progress, start, n_frames, stage)
            if to_file is not None:
                chunk = np.transpose(chunk, to_file)
            if compression is None:
                # uncompressed data is written contiguously: tifffile takes blocks of any size
                yield np.ascontiguousarray(chunk)
                continue
            for frame in chunk:  # compressed: one page (2-D plane) at a time
                yield from frame.reshape(-1, *frame.shape[-2:])
        report(progress, n_frames, n_frames, stage)

    kwargs: dict[str, Any] = {"shape": shape, "dtype": dtype, "photometric": "minisblack"}
    if compression == "zlib":
        kwargs["compression"] = "zlib"
        kwargs["compressionargs"] = {"level": 6}
    if imagej:
        meta: dict[str, Any] = {"axes": axes, BLOCK_KEY: _block_text(block)}
        ij_unit = _imagej_unit(units)
        if scale is not None and ij_unit:
            kwargs["resolution"] = (1.0 / scale[-1], 1.0 / scale[-2])
            meta["unit"] = ij_unit
        if scale is not None and scale[0] != 1.0:
            meta["finterval"] = float(scale[0])
        if scale is not None and ij_unit and "Z" in axes:
            meta["spacing"] = float(scale[-3])  # ImageJ's Z step (scale is in the data's order, Z third last)
        kwargs["metadata"] = meta
    else:
        kwargs["metadata"] = {"axes": axes, BLOCK_KEY: block}
        if scale is not None and units in _TO_MICRONS:
            per_cm = 1e4 / _TO_MICRONS[units]
            kwargs["resolution"] = (per_cm / scale[-1], per_cm / scale[-2])
            kwargs["resolutionunit"] = "CENTIMETER"
    try:
        with tifffile.TiffWriter(target, bigtiff=bigtiff, imagej=imagej) as writer:
            writer.write(pages(), **kwargs)
    except OSError as exc:
        # numpy's tofile says "N requested and M written" (no errno) when the disk fills up
        if exc.errno == errno.ENOSPC or (exc.errno is None and _SHORT_WRITE.search(str(exc))):
            full = OSError(errno.ENOSPC, "the disk is full")
            try:
                full.written = os.path.getsize(target)  # type: ignore[attr-defined]
            except OSError:
                full.written = None  # type: ignore[attr-defined]
            full.total = nbytes  # type: ignore[attr-defined]
            raise full from exc
        raise


def _block_text(block: dict) -> str:
    """The block as the ImageJ description holds it (one line of ASCII JSON)."""
    return json.dumps(block, ensure_ascii=True, separators=(",", ":"))


def update_tiff(target: Path, patches: Any, *, block: dict, written_block: dict) -> int:
    """Rewrite frames of an uncompressed TIFF :func:`write_tiff` wrote, then its block.

    The frames are overwritten in place (uncompressed pages are stored
    contiguously); the description that holds the block (ImageJ's, or
    tifffile's JSON one) is replaced, in place when the new one fits and
    appended to the file otherwise (the tag then points there).

    Parameters
    ----------
    target : Path
        The (temporary) file, written with ``compression=None`` and (T, Y, X)
        or (T, C, Y, X) axes.
    patches : iterable of (int, ndarray)
        ``(start, frames)`` in the data's order, frames first.
    block : dict
        The block to store now (see :func:`~napari_stackalign.io._meta.make_block`).
    written_block : dict
        The block :func:`write_tiff` was given.

    Returns
    -------
    int
        Frames rewritten.

    Raises
    ------
    ValueError
        When the file's image data are not contiguous (a compressed file).
    """
    rewritten = 0
    with tifffile.TiffFile(target, mode="r+b") as tif:
        series = tif.series[0]
        if series.dataoffset is None:
            raise ValueError(f"{target.name}: the image data are not contiguous; frames cannot be rewritten in place.")
        offset = int(series.dataoffset)
        frame_bytes = int(series.nbytes) // int(series.shape[0])
        order = "<" if tif.byteorder == "<" else ">"
        fh = tif.filehandle
        for start, frames in patches:
            raw = np.ascontiguousarray(frames, dtype=np.dtype(series.dtype).newbyteorder(order))
            fh.seek(offset + int(start) * frame_bytes)
            fh.write(raw.tobytes())
            rewritten += len(frames)
        tag = tif.pages[0].tags["ImageDescription"]
        old_text = tag.value
        if tif.is_imagej:
            written = f"{BLOCK_KEY}={_block_text(written_block)}"
            if written not in old_text:
                raise ValueError(f"{target.name}: the ImageJ description does not hold the block written.")
            text = old_text.replace(written, f"{BLOCK_KEY}={_block_text(block)}")
        else:
            described = json.loads(old_text)
            described[BLOCK_KEY] = json.loads(json.dumps(block))
            text = json.dumps(described)
        tag.overwrite(text)
        fh.flush()
    return rewritten


#: numpy's message for a short write (a full disk)
_SHORT_WRITE = re.compile(r"\d+ requested and \d+ written")
