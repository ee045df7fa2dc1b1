"""Frames that turn: the sub-pixel step reports the translation of the template's centre
(``LKTemplate(rotation=True)``, the last level of the pyramid)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import ndimage

from napari_stackalign.core.pyramid._lucas_kanade import LKTemplate

SHAPE = (256, 256)


def _lopsided_texture(seed: int = 0) -> np.ndarray:
    """Smooth texture on the left third of the frame only: the gradient energy's centroid sits about
    85 px left of the centre, where a translation-only fit of a turned frame settles."""
    rng = np.random.default_rng(seed)
    img = ndimage.gaussian_filter(rng.normal(size=(512, 512)), 2.5)
    img /= img.std()
    yy, xx = np.mgrid[0:512, 0:512]
    img *= 1.0 / (1.0 + np.exp((xx - 256 + 128 - 43) / 6.0))  # fades out right of column 213 - 128 = 85
    return img


def _turned(canvas: np.ndarray, angle_deg: float, shift: tuple[float, float]) -> np.ndarray:
    """The (256, 256) centre crop of ``canvas`` turned by ``angle_deg`` about the crop's centre and then
    displaced by ``shift``: ``frame[c + R (p - c) + shift] = canvas[p]``."""
    a = np.deg2rad(angle_deg)
    rot = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])  # (rows, cols)
    c = np.array([(512 - 1) / 2, (512 - 1) / 2])
    inv = rot.T  # frame pixel q comes from canvas p = c + R^-1 (q - c - shift)
    offset = c - inv @ (c + np.asarray(shift, float))
    full = ndimage.affine_transform(canvas, inv, offset=offset, order=3, mode="nearest")
    return full[128:384, 128:384].astype(np.float32)


def _zero_mean(img: np.ndarray) -> np.ndarray:
    return (img - img.mean()).astype(np.float32)


def _template_and_frame(angle: float, shift: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """The lopsided texture as a template (zero-mean, not turned) and as a frame turned by ``angle``
    degrees and displaced by ``shift``."""
    canvas = _lopsided_texture()
    return _zero_mean(_turned(canvas, 0.0, (0.0, 0.0))), _turned(canvas, angle, shift)


@pytest.mark.parametrize("angle", [0.6, -0.9])
def test_a_turned_frame_gets_the_translation_of_the_centre(angle):
    shift = (2.3, -1.7)
    template, frame = _template_and_frame(angle, shift)
    plain = LKTemplate(template).refine(frame, (2.0, -2.0), max_iter=10, tol=1e-4)
    turning = LKTemplate(template, rotation=True).refine(frame, (2.0, -2.0), max_iter=10, tol=1e-4)
    np.testing.assert_allclose(plain.shift, turning.shift, atol=1e-9)  # the iteration itself is unchanged
    # frame[p + s] ~ template[p] at the centre: s is the displacement there
    centre = np.add(turning.shift, turning.centre)
    off_plain = np.hypot(*(np.asarray(plain.shift) - shift))
    off_centre = np.hypot(*(centre - shift))
    # the translation-only fit settles where the texture is: about 85 px times the turn off the centre's
    assert off_plain > 0.5 * np.deg2rad(abs(angle)) * 85
    assert off_centre < 0.25 * off_plain
    assert abs(abs(turning.turn) - np.deg2rad(abs(angle))) < 0.2 * np.deg2rad(abs(angle))


def test_a_frame_that_does_not_turn_keeps_its_translation():
    canvas = _lopsided_texture(1)
    template = _zero_mean(_turned(canvas, 0.0, (0.0, 0.0)))
    rng = np.random.default_rng(3)
    frame = _turned(canvas, 0.0, (1.2, 0.4)) + rng.normal(0.0, 0.5, SHAPE).astype(np.float32)
    res = LKTemplate(template, rotation=True).refine(frame, (1.0, 0.0), max_iter=10, tol=1e-4)
    assert res.centre == (0.0, 0.0)  # its turn is noise: no correction
    assert np.isfinite(res.turn)
    np.testing.assert_allclose(res.shift, (1.2, 0.4), atol=0.05)


def test_turning_stack_is_registered_at_the_frame_centre():
    # the same lopsided texture turning by up to 0.8 degrees while it drifts: before, each frame's
    # translation was the displacement near the texture (85 px left of the centre), off by the turn
    # times that: up to 1.2 px at the frame centre
    from napari_stackalign.core.pyramid import register_pyramid

    canvas = _lopsided_texture(2)
    rng = np.random.default_rng(4)
    n = 24
    angles = np.clip(np.cumsum(rng.normal(0, 0.2, n)), -0.8, 0.8)
    shifts = np.cumsum(rng.normal(0, 0.8, (n, 2)), axis=0)
    stack = np.stack([_turned(canvas, a, s) for a, s in zip(angles, shifts)])
    stack += rng.normal(0.0, 0.2, stack.shape).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ft = register_pyramid(stack)
    # the correction moves frame t by -shift[t] at its centre, up to one common offset
    err = ft.with_center(((SHAPE[0] - 1) / 2, (SHAPE[1] - 1) / 2)).shifts + shifts
    err -= np.median(err, axis=0)
    assert ft.ok.all()
    rms = np.sqrt(np.mean(np.sum(err**2, axis=1)))
    assert rms < 0.08, (rms, np.round(err, 2))  # 0.038 px; 0.40 px before


def _turning_stack(turn_deg: float, n: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Frames of a (full-frame) texture turning steadily to ``turn_deg`` while they drift a little."""
    rng = np.random.default_rng(6)
    canvas = ndimage.gaussian_filter(rng.normal(size=(512, 512)), 2.5)
    angles = np.linspace(-turn_deg, turn_deg, n)
    shifts = np.cumsum(rng.normal(0, 0.5, (n, 2)), axis=0)
    stack = np.stack([_turned(canvas, a, s) for a, s in zip(angles, shifts)])
    return stack + rng.normal(0.0, 0.05, stack.shape).astype(np.float32), angles


def test_the_measured_turn_is_reported_and_a_large_one_points_to_the_similarity_method():
    from napari_stackalign.core.pyramid import register_pyramid

    stack, angles = _turning_stack(1.2)
    with pytest.warns(UserWarning, match="register_similarity"):
        ft = register_pyramid(stack)
    turn = ft.params["turn"]
    assert turn["frames"] == int(ft.ok.sum()) > 0
    # the frames turn about the template (the mean of all of them, at about 0 degrees)
    expected = np.abs(angles[ft.ok])
    assert abs(turn["max_deg"] - expected.max()) < 0.25 * expected.max()
    assert abs(turn["median_deg"] - np.median(expected)) < 0.25 * np.median(expected) + 0.02
    assert turn["median_px_at_corners"] > 1.0


def test_frames_that_do_not_turn_report_a_negligible_turn_and_no_advice():
    from napari_stackalign.core.pyramid import register_pyramid

    stack, _ = _turning_stack(0.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ft = register_pyramid(stack)
    assert not [w for w in caught if "register_similarity" in str(w.message)]
    assert ft.params["turn"]["median_px_at_corners"] < 0.1
    assert ft.params["turn"]["frames"] == len(stack)


def _far_turning_stack(seed: int = 5, n: int = 20) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The lopsided texture turning by up to 2.4 degrees while it drifts (frames, angles, shifts): beyond
    about 1.3 degrees a turn moves the corners more than ``MAX_TURN_PX`` (4 px), where one linearised step
    is not trusted, and a translation-only fit settles about 85 px times the turn off the centre's (up to
    3.5 px)."""
    canvas = _lopsided_texture(seed)
    rng = np.random.default_rng(8)
    angles = np.linspace(-2.4, 2.4, n)
    shifts = np.cumsum(rng.normal(0, 0.5, (n, 2)), axis=0)
    stack = np.stack([_turned(canvas, a, s) for a, s in zip(angles, shifts)])
    return stack + rng.normal(0.0, 0.05, stack.shape).astype(np.float32), angles, shifts


def _centre_errors(ft, shifts: np.ndarray, angles: np.ndarray) -> np.ndarray:
    err = ft.with_center(((SHAPE[0] - 1) / 2, (SHAPE[1] - 1) / 2)).shifts + shifts
    err -= np.median(err[np.abs(angles) < 0.5], axis=0)  # the offset of the frames that barely turn
    return np.hypot(*err.T)


@pytest.mark.parametrize("angle", [1.8, -2.5])
def test_a_frame_turned_beyond_one_linearised_step_gets_the_centre_by_iterating(angle):
    from napari_stackalign.core.pyramid._rigid_refine import refine_turned

    shift = (1.4, -0.8)
    template, frame = _template_and_frame(angle, shift)
    lk = LKTemplate(template, rotation=True)
    res = lk.refine(frame, (1.0, -1.0), max_iter=10, tol=1e-3)
    assert res.uncorrected == 0.0
    centre = np.add(res.shift, res.centre)
    assert np.hypot(*(centre - shift)) < 0.05, (centre, shift)
    assert abs(res.turn - np.deg2rad(angle)) < 0.03 * np.deg2rad(abs(angle))
    # the iteration alone, from half a pixel off the centre and no turn
    (cy, cx), turn, _ = refine_turned(lk, frame, (shift[0] + 0.4, shift[1] - 0.3), 0.0, None, True, 1e-3)
    assert np.hypot(cy - shift[0], cx - shift[1]) < 0.05
    assert abs(turn - np.deg2rad(angle)) < 0.03 * np.deg2rad(abs(angle))


def test_frames_turning_beyond_one_linearised_step_are_placed_at_their_centre():
    # before, the frames turning most were 1.8-3.3 px off and marked ok, and six more lost the match
    from napari_stackalign.core.pyramid import register_pyramid

    stack, angles, shifts = _far_turning_stack()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ft = register_pyramid(stack)
    off = _centre_errors(ft, shifts, angles)
    assert ft.ok.all(), ft.reason
    assert off.max() < 0.3, np.round(off, 2)  # 0.18 px
    assert ft.params["flags"]["turned"] == 0


def test_frames_turning_beyond_the_correction_are_flagged_when_the_iteration_fails(monkeypatch):
    # no joint iteration (as when it does not converge): the far-turned frames keep a translation pixels
    # from their centre's, and are flagged with why instead of passing as ok
    import napari_stackalign.core.pyramid._rigid_refine as rigid
    from napari_stackalign.core.pyramid import register_pyramid
    from napari_stackalign.core.pyramid._engine import FLAG_TURNED

    monkeypatch.setattr(rigid, "MAX_RIGID_ITER", 0)
    stack, angles, shifts = _far_turning_stack()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ft = register_pyramid(stack)
    off = _centre_errors(ft, shifts, angles)
    assert (off > 1.0).any()  # the stack has frames the translation alone cannot place
    assert not (ft.ok & (off > 1.0)).any(), (np.round(off, 2), ft.ok)  # none of them passes as ok
    turned = np.array(["turns by" in r for r in ft.reason])
    assert turned.any() and not (turned & (np.abs(angles) < 0.8)).any()  # only frames that turn a lot
    assert "similarity" in ft.reason[int(np.flatnonzero(turned)[0])]
    assert ft.params["flags"]["turned"] == int(turned.sum())
    assert FLAG_TURNED == 16


def _faint_turning_stack(seed: int = 1, snr: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """A 640x192 smooth texture with its detail on the top half, 12 frames turned by up to 1.2 degrees
    and shifted, at SNR 1 (frames, shifts). At full resolution the template's own noise hides the turns
    (a tenth of them is measured), so the centre's correction falls short; the first level sees them."""
    h, w = 640, 192
    rng = np.random.default_rng(seed)
    canvas = ndimage.gaussian_filter(rng.normal(size=(h + 128, w + 128)), 4.0)
    yy = np.mgrid[0 : h + 128, 0 : w + 128][0]
    canvas *= 1.0 / (1.0 + np.exp((yy - (h + 128) / 2 + 80) / 10.0))
    canvas /= canvas.std()
    n = 12
    angles = rng.uniform(-1.2, 1.2, n)
    shifts = rng.normal(0, 3, (n, 2))
    c = (np.array(canvas.shape) - 1) / 2
    frames = []
    for a, s in zip(np.deg2rad(angles), shifts):
        inv = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        full = ndimage.affine_transform(canvas, inv, offset=c - inv @ (c + s), order=1, mode="nearest")
        frames.append(full[64 : 64 + h, 64 : 64 + w])
    clean = np.stack(frames).astype(np.float32)
    return clean + rng.normal(0, clean.std() / snr, clean.shape).astype(np.float32), shifts


@pytest.mark.parametrize("check", [True, False])
def test_a_turn_only_the_first_level_sees_flags_the_frames_it_leaves_off(check, monkeypatch):
    import napari_stackalign.core.pyramid._turn_check as turn_check
    from napari_stackalign.core.pyramid import register_pyramid

    if not check:  # what the check is for: without it, a frame more than 1 px off passes as ok
        monkeypatch.setattr(turn_check, "COARSE_TURN_PX", 1e9)
    stack, shifts = _faint_turning_stack()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ft = register_pyramid(stack)
    err = ft.with_center(((stack.shape[1] - 1) / 2, (stack.shape[2] - 1) / 2)).shifts + shifts
    off = np.hypot(*(err - np.median(err, axis=0)).T)
    silent = ft.ok & (off > 1.0)
    turned = np.array(["level; " in r for r in ft.reason])  # "measured at the 0.125 level; ..."
    info = ft.params["turn_check"]
    assert info["level"] == 0.125 and info["checked"] == len(stack)  # the screened frames turn: all checked
    if check:
        assert not silent.any(), (np.round(off, 2), ft.reason)
        assert turned.any() and (off[turned] > 0.5).any()
        assert info["flagged"] == int(turned.sum())
    else:
        assert silent.any() and not turned.any()


def test_a_stack_that_does_not_turn_is_screened_not_checked_frame_by_frame():
    from napari_stackalign.core.pyramid import register_pyramid

    stack, _ = _turning_stack(0.0, n=20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ft = register_pyramid(stack)
    assert "turn_check" not in ft.params  # screened: no frame turns more than the last level saw
    assert ft.ok.all()
