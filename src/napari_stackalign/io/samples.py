"""Sample stacks: two real ones shipped with the package and three synthetic ones
with known motion. Used by the napari File > Open Sample entries and the CLI demo::

    from napari_stackalign import FrameTransforms
    from napari_stackalign.io.samples import SAMPLE_NAMES, load_sample

    stack = load_sample("beads")
    truth = FrameTransforms.from_dict(stack.metadata["stackalign"]["truth"])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from ..synthetic import make_stack
from ._api import read_stack
from ._stackdata import StackData

__all__ = ["SAMPLES", "SAMPLE_NAMES", "Sample", "load_sample", "sample_path"]


@dataclass(frozen=True)
class Sample:
    """One sample: its key, the title napari shows, and what it is."""

    name: str
    display_name: str
    description: str
    loader: Callable[[], StackData]


def sample_path(filename: str) -> Path:
    """Path of a data file shipped in ``napari_stackalign/data``."""
    path = Path(str(resources.files("napari_stackalign") / "data" / filename))
    if not path.is_file():
        raise FileNotFoundError(
            f"sample file {filename} is missing from the installed package ({path}); reinstall napari-stackalign."
        )
    return path


def _real(filename: str) -> Callable[[], StackData]:
    def load() -> StackData:
        return read_stack(sample_path(filename), lazy=False)

    return load


def _synthetic(kind: str, **options: object) -> Callable[[], StackData]:
    def load() -> StackData:
        stack, truth = make_stack(kind, **options)  # type: ignore[arg-type]
        described = ", ".join(f"{k}={v}" for k, v in options.items())
        metadata = {
            "sample": {
                "title": f"synthetic {kind} with known motion",
                "generator": f"napari_stackalign.synthetic.make_stack({kind!r}, {described})",
            },
            "stackalign": {"truth": truth.to_dict()},
        }
        return StackData(data=np.asarray(stack), axes="TYX", metadata=metadata, lazy=False)

    return load


_SAMPLES = (
    Sample(
        "brightfield",
        "Bright-field drift (real, 17 frames)",
        "Bright-field images taken during a long SMLM run: slow smooth drift, a static text label "
        "(imodpasteur/Brightfield-Drift-Correction-3D, MIT).",
        _real("brightfield_drift.tif"),
    ),
    Sample(
        "particles",
        "Particles on a metal surface (real, 5 frames)",
        "Camera images of a metal surface with dark particles, 8-16 px drift and darkening "
        "(Viacheslav Shkirskiy, CNRS, CC BY 4.0).",
        _real("particles_surface.tif"),
    ),
    Sample(
        "beads",
        "Drifting beads (synthetic, known motion)",
        "50 frames of fluorescent beads, random-walk drift up to 12 px plus jitter, Poisson noise at SNR 5.",
        _synthetic("beads", n_frames=50, shape=(256, 256), drift=12.0, jitter=0.3, snr=5.0, dtype="uint16", seed=1),
    ),
    Sample(
        "lattice",
        "Low-SNR atomic lattice (synthetic, known motion)",
        "40 frames of a STEM-like lattice at SNR 0.4, drift up to 6 px plus jitter.",
        _synthetic("lattice", n_frames=40, shape=(256, 256), drift=6.0, jitter=0.3, snr=0.4, seed=2),
    ),
    Sample(
        "texture",
        "Textured scene with rotation (synthetic, known motion)",
        "40 frames of a textured scene, drift up to 15 px and a rotation ramp to 3 degrees, SNR 5.",
        _synthetic(
            "texture",
            n_frames=40,
            shape=(256, 256),
            drift=15.0,
            jitter=0.3,
            rotation=3.0,
            snr=5.0,
            dtype="uint16",
            seed=3,
        ),
    ),
)

#: name -> :class:`Sample`
SAMPLES: dict[str, Sample] = {s.name: s for s in _SAMPLES}
#: The sample names accepted by :func:`load_sample`.
SAMPLE_NAMES: tuple[str, ...] = tuple(SAMPLES)


def load_sample(name: str) -> StackData:
    """Load a sample stack by name (see :data:`SAMPLE_NAMES`).

    Real samples come with their attribution in ``metadata["sample"]``;
    synthetic ones carry the true correction transforms in
    ``metadata["stackalign"]["truth"]`` (a :meth:`FrameTransforms.to_dict`
    dictionary).

    Raises
    ------
    ValueError
        For an unknown name (the message lists the valid ones).
    """
    try:
        sample = SAMPLES[name]
    except KeyError:
        raise ValueError(f"unknown sample {name!r}: choose one of {', '.join(SAMPLE_NAMES)}.") from None
    return sample.loader()
