"""Layers of the particle workflow: the picks Points layer and the Tracks layer.

The Tracks layer ``"<input> tracks"`` carries the full
:class:`~napari_stackalign.core.particles.ParticleTracks` table (failed
fits included) in ``metadata["stackalign"]["particle_tracks"]``, so the
Trajectories widget can work from it, and the name of the image it was
measured on in ``metadata["stackalign"]["source_layer"]``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.particles import ParticleTracks
from ._layers import provenance

__all__ = [
    "ALIGNED_SUFFIX",
    "PICKS_SUFFIX",
    "TRACKS_SUFFIX",
    "image_to_layer_coords",
    "is_particle_tracks_layer",
    "layer_to_image_coords",
    "tracks_from_layer",
    "tracks_layer_kwargs",
]

PICKS_SUFFIX = "picks"
TRACKS_SUFFIX = "tracks"
ALIGNED_SUFFIX = "aligned"


def is_particle_tracks_layer(layer: Any) -> bool:
    """True for a Tracks layer made by this plugin from particle fits."""
    block = dict(getattr(layer, "metadata", {}) or {}).get("stackalign") or {}
    return "particle_tracks" in block


def tracks_from_layer(layer: Any) -> ParticleTracks:
    """The :class:`ParticleTracks` stored on a Tracks layer.

    Raises
    ------
    ValueError
        If the layer does not hold particle tracks.
    """
    block = dict(layer.metadata).get("stackalign") or {}
    data = block.get("particle_tracks")
    if data is None:
        raise ValueError(
            f"layer {layer.name!r} holds no particle tracks: track particles with the Particles widget "
            "or load a tracks CSV."
        )
    if isinstance(data, ParticleTracks):
        return data
    return ParticleTracks.from_dict(data)


def tracks_layer_kwargs(image: Any, tracks: ParticleTracks, params: dict) -> tuple[np.ndarray, dict]:
    """Data and keyword arguments for the ``"<input> tracks"`` Tracks layer.

    Raises
    ------
    ValueError
        If no particle has a good fit (nothing to draw).
    """
    data, features = tracks.to_napari_tracks()
    if data.shape[0] == 0:
        raise ValueError(
            "no particle has a good fit in any frame: check the picks (green markers), the box size and "
            "the R\u00b2 gate."
        )
    scale = tuple(np.asarray(image.scale)[-3:])
    translate = tuple(np.asarray(image.translate)[-3:])
    block = provenance(
        "particle tracks",
        params,
        particle_tracks=tracks.to_dict(),
        source_layer=image.name,
        frames_failed=int((~tracks.ok).sum()),
    )
    kwargs = {
        "name": f"{image.name} {TRACKS_SUFFIX}",
        "scale": scale,
        "translate": translate,
        "features": features,
        "tail_length": max(tracks.n_frames, 2),
        "tail_width": 2,
        "metadata": {"stackalign": block},
    }
    return data, kwargs


def layer_to_image_coords(layer: Any, image: Any, coords: np.ndarray) -> np.ndarray:
    """Map (N, D) data coordinates of ``layer`` into ``image``'s data
    coordinates (through world space; scale, translate, affine honoured)."""
    coords = np.atleast_2d(np.asarray(coords, dtype=np.float64))
    out = np.empty((coords.shape[0], image.ndim))
    for k, c in enumerate(coords):
        out[k] = np.asarray(image.world_to_data(layer.data_to_world(c)), dtype=np.float64)
    return out


def image_to_layer_coords(image: Any, layer: Any, coords: np.ndarray) -> np.ndarray:
    """Inverse of :func:`layer_to_image_coords`."""
    coords = np.atleast_2d(np.asarray(coords, dtype=np.float64))
    out = np.empty((coords.shape[0], layer.ndim))
    for k, c in enumerate(coords):
        out[k] = np.asarray(layer.world_to_data(image.data_to_world(c)), dtype=np.float64)
    return out
