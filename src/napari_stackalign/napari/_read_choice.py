"""What to read from an HDF5 file, and whether the user must be asked (no Qt here).

:func:`propose_read` looks at the datasets that could hold the stack (their
shapes and any axis order the file declares) and proposes one dataset and
one axis order. It says ``ask=True`` when the reader cannot decide: several
candidate datasets, or an axis order that the file does not declare and the
shape does not make clear (a last axis much shorter than the others, so a
(Y, X, T) array is proposed as ``"YXT"``, never silently read as T, Y, X).
The dialog in :mod:`._read_dialog` shows the proposal; tests call this
function directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..io import plan_axes

__all__ = ["Candidate", "ReadProposal", "describe_reading", "guess_axes", "propose_read", "proposed_axes"]

#: the dataset this package writes; preferred over every other candidate
OWN_DATASET = "image_data"


@dataclass(frozen=True)
class Candidate:
    """One dataset that could hold the stack."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    #: the axis order the file declares (attribute, dimension labels), or None
    declared_axes: str | None = None

    def describe(self) -> str:
        """``"imaging  128 x 256 x 20  uint16"``: how the dialog lists it."""
        axes = f"  axes {self.declared_axes}" if self.declared_axes else ""
        return f"{self.name}  {' x '.join(str(n) for n in self.shape)}  {self.dtype}{axes}"


@dataclass(frozen=True)
class ReadProposal:
    """The dataset and axis order proposed for reading, and why the user should confirm."""

    candidates: tuple[Candidate, ...]
    dataset: str
    axes: str
    #: True when the reader cannot decide alone (see :attr:`reasons`)
    ask: bool
    #: plain-words reasons for asking (empty when ``ask`` is False)
    reasons: tuple[str, ...] = ()

    def candidate(self, name: str) -> Candidate:
        """The candidate named ``name`` (ValueError naming the candidates otherwise)."""
        for cand in self.candidates:
            if cand.name == name:
                return cand
        names = ", ".join(c.name for c in self.candidates)
        raise ValueError(f"no dataset named {name!r}; the candidates are: {names}.")


def guess_axes(shape: Sequence[int]) -> tuple[str, str | None]:
    """The likely axis order of an unlabelled array, and why it is uncertain (None if clear).

    3-D: frames first (``"TYX"``) unless the last axis is much shorter than
    the other two (less than half of the smaller), then ``"YXT"`` and
    uncertain. 4-D: ``"TCYX"`` when the second axis is short (at most 4),
    else ``"TZYX"``; uncertain either way (channels or a volume). 5-D and
    more: ``"TZCYX"``-like, uncertain.
    """
    shape = tuple(int(n) for n in shape)
    if len(shape) == 3:
        t, y, x = shape
        if x < min(t, y) / 2:
            return "YXT", (
                f"its last axis ({x}) is much shorter than the others ({t} x {y}), so the frames are "
                "probably along the last axis (Y, X, T)"
            )
        return "TYX", None
    if len(shape) == 4:
        axes = "TCYX" if shape[1] <= 4 else "TZYX"
        return axes, "a 4-D array may hold channels or a volume over time"
    letters = ("TZCYX" + "ABDEFG")[: len(shape)]
    if len(shape) > 5:
        letters = "ABDEFG"[: len(shape) - 5] + "TZCYX"
    return letters, f"a {len(shape)}-D array needs a name for each axis"


def propose_read(candidates: Sequence[Candidate]) -> ReadProposal:
    """Propose a dataset and an axis order, and say whether the user must confirm them.

    Parameters
    ----------
    candidates : sequence of Candidate
        The datasets that could hold the stack (3 or more dimensions, numeric).

    Returns
    -------
    ReadProposal
        ``image_data`` (this package's own dataset) if present, else the
        only candidate, else the largest one (then ``ask`` is True); the
        file's declared axes, else :func:`guess_axes`.

    Raises
    ------
    ValueError
        When there is no candidate at all.
    """
    cands = tuple(candidates)
    if not cands:
        raise ValueError("the file has no dataset with 3 or more numeric dimensions: there is no stack to read.")
    reasons: list[str] = []
    own = [c for c in cands if c.name == OWN_DATASET]
    if own:
        chosen = own[0]
    elif len(cands) == 1:
        chosen = cands[0]
    else:
        chosen = max(cands, key=lambda c: _size(c.shape))
        reasons.append(f"the file holds {len(cands)} datasets that could be the stack; choose one")
    axes, doubt = proposed_axes(chosen)
    if doubt is not None:
        reasons.append(f"'{chosen.name}' has no axis labels and {doubt}")
    return ReadProposal(candidates=cands, dataset=chosen.name, axes=axes, ask=bool(reasons), reasons=tuple(reasons))


def proposed_axes(candidate: Candidate) -> tuple[str, str | None]:
    """The declared axes of ``candidate`` (certain), else :func:`guess_axes` of its shape."""
    if candidate.declared_axes and len(candidate.declared_axes) == len(candidate.shape):
        return candidate.declared_axes.upper(), None
    return guess_axes(candidate.shape)


def describe_reading(axes: str, shape: Sequence[int]) -> str:
    """What reading an array of ``shape`` with ``axes`` gives, in words ("20 frames of 128 x 256",
    "20 volumes of 12 x 128 x 256 (Z x Y x X)": the reader opens volumes over time as volumes).

    Raises
    ------
    ValueError
        When the reader would refuse that axis order (the message says why).
    """
    shape = tuple(int(n) for n in shape)
    plan = plan_axes(axes, shape, source=f"an array of shape {shape}", volumes=True)
    out = [shape[d] for d in plan.order]
    if plan.out_axes == "TCZYX":
        return f"{out[0]} volumes of {out[2]} x {out[3]} x {out[4]} (Z x Y x X), {out[1]} channels"
    if plan.out_axes == "TZYX":
        return f"{out[0]} volumes of {out[1]} x {out[2]} x {out[3]} (Z x Y x X)"
    if plan.out_axes == "TCYX":
        return f"{out[0]} frames of {out[2]} x {out[3]}, {out[1]} channels"
    return f"{out[0]} frames of {out[1]} x {out[2]}"


def _size(shape: tuple[int, ...]) -> int:
    size = 1
    for n in shape:
        size *= int(n)
    return size
