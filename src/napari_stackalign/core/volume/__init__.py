"""Volume time series, (T, Z, Y, X) and (T, C, Z, Y, X): 3-D pyramid registration, applying, averaging.

Reached through the 2-D entry points: :func:`~napari_stackalign.core.pyramid.register_pyramid`
with ``axes="TZYX"`` or ``"TCZYX"`` returns :class:`~napari_stackalign.VolumeTransforms`, which
:func:`~napari_stackalign.apply_transforms` and :func:`~napari_stackalign.average_frames` apply
to every channel.
"""

from ._checks import VOLUME_AXES, VolumeLayout, volume_axes_of, volume_layout
from ._register import register_volumes
from ._to_file import RegisteredVolumes, register_volumes_to_file

__all__ = [
    "VOLUME_AXES",
    "RegisteredVolumes",
    "VolumeLayout",
    "register_volumes",
    "register_volumes_to_file",
    "volume_axes_of",
    "volume_layout",
]
