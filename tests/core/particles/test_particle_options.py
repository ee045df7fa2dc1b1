"""The particle options objects: one definition of each option, read by every public function."""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pytest

from napari_stackalign import synthetic
from napari_stackalign.core.particles import (
    DRIFT_DEFAULTS,
    FIT_DEFAULTS,
    OUTLIER_DEFAULTS,
    RIGID_DEFAULTS,
    SPOT_TYPES,
    TRACK_DEFAULTS,
    VALIDATION_DEFAULTS,
    DriftOptions,
    FitOptions,
    OutlierOptions,
    RigidOptions,
    TrackOptions,
    ValidationOptions,
    drift_summary,
    fit_gaussian,
    fit_gaussians,
    fit_gaussians_at,
    flag_outliers,
    plot_trajectories,
    rigid_from_tracks,
    spot_type,
    track_particles,
    validate_alignment,
)
from napari_stackalign.core.particles._gaussian_fit import extract_boxes
from napari_stackalign.core.particles._trajectories import displacements

# every public function that takes options=, its options class and the options
# it does not take as a keyword (with the reason)
PUBLIC = [
    (fit_gaussian, FitOptions, ()),
    (fit_gaussians_at, FitOptions, ()),
    (fit_gaussians, FitOptions, ("box",)),  # the box is the boxes' shape
    (track_particles, TrackOptions, ()),
    (rigid_from_tracks, RigidOptions, ()),
    (flag_outliers, OutlierOptions, ()),
    (drift_summary, DriftOptions, ()),
    (plot_trajectories, DriftOptions, ()),
    (validate_alignment, ValidationOptions, ()),
]
DEFAULTS = {
    FitOptions: FIT_DEFAULTS,
    TrackOptions: TRACK_DEFAULTS,
    RigidOptions: RIGID_DEFAULTS,
    OutlierOptions: OUTLIER_DEFAULTS,
    DriftOptions: DRIFT_DEFAULTS,
    ValidationOptions: VALIDATION_DEFAULTS,
}


@pytest.mark.parametrize("func, options, missing", PUBLIC, ids=[f.__name__ for f, _, _ in PUBLIC])
def test_signature_defaults_are_the_options_defaults(func, options, missing):
    params = inspect.signature(func).parameters
    assert params["options"].default is None
    assert params["options"].kind is inspect.Parameter.KEYWORD_ONLY
    for name, default in options.defaults().items():
        if name in missing:
            assert name not in params
            continue
        assert name in params, f"{func.__name__} lacks the option {name}"
        assert params[name].default == default, (func.__name__, name)
        assert getattr(DEFAULTS[options], name) == default


def test_helpers_read_the_same_defaults():
    assert inspect.signature(extract_boxes).parameters["box"].default == FIT_DEFAULTS.box
    assert inspect.signature(displacements).parameters["reference_frame"].default == DRIFT_DEFAULTS.reference_frame


def test_shared_options_have_one_definition():
    # tracking fits: every fit option is a tracking option, with the same default and help
    assert issubclass(TrackOptions, FitOptions)
    for name in FitOptions.specs():
        assert TrackOptions.default(name) == FitOptions.default(name)
        assert TrackOptions.help(name) == FitOptions.help(name)
    assert OutlierOptions.default("allow_rotation") == RigidOptions.default("allow_rotation")
    assert OutlierOptions.help("allow_rotation") == RigidOptions.help("allow_rotation")
    assert DriftOptions.default("reference_frame") == RigidOptions.default("reference_frame")


def test_defaults_and_help():
    assert FIT_DEFAULTS.box == 15 and FIT_DEFAULTS.box_shape == (15, 15)
    assert FIT_DEFAULTS.min_r2 == 0.5 and FIT_DEFAULTS.max_iter == 60 and FIT_DEFAULTS.dark is None
    assert TRACK_DEFAULTS.search_radius == 30 and TRACK_DEFAULTS.jump_limit == 5.0
    assert TrackOptions(box=(9, 11), search=0, max_jump=2).search_radius == 0
    assert TrackOptions(box=(9, 11)).search_radius == 22
    assert FitOptions(box=(9, 12)).width_limit((9, 12)) == 3.0
    assert FitOptions(max_sigma=2).width_limit((15, 15)) == 2.0
    assert RIGID_DEFAULTS.to_dict() == {
        "allow_rotation": True, "min_particles": 2, "reference_frame": 0, "interpolation": "linear",
        "weighted": True, "iterations": 3,
    }
    assert OUTLIER_DEFAULTS.k == 3.5 and OUTLIER_DEFAULTS.min_px == 0.5
    assert DRIFT_DEFAULTS.statistic == "median" and VALIDATION_DEFAULTS.min_r2 is None
    assert "(default 15)" in FitOptions.help("box")
    assert "in [-1, 1)" in FitOptions.help("min_r2")
    assert spot_type(None) == "auto" and SPOT_TYPES[spot_type(True)] is True


@pytest.mark.parametrize(
    "options, kwargs, match",
    [
        (FitOptions, {"box": 3}, "box must be between 5 and 255 px"),
        (FitOptions, {"box": (15, 300)}, "box must be between 5 and 255 px"),
        (FitOptions, {"box": "big"}, "box must be an integer size in px"),
        (FitOptions, {"min_r2": 1.0}, r"min_r2 must be a number in \[-1, 1\)"),
        (FitOptions, {"min_r2": float("nan")}, "min_r2 must be a finite number"),
        (FitOptions, {"max_sigma": 0.5}, "max_sigma must be a number above 0.5"),
        (FitOptions, {"dark": "yes"}, "dark must be None"),
        (FitOptions, {"dark": [True, 1]}, "dark must be None"),
        (FitOptions, {"max_iter": 0}, "max_iter must be an integer of at least 1"),
        (TrackOptions, {"search": -1}, "search must be an integer of at least 0"),
        (TrackOptions, {"max_jump": 0}, "max_jump must be a number above 0"),
        (TrackOptions, {"chunk_size": 0}, "chunk_size must be an integer of at least 1"),
        (TrackOptions, {"dark": (True, False)}, "True or False for tracking"),
        (RigidOptions, {"min_particles": 0}, "min_particles must be an integer of at least 1"),
        (RigidOptions, {"reference_frame": -1}, "reference_frame must be an integer of at least 0"),
        (RigidOptions, {"interpolation": "cubic"}, "interpolation must be one of 'linear', 'spline'"),
        (RigidOptions, {"iterations": -1}, "iterations must be an integer of at least 0"),
        (RigidOptions, {"allow_rotation": "yes"}, "allow_rotation must be True or False"),
        (OutlierOptions, {"k": 0}, "k must be a number above 0"),
        (OutlierOptions, {"min_px": -0.1}, "min_px must be a number of at least 0"),
        (DriftOptions, {"statistic": "mode"}, "statistic must be one of 'median', 'mean'"),
        (ValidationOptions, {"min_r2": 1.5}, r"min_r2 must be a number in \[-1, 1\)"),
    ],
)
def test_validation_messages(options, kwargs, match):
    with pytest.raises(ValueError, match=match):
        options(**kwargs)


def test_values_are_normalised():
    assert FitOptions(box=np.int64(11)).box == 11
    assert FitOptions(box=[9, 11]).box == (9, 11)
    assert FitOptions(dark=np.bool_(True)).dark is True
    assert FitOptions(dark=[None, True, np.bool_(False)]).dark == (None, True, False)
    assert TrackOptions(search=4.0).search == 4
    assert ValidationOptions(min_r2=None).min_r2 is None


def test_options_of_another_step_are_refused():
    image = np.zeros((20, 20))
    with pytest.raises(ValueError, match="options must be a FitOptions"):
        fit_gaussian(image, (10, 10), options=RigidOptions())
    with pytest.raises(ValueError, match="options must be a TrackOptions"):
        track_particles(np.zeros((2, 20, 20)), [(10, 10)], options=FitOptions())


@pytest.fixture(scope="module")
def scene():
    shape = (128, 128)
    stack, _, traj = synthetic.bead_scene(synthetic.linear_motion(12, shape, 4.0, -3.0, 1.5), shape, seed=5)
    return stack, traj


def _same_fits(a, b):
    for name in ("y", "x", "amplitude", "sigma_major", "r2", "pos_err", "ok"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert list(a.reason) == list(b.reason)


def test_options_give_the_same_fits_as_keywords(scene):
    stack, traj = scene
    frame = stack[0]
    one = fit_gaussian(frame, traj[0, 0] + 0.6, 11, min_r2=0.7, dark=False, max_iter=30)
    same = fit_gaussian(frame, traj[0, 0] + 0.6, options=FitOptions(box=11, min_r2=0.7, dark=False, max_iter=30))
    assert one == same
    many = fit_gaussians_at(frame, traj[0], 13, max_sigma=3.0)
    _same_fits(many, fit_gaussians_at(frame, traj[0], options=FitOptions(box=13, max_sigma=3.0)))
    boxes = extract_boxes(frame, traj[0], 13)[0]
    _same_fits(fit_gaussians(boxes, min_r2=0.6), fit_gaussians(boxes, options=FitOptions(min_r2=0.6, box=99)))
    # an explicit keyword (not at its default) overrides the options object
    _same_fits(fit_gaussians(boxes, min_r2=0.6), fit_gaussians(boxes, min_r2=0.6, options=FitOptions(min_r2=0.9)))


def test_options_give_the_same_tracks_correction_and_validation_as_keywords(scene):
    stack, traj = scene
    kw = {"box": 11, "min_r2": 0.6, "search": 10, "max_jump": 3.0, "chunk_size": 5}
    tracks = track_particles(stack, traj[0], **kw)
    again = track_particles(stack, traj[0], options=TrackOptions(**kw))
    for name in ("y", "x", "ok", "pos_err"):
        np.testing.assert_array_equal(getattr(tracks, name), getattr(again, name))
    assert tracks.params == again.params and tracks.params["search"] == 10

    rigid_kw = {"allow_rotation": False, "min_particles": 1, "reference_frame": 2, "interpolation": "spline",
                "weighted": False, "iterations": 1}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = rigid_from_tracks(tracks, **rigid_kw)
        est2 = rigid_from_tracks(tracks, options=RigidOptions(**rigid_kw))
    assert est.allclose(est2, atol=0) and est.params == est2.params

    out = flag_outliers(tracks, allow_rotation=False, k=2.0, min_px=0.1)
    out2 = flag_outliers(tracks, options=OutlierOptions(allow_rotation=False, k=2.0, min_px=0.1))
    np.testing.assert_array_equal(out.score, out2.score)
    assert out.threshold == out2.threshold

    drift = drift_summary(tracks, statistic="mean", reference_frame=3)
    drift2 = drift_summary(tracks, options=DriftOptions(statistic="mean", reference_frame=3))
    np.testing.assert_array_equal(drift.drift, drift2.drift)

    est = rigid_from_tracks(tracks)
    v = validate_alignment(stack, est, tracks, min_r2=0.8)
    v2 = validate_alignment(stack, est, tracks, options=ValidationOptions(min_r2=0.8))
    np.testing.assert_array_equal(v.rms_after, v2.rms_after)
    assert v.refit.params["min_r2"] == 0.8
    # by default the re-fits use the tracking's own settings
    assert validate_alignment(stack, est, tracks).refit.params["min_r2"] == 0.6
