"""Ground-truth stacks with known motion, for tests, sample data and benchmarks.

Three kinds of content, each rendered *exactly* at every frame's transformed
coordinates (analytically, or by a Fourier shift / high-order spline of a
band-limited periodic canvas), so the motion is known to far better than
0.01 px:

``"beads"``
    Fluorescent beads (Gaussian spots of varied size and brightness) on a dim
    background.
``"lattice"``
    An atomic lattice (two sublattices, tilted against the pixel grid), the
    STEM case; usually at very low SNR.
``"texture"``
    A band-limited random textured scene (cells, tissue, surfaces).

The content extends beyond the frame (a larger canvas), so the borders of
moved frames show real content, not padding.

Motion: a random-walk drift (optionally with a steady trend) scaled so the
largest displacement equals ``drift`` pixels, plus independent per-frame
``jitter``; optionally rotation and scale ramps about the frame centre.

Noise: ``snr`` is the standard deviation of the clean frame divided by the
standard deviation of the noise. ``noise="poisson"`` scales the clean frame to
photon counts so that shot noise gives that SNR; ``"gaussian"`` adds white
noise.

Every function returns ``(stack, truth)`` where ``truth`` is the
:class:`~napari_stackalign.FrameTransforms` *correction* (the sign convention
of the whole package): applying ``truth`` to the stack puts every frame back
on the undisplaced canvas. Registration methods choose their own reference,
so compare after removing one global constant (see :func:`alignment_error`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from scipy import fft as sfft
from scipy import ndimage

from .transforms import FrameTransforms

__all__ = [
    "KINDS",
    "MOTION_DEFAULTS",
    "MotionDefaults",
    "SyntheticStack",
    "alignment_error",
    "bead_scene",
    "drifting_beads",
    "lattice",
    "linear_motion",
    "make_stack",
    "random_motion",
    "shifts_motion",
    "stem_stack",
    "textured_scene",
]

KINDS = ("beads", "lattice", "texture")


class SyntheticStack(NamedTuple):
    """A synthetic stack and its true correction transforms."""

    stack: np.ndarray
    truth: FrameTransforms


class MotionDefaults(NamedTuple):
    """The default random motion of :func:`random_motion` and :func:`make_stack` (written once)."""

    drift: float = 10.0
    jitter: float = 0.3
    rotation: float = 0.0
    scale: float = 0.0


#: the defaults, for the signatures (``drift: float = MOTION_DEFAULTS.drift``)
MOTION_DEFAULTS = MotionDefaults()


# ----------------------------------------------------------------- motion
def random_motion(
    n_frames: int,
    shape: tuple[int, int],
    *,
    drift: float = MOTION_DEFAULTS.drift,
    jitter: float = MOTION_DEFAULTS.jitter,
    rotation: float = MOTION_DEFAULTS.rotation,
    scale: float = MOTION_DEFAULTS.scale,
    trend: float = 0.5,
    rng: np.random.Generator | int | None = 0,
) -> FrameTransforms:
    """Sample motion (content displacement per frame) about the frame centre.

    Parameters
    ----------
    n_frames : int
        Number of frames.
    shape : (int, int)
        Frame shape (sets the rotation/scale centre).
    drift : float
        Largest random-walk displacement in pixels.
    jitter : float
        Standard deviation (px) of independent per-frame jitter on each axis.
    rotation : float
        Largest rotation in degrees (a random walk scaled to this).
    scale : float
        Largest relative scale change (0.05 gives scales within 0.95..1.05).
    trend : float
        Share (0..1) of the drift that is a steady straight-line trend.
    rng : Generator or int
        Random source (fixed seed by default).

    Returns
    -------
    FrameTransforms
        The motion (not the correction): content of frame ``t`` sits at
        ``motion`` applied to canvas coordinates.
    """
    rng = np.random.default_rng(rng)
    center = ((shape[0] - 1) / 2.0, (shape[1] - 1) / 2.0)

    def walk(dims: int) -> np.ndarray:
        steps = rng.normal(size=(n_frames, dims))
        steps[0] = 0
        path = np.cumsum(steps, axis=0)
        direction = rng.normal(size=dims)
        direction /= np.linalg.norm(direction) + 1e-12
        ramp = np.linspace(0, 1, n_frames)[:, None] * direction[None, :]
        peak_walk = np.abs(path).max() or 1.0
        path = (1 - trend) * path / peak_walk + trend * ramp
        peak = np.abs(path).max() or 1.0
        return path / peak

    pos = walk(2) * drift
    pos += rng.normal(scale=jitter, size=pos.shape) if jitter > 0 else 0.0
    ang = walk(1)[:, 0] * rotation if rotation else np.zeros(n_frames)
    scl = 1.0 + walk(1)[:, 0] * scale if scale else np.ones(n_frames)
    return FrameTransforms(dy=pos[:, 0], dx=pos[:, 1], angle=ang, scale=scl, center=center, method="synthetic motion")


def _inverse_coords(motion: FrameTransforms, t: int, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Canvas coordinates (rows, cols) seen by each pixel of frame ``t``."""
    inv = np.linalg.inv(motion.to_matrices(t))
    rr, cc = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    u = inv[0, 0] * rr + inv[0, 1] * cc + inv[0, 2]
    v = inv[1, 0] * rr + inv[1, 1] * cc + inv[1, 2]
    return u, v


# ---------------------------------------------------------------- content
def _render_beads(
    motion: FrameTransforms, shape: tuple[int, int], margin: int, rng: np.random.Generator, n_beads: int | None
) -> tuple[np.ndarray, dict]:
    h, w = shape
    area = (h + 2 * margin) * (w + 2 * margin)
    n = n_beads if n_beads is not None else max(8, int(area / 900))
    pos = np.column_stack(
        [rng.uniform(-margin, h + margin, n), rng.uniform(-margin, w + margin, n)]
    )
    sigma = rng.uniform(1.2, 2.5, n)
    amp = rng.uniform(0.5, 1.0, n)
    background = 0.05
    mats = motion.to_matrices()
    frames = np.empty((len(motion), h, w), dtype=np.float32)
    for t in range(len(motion)):
        m = mats[t]
        q = pos @ m[:2, :2].T + m[:2, 2]
        s = sigma * motion.scale[t]
        img = np.full(shape, background, dtype=np.float64)
        for (qy, qx), sg, a in zip(q, s, amp):
            r = int(np.ceil(4 * sg))
            y0, y1 = max(int(qy) - r, 0), min(int(qy) + r + 2, h)
            x0, x1 = max(int(qx) - r, 0), min(int(qx) + r + 2, w)
            if y0 >= y1 or x0 >= x1:
                continue
            yy = np.arange(y0, y1)[:, None] - qy
            xx = np.arange(x0, x1)[None, :] - qx
            img[y0:y1, x0:x1] += a * np.exp(-(yy**2 + xx**2) / (2 * sg**2))
        frames[t] = img
    info = {"bead_positions": pos.tolist(), "bead_sigma": sigma.tolist(), "bead_amplitude": amp.tolist()}
    return frames, info


def _render_lattice(
    motion: FrameTransforms, shape: tuple[int, int], rng: np.random.Generator, period: float
) -> tuple[np.ndarray, dict]:
    theta = rng.uniform(5, 25) * np.pi / 180
    a1 = period * np.array([np.cos(theta), np.sin(theta)])
    a2 = period * np.array([-np.sin(theta), np.cos(theta)])
    basis = np.column_stack([a1, a2])  # columns: lattice vectors in (row, col)
    inv_basis = np.linalg.inv(basis)
    sigma_a, sigma_b = 0.12 * period, 0.09 * period
    frames = np.empty((len(motion), *shape), dtype=np.float32)
    for t in range(len(motion)):
        u, v = _inverse_coords(motion, t, shape)
        f1 = inv_basis[0, 0] * u + inv_basis[0, 1] * v
        f2 = inv_basis[1, 0] * u + inv_basis[1, 1] * v
        img = np.zeros(shape, dtype=np.float64)
        for (o1, o2), sg, amp in (((0.0, 0.0), sigma_a, 1.0), ((0.5, 0.5), sigma_b, 0.55)):
            g1 = f1 - o1 - np.round(f1 - o1)
            g2 = f2 - o2 - np.round(f2 - o2)
            dy = basis[0, 0] * g1 + basis[0, 1] * g2
            dx = basis[1, 0] * g1 + basis[1, 1] * g2
            img += amp * np.exp(-(dy**2 + dx**2) / (2 * (sg * motion.scale[t]) ** 2))
        frames[t] = img + 0.1
    return frames, {"lattice_period": period, "lattice_angle_deg": float(np.rad2deg(theta))}


def _render_texture(
    motion: FrameTransforms, shape: tuple[int, int], margin: int, rng: np.random.Generator
) -> tuple[np.ndarray, dict]:
    h, w = shape
    ch = sfft.next_fast_len(h + 2 * margin, real=True)
    cw = sfft.next_fast_len(w + 2 * margin, real=True)
    ky = sfft.fftfreq(ch)[:, None]
    kx = sfft.rfftfreq(cw)[None, :]
    k = np.hypot(ky, kx)
    # a band-limited mix of coarse structures and fine detail (no energy near
    # Nyquist, so the canvas is smooth on the pixel grid)
    spectrum = (np.exp(-((k / 0.02) ** 2)) * 4 + np.exp(-((k / 0.12) ** 2))) * (k < 0.3)
    spectrum[0, 0] = 0
    noise = rng.normal(size=(ch, cw // 2 + 1)) + 1j * rng.normal(size=(ch, cw // 2 + 1))
    canvas_hat = noise * spectrum
    canvas = sfft.irfft2(canvas_hat, s=(ch, cw))
    lo, hi = canvas.min(), canvas.max()
    canvas = (canvas - lo) / (hi - lo) + 0.1
    canvas_hat = sfft.rfft2(canvas)
    frames = np.empty((len(motion), h, w), dtype=np.float32)
    if motion.is_translation:
        # exact sub-pixel shift of a periodic band-limited canvas
        ky2 = sfft.fftfreq(ch)[:, None]
        kx2 = sfft.rfftfreq(cw)[None, :]
        for t in range(len(motion)):
            ramp = np.exp(-2j * np.pi * (ky2 * (motion.dy[t] + margin) + kx2 * (motion.dx[t] + margin)))
            frames[t] = sfft.irfft2(canvas_hat * ramp, s=(ch, cw))[:h, :w]
    else:
        coeffs = ndimage.spline_filter(canvas, order=5, mode="grid-wrap")
        for t in range(len(motion)):
            u, v = _inverse_coords(motion, t, shape)
            frames[t] = ndimage.map_coordinates(
                coeffs, [u + margin, v + margin], order=5, mode="grid-wrap", prefilter=False
            )
    return frames, {}


# ------------------------------------------------------------------ noise
def _add_noise(clean: np.ndarray, snr: float | None, noise: str, rng: np.random.Generator) -> np.ndarray:
    if snr is None or np.isinf(snr):
        return clean
    if snr <= 0:
        raise ValueError("snr must be positive (or None for no noise).")
    signal_std = float(clean[0].std()) or 1.0
    if noise == "gaussian":
        return clean + rng.normal(scale=signal_std / snr, size=clean.shape).astype(np.float32)
    if noise == "poisson":
        mean = float(clean[0].mean())
        gain = (snr * np.sqrt(mean) / signal_std) ** 2
        out = np.empty_like(clean)
        for t in range(clean.shape[0]):
            out[t] = rng.poisson(np.clip(clean[t], 0, None) * gain)
        return out
    raise ValueError(f"noise must be 'poisson' or 'gaussian', got {noise!r}.")


def _burn_label(stack: np.ndarray, rng: np.random.Generator) -> None:
    """A bright static text-like label in the top-left corner (does not move)."""
    h, w = stack.shape[-2:]
    lh, lw = max(6, h // 16), max(20, w // 5)
    pattern = rng.random((lh // 3 + 1, lw // 3 + 1)) > 0.5
    pattern = np.kron(pattern, np.ones((3, 3), dtype=bool))[:lh, :lw]
    value = float(np.percentile(stack, 99.9)) * 1.5
    box = stack[..., 2 : 2 + lh, 2 : 2 + lw]
    box[...] = 0.0  # a dark box with bright text
    box[..., pattern] = value


def _check_scene(kind: str, n_frames: int, shape: tuple[int, int]) -> tuple[int, int]:
    """The frame shape as integers, after checking the content, frame count and frame size."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}.")
    if n_frames < 1:
        raise ValueError("n_frames must be at least 1.")
    shape = (int(shape[0]), int(shape[1]))
    if min(shape) < 8:
        raise ValueError("frames must be at least 8x8 pixels.")
    return shape


def _ground_truth(motion: FrameTransforms, params: dict) -> FrameTransforms:
    """The correction that undoes ``motion``, recording the scene's settings."""
    truth = motion.invert()
    truth.method = "ground truth"
    truth.params = params
    return truth


def _canvas_margin(motion: FrameTransforms, shape: tuple[int, int]) -> int:
    """Pixels of content needed around the frame so the moved frames never leave the canvas."""
    reach = np.abs(motion.shifts).max() if len(motion) else 0.0
    diag = np.hypot(*shape)
    return int(np.ceil(reach + diag * (np.abs(np.deg2rad(motion.angle)).max() + np.abs(motion.scale - 1).max()) + 8))


def _clean_frames(
    kind: str,
    motion: FrameTransforms,
    shape: tuple[int, int],
    margin: int,
    rng: np.random.Generator,
    n_beads: int | None,
    lattice_period: float,
) -> tuple[np.ndarray, dict]:
    """One channel's noise-free frames of ``kind`` content, and what the renderer records."""
    if kind == "beads":
        return _render_beads(motion, shape, margin, rng, n_beads)
    if kind == "lattice":
        return _render_lattice(motion, shape, rng, lattice_period)
    return _render_texture(motion, shape, margin, rng)


def _as_dtype(stack: np.ndarray, dtype: Any) -> np.ndarray:
    """``stack`` in ``dtype``; integers are rounded and clipped (see below)."""
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        limits = np.iinfo(dtype)
        peak = max(float(stack.max()), 1e-12)
        # photon counts are kept as they are when the type holds them; clean
        # (0..1) content, or counts beyond the type's range, are rescaled so
        # the brightest pixel sits at 80% of the range (nothing clips)
        scale_to = 0.8 * limits.max / peak if (peak <= 1.5 or peak > limits.max) else 1.0
        stack = np.clip(np.rint(stack * scale_to), limits.min, limits.max)
    return stack.astype(dtype)


# ------------------------------------------------------------------ public
def make_stack(
    kind: str = "beads",
    *,
    n_frames: int = 50,
    shape: tuple[int, int] = (256, 256),
    drift: float = MOTION_DEFAULTS.drift,
    jitter: float = MOTION_DEFAULTS.jitter,
    rotation: float = MOTION_DEFAULTS.rotation,
    scale: float = MOTION_DEFAULTS.scale,
    motion: FrameTransforms | None = None,
    snr: float | None = 5.0,
    noise: str = "poisson",
    intensity_decay: float = 0.0,
    static_label: bool = False,
    n_channels: int = 1,
    n_beads: int | None = None,
    lattice_period: float = 8.0,
    dtype: Any = np.float32,
    seed: int = 0,
) -> SyntheticStack:
    """A stack of ``kind`` content with known motion and noise.

    Parameters
    ----------
    kind : {"beads", "lattice", "texture"}
        The content (see the module docstring).
    n_frames : int
        Number of frames (at least 1).
    shape : (int, int)
        Frame shape (rows, cols); need not be square or even.
    drift, jitter, rotation, scale
        Motion, as in :func:`random_motion`. Ignored when ``motion`` is given.
    motion : FrameTransforms, optional
        Exact content motion to use instead of a random one (its centre is
        honoured).
    snr : float or None
        Signal-to-noise ratio (std of clean frame / std of noise); None for
        no noise.
    noise : {"poisson", "gaussian"}
        Noise model.
    intensity_decay : float
        Fractional loss of brightness from the first to the last frame
        (bleaching, a surface that darkens).
    static_label : bool
        Burn a bright static label into the top-left corner of every frame
        (it must not anchor a registration).
    n_channels : int
        With more than 1, returns (T, C, Y, X): each channel has its own
        content (different seed) but the same motion.
    n_beads : int, optional
        Bead count (default: about one per 30x30 px of canvas).
    lattice_period : float
        Lattice spacing in px for ``"lattice"``.
    dtype : dtype
        Output type (integers are rounded and clipped).
    seed : int
        Seed for content, motion and noise.

    Returns
    -------
    SyntheticStack
        ``(stack, truth)``; ``truth.params`` records the settings and, for
        beads, the bead positions on the canvas.
    """
    shape = _check_scene(kind, n_frames, shape)
    rng = np.random.default_rng(seed)
    if motion is None:
        motion = random_motion(
            n_frames, shape, drift=drift, jitter=jitter, rotation=rotation, scale=scale, rng=rng
        )
    elif len(motion) != n_frames:
        raise ValueError(f"motion has {len(motion)} frames, expected {n_frames}.")
    margin = _canvas_margin(motion, shape)

    channels = []
    info: dict = {}
    for c in range(n_channels):
        crng = np.random.default_rng([seed, c])
        clean, cinfo = _clean_frames(kind, motion, shape, margin, crng, n_beads, lattice_period)
        if intensity_decay:
            clean *= (1.0 - intensity_decay * np.linspace(0, 1, n_frames, dtype=np.float32))[:, None, None]
        noisy = _add_noise(clean, snr, noise, np.random.default_rng([seed, c, 1]))
        if static_label:
            _burn_label(noisy, np.random.default_rng([seed, 99]))
        channels.append(noisy)
        if c == 0:
            info = cinfo
    stack = _as_dtype(channels[0] if n_channels == 1 else np.stack(channels, axis=1), dtype)

    # the settings, in the order truth.params has always listed them
    settings = {"kind": kind, "snr": snr, "noise": noise, "drift": drift, "jitter": jitter, "rotation": rotation}
    settings.update(scale=scale, intensity_decay=intensity_decay, static_label=static_label, seed=seed)
    return SyntheticStack(stack, _ground_truth(motion, {**settings, **info}))


def drifting_beads(**kwargs: Any) -> SyntheticStack:
    """Drifting fluorescent beads; see :func:`make_stack` for the options."""
    return make_stack("beads", **kwargs)


def lattice(*, snr: float | None = 0.4, **kwargs: Any) -> SyntheticStack:
    """A low-SNR atomic lattice (STEM-like); see :func:`make_stack`."""
    return make_stack("lattice", snr=snr, **kwargs)


def textured_scene(**kwargs: Any) -> SyntheticStack:
    """A band-limited textured scene; see :func:`make_stack`."""
    return make_stack("texture", **kwargs)


def alignment_error(estimate: FrameTransforms, truth: FrameTransforms) -> dict[str, float]:
    """Translation error of ``estimate`` against ``truth`` after removing one
    global constant offset (every method picks its own reference).

    Both are compared as shifts about the frame's own centre of ``truth``.
    Returns RMS and max of the per-frame error norm (px), the share of frames
    off by more than 1 px, and the angle/scale errors after removing the
    global constants.
    """
    est = estimate.with_center(truth.center)
    err = est.shifts - truth.shifts
    err -= np.median(err, axis=0)
    err -= err.mean(axis=0)
    norm = np.hypot(err[:, 0], err[:, 1])
    ang = est.angle - truth.angle
    ang -= ang.mean()
    scl = est.scale / truth.scale
    scl /= scl.mean()
    return {
        "rms": float(np.sqrt(np.mean(norm**2))),
        "max": float(norm.max()),
        "frac_over_1px": float(np.mean(norm > 1.0)),
        "angle_max": float(np.abs(ang).max()),
        "scale_max": float(np.abs(scl - 1).max()),
    }


# ----------------------------------------------------------------- scenes
# Ready-made scenes for particular methods (the tests and benchmarks use them).


def stem_stack(
    n_frames: int,
    shape: tuple[int, int],
    *,
    period: float = 8.0,
    texture: float = 0.3,
    snr: float | None = 0.4,
    drift: float = 3.0,
    jitter: float = 0.3,
    motion: FrameTransforms | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, FrameTransforms]:
    """A low-dose STEM-like stack: an atomic lattice plus a weak texture, with known motion.

    The lattice (``make_stack("lattice")``) carries a weak band-limited texture
    that moves with it (thickness or contamination contrast: a perfect lattice
    alone is only defined up to a lattice vector), with Poisson noise at the
    requested SNR (std of the clean frame / std of the noise).

    Parameters
    ----------
    n_frames : int
        Number of frames.
    shape : (int, int)
        Frame shape (Y, X).
    period : float
        Lattice period in pixels.
    texture : float
        Strength of the texture relative to the lattice (0: lattice only).
    snr : float or None
        Signal-to-noise ratio of a frame; None: no noise.
    drift, jitter : float
        Passed to :func:`random_motion` when ``motion`` is not given.
    motion : FrameTransforms, optional
        The content's motion (default: a random drift with jitter).
    seed : int
        Seed of the motion, the scene and the noise.

    Returns
    -------
    stack : ndarray of float32, shape (T, Y, X)
    truth : FrameTransforms
        The true correction of every frame.
    """
    if motion is None:
        motion = random_motion(n_frames, shape, drift=drift, jitter=jitter, rng=seed)
    lat, truth = make_stack(
        "lattice", n_frames=n_frames, shape=shape, motion=motion, snr=None, lattice_period=period, seed=seed
    )
    clean = lat / lat[0].std()
    if texture:
        tex, _ = make_stack("texture", n_frames=n_frames, shape=shape, motion=motion, snr=None, seed=seed + 1)
        clean = clean + texture * tex / tex[0].std()
    clean = clean - clean.min() + 0.1
    if snr is None:
        return clean.astype(np.float32), truth
    gain = (snr * np.sqrt(clean[0].mean()) / clean[0].std()) ** 2
    rng = np.random.default_rng(seed + 2)
    return rng.poisson(clean * gain).astype(np.float32), truth


def shifts_motion(shifts: Any) -> FrameTransforms:
    """Content motion with the given per-frame displacements, shape (T, 2) as (dy, dx)."""
    shifts = np.asarray(shifts, dtype=float)
    return FrameTransforms(dy=shifts[:, 0], dx=shifts[:, 1])


def bead_scene(
    motion: FrameTransforms,
    shape: tuple[int, int],
    *,
    snr: float = 8.0,
    n_beads: int = 50,
    seed: int = 0,
    margin: float = 10,
    min_gap: float = 13,
    **kwargs: Any,
) -> tuple[np.ndarray, FrameTransforms, np.ndarray]:
    """Beads moving with ``motion``, and the true trajectories of the isolated ones.

    Parameters
    ----------
    motion : FrameTransforms
        The content's motion (translation and rotation about its centre).
    shape : (int, int)
        Frame shape (Y, X).
    snr : float
        Signal-to-noise ratio (see :func:`make_stack`).
    n_beads : int
        Beads rendered.
    seed : int
        Seed of the scene and the noise.
    margin : float
        A bead counts only if it stays this far (px) inside every frame.
    min_gap : float
        ... and this far from every other bead in every frame.
    **kwargs
        Passed to :func:`make_stack`.

    Returns
    -------
    stack : ndarray, shape (T, Y, X)
    truth : FrameTransforms
        The true correction of every frame.
    trajectories : ndarray, shape (T, N, 2)
        (row, col) of each isolated bead inside every frame.
    """
    stack, truth = make_stack(
        "beads", n_frames=len(motion), shape=shape, motion=motion, snr=snr, n_beads=n_beads, seed=seed, **kwargs
    )
    pos = np.asarray(truth.params["bead_positions"])
    mats = motion.to_matrices()
    traj = np.einsum("tij,nj->tni", mats[:, :2, :2], pos) + mats[:, None, :2, 2]
    inside = np.all(
        (traj[..., 0] > margin)
        & (traj[..., 0] < shape[0] - margin)
        & (traj[..., 1] > margin)
        & (traj[..., 1] < shape[1] - margin),
        axis=0,
    )
    # isolated in every frame (beads outside the frame count as neighbours too)
    gaps = []
    for t in range(len(motion)):
        d = np.hypot(*(traj[t][:, None] - traj[t][None]).transpose(2, 0, 1))
        np.fill_diagonal(d, np.inf)
        gaps.append(d.min(axis=1))
    isolated = np.min(gaps, axis=0) > min_gap
    idx = np.flatnonzero(inside & isolated)
    return stack, truth, traj[:, idx]


def linear_motion(n: int, shape: tuple[int, int], dy: float, dx: float, angle: float = 0.0) -> FrameTransforms:
    """Motion growing linearly from nothing to ``(dy, dx)`` px and ``angle`` degrees over ``n`` frames."""
    center = ((shape[0] - 1) / 2, (shape[1] - 1) / 2)
    return FrameTransforms(
        dy=np.linspace(0, dy, n), dx=np.linspace(0, dx, n), angle=np.linspace(0, angle, n), center=center
    )
