"""A broad evaluation grid: many random cases, every method, and the frames that are silently wrong.

Plain script (not collected by pytest: ``tests/benchmarks`` is ignored by the
default run)::

    PYTHONPATH=src python tests/benchmarks/bench_grid.py [--seed 1] [--cases 40] [--quick]
        [--methods pyramid,pairwise,similarity,skimage,cv2,psr_prev,psr_mean] [--json out.json]

Every case is drawn at random from ``--seed``:

- content: ``beads`` (own renderer: analytic Gaussians), ``beads_sa`` and
  ``texture`` (``napari_stackalign.synthetic``), ``camera`` (crops of
  scikit-image's natural images, zoomed and resampled with a cubic spline),
  ``hex`` and ``square`` lattices (own analytic renderer, periods 4 to 16 px,
  random orientation, vacancies and dopants so a lattice vector is not a
  perfect symmetry), and ``noise`` (noise-only stacks: no signal at all);
- frames 64 to 1024 px, square or not; 12 to 80 frames (fewer on big frames);
- SNR (std of the clean frame over the std of the noise) log-uniform in
  0.2 .. 20, Poisson (with a detector offset and read noise) or Gaussian;
- drift up to 15 % of the smaller side (random walk plus trend), jitter up to
  1 px, sometimes a rotation up to 1.5 degrees, sometimes intensity decay.

Methods (``--methods``): ``pyramid`` (``register_pyramid`` defaults),
``pairwise`` (``register_pairwise`` defaults; on lattice and noise cases of at
most 512 px, first 40 frames), ``similarity`` (``register_similarity``
defaults), and the peers ``skimage`` (``phase_cross_correlation``, upsample 20,
reference the mean of the first 10 frames), ``cv2`` (``cv2.phaseCorrelate``
with a Hann window, same reference), ``psr_prev`` / ``psr_mean`` (pystackreg
TRANSLATION, reference "previous" / "mean").

Per case and method it reports:

- ``rms``: RMS error (px) of the translation at the frame centre, after
  removing one constant offset (the median error over the trustworthy
  frames), of the transforms a user gets applied (failed frames resolved by
  ``resolve_failed("interpolate")``, the default of ``apply_transforms``);
- ``>1px``: share of frames whose applied transform is more than 1 px off;
- ``silent``: share of frames whose *estimate* is more than 1 px off (or NaN)
  while marked ``ok``: a wrong frame nobody is told about. It must be 0 for
  our methods; the peers have no flags (``n/a``);
- ``ok``: share of frames marked ok;
- on noise-only stacks only ``ok`` (should be 0) and whether a
  ``NoSignalWarning`` was raised (by the registration, or by
  ``apply_transforms`` on its result).

The aggregated table groups the cases by content and SNR band (low < 1,
medium 1..5, high > 5). The worst cases (most silent frames) are listed at the
end with what is needed to regenerate them (``--only CASE_ID``).

Sign convention: ``FrameTransforms`` holds corrections (see
``napari_stackalign.transforms``); a sanity check on a known shift runs first
for every selected method and stops the script when a sign is wrong.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import ndimage

from napari_stackalign import NoSignalWarning, apply_transforms
from napari_stackalign.core.pairwise import register_pairwise
from napari_stackalign.core.pyramid import register_pyramid
from napari_stackalign.core.similarity import register_similarity
from napari_stackalign.synthetic import make_stack, random_motion
from napari_stackalign.transforms import FrameTransforms

OURS = ("pyramid", "pairwise", "similarity")
PEERS = ("skimage", "cv2", "psr_prev", "psr_mean")
ALL_METHODS = OURS + PEERS
CONTENTS = ("beads", "beads_sa", "texture", "camera", "hex", "square", "noise")
#: pairwise runs on these contents only, on at most this many frames and this frame size
PAIRWISE_CONTENTS = ("hex", "square", "noise")
PAIRWISE_FRAMES = 40
PAIRWISE_MAX_SIZE = 512
N_REF = 10  # peers' reference: mean of the first N_REF frames


# ------------------------------------------------------------------ cases
@dataclass
class Case:
    """One random case (everything needed to regenerate it)."""

    id: int
    content: str
    shape: tuple[int, int]
    n_frames: int
    snr: float
    noise: str
    drift: float
    jitter: float
    rotation: float
    decay: float
    period: float = 0.0
    seed: int = 0

    @property
    def snr_band(self) -> str:
        if self.content == "noise":
            return "-"
        return "low" if self.snr < 1 else ("high" if self.snr > 5 else "med")

    def label(self) -> str:
        h, w = self.shape
        if self.content == "noise":
            return f"#{self.id} noise {h}x{w}x{self.n_frames} {self.noise}"
        extra = f" p{self.period:g}" if self.period else ""
        rot = f" rot{self.rotation:.1f}" if self.rotation else ""
        dec = f" decay{self.decay:.1f}" if self.decay else ""
        return (
            f"#{self.id} {self.content}{extra} {h}x{w}x{self.n_frames} snr{self.snr:.2g} "
            f"{self.noise} drift{self.drift:.0f}{rot}{dec}"
        )


SIZES = (64, 96, 128, 160, 192, 256, 320, 384, 512, 768, 1024)


def draw_cases(seed: int, n: int, quick: bool) -> list[Case]:
    """``n`` random cases from ``seed`` (``quick``: frames of at most 256 px, fewer frames)."""
    rng = np.random.default_rng([seed, 13])
    sizes = [s for s in SIZES if s <= (256 if quick else 1024)]
    # small frames are drawn more often (they are cheap), big ones still appear
    weights = np.array([1.0 / math.sqrt(s) for s in sizes])
    weights /= weights.sum()
    cases = []
    for i in range(n):
        content = (
            CONTENTS[i % len(CONTENTS)]
            if i < len(CONTENTS)
            else str(rng.choice(CONTENTS))
        )
        h = int(rng.choice(sizes, p=weights))
        w = h if rng.random() < 0.6 else int(rng.choice(sizes, p=weights))
        big = max(h, w)
        cap = 80 if big <= 256 else (40 if big <= 512 else 16)
        if quick:
            cap = min(cap, 30)
        n_frames = int(rng.integers(12, cap + 1))
        snr = float(np.exp(rng.uniform(np.log(0.2), np.log(20.0))))
        period = 0.0
        if content in ("hex", "square"):
            period = float(rng.choice([4.0, 5.0, 6.0, 8.0, 10.0, 12.0, 16.0]))
        cases.append(
            Case(
                id=i,
                content=content,
                shape=(h, w),
                n_frames=n_frames,
                snr=snr,
                noise=str(rng.choice(["poisson", "gaussian"])),
                drift=float(rng.uniform(0.0, 0.15) * min(h, w)),
                jitter=float(rng.uniform(0.0, 1.0)),
                rotation=float(rng.uniform(0.3, 1.5)) if rng.random() < 0.2 else 0.0,
                decay=float(rng.uniform(0.1, 0.6)) if rng.random() < 0.25 else 0.0,
                period=period,
                seed=int(rng.integers(0, 2**31)),
            )
        )
    return cases


# -------------------------------------------------------------- rendering
def _frame_coords(
    motion: FrameTransforms, t: int, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Canvas coordinates (rows, cols), relative to the frame origin, seen by each pixel of frame ``t``."""
    inv = np.linalg.inv(motion.to_matrices()[t])
    rr, cc = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    return inv[0, 0] * rr + inv[0, 1] * cc + inv[0, 2], inv[1, 0] * rr + inv[
        1, 1
    ] * cc + inv[1, 2]


def _reach(motion: FrameTransforms, shape: tuple[int, int]) -> int:
    diag = math.hypot(*shape)
    return int(
        np.abs(motion.shifts).max() + diag * np.abs(np.deg2rad(motion.angle)).max() + 12
    )


def _natural_image(rng: np.random.Generator) -> np.ndarray:
    from skimage import color, data

    name = str(rng.choice(["camera", "moon", "astronaut", "coffee"]))
    img = getattr(data, name)()
    if img.ndim == 3:
        img = color.rgb2gray(img)
    img = img.astype(np.float64)
    return (img - img.min()) / (np.ptp(img) or 1.0)


def render_camera(
    motion: FrameTransforms, shape: tuple[int, int], rng: np.random.Generator
) -> np.ndarray:
    """Crops of a natural image (zoomed so the canvas fits), resampled with a cubic spline."""
    m = _reach(motion, shape)
    ch, cw = shape[0] + 2 * m, shape[1] + 2 * m
    img = _natural_image(rng)
    zoom = max(ch, cw) / min(img.shape) * rng.uniform(1.0, 1.4)
    if zoom > 1:
        img = ndimage.zoom(img, zoom, order=3)
    y0 = int(rng.integers(0, img.shape[0] - ch + 1))
    x0 = int(rng.integers(0, img.shape[1] - cw + 1))
    canvas = ndimage.gaussian_filter(img[y0 : y0 + ch, x0 : x0 + cw], 0.8) + 0.05
    coeffs = ndimage.spline_filter(canvas, order=3)
    frames = np.empty((len(motion), *shape), np.float32)
    for t in range(len(motion)):
        u, v = _frame_coords(motion, t, shape)
        frames[t] = ndimage.map_coordinates(
            coeffs, [u + m, v + m], order=3, prefilter=False, mode="nearest"
        )
    return frames


def render_beads(
    motion: FrameTransforms, shape: tuple[int, int], rng: np.random.Generator
) -> np.ndarray:
    """Analytic Gaussian beads of three sizes on a background (not the package's generator)."""
    m = _reach(motion, shape)
    h, w = shape
    n = max(6, int((h + 2 * m) * (w + 2 * m) / rng.uniform(300, 1500)))
    pos = np.column_stack([rng.uniform(-m, h + m, n), rng.uniform(-m, w + m, n)])
    sigma = rng.choice([1.0, 1.8, 3.0], n) * rng.uniform(0.8, 1.2, n)
    amp = rng.uniform(0.3, 1.0, n)
    mats = motion.to_matrices()
    frames = np.empty((len(motion), h, w), np.float32)
    for t in range(len(motion)):
        q = pos @ mats[t][:2, :2].T + mats[t][:2, 2]
        img = np.full(shape, 0.1)
        for (qy, qx), s, a in zip(q, sigma, amp):
            r = int(4 * s) + 1
            y0, y1 = max(int(qy) - r, 0), min(int(qy) + r + 2, h)
            x0, x1 = max(int(qx) - r, 0), min(int(qx) + r + 2, w)
            if y0 < y1 and x0 < x1:
                yy = (np.arange(y0, y1) - qy)[:, None]
                xx = (np.arange(x0, x1) - qx)[None, :]
                img[y0:y1, x0:x1] += a * np.exp(-(yy**2 + xx**2) / (2 * s * s))
        frames[t] = img
    return frames


def render_lattice(
    motion: FrameTransforms,
    shape: tuple[int, int],
    rng: np.random.Generator,
    period: float,
    hexagonal: bool,
) -> np.ndarray:
    """An analytic 2D lattice with vacancies, dopants and a weak second sublattice (square only)."""
    theta = rng.uniform(0, np.pi)
    a1 = period * np.array([np.cos(theta), np.sin(theta)])
    phi = theta + (np.pi / 3 if hexagonal else np.pi / 2)
    a2 = period * np.array([np.cos(phi), np.sin(phi)])
    inv_basis = np.linalg.inv(np.column_stack([a1, a2]))
    sigma = rng.uniform(0.12, 0.2) * period
    vacancy, dopant = rng.uniform(0.01, 0.06), rng.uniform(0.0, 0.03)
    salt = int(rng.integers(1, 2**20))
    frames = np.empty((len(motion), *shape), np.float32)
    subs = [((0.0, 0.0), 1.0)] if hexagonal else [((0.0, 0.0), 1.0), ((0.5, 0.5), 0.5)]
    for t in range(len(motion)):
        u, v = _frame_coords(motion, t, shape)
        f1 = inv_basis[0, 0] * u + inv_basis[0, 1] * v
        f2 = inv_basis[1, 0] * u + inv_basis[1, 1] * v
        img = np.full(shape, 0.1)
        for (o1, o2), amp in subs:
            n1, n2 = np.round(f1 - o1), np.round(f2 - o2)
            g1, g2 = f1 - o1 - n1, f2 - o2 - n2
            dy = a1[0] * g1 + a2[0] * g2
            dx = a1[1] * g1 + a2[1] * g2
            # a per-site hash (fixed on the canvas): vacancies and brighter dopants
            key = (
                (n1.astype(np.int64) * 73856093)
                ^ (n2.astype(np.int64) * 19349663)
                ^ salt
            )
            hsh = ((key * 2654435761) % 1000003) / 1000003.0
            site = np.where(hsh < vacancy, 0.0, np.where(hsh > 1 - dopant, 1.8, 1.0))
            img += amp * site * np.exp(-(dy**2 + dx**2) / (2 * sigma**2))
        frames[t] = img
    return frames


def add_noise(
    clean: np.ndarray, snr: float, kind: str, rng: np.random.Generator
) -> np.ndarray:
    """Noise so that std(clean frame) / std(noise) is ``snr`` (Poisson: with offset and read noise)."""
    std = float(clean[0].std()) or 1.0
    if kind == "gaussian":
        return (clean + rng.normal(scale=std / snr, size=clean.shape) + 2.0).astype(
            np.float32
        )
    mean = float(clean[0].mean())
    read = 1.0
    # photons per unit: (snr * noise std)^2 = gain * mean + read^2 with noise std = gain*std/snr
    # solved for the gain: gain^2 std^2 / snr^2 = gain mean + read^2
    a, b, c = std**2 / snr**2, -mean, -(read**2)
    gain = (-b + math.sqrt(b * b - 4 * a * c)) / (2 * a)
    out = rng.poisson(np.clip(clean, 0, None) * gain).astype(np.float32)
    out += rng.normal(0.0, read, out.shape).astype(np.float32) + 100.0
    return np.clip(np.rint(out), 0, 65535).astype(np.uint16)


def make_case(case: Case) -> tuple[np.ndarray, FrameTransforms]:
    """(stack, truth correction) of ``case``."""
    rng = np.random.default_rng(case.seed)
    shape = case.shape
    motion = random_motion(
        case.n_frames,
        shape,
        drift=case.drift,
        jitter=case.jitter,
        rotation=case.rotation,
        rng=rng,
    )
    truth = motion.invert()
    if case.content == "noise":
        mean = float(np.exp(rng.uniform(np.log(0.5), np.log(200))))
        if case.noise == "poisson":
            stack = rng.poisson(mean, (case.n_frames, *shape)).astype(np.uint16)
        else:
            stack = rng.normal(100.0, 10.0, (case.n_frames, *shape)).astype(np.float32)
        return stack, FrameTransforms.from_shifts(
            np.zeros((case.n_frames, 2)), center=truth.center
        )
    if case.content in ("beads_sa", "texture"):
        kind = "beads" if case.content == "beads_sa" else "texture"
        stack, truth = make_stack(
            kind,
            n_frames=case.n_frames,
            shape=shape,
            motion=motion,
            snr=case.snr,
            noise=case.noise,
            intensity_decay=case.decay,
            seed=case.seed % 100000,
        )
        return stack, truth
    if case.content == "camera":
        clean = render_camera(motion, shape, rng)
    elif case.content == "beads":
        clean = render_beads(motion, shape, rng)
    else:
        clean = render_lattice(
            motion, shape, rng, case.period, hexagonal=case.content == "hex"
        )
    if case.decay:
        clean *= (
            1.0 - case.decay * np.linspace(0, 1, case.n_frames, dtype=np.float32)
        )[:, None, None]
    return add_noise(clean, case.snr, case.noise, rng), truth


# ---------------------------------------------------------------- methods
def _mean_ref(stack: np.ndarray) -> np.ndarray:
    return stack[: min(N_REF, len(stack))].astype(np.float32).mean(axis=0)


def run_skimage(stack: np.ndarray) -> FrameTransforms:
    from skimage.registration import phase_cross_correlation

    ref = _mean_ref(stack)
    shifts = [
        phase_cross_correlation(ref, f.astype(np.float32), upsample_factor=20)[0]
        for f in stack
    ]
    return FrameTransforms.from_shifts(
        np.array(shifts, float), method="skimage"
    )  # correction already


def run_cv2(stack: np.ndarray) -> FrameTransforms:
    import cv2

    ref = _mean_ref(stack)
    h, w = ref.shape
    win = cv2.createHanningWindow((w, h), cv2.CV_32F)
    shifts = np.empty((len(stack), 2))
    for t, f in enumerate(stack):
        # OpenCV 5 multiplies both inputs by the window in place: copies
        (x, y), _ = cv2.phaseCorrelate(ref.copy(), f.astype(np.float32), win.copy())
        shifts[t] = (-y, -x)  # content displacement -> correction
    return FrameTransforms.from_shifts(shifts, method="cv2")


def run_pystackreg(stack: np.ndarray, reference: str) -> FrameTransforms:
    from pystackreg import StackReg

    tmats = StackReg(StackReg.TRANSLATION).register_stack(
        stack.astype(np.float64), reference=reference, verbose=False
    )
    return FrameTransforms.from_shifts(
        np.column_stack([-tmats[:, 1, 2], -tmats[:, 0, 2]]), method="pystackreg"
    )


def runs_on(method: str, case: Case) -> bool:
    if method == "pairwise":
        return (
            case.content in PAIRWISE_CONTENTS and max(case.shape) <= PAIRWISE_MAX_SIZE
        )
    return True


def frames_for(method: str, n_frames: int) -> int:
    return min(n_frames, PAIRWISE_FRAMES) if method == "pairwise" else n_frames


def estimate(method: str, stack: np.ndarray) -> FrameTransforms:
    """The correction transforms of ``method`` on ``stack``."""
    if method == "pyramid":
        return register_pyramid(stack)
    if method == "pairwise":
        return register_pairwise(stack).transforms
    if method == "similarity":
        return register_similarity(stack)
    if method == "skimage":
        return run_skimage(stack)
    if method == "cv2":
        return run_cv2(stack)
    if method == "psr_prev":
        return run_pystackreg(stack, "previous")
    if method == "psr_mean":
        return run_pystackreg(stack, "mean")
    raise ValueError(f"unknown method {method!r}; choose from {', '.join(ALL_METHODS)}")


# ---------------------------------------------------------------- metrics
@dataclass
class Row:
    """One method on one case."""

    case: int
    method: str
    content: str
    snr_band: str
    n_frames: int
    rms: float = math.nan
    rms_ok: float = math.nan
    over_1px: float = math.nan
    silent: float | None = None  # share of frames; None for peers (no flags)
    n_silent: int | None = None
    ok: float = math.nan
    nosignal: bool | None = None
    seconds: float = 0.0
    error: str = ""
    silent_frames: list = field(default_factory=list)


def frame_errors(
    est: FrameTransforms, truth: FrameTransforms, trust: np.ndarray
) -> np.ndarray:
    """Per-frame error vectors (T, 2) at the frame centre, after removing one offset (median over ``trust``)."""
    est = est.with_center(truth.center)
    err = est.shifts - truth.shifts
    use = trust & np.isfinite(err).all(axis=1)
    if not use.any():
        use = np.isfinite(err).all(axis=1)
    if not use.any():
        return np.full_like(err, np.nan)
    return err - np.median(err[use], axis=0)


def score(
    method: str,
    case: Case,
    est: FrameTransforms,
    truth: FrameTransforms,
    nosignal: bool,
    row: Row,
) -> None:
    ok = np.asarray(est.ok, bool)
    row.ok = float(ok.mean())
    if case.content == "noise":
        row.nosignal = nosignal
        return
    ours = method in OURS
    raw = frame_errors(est, truth, ok)
    raw_norm = np.hypot(raw[:, 0], raw[:, 1])
    wrong = ~np.isfinite(raw_norm) | (raw_norm > 1.0)
    if ours:
        silent = wrong & ok
        row.silent = float(silent.mean())
        row.n_silent = int(silent.sum())
        row.silent_frames = np.flatnonzero(silent).tolist()[:20]
        row.rms_ok = (
            float(np.sqrt(np.mean(raw_norm[ok] ** 2))) if ok.any() else math.nan
        )
        with warnings.catch_warnings():
            # none ok: every frame is left unshifted (and that is scored)
            warnings.simplefilter("ignore", NoSignalWarning)
            applied, _ = est.resolve_failed("interpolate")
        err = frame_errors(applied, truth, ok)
        norm = np.hypot(err[:, 0], err[:, 1])
    else:
        norm = raw_norm
        row.rms_ok = float(np.sqrt(np.mean(norm**2)))
    finite = np.isfinite(norm)
    row.rms = float(np.sqrt(np.mean(norm[finite] ** 2))) if finite.all() else math.inf
    row.over_1px = float(np.mean(~finite | (norm > 1.0)))


def run_case(case: Case, methods: list[str]) -> list[Row]:
    stack, truth = make_case(case)
    rows = []
    for method in methods:
        if not runs_on(method, case):
            continue
        n = frames_for(method, case.n_frames)
        row = Row(case.id, method, case.content, case.snr_band, n)
        data, sub_truth = stack[:n], truth[:n]
        t0 = time.perf_counter()
        nosignal = False
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                est = estimate(method, data)
                if case.content == "noise" and method in OURS:
                    apply_transforms(data, est)
            nosignal = any(issubclass(w.category, NoSignalWarning) for w in caught)
            row.seconds = time.perf_counter() - t0
            score(method, case, est, sub_truth, nosignal, row)
        except Exception as exc:  # noqa: BLE001 - a crash is a result too
            row.seconds = time.perf_counter() - t0
            row.error = f"{type(exc).__name__}: {exc}"[:200]
        rows.append(row)
    return rows


# ------------------------------------------------------------ sanity check
def sign_check(methods: list[str]) -> None:
    """Every method must recover a known shift with the correction sign on a clean textured stack."""
    motion = FrameTransforms.from_shifts(
        # still for the first N_REF frames (the peers' reference), then known shifts
        np.array(
            [[0.0, 0.0]] * N_REF
            + [[3.3, -5.7], [-4.2, 2.6], [6.1, 4.4], [-2.0, -6.5], [1.0, 1.0]]
        ),
        center=(63.5, 63.5),
    )
    stack, truth = make_stack(
        "texture", n_frames=len(motion), shape=(128, 128), motion=motion, snr=20, seed=5
    )
    assert np.allclose(truth.shifts, -motion.shifts), (
        "synthetic truth must be the correction (minus the motion)"
    )
    for method in methods:
        est = estimate(method, stack)
        trust = np.ones(len(est), bool)
        err = np.hypot(*frame_errors(est, truth, trust).T)[N_REF:]
        flipped = FrameTransforms.from_shifts(-est.shifts, center=est.center)
        alt = np.hypot(*frame_errors(flipped, truth, trust).T)[N_REF:]
        # a sign check, not an accuracy test: most frames right, and far better than the negation
        if not (np.nanmedian(err) < 0.5 and np.nanmedian(alt) > 2.0):
            raise SystemExit(
                f"sign check failed for {method}: median error {np.nanmedian(err):.2f} px "
                f"(negated: {np.nanmedian(alt):.2f} px)"
            )
    print(
        f"sign check passed ({', '.join(methods)}): known shifts recovered as corrections",
        flush=True,
    )


# ---------------------------------------------------------------- reports
def _pct(v: float | None) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float) and math.isnan(v):
        return "-"
    return f"{100 * v:.1f}%"


def _num(v: float) -> str:
    if math.isnan(v):
        return "-"
    if math.isinf(v):
        return "inf"
    return f"{v:.3f}" if v < 10 else f"{v:.1f}"


def case_table(cases: list[Case], rows: list[Row]) -> str:
    by_case = {c.id: c for c in cases}
    out = [
        "| case | method | rms px | >1px | silent | ok | s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        c = by_case[r.case]
        if r.error:
            out.append(
                f"| {c.label()} | {r.method} | error: {r.error} | | | | {r.seconds:.1f} |"
            )
            continue
        if c.content == "noise":
            tail = f"ok {_pct(r.ok)}, NoSignalWarning {'n/a' if r.nosignal is None else r.nosignal}"
            if r.method not in OURS:
                tail = "n/a (no flags)"
            out.append(f"| {c.label()} | {r.method} | {tail} | | | | {r.seconds:.1f} |")
            continue
        out.append(
            f"| {c.label()} | {r.method} | {_num(r.rms)} | {_pct(r.over_1px)} | {_pct(r.silent)} | "
            f"{_pct(r.ok)} | {r.seconds:.1f} |"
        )
    return "\n".join(out)


def aggregate_table(rows: list[Row], methods: list[str]) -> str:
    """Per content and SNR band: median RMS, share >1 px, share silent (of all frames), per method."""
    groups = sorted({(r.content, r.snr_band) for r in rows if r.content != "noise"})
    head = "| content | SNR | cases | " + " | ".join(methods) + " |"
    out = [
        "Cells: median RMS px / frames >1 px / silent wrong frames (of all frames; n/a: no flags)",
        "",
        head,
        "|" + "---|" * (3 + len(methods)),
    ]
    for content, band in groups + [("ALL", "")]:
        sel = [
            r
            for r in rows
            if r.content != "noise"
            and (content == "ALL" or (r.content, r.snr_band) == (content, band))
        ]
        ncases = len({r.case for r in sel})
        cells = []
        for m in methods:
            rs = [r for r in sel if r.method == m]
            if not rs:
                cells.append("")
                continue
            bad = [r for r in rs if r.error]
            good = [r for r in rs if not r.error]
            frames = sum(r.n_frames for r in good) or 1
            rms = float(np.median([r.rms for r in good])) if good else math.nan
            over = sum(r.over_1px * r.n_frames for r in good) / frames
            if m in OURS:
                silent = _pct(sum((r.n_silent or 0) for r in good) / frames)
            else:
                silent = "n/a"
            cell = f"{_num(rms)} / {_pct(over)} / {silent}"
            cells.append(cell + (f" ({len(bad)} err)" if bad else ""))
        out.append(f"| {content} | {band} | {ncases} | " + " | ".join(cells) + " |")
    noise = [
        r for r in rows if r.content == "noise" and r.method in OURS and not r.error
    ]
    if noise:
        out += [
            "",
            "Noise-only stacks (our methods): frames marked ok (should be 0) / NoSignalWarning raised",
            "",
        ]
        out.append("| method | cases | ok frames | NoSignalWarning |")
        out.append("|---|---|---|---|")
        for m in methods:
            rs = [r for r in noise if r.method == m]
            if rs:
                okf = sum(r.ok * r.n_frames for r in rs) / sum(r.n_frames for r in rs)
                out.append(
                    f"| {m} | {len(rs)} | {_pct(okf)} | {sum(bool(r.nosignal) for r in rs)}/{len(rs)} |"
                )
    return "\n".join(out)


def worst_table(cases: list[Case], rows: list[Row], limit: int = 15) -> str:
    by_case = {c.id: c for c in cases}
    bad = [
        r for r in rows if r.method in OURS and not r.error and (r.n_silent or 0) > 0
    ]
    noise = [
        r
        for r in rows
        if r.method in OURS and r.content == "noise" and not r.error and r.ok > 0
    ]
    errs = [r for r in rows if r.error]
    out = ["Silent wrong frames (ours; most first):"]
    for r in sorted(bad, key=lambda r: -(r.n_silent or 0))[:limit]:
        out.append(
            f"- {r.method} on {by_case[r.case].label()}: {r.n_silent}/{r.n_frames} frames wrong and ok "
            f"(rms {_num(r.rms)}, frames {r.silent_frames[:10]})"
        )
    if not bad:
        out.append("- none")
    out.append("Noise-only stacks with frames marked ok (ours):")
    for r in sorted(noise, key=lambda r: -r.ok)[:limit]:
        out.append(
            f"- {r.method} on {by_case[r.case].label()}: {_pct(r.ok)} ok, NoSignalWarning {r.nosignal}"
        )
    if not noise:
        out.append("- none")
    if errs:
        out.append("Errors:")
        out += [
            f"- {r.method} on {by_case[r.case].label()}: {r.error}"
            for r in errs[:limit]
        ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--cases",
        type=int,
        default=None,
        help="number of random cases (default 28; quick 10)",
    )
    ap.add_argument(
        "--methods",
        default=",".join(ALL_METHODS),
        help="comma-separated: " + ", ".join(ALL_METHODS),
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="small frames, few frames, 10 cases: under 2 minutes",
    )
    ap.add_argument(
        "--only",
        default=None,
        help="comma-separated case ids to run (from the same --seed/--cases)",
    )
    ap.add_argument(
        "--per-case", action="store_true", help="print the per-case table too"
    )
    ap.add_argument("--json", default=None, help="write every row and case here")
    ap.add_argument("--no-sign-check", action="store_true")
    args = ap.parse_args(argv)

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in ALL_METHODS]
    if unknown:
        ap.error(f"unknown methods {unknown}; choose from {', '.join(ALL_METHODS)}")
    n = args.cases or (10 if args.quick else 28)
    cases = draw_cases(args.seed, n, args.quick)
    if args.only:
        keep = {int(x) for x in args.only.split(",")}
        cases = [c for c in cases if c.id in keep]
    if not args.no_sign_check:
        sign_check(methods)

    t_start = time.perf_counter()
    rows: list[Row] = []
    for case in cases:
        t0 = time.perf_counter()
        case_rows = run_case(case, methods)
        rows += case_rows
        silent = {r.method: r.n_silent for r in case_rows if r.n_silent}
        print(
            f"{case.label():70s} {time.perf_counter() - t0:6.1f}s"
            + (f"  SILENT {silent}" if silent else ""),
            flush=True,
        )
    print(
        f"\n{len(cases)} cases, {len(rows)} runs in {time.perf_counter() - t_start:.0f}s (seed {args.seed})\n"
    )
    if args.per_case:
        print(case_table(cases, rows) + "\n")
    print(aggregate_table(rows, methods) + "\n")
    print(worst_table(cases, rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "seed": args.seed,
                    "quick": args.quick,
                    "cases": [asdict(c) for c in cases],
                    "rows": [asdict(r) for r in rows],
                },
                f,
                indent=1,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
