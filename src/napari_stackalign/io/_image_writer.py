"""One 2-D result (an average, a coverage map) to TIFF or HDF5, atomically.

Stacks go through :func:`~napari_stackalign.io.write_stack`; an average is a
single (Y, X) or (C, Y, X) image, written here with its metadata as JSON so
the settings that made it travel with it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from ..files import atomic_path, check_writable_dir, jsonable
from ._h5sink import hdf5_writer

__all__ = ["IMAGE_WRITE_SUFFIXES", "write_image"]

#: the suffixes :func:`write_image` writes
IMAGE_WRITE_SUFFIXES = (".tif", ".tiff", ".h5", ".hdf5", ".hd5")


def write_image(
    path: Path,
    image: np.ndarray,
    *,
    metadata: dict,
    pixel_size: tuple[float, float] | None,
    units: str | None,
    coverage: np.ndarray | None = None,
) -> Path:
    """Write one (Y, X) or (C, Y, X) image atomically.

    TIFF: an ImageJ image (float32; a coverage map as uint16 when it fits),
    with the pixel size and unit, and ``metadata`` as JSON in ImageJ's
    ``Info`` field. HDF5: dataset ``image`` (and ``coverage`` when given)
    with ``metadata`` as a JSON attribute.

    Raises
    ------
    ValueError
        For another suffix, an image that is not 2-D (or 3-D with channels
        first), a coverage map of another shape, or an output folder that
        does not exist or is not writable.
    """
    path = Path(path)
    if path.suffix.lower() not in IMAGE_WRITE_SUFFIXES:
        raise ValueError(f"cannot write an image as {path.name}: use one of {', '.join(IMAGE_WRITE_SUFFIXES)}.")
    image = np.asarray(image)
    if image.ndim not in (2, 3):
        raise ValueError(f"write_image needs a (Y, X) or (C, Y, X) image, got shape {image.shape}.")
    if coverage is not None and np.shape(coverage) != image.shape[-2:]:
        raise ValueError(f"the coverage map {np.shape(coverage)} must have the image's shape {image.shape[-2:]}.")
    check_writable_dir(path)
    text = json.dumps(jsonable(metadata))
    if image.dtype.kind in "iu" and image.max(initial=0) <= np.iinfo(np.uint16).max and image.min(initial=0) >= 0:
        image = image.astype(np.uint16)
    else:
        image = image.astype(np.float32)
    with atomic_path(path) as tmp:
        if path.suffix.lower() in (".tif", ".tiff"):
            meta: dict[str, Any] = {"axes": "CYX" if image.ndim == 3 else "YX", "Info": text}
            kwargs: dict[str, Any] = {}
            if pixel_size is not None:
                kwargs["resolution"] = (1.0 / pixel_size[1], 1.0 / pixel_size[0])
                if units:
                    meta["unit"] = units
            tifffile.imwrite(tmp, image, imagej=True, metadata=meta, **kwargs)
        else:
            with hdf5_writer(tmp, image.nbytes) as fh:  # a full disk is a clean error, not a crash
                fh.create_dataset("image", data=image)
                if coverage is not None:
                    fh.create_dataset("coverage", data=coverage)
                fh.attrs["metadata"] = text
                if pixel_size is not None:
                    fh.attrs["pixel_size"] = list(pixel_size)
                if units:
                    fh.attrs["units"] = units
    return path
