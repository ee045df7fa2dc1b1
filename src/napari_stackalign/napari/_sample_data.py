"""npe2 sample-data hooks (File > Open Sample > Stack Align).

Each function returns one image layer built from
:func:`napari_stackalign.io.samples.load_sample`; synthetic samples carry
their true correction in ``metadata["stackalign"]["truth"]``.
"""

from __future__ import annotations

from ..io.samples import load_sample
from ._reader import stack_to_layer_data

__all__ = ["beads_sample", "brightfield_sample", "lattice_sample", "particles_sample", "texture_sample"]


def _layers(name: str, layer_name: str) -> list[tuple]:
    return [stack_to_layer_data(load_sample(name), name=layer_name)]


def brightfield_sample() -> list[tuple]:
    """Real bright-field drift stack (17 frames, MIT licence)."""
    return _layers("brightfield", "bright-field drift")


def particles_sample() -> list[tuple]:
    """Real camera images of particles on a metal surface (5 frames, CC BY 4.0)."""
    return _layers("particles", "particles")


def beads_sample() -> list[tuple]:
    """Synthetic drifting beads with known motion."""
    return _layers("beads", "beads (synthetic)")


def lattice_sample() -> list[tuple]:
    """Synthetic low-SNR atomic lattice with known motion."""
    return _layers("lattice", "lattice (synthetic)")


def texture_sample() -> list[tuple]:
    """Synthetic textured scene with drift and rotation."""
    return _layers("texture", "texture (synthetic)")
