"""The piecewise-rigid registration's options: one definition of each (name, default, range, help)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..options import Options, option
from ..pyramid._lucas_kanade import DEFAULT_KERNEL, KERNELS
from ..pyramid._trust import MIN_Z

__all__ = ["PIECEWISE_DEFAULTS", "PiecewiseOptions"]


@dataclass(frozen=True)
class PiecewiseOptions(Options):
    """Options of :func:`~napari_stackalign.core.piecewise.register_piecewise`.

    Build it once (``PiecewiseOptions(patch_size=96, patch_overlap=48)``:
    every value is checked here) and pass it as ``options=``. The rigid step
    takes its own :class:`~napari_stackalign.core.pyramid.PyramidOptions`.
    """

    method: ClassVar[str] = "piecewise"

    patch_size: int = option(64, "side of each square patch (px)", kind="int", minimum=16, label="patch size")
    patch_overlap: int = option(
        32,
        "pixels that neighbouring patches share (below the patch size)",
        kind="int",
        minimum=0,
        label="patch overlap",
    )
    max_deviation: float = option(
        6.0,
        "largest residual shift of a patch away from the frame's rigid shift (px)",
        kind="float",
        minimum=0,
        exclusive_minimum=True,
        label="max deviation",
    )
    iterate: int = option(
        2,
        "passes; each later one against a template averaged from the previous pass's result",
        kind="int",
        minimum=1,
    )
    template_frames: int | None = option(
        None,
        "frames averaged into the template (evenly spread; default: every trustworthy frame)",
        kind="int",
        minimum=1,
        optional=True,
    )
    min_z: float = option(
        MIN_Z,
        "significance a patch's correlation peak needs to be used (Fisher z)",
        kind="float",
        minimum=0,
        label="minimum z",
    )
    neighbour_tolerance: float = option(
        2.0,
        "largest difference (px) of a patch's shift from the median of its neighbours",
        kind="float",
        minimum=0,
        exclusive_minimum=True,
    )
    kernel: str = option(DEFAULT_KERNEL, "interpolation in the sub-pixel step", kind="str", choices=tuple(KERNELS))

    def check(self) -> None:
        """An overlap that leaves no step between patches."""
        if self.patch_overlap >= self.patch_size:
            raise ValueError(f"patch_overlap ({self.patch_overlap}) must be below patch_size ({self.patch_size}).")


#: the defaults, for the signatures of the public functions
PIECEWISE_DEFAULTS = PiecewiseOptions()
