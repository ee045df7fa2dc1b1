"""npe2 reader hook: every format of :data:`~napari_stackalign.io.INPUT_FORMATS` and folders of frames.

``get_reader`` decides from the extension and the file header (never the
pixels) and returns None for anything it cannot read, as npe2 requires; the
reader function it returns gives one image layer (or one per channel) with
scale, units, axis labels, the file's metadata and, for lazily opened big
files, contrast limits from a few sampled frames.

Volumes over time (a Z axis next to the time axis: ImageJ hyperstacks,
OME-TIFF, HDF5 with declared axes) open as (T, Z, Y, X) layers with axis
labels ``t, z, y, x`` and the Z step in ``scale``; a (T, C, Z, Y, X) file
gives one such layer per channel. The Pyramid widget registers them in 3-D.

When an HDF5 file is ambiguous (several candidate datasets, or an axis order
the file does not declare and the shape leaves unclear, such as a (Y, X, T)
array), the reader asks: in a napari window a dialog lists the datasets with
their shapes and proposes the dataset and the axis order
(:mod:`._read_choice` decides, :mod:`._read_dialog` asks); without a window
several datasets are an error naming them, and an unclear axis order is read
as proposed, with a warning. In a napari window a file that cannot be read is
a notification saying why and what to do, not napari's "failed" dialog.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import h5py
from napari.utils.notifications import show_error

from ..io import (
    GIF_SUFFIXES,
    HDF5_SUFFIXES,
    READ_SUFFIXES,
    SOURCE_KEY,
    TIFF_SUFFIXES,
    StackData,
    declared_axes,
    estimate_contrast_limits,
    is_ome_zarr,
    natural_key,
    open_hdf5,
    read_stack,
    stack_candidates,
    suffix_of,
)
from ..io._folder import FRAME_SUFFIXES, frame_kind
from ._read_choice import Candidate, ReadProposal, propose_read
from ._read_dialog import ask_read_choice
from ._scripting import SOURCE_CHANNEL_KEY
from ._window import in_napari_window

__all__ = ["get_reader", "read_layers", "stack_to_layer_data"]

PathOrPaths = str | Sequence[str]
#: how the reader asks the user (the dialog); (proposal, path) -> (dataset, axes) or None for "cancel"
ASK_USER: Callable[[ReadProposal, str], tuple[str, str] | None] = ask_read_choice
#: what napari takes for "the file holds nothing": nothing is opened and no error is shown
NOTHING_OPENED: list[tuple] = [(None,)]


def get_reader(path: PathOrPaths) -> Callable[[PathOrPaths], list] | None:
    """Return :func:`read_layers` if ``path`` is something this plugin reads, else None.

    Accepts a file, a folder of single-frame TIFFs, or a list of TIFF frame
    files ("Open Files as Stack"). Never raises.
    """
    try:
        return read_layers if _can_read(path) else None
    except Exception:  # noqa: BLE001 - npe2 requires get_reader never to raise
        return None


def _can_read(path: PathOrPaths) -> bool:
    if not isinstance(path, (str, Path)):
        paths = [Path(p) for p in path]
        if len(paths) == 1:
            return _can_read(paths[0])
        return (
            bool(paths)
            and all(p.is_file() and p.suffix.lower() in FRAME_SUFFIXES for p in paths)
            and len({frame_kind(p) for p in paths}) == 1
        )
    path = Path(path)
    if path.is_dir():
        if is_ome_zarr(path):
            return True
        return any(
            p.is_file() and p.suffix.lower() in FRAME_SUFFIXES and not p.name.startswith(".") for p in path.iterdir()
        )
    suffix = path.suffix.lower()
    if not path.is_file() or (suffix not in READ_SUFFIXES and suffix_of(path) not in READ_SUFFIXES):
        return False
    if suffix not in TIFF_SUFFIXES + GIF_SUFFIXES + HDF5_SUFFIXES + FRAME_SUFFIXES:
        return True  # EM and bioio files: the reader says what is wrong (or which extra to install)
    if suffix in GIF_SUFFIXES:
        with open(path, "rb") as fh:
            return fh.read(4) == b"GIF8"
    if suffix in HDF5_SUFFIXES:
        if not h5py.is_hdf5(path):
            return False
        with h5py.File(path, "r") as f:
            # claim it when a stack could be inside; the reader explains ambiguity or bad axes
            return "image_data" in f or bool(stack_candidates(f))
    # TIFF, PNG, JPEG, BMP: claim only time series and volumes over time (a single 2-D image or a single
    # volume is left to other readers)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            read_stack(path, lazy=True, volumes=True).close()
        except ValueError:
            return False
    return True


def read_layers(path: PathOrPaths) -> list[tuple]:
    """Read ``path`` into napari LayerData tuples (see :func:`stack_to_layer_data`).

    In a napari window an ambiguous HDF5 file opens the dataset/axes dialog
    (Cancel opens nothing), and a file that cannot be read is an error
    notification that says what to do; elsewhere those raise ``ValueError``.
    """
    in_window = in_napari_window()
    try:
        return _read_layers(path, in_window=in_window)
    except (ValueError, OSError) as exc:
        if not in_window:
            raise
        name = Path(str(path if isinstance(path, (str, Path)) else next(iter(path)))).name
        show_error(f"Could not open {name}: {exc}")
        return NOTHING_OPENED


def _read_layers(path: PathOrPaths, *, in_window: bool) -> list[tuple]:
    if not isinstance(path, (str, Path)):
        paths = sorted((str(p) for p in path), key=natural_key)
        if len(paths) == 1:
            return _read_layers(paths[0], in_window=in_window)
        stack = read_stack(paths)
        name = Path(paths[0]).parent.name or "frames"
        return [stack_to_layer_data(stack, name=name)]
    name = Path(path).name if Path(path).is_dir() else Path(path).stem
    dataset = axes = None
    if Path(path).is_file() and Path(path).suffix.lower() in HDF5_SUFFIXES:
        proposal = hdf5_proposal(path)
        if proposal is not None:
            dataset = proposal.dataset
            if proposal.ask and in_window:
                picked = ASK_USER(proposal, str(path))
                if picked is None:
                    return NOTHING_OPENED
                dataset, axes = picked
            elif proposal.ask and len(proposal.candidates) > 1:
                dataset = None  # read_stack names the candidates and says how to choose
            elif proposal.ask:
                axes = proposal.axes
                warnings.warn(
                    f"{path}: {'; '.join(proposal.reasons)}. Read with axes={axes!r}; if that is wrong, "
                    "open it with read_stack(path, axes=...).",
                    UserWarning,
                    stacklevel=2,
                )
    # volumes over time (T, Z, Y, X) / (T, C, Z, Y, X) open as volumes (the Pyramid widget registers them in
    # 3-D); the 2-D widgets see their 4-D layers and say so
    stack = read_stack(path, dataset=dataset, axes=axes, volumes=True)
    return [stack_to_layer_data(stack, name=name)]


def hdf5_proposal(path: str | Path) -> ReadProposal | None:
    """What :func:`propose_read` proposes for the HDF5 file ``path`` (None: no candidate dataset)."""
    with open_hdf5(Path(path)) as f:
        if isinstance(f.get("image_data"), h5py.Dataset):
            return None  # this package's own layout: nothing to ask
        candidates = [
            Candidate(name=name, shape=shape, dtype=str(dtype), declared_axes=declared_axes(f, f[name]))
            for name, shape, dtype in stack_candidates(f)
        ]
    if not candidates:
        return None
    return propose_read(candidates)


def stack_to_layer_data(stack: StackData, *, name: str) -> tuple:
    """A napari image LayerData tuple for ``stack``.

    Sets ``name``, ``scale`` and ``units`` (when calibrated), ``axis_labels``,
    ``metadata`` (the file's metadata, ``source_path``, and the transforms
    table as ``metadata["stackalign"]["transforms"]``), ``contrast_limits``
    for lazy data (from a few frames, no full scan) and ``channel_axis`` for
    (T, C, Y, X) and (T, C, Z, Y, X) data, which napari splits into one layer
    per channel.
    """
    metadata: dict[str, Any] = dict(stack.metadata)
    if stack.path is not None:
        metadata[SOURCE_KEY] = str(stack.path)
    if stack.transforms is not None:
        block = dict(metadata.get("stackalign") or {})
        block["transforms"] = stack.transforms.to_dict()
        metadata["stackalign"] = block
    keep = [i for i in range(len(stack.axes)) if i != stack.channel_axis]
    kwargs: dict[str, Any] = {
        "name": name,
        "metadata": metadata,
        "axis_labels": tuple(stack.axes[i].lower() for i in keep),
        "rgb": False,
    }
    if stack.scale is not None:
        kwargs["scale"] = tuple(float(stack.scale[i]) for i in keep)
        if stack.units:
            kwargs["units"] = tuple("pixel" if stack.axes[i] in "TP" else stack.units for i in keep)
    if stack.lazy:
        kwargs["multiscale"] = False
        if stack.axes.startswith("P"):  # sample frames of the first position, not every frame of each position
            channel = None if stack.channel_axis is None else stack.channel_axis - 1
            kwargs["contrast_limits"] = estimate_contrast_limits(stack.data[0], channel_axis=channel)
        else:
            kwargs["contrast_limits"] = estimate_contrast_limits(stack.data, channel_axis=stack.channel_axis)
    if stack.channel_axis is not None:
        n_channels = int(stack.data.shape[stack.channel_axis])
        kwargs["channel_axis"] = stack.channel_axis
        kwargs["name"] = [f"{name} ch{c}" for c in range(n_channels)]
        if stack.axes == "TCZYX":  # which channel of the file each volume layer is (for the recipes' --channel)
            kwargs["metadata"] = [dict(metadata, **{SOURCE_CHANNEL_KEY: c}) for c in range(n_channels)]
    return (stack.data, kwargs, "image")
