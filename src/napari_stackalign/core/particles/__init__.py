"""Particle drift correction: Gaussian fits, tracking, trajectories, rigid fit, validation.

Each step has its options object (:class:`FitOptions`, :class:`TrackOptions`,
:class:`OutlierOptions`, :class:`RigidOptions`, :class:`DriftOptions`,
:class:`ValidationOptions`) and a module-level instance of its defaults.
"""

from ._bound import RigidBound, position_bound, rigid_bound, spot_photons
from ._gaussian_fit import (
    GaussianFit,
    GaussianFits,
    fit_gaussian,
    fit_gaussians,
    fit_gaussians_at,
)
from ._options import (
    BOUND_DEFAULTS,
    BOX_LIMITS,
    DRIFT_DEFAULTS,
    FIT_DEFAULTS,
    INTERPOLATIONS,
    NOISE_MODELS,
    OUTLIER_DEFAULTS,
    RIGID_DEFAULTS,
    SPOT_TYPES,
    STATISTICS,
    TRACK_DEFAULTS,
    VALIDATION_DEFAULTS,
    BoundOptions,
    DriftOptions,
    FitOptions,
    OutlierOptions,
    RigidOptions,
    TrackOptions,
    ValidationOptions,
    spot_type,
)
from ._picks import read_picks, write_picks
from ._plots import plot_trajectories, plot_validation
from ._rigid import rigid_from_tracks
from ._tracking import track_particles
from ._tracks import ParticleTracks
from ._trajectories import DriftSummary, OutlierReport, drift_summary, flag_outliers
from ._validation import ParticleValidation, validate_alignment

__all__ = [
    "BOUND_DEFAULTS",
    "BOX_LIMITS",
    "DRIFT_DEFAULTS",
    "FIT_DEFAULTS",
    "INTERPOLATIONS",
    "NOISE_MODELS",
    "OUTLIER_DEFAULTS",
    "RIGID_DEFAULTS",
    "SPOT_TYPES",
    "STATISTICS",
    "TRACK_DEFAULTS",
    "VALIDATION_DEFAULTS",
    "BoundOptions",
    "DriftOptions",
    "DriftSummary",
    "FitOptions",
    "GaussianFit",
    "GaussianFits",
    "OutlierOptions",
    "OutlierReport",
    "ParticleTracks",
    "ParticleValidation",
    "RigidBound",
    "RigidOptions",
    "TrackOptions",
    "ValidationOptions",
    "drift_summary",
    "fit_gaussian",
    "fit_gaussians",
    "fit_gaussians_at",
    "flag_outliers",
    "plot_trajectories",
    "plot_validation",
    "position_bound",
    "read_picks",
    "rigid_bound",
    "rigid_from_tracks",
    "spot_photons",
    "spot_type",
    "track_particles",
    "validate_alignment",
    "write_picks",
]
