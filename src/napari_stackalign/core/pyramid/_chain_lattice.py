"""Chained reference modes on periodic content: said, not left silent.

A chain registers each frame to the frame (or frames) before it. On a
lattice, matches one lattice vector apart are nearly as good, and the link's
expected motion decides between them; a link that hops puts every later
frame a lattice vector off, and the second path (:mod:`._chain_check`),
made with the same expected motion, agrees. The template mode resolves such
ambiguities by the content that does not repeat (:mod:`._periodic`); a
chain cannot. Measured on the accuracy grid's weak lattices (seed 1008,
case 24, hexagonal 6 px, SNR 0.45; seed 1010, case 12, hexagonal 8 px, SNR
0.31): `previous` marked 16 and 41 frames ok that were up to 134 and 307 px
off, `running` 51 and 51.

So after a chain, :func:`chain_lattice` looks for a lattice in the mean of
up to :data:`LATTICE_FRAMES` frames spread over the stack, each at its
chained position (a frame a whole lattice vector off still adds the same
lattice; a single frame at that SNR shows none), and the caller warns.
Those frames are read a second time (24 frames, whatever the stack's
length: a streamed chain reads them from the file again).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._engine import TemplateAccumulator
from ._periodic import Lattice, detect_lattice

__all__ = ["LATTICE_FRAMES", "chain_lattice", "lattice_warning"]

#: frames averaged to look for a lattice after a chain
LATTICE_FRAMES = 24


def chain_lattice(stack: Any, shifts: np.ndarray, usable: np.ndarray, job: Any) -> Lattice | None:
    """The lattice in the mean of up to ``LATTICE_FRAMES`` ``usable`` frames at their chained ``shifts``.

    Parameters
    ----------
    stack : array-like (T, Y, X)
        The frames.
    shifts : ndarray (T, 2)
        The chain's shifts (the engine's ``s``: ``frame[p + s] ~ reference[p]``).
    usable : ndarray of bool (T,)
        Frames with usable pixels.
    job : PyramidJob
        The run's job (crop, preparation, kernel).

    Returns
    -------
    Lattice or None
    """
    h, w = job.crop_shape
    idx = np.flatnonzero(np.asarray(usable, bool) & (np.abs(shifts[:, 0]) < h) & (np.abs(shifts[:, 1]) < w))
    if idx.size < 2:
        return None
    pick = idx[np.unique(np.round(np.linspace(0, idx.size - 1, min(LATTICE_FRAMES, idx.size))).astype(int))]
    preparer = job.preparer()
    acc = TemplateAccumulator(job.crop_shape, job.options.normalize, job.options.kernel)
    for t in pick:
        acc.add(acc.register(preparer(np.asarray(stack[int(t)])), (float(shifts[t, 0]), float(shifts[t, 1]))))
    if acc.count == 0:
        return None
    return detect_lattice(acc.template())


def lattice_warning(mode: str, lattice: Lattice) -> str:
    """What a chained run on a lattice tells the user."""
    shortest = float(np.min(np.hypot(lattice.vectors[:, 0], lattice.vectors[:, 1])))
    return (
        f"pyramid registration (reference_mode={mode!r}): the frames hold a lattice (shortest lattice vector "
        f"{shortest:.1f} px). A chain of links cannot tell positions a whole lattice vector apart, so frames may "
        "be one or more lattice vectors off and still pass as ok; reference_mode='template' resolves that by the "
        "content that does not repeat, and flags what stays ambiguous."
    )
