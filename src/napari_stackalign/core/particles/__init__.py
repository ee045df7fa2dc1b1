"""Particle drift correction: Gaussian fits, tracking, trajectories, rigid fit, validation."""

from ._gaussian_fit import GaussianFit, fit_gaussian, fit_gaussians
from ._picks import read_picks, write_picks
from ._plots import plot_trajectories, plot_validation
from ._rigid import INTERPOLATIONS, rigid_from_tracks
from ._tracking import track_particles
from ._tracks import ParticleTracks
from ._trajectories import STATISTICS, OutlierReport, drift_summary, flag_outliers
from ._validation import ParticleValidation, validate_alignment

__all__ = ["GaussianFit", "INTERPOLATIONS", "OutlierReport", "ParticleTracks", "ParticleValidation", "STATISTICS", "drift_summary", "fit_gaussian", "fit_gaussians", "flag_outliers", "plot_trajectories", "plot_validation", "read_picks", "rigid_from_tracks", "track_particles", "validate_alignment", "write_picks"]
