"""How messages name the stack layouts the package takes: one wording everywhere.

A tiny module of its own so that :mod:`napari_stackalign.io` (which must not
import the engine) and :mod:`napari_stackalign.core.checks` share it.
"""

from __future__ import annotations

__all__ = ["CHANNEL_STACK_AXES", "STACK_AXES"]

#: a time series of single-channel frames (what the registration methods take)
STACK_AXES = "(T, Y, X)"
#: a time series of multichannel frames (what reading, writing and applying also take)
CHANNEL_STACK_AXES = "(T, C, Y, X)"
