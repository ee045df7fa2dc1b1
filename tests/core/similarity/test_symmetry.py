"""Template self-symmetries (lattices, point-symmetric scenes) and the rivals they give each frame.

A hexagonal lattice matches itself turned by 60 degrees, a square one by 90,
any lattice one lattice vector away; a frame of such content can be won by
the wrong pose by a wide margin. The template's symmetries are found once;
a frame whose image under one of them scores about as well is flagged, and
one that scores better replaces it. Content without symmetry finds none
(and costs nothing more).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from napari_stackalign import FrameTransforms
from napari_stackalign.core.similarity import register_similarity
from napari_stackalign.core.similarity._ambiguity import paired_spread, score_spread
from napari_stackalign.core.similarity._estimator import SimilarityEstimator
from napari_stackalign.core.similarity._symmetry import SymmetryRivals, find_symmetries, symmetric_choice
from napari_stackalign.synthetic import make_stack


def _lattice(
    motion: FrameTransforms, shape: tuple[int, int], rng: np.random.Generator, *, period: float, hexagonal: bool,
    noise: float, vacancy: float = 0.04,
) -> np.ndarray:
    """A lattice with vacancies (fixed on the canvas: they break the symmetry), moved by ``motion``, noisy."""
    theta = rng.uniform(0, np.pi)
    a1 = period * np.array([np.cos(theta), np.sin(theta)])
    phi = theta + (np.pi / 3 if hexagonal else np.pi / 2)
    a2 = period * np.array([np.cos(phi), np.sin(phi)])
    inv_basis = np.linalg.inv(np.column_stack([a1, a2]))
    salt = int(rng.integers(1, 2**20))
    rr, cc = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    out = np.empty((len(motion), *shape), np.float32)
    for t, m in enumerate(motion.to_matrices()):
        inv = np.linalg.inv(m)
        u = inv[0, 0] * rr + inv[0, 1] * cc + inv[0, 2]
        v = inv[1, 0] * rr + inv[1, 1] * cc + inv[1, 2]
        f1 = inv_basis[0, 0] * u + inv_basis[0, 1] * v
        f2 = inv_basis[1, 0] * u + inv_basis[1, 1] * v
        n1, n2 = np.round(f1), np.round(f2)
        g1, g2 = f1 - n1, f2 - n2
        dy = a1[0] * g1 + a2[0] * g2
        dx = a1[1] * g1 + a2[1] * g2
        key = (n1.astype(np.int64) * 73856093) ^ (n2.astype(np.int64) * 19349663) ^ salt
        site = np.where(((key * 2654435761) % 1000003) / 1000003.0 < vacancy, 0.0, 1.0)
        img = 0.1 + site * np.exp(-(dy**2 + dx**2) / (2 * (0.18 * period) ** 2))
        out[t] = img + rng.normal(0.0, noise, shape)
    return out


def _one(shape: tuple[int, int], rng: np.random.Generator, **kwargs) -> np.ndarray:
    still = FrameTransforms(dy=[0.0], dx=[0.0], angle=[0.0], scale=[1.0], center=((shape[0] - 1) / 2, (shape[1] - 1) / 2))
    return _lattice(still, shape, rng, **kwargs)[0]


def _angles(found) -> set[float]:
    return {round(s.angle) for s in found if s.angle != 0.0}


def test_a_hexagonal_lattice_matches_itself_turned_by_60_degrees_and_one_lattice_vector_away() -> None:
    rng = np.random.default_rng(1)
    tpl = _one((128, 128), rng, period=9.0, hexagonal=True, noise=0.1)
    found = find_symmetries(tpl)
    assert _angles(found) == {60, 120, 180, -60, -120}, found
    shifts = [np.hypot(*s.matrix[:2, 2]) for s in found if s.angle == 0.0]
    assert shifts and all(8.0 < d < 10.0 for d in shifts), shifts  # one period
    # each symmetry maps the template onto itself
    est = SimilarityEstimator(tpl)
    for s in found:
        assert est.score(tpl, s.matrix)[0] > 0.6, s


def test_a_square_lattice_matches_itself_turned_by_90_degrees_not_60() -> None:
    rng = np.random.default_rng(2)
    tpl = _one((128, 96), rng, period=10.0, hexagonal=False, noise=0.1)
    angles = _angles(find_symmetries(tpl))
    assert angles == {90, -90, 180}, angles


@pytest.mark.parametrize("kind", ["beads", "texture"])
def test_beads_and_texture_have_no_symmetry_and_no_rivals(kind: str) -> None:
    # the generator's default frames (256 px); a small frame of a few beads can match its own turn by chance,
    # which costs one cheap comparison per frame and flags nothing unless a frame really matches its turn
    for seed in range(3):
        stack, _ = make_stack(kind, n_frames=1, snr=5.0, seed=seed)
        assert find_symmetries(np.asarray(stack[0], np.float32)) == [], (kind, seed)
        rivals = SymmetryRivals(np.asarray(stack[0], np.float32))
        assert not rivals
        assert rivals.rivals(np.asarray(stack[0], np.float32), np.eye(3)) == (pytest.approx(np.nan, nan_ok=True), [])


def test_an_angle_range_that_excludes_the_turn_leaves_no_rotation_to_look_for() -> None:
    rng = np.random.default_rng(1)
    tpl = _one((96, 96), rng, period=9.0, hexagonal=True, noise=0.1)
    # two allowed angles can differ by at most 40 degrees: no 60-degree symmetry can confuse them
    assert _angles(find_symmetries(tpl, angle_range=(-20.0, 20.0))) == set()
    assert any(s.angle == 0.0 for s in find_symmetries(tpl, angle_range=(-20.0, 20.0)))


@pytest.mark.parametrize("hexagonal", [True, False])
def test_a_lattice_frame_at_a_symmetric_pose_is_never_silently_wrong(hexagonal: bool, scenes) -> None:
    # without the symmetry rivals 14 of these 160 frames (9 hexagonal, 5 square) come out off by tens of px
    # yet marked ok
    shape = (128, 128)
    silent_total = 0
    for seed in range(10, 20):
        rng = np.random.default_rng(seed)
        motion = scenes.poses(9, shape, rng, angle=180.0, log_scale=0.0)
        stack = _lattice(motion, shape, rng, period=10.0, hexagonal=hexagonal, noise=0.4)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ft = register_similarity(stack, fallback="identity", workers=1)
        ref = ft.params["template_index"]
        err = scenes.corner_errors(ft, motion.invert(), ref, shape)
        silent_total += int(np.sum((err > 1.0) & ft.ok))
        # a flagged frame says why; a symmetry flag names the turn or the shift
        for t, r in enumerate(ft.reason):
            if "matches itself" in r:
                assert "turned by" in r or "shifted by" in r, r
    assert silent_total == 0


def test_a_symmetry_flag_names_the_symmetry_and_a_clear_winner_is_not_flagged() -> None:
    shape = (96, 96)
    m0 = np.eye(3)
    turned = np.array([[-1.0, 0.0, 95.0], [0.0, -1.0, 95.0], [0.0, 0.0, 1.0]])
    found = find_symmetries(_one(shape, np.random.default_rng(3), period=8.0, hexagonal=False, noise=0.05))
    sym = next(s for s in found if s.angle == 180.0)

    def choose(r_winner: float, r_rival: float, own: tuple[float, float] | None = None):
        """symmetric_choice with these scores over the shared pixels (``own``: each pose's own success)."""
        shared = {id(m0): r_winner, id(turned): r_rival}
        own = own or (r_winner, r_rival)
        return symmetric_choice(
            [(m0, own[0], 0.9, 0.1), (turned, own[1], 0.9, 0.1)], [None, sym], shape, 1.0,
            lambda a, b: (shared[id(a)], shared[id(b)], 0.8),
        )

    # the rival as good as the winner: flagged, named
    k, note = choose(0.80, 0.799)
    assert k == 0 and "ambiguous: the template matches itself turned by 180 deg" in note
    # far behind: not flagged
    assert choose(0.80, 0.60) == (0, "")
    # the rival better: it wins
    assert choose(0.60, 0.80)[0] == 1
    # better on its own (smaller) overlap but worse on the pixels both cover: the winner stays
    assert choose(0.80, 0.60, own=(0.80, 0.95)) == (0, "")


def test_the_paired_spread_is_below_two_independent_ones_and_grows_with_the_mismatch() -> None:
    shape = (128, 128)
    for best in (0.5, 0.8, 0.95):
        independent = np.hypot(score_spread(best, 0.8, shape, 1.0), score_spread(best - 0.02, 0.8, shape, 1.0))
        paired = paired_spread(best, best - 0.02, 0.8, shape, 1.0)
        assert 0 < paired < independent
        assert paired_spread(best, best - 0.2, 0.8, shape, 1.0) > paired
    assert paired_spread(1.0, 1.0, 0.8, shape, 1.0) == 0.0


def test_point_symmetric_frames_within_a_narrow_angle_range_are_not_flagged(scenes) -> None:
    """A scene that is its own 180-degree turn is no ambiguity when angle_range rules the turn out."""
    rng = np.random.default_rng(4)
    shape = (128, 128)
    scene = scenes.point_symmetric_scene(shape, rng)
    motion = scenes.poses(8, shape, rng, angle=20.0, log_scale=0.0)
    stack = scenes.render_blobs(motion, shape, scene, rng)
    ft = register_similarity(stack, angle_range=(-30.0, 30.0), workers=1)
    ref = ft.params["template_index"]
    assert ft.ok.all(), list(ft.reason)
    assert np.all(scenes.corner_errors(ft, motion.invert(), ref, shape) < 1.0)


def _pose(dy: float, dx: float) -> np.ndarray:
    m = np.eye(3)
    m[:2, 2] = (dy, dx)
    return m


def _results_with_one_frame_one_vector_off(step: float):
    from types import SimpleNamespace

    from napari_stackalign.core.similarity._estimator import FrameResult

    vector = np.array([23.0, 18.0])
    results = {}
    for t in range(6):
        right = _pose(step * t, -step * t)
        results[t] = FrameResult(right, 0.9, "")
    wrong = results[4].matrix.copy()
    wrong[:2, 2] += vector
    note = "ambiguous: the template matches itself shifted by (23.0, 18.0) px, and ..."
    # frame 4's winner is the image one lattice vector away; its refined poses hold the right one too
    results[4] = FrameResult(wrong, 0.91, "", 0.05, note, [(wrong, 0.91, 0.05), (results[3].matrix @ _pose(step, -step), 0.9, 0.06)])
    results[1] = FrameResult(results[1].matrix, 0.9, "", 0.05, note, [(results[1].matrix, 0.9, 0.05), (results[1].matrix @ _pose(*-vector), 0.89, 0.05)])
    return results, SimpleNamespace(shape=(256, 256))


def test_smooth_drift_settles_the_symmetry_ambiguity():
    from napari_stackalign.core.similarity._register import resolve_by_motion

    results, est = _results_with_one_frame_one_vector_off(step=2.0)
    ambiguity, settled = resolve_by_motion(results, {}, est)
    assert settled == [1, 4]
    assert ambiguity == {}
    np.testing.assert_allclose(results[4].matrix[:2, 2], [8.0, -8.0])
    np.testing.assert_allclose(results[1].matrix[:2, 2], [2.0, -2.0])
    assert results[4].success == 0.9 and results[4].ambiguity == ""


def test_motion_as_large_as_the_symmetry_settles_nothing():
    from napari_stackalign.core.similarity._register import resolve_by_motion

    results, est = _results_with_one_frame_one_vector_off(step=6.0)  # steps of 8.5 px, over a quarter of 29 px
    before = {t: r.matrix.copy() for t, r in results.items()}
    ambiguity, settled = resolve_by_motion(results, {}, est)
    assert settled == []
    assert set(ambiguity) == {1, 4}
    for t, r in results.items():
        np.testing.assert_array_equal(r.matrix, before[t])
