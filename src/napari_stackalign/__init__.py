"""napari-stackalign: drift and jitter correction for microscopy time series.

The headless API (no napari or Qt needed). Every registration method returns a
:class:`FrameTransforms` (one transform per frame); the shared
:func:`apply_transforms` and :func:`average_frames` do the rest::

    import napari_stackalign as sa

    data = sa.read_stack("movie.tif")
    transforms = sa.register_pyramid(data.data)
    registered = sa.apply_transforms(data.data, transforms)

    # or in one call (resampling overlaps the estimation, same result)
    registered = sa.register_and_apply(data.data).data
"""

from ._version import __version__
from ._volume_transforms import VolumeTransforms
from .core import (
    ApplyOptions,
    AverageOptions,
    Cancelled,
    FrameAverage,
    apply_transforms,
    average_frames,
)
from .core.apply import FailedFramesWarning
from .core.pairwise import (
    PairwiseOptions,
    PairwiseResult,
    fourier_mask,
    read_pairwise_tiff,
    register_pairwise,
    save_pairwise_report,
    save_pairwise_tiff,
    save_registered_tiff,
)
from .core.particles import (
    DriftOptions,
    FitOptions,
    GaussianFit,
    OutlierOptions,
    ParticleTracks,
    ParticleValidation,
    RigidOptions,
    TrackOptions,
    ValidationOptions,
    drift_summary,
    fit_gaussian,
    fit_gaussians,
    flag_outliers,
    read_picks,
    rigid_from_tracks,
    track_particles,
    validate_alignment,
    write_picks,
)
from .core.piecewise import PiecewiseOptions, register_piecewise
from .core.pyramid import (
    AlignedStack,
    PyramidOptions,
    RegisteredFile,
    register_and_apply,
    register_file,
    register_pyramid,
    register_pyramid_distributed,
    register_stack_to_file,
)
from .core.quality import (
    checkerboard,
    difference,
    frame_correlations,
    quality_report,
    sharpness,
)
from .core.similarity import SimilarityOptions, register_similarity
from .core.smoothing import smooth_transforms
from .io import StackData, read_stack, write_stack
from .piecewise_transforms import PiecewiseTransforms
from .transforms import FrameTransforms, NoSignalWarning

__all__ = [
    "__version__",
    # the result type and what every method shares
    "FrameTransforms",
    "NoSignalWarning",
    "VolumeTransforms",
    "FailedFramesWarning",
    "apply_transforms",
    "ApplyOptions",
    "average_frames",
    "AverageOptions",
    "FrameAverage",
    "smooth_transforms",
    "Cancelled",
    # reading and writing
    "read_stack",
    "write_stack",
    "StackData",
    # pyramid registration
    "register_pyramid",
    "PyramidOptions",
    "register_and_apply",
    "AlignedStack",
    # stacks larger than memory, and dask clusters
    "register_file",
    "register_stack_to_file",
    "RegisteredFile",
    "register_pyramid_distributed",
    # piecewise-rigid (non-rigid) registration
    "register_piecewise",
    "PiecewiseOptions",
    "PiecewiseTransforms",
    # pairwise Fourier-masked averaging
    "register_pairwise",
    "PairwiseOptions",
    "PairwiseResult",
    "fourier_mask",
    "save_pairwise_tiff",
    "read_pairwise_tiff",
    "save_registered_tiff",
    "save_pairwise_report",
    # similarity stacking
    "register_similarity",
    "SimilarityOptions",
    # particles
    "FitOptions",
    "TrackOptions",
    "RigidOptions",
    "OutlierOptions",
    "DriftOptions",
    "ValidationOptions",
    "fit_gaussian",
    "fit_gaussians",
    "GaussianFit",
    "track_particles",
    "ParticleTracks",
    "read_picks",
    "write_picks",
    "drift_summary",
    "flag_outliers",
    "rigid_from_tracks",
    "validate_alignment",
    "ParticleValidation",
    # quality and comparison
    "sharpness",
    "frame_correlations",
    "quality_report",
    "difference",
    "checkerboard",
]
