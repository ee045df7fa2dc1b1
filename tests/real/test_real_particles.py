"""Real data: dark particles on a bright metal surface that darkens (Shkirskiy set 2).

5 frames, 8-16 px of drift. Particles are found automatically (darkest blobs
of the first frame, kept when the Gaussian fit passes its gate), tracked,
corrected (rotation + translation) and validated, with one particle held out.
"""

from __future__ import annotations

import numpy as np
import pytest
from skimage.feature import blob_log

from napari_stackalign.core.particles import (
    fit_gaussians_at,
    flag_outliers,
    rigid_from_tracks,
    track_particles,
    validate_alignment,
)
from napari_stackalign.io import read_stack

pytestmark = pytest.mark.real

# phase correlation against frame 1 (the data README), (dy, dx) per frame
README_SHIFTS = np.array([[0, 0], [-2.25, -3.5], [-3.7, -6.0], [-6.85, -12.4], [-7.75, -13.5]])


def test_real_particles_drift_removed(real_data):
    data = read_stack(real_data / "shkirskiy-particles" / "example_data2")
    try:
        stack = np.asarray(data.data)
    finally:
        data.close()
    assert stack.shape == (5, 500, 500)
    first = stack[0].astype(float)
    inverted = (first.max() - first) / (first.max() - first.min())
    blobs = blob_log(inverted, min_sigma=1.5, max_sigma=6, threshold=0.05)
    fits = fit_gaussians_at(first, blobs[:, :2], 15)
    good = fits.ok & fits.dark
    picks = fits.centers[good]
    assert picks.shape[0] >= 5  # isolated dark particles; scratches fail the width gate
    assert not fits.ok.all()  # ... and the gate did reject some blobs

    tracks = track_particles(stack, picks, box=15)
    assert tracks.ok.mean() > 0.9
    outliers = flag_outliers(tracks)
    candidates = [i for i in range(tracks.n_particles) if not outliers.outlier[i] and tracks.ok[:, i].all()]
    assert len(candidates) >= 4
    held = candidates[-1:]
    used = candidates[:-1]
    est = rigid_from_tracks(tracks, particles=used)
    assert est.ok.all()
    assert np.max(np.abs(est.angle)) < 0.1  # the field barely rotates
    # agrees with whole-frame phase correlation to a fraction of a pixel
    assert np.abs(est.shifts - README_SHIFTS).max() < 0.5

    v = validate_alignment(stack, est, tracks, particles=used, holdout=held)
    print("\n" + v.summary_text())
    print("correction (dy, dx) per frame:", np.round(est.shifts, 2).tolist())
    used_s, held_s = v.summary["used"], v.summary["held out"]
    assert used_s["rms_before"] > 4.0 and used_s["rms_after"] < 0.25
    assert held_s["rms_before"] > 4.0 and held_s["rms_after"] < 0.3
    assert used_s["rms_loo"] < 0.3
