"""Pyramid registration against the peers a user would pick instead.

Plain script (not collected by pytest)::

    /tmp/venv/bin/python tests/benchmarks/bench_pyramid.py [--quick] [--out docs/benchmarks-pyramid.md]

Every method runs on the same synthetic stacks (``napari_stackalign.synthetic``,
known motion) in the same run:

- ours: ``register_pyramid`` (defaults) for the estimation column, and
  ``register_and_apply`` (the same estimation with the resampling overlapped,
  bit for bit ``apply_transforms(stack, register_pyramid(stack))``) for the
  estimation + apply column;
- ``skimage.registration.phase_cross_correlation`` against the mean of the
  stack, upsample 20 and 100, applied with ``scipy.ndimage.shift`` (order 1);
- ``cv2.phaseCorrelate`` with a Hann window against the mean, in float32
  (its faster type), applied with ``cv2.warpAffine`` (bilinear);
- the same skimage (upsample 20) and cv2 calls against the FIRST frame
  instead of the mean (peers ``skimage20_f0``, ``cv2_f0``; labelled
  "ref frame 0"), the user's other common choice: the mean of a stack that
  drifts by 10 % of the frame is a blur;
- ``pystackreg`` TRANSLATION (``register_stack(reference="mean")``,
  ``transform_stack``);
- ``suite2p`` rigid registration (``compute_reference`` + ``register_frames``
  with ``nonrigid=False`` on the CPU), when it can be imported.

Per case it prints RMS and max error against the truth (after removing one
global constant offset, ``synthetic.alignment_error``), the share of frames
off by more than 1 px, frames per second for estimation and for estimation
plus apply, the peak memory the method added (resident set size sampled every
2 ms), and our ratio to each peer. The peers run as a user would write them
(one frame after another); ours uses its default thread pool.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import importlib.util
import os
import platform
import sys
import threading
import time
import types
from dataclasses import dataclass, field

import cv2
import numpy as np

from napari_stackalign.core.pyramid import register_and_apply, register_pyramid
from napari_stackalign.synthetic import alignment_error, make_stack
from napari_stackalign.transforms import FrameTransforms

#: SNR levels (std of clean frame / std of noise, Poisson noise)
SNR = {"high": 5.0, "medium": 1.5, "low": 0.4}
#: slow peers run on the first SUBSET frames of 1000-frame stacks
SUBSET = 200


# ------------------------------------------------------------------ memory
class PeakRSS:
    """Peak resident-set-size increase (MB) while the block runs."""

    def __init__(self, interval: float = 0.002) -> None:
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            time.sleep(self.interval)

    def __enter__(self) -> PeakRSS:  # noqa: PYI034
        gc.collect()
        self.base = self._rss()
        self.peak = self.base
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())

    @property
    def mb(self) -> float:
        return (self.peak - self.base) / 2**20


# ------------------------------------------------------------------ methods
@dataclass
class Result:
    name: str
    transforms: FrameTransforms | None = None
    n_frames: int = 0
    t_est: float = float("nan")
    t_apply: float = float("nan")
    mem_mb: float = float("nan")
    #: wall time of estimation plus apply when measured as one call
    t_all: float | None = None
    note: str = ""
    err: dict = field(default_factory=dict)

    @property
    def t_total(self) -> float:
        """Seconds for estimation plus apply."""
        return self.t_all if self.t_all is not None else self.t_est + self.t_apply


def stack_mean(stack: np.ndarray) -> np.ndarray:
    out = np.zeros(stack.shape[1:], np.float64)
    for i in range(0, stack.shape[0], 64):
        out += stack[i : i + 64].sum(axis=0, dtype=np.float64)
    return out / stack.shape[0]


def run_ours(stack: np.ndarray) -> Result:
    """Estimation alone (``register_pyramid``), then estimation plus apply
    in one call (``register_and_apply``, which overlaps the two and returns
    exactly ``apply_transforms(stack, register_pyramid(stack))``)."""
    res = Result("ours (pyramid)")
    t0 = time.perf_counter()
    est = register_pyramid(stack)
    t1 = time.perf_counter()
    gc.collect()
    with PeakRSS() as mem:
        t2 = time.perf_counter()
        aligned = register_and_apply(stack)
        t3 = time.perf_counter()
    if not np.array_equal(aligned.transforms.to_cv2_matrices(), est.to_cv2_matrices()):
        raise AssertionError("register_and_apply and register_pyramid disagree")
    del aligned
    res.transforms, res.t_est, res.t_all, res.mem_mb = est, t1 - t0, t3 - t2, mem.mb
    res.t_apply = res.t_all - res.t_est
    return res


def peer_reference(stack: np.ndarray, reference: str) -> np.ndarray:
    """The peers' reference image: the mean of the stack, or its first frame."""
    if reference == "mean":
        return stack_mean(stack)
    if reference == "first":
        return np.asarray(stack[0], dtype=np.float64)
    raise ValueError(f"reference must be 'mean' or 'first', got {reference!r}")


def _ref_label(reference: str) -> str:
    return "" if reference == "mean" else ", ref frame 0"


def run_skimage(stack: np.ndarray, upsample: int, reference: str = "mean") -> Result:
    from scipy import ndimage
    from skimage.registration import phase_cross_correlation

    res = Result(f"skimage up{upsample}{_ref_label(reference)}")
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        ref = peer_reference(stack, reference)
        shifts = np.array(
            [phase_cross_correlation(ref, frame, upsample_factor=upsample)[0] for frame in stack], dtype=np.float64
        )
        t1 = time.perf_counter()
        out = np.empty(stack.shape, np.float32)
        for t, frame in enumerate(stack):
            out[t] = ndimage.shift(frame.astype(np.float32), shifts[t], order=1, mode="constant")
        t2 = time.perf_counter()
    del out
    res.transforms = FrameTransforms.from_shifts(shifts)
    res.t_est, res.t_apply, res.mem_mb = t1 - t0, t2 - t1, mem.mb
    return res


def run_cv2(stack: np.ndarray, reference: str = "mean") -> Result:
    res = Result(f"cv2 phaseCorrelate+Hann{_ref_label(reference)}")
    h, w = stack.shape[1:]
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        # float32: cv2.phaseCorrelate's faster type (2.5-3x float64 here)
        ref = peer_reference(stack, reference).astype(np.float32)
        win = cv2.createHanningWindow((w, h), cv2.CV_32F)
        shifts = np.empty((stack.shape[0], 2))
        for t, frame in enumerate(stack):
            # OpenCV 5 multiplies its inputs by the window in place: pass copies
            (x, y), _ = cv2.phaseCorrelate(ref.copy(), frame.astype(np.float32), win.copy())
            shifts[t] = (-y, -x)  # content displacement (x, y) -> correction (dy, dx)
        t1 = time.perf_counter()
        out = np.empty(stack.shape, stack.dtype)
        for t, frame in enumerate(stack):
            mat = np.array([[1.0, 0.0, shifts[t, 1]], [0.0, 1.0, shifts[t, 0]]])
            out[t] = cv2.warpAffine(frame, mat, (w, h), flags=cv2.INTER_LINEAR)
        t2 = time.perf_counter()
    del out
    res.transforms = FrameTransforms.from_shifts(shifts)
    res.t_est, res.t_apply, res.mem_mb = t1 - t0, t2 - t1, mem.mb
    return res


def run_pystackreg(stack: np.ndarray) -> Result:
    from pystackreg import StackReg

    res = Result("pystackreg TRANSLATION")
    sr = StackReg(StackReg.TRANSLATION)
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        tmats = sr.register_stack(stack, reference="mean", verbose=False)
        t1 = time.perf_counter()
        out = sr.transform_stack(stack, tmats=tmats)
        t2 = time.perf_counter()
    del out
    # tmats hold the content displacement (tx, ty): the correction is its negative
    res.transforms = FrameTransforms.from_shifts(np.column_stack([-tmats[:, 1, 2], -tmats[:, 0, 2]]))
    res.t_est, res.t_apply, res.mem_mb = t1 - t0, t2 - t1, mem.mb
    return res


def _suite2p():
    """suite2p's registration modules, or None.

    The CPU build of torch that ``pip install suite2p torch==2.13.0`` takes
    comes with a torchvision wheel that fails to import against it; suite2p's
    registration code only imports cellpose (hence torchvision) for a display
    helper (``highpass_mean_image``), so that one module is stubbed here.
    """
    if "suite2p.registration.register" in sys.modules:
        return sys.modules["suite2p.registration.register"], sys.modules["suite2p.parameters"]
    if importlib.util.find_spec("suite2p") is None or importlib.util.find_spec("torch") is None:
        return None
    try:
        if True:
            spec = importlib.util.find_spec("suite2p")
            pkg = types.ModuleType("suite2p")
            pkg.__path__ = list(spec.submodule_search_locations)
            sys.modules.setdefault("suite2p", pkg)
            try:
                importlib.import_module("cellpose.transforms")
            except Exception:  # noqa: BLE001 - broken torchvision: stub the display helper
                for name in ("cellpose", "cellpose.transforms"):
                    sys.modules.pop(name, None)
                cp = types.ModuleType("cellpose")
                cp.__path__ = []
                cpt = types.ModuleType("cellpose.transforms")
                cp.transforms = cpt
                sys.modules["cellpose"], sys.modules["cellpose.transforms"] = cp, cpt
            params = importlib.import_module("suite2p.parameters")
            sys.modules["suite2p"].default_settings = params.default_settings
            importlib.import_module("suite2p.registration.register")
        return sys.modules["suite2p.registration.register"], sys.modules["suite2p.parameters"]
    except Exception as exc:  # noqa: BLE001
        print(f"suite2p unavailable: {exc!r}", file=sys.stderr)
        return None


def run_suite2p(stack: np.ndarray) -> Result | None:
    mods = _suite2p()
    if mods is None:
        return None
    register, params = mods
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    res = Result("suite2p rigid")
    settings = params.default_settings()["registration"]
    settings["maxregshift"] = 0.2
    cpu = torch.device("cpu")
    frames = stack.astype(np.int16)
    n_init = min(settings["nimg_init"], frames.shape[0])
    init = frames[np.linspace(0, frames.shape[0] - 1, n_init).astype(int)].copy()
    kw = {
        "nonrigid": False,
        "device": cpu,
        "maxregshift": settings["maxregshift"],
        "smooth_sigma": settings["smooth_sigma"],
        "spatial_taper": settings["spatial_taper"],
        "norm_frames": settings["norm_frames"],
        "batch_size": settings["batch_size"],
    }
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        ref = register.compute_reference(init, settings, device=cpu)
        out = np.empty_like(frames)
        offsets = register.register_frames(frames.copy(), ref, f_align_out=out, apply_shifts=True, **kw)[3]
        t1 = time.perf_counter()
    del out
    yoff, xoff = np.asarray(offsets[0], float), np.asarray(offsets[1], float)
    res.transforms = FrameTransforms.from_shifts(np.column_stack([-yoff, -xoff]))
    # estimation and the (integer, np.roll) shift happen in one call: both
    # columns show that call
    res.t_est = t1 - t0
    res.t_apply = 0.0
    res.mem_mb = mem.mb
    res.note = "integer-pixel; est = est+apply (one call)"
    return res


# -------------------------------------------------------------------- cases
@dataclass
class Case:
    kind: str
    size: int
    n_frames: int
    snr: str

    @property
    def drift(self) -> float:
        # a perfect lattice is ambiguous modulo its period (8 px): keep its
        # drift below half a period so the truth is well defined
        return 3.0 if self.kind == "lattice" else 0.1 * self.size

    @property
    def label(self) -> str:
        return f"{self.kind} {self.size}px x{self.n_frames} SNR {SNR[self.snr]:g}"


def cases(quick: bool) -> list[Case]:
    if quick:
        return [
            Case("beads", 256, 100, "medium"),
            Case("texture", 512, 100, "medium"),
            Case("lattice", 256, 100, "low"),
            Case("beads", 256, 100, "low"),
        ]
    out = []
    for size in (256, 512):
        for kind in ("beads", "texture", "lattice"):
            for snr in ("high", "medium", "low"):
                out.append(Case(kind, size, 100, snr))
    for kind in ("beads", "texture"):
        for snr in ("medium", "low"):
            out.append(Case(kind, 512, 1000, snr))
    out.append(Case("lattice", 512, 1000, "low"))
    out.append(Case("texture", 256, 1000, "medium"))
    return out


def make_case(case: Case, seed: int = 1) -> tuple[np.ndarray, FrameTransforms]:
    stack, truth = make_stack(
        case.kind,
        n_frames=case.n_frames,
        shape=(case.size, case.size),
        drift=case.drift,
        jitter=0.3,
        snr=SNR[case.snr],
        dtype=np.uint16,
        seed=seed,
    )
    return stack, truth


# ------------------------------------------------------------------- report
def fmt(value: float, digits: int = 3) -> str:
    if value is None or not np.isfinite(value):
        return "-"
    return f"{value:.{digits}f}"


#: methods fast enough to be timed ``--repeat`` times (best of N)
REPEATABLE = ("ours", "cv2", "cv2_f0")


def best_of(runs: list[Result]) -> Result:
    """One result with the best of each timing over repeated runs (the
    estimates are deterministic: those of the first run are kept)."""
    best = runs[0]
    best.t_est = min(r.t_est for r in runs)
    if best.t_all is not None:
        best.t_all = min(r.t_all for r in runs if r.t_all is not None)
        best.t_apply = best.t_all - best.t_est
    else:
        best.t_apply = min(r.t_est + r.t_apply for r in runs) - best.t_est
    return best


def run_case(case: Case, peers: list[str], quick: bool, repeat: int = 1) -> list[Result]:
    stack, truth = make_case(case)
    results = []
    slow = ("skimage100", "pystackreg", "suite2p") + (("skimage20", "skimage20_f0") if case.size >= 512 else ())
    plan = [("ours", None)] + [(p, None) for p in peers]
    for name, _ in plan:
        data = stack
        note = ""
        if case.n_frames >= 1000 and name in slow:
            data = stack[:SUBSET]
            note = f"first {SUBSET} frames"
        print(f"  {case.label}: {name} ...", file=sys.stderr, flush=True)
        if name in REPEATABLE and repeat > 1:
            runner = run_ours if name == "ours" else (lambda d, ref=("first" if name == "cv2_f0" else "mean"): run_cv2(d, reference=ref))
            res = best_of([runner(data) for _ in range(repeat)])
        elif name == "ours":
            res = run_ours(data)
        elif name == "skimage20":
            res = run_skimage(data, 20)
        elif name == "skimage100":
            res = run_skimage(data, 100)
        elif name == "skimage20_f0":
            res = run_skimage(data, 20, reference="first")
        elif name == "cv2":
            res = run_cv2(data)
        elif name == "cv2_f0":
            res = run_cv2(data, reference="first")
        elif name == "pystackreg":
            res = run_pystackreg(data)
        elif name == "suite2p":
            res = run_suite2p(data)
            if res is None:
                continue
        else:
            raise ValueError(name)
        res.n_frames = data.shape[0]
        res.note = "; ".join(x for x in (res.note, note) if x)
        res.err = alignment_error(res.transforms, truth[: data.shape[0]])
        results.append(res)
    return results


def table(all_results: list[tuple[Case, list[Result]]]) -> str:
    head = (
        "| case | method | RMS px | max px | >1 px % | est fps | est+apply fps | peak MB | "
        "ours/peer speed | peer/ours RMS | note |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = []
    for case, results in all_results:
        ours = results[0]
        ours_fps = ours.n_frames / ours.t_total
        for r in results:
            fps_est = r.n_frames / r.t_est
            fps_all = r.n_frames / r.t_total
            speed = "" if r is ours else f"{ours_fps / fps_all:.1f}x"
            acc = "" if r is ours else f"{r.err['rms'] / max(ours.err['rms'], 1e-12):.1f}x"
            rows.append(
                f"| {case.label} | {r.name} | {fmt(r.err['rms'])} | {fmt(r.err['max'], 2)} | "
                f"{100 * r.err['frac_over_1px']:.0f} | {fps_est:.0f} | {fps_all:.0f} | {fmt(r.mem_mb, 0)} | "
                f"{speed} | {acc} | {r.note} |"
            )
    return head + "\n".join(rows) + "\n"


def summary(all_results: list[tuple[Case, list[Result]]]) -> str:
    lines = []
    worse = []
    for case, results in all_results:
        ours = results[0]
        best = min((r for r in results[1:]), key=lambda r: r.err["rms"], default=None)
        if best is not None and ours.err["rms"] > best.err["rms"] * 1.0 + 1e-4:
            worse.append(f"{case.label} (ours {ours.err['rms']:.4f} vs {best.name} {best.err['rms']:.4f})")
    lines.append(
        "- cases where a peer had a lower RMS than ours: " + ("none" if not worse else "; ".join(worse))
    )
    big = [(c, r[0]) for c, r in all_results if c.size == 512]
    if big:
        fps = [r.n_frames / r.t_total for _, r in big]
        lines.append(f"- ours, estimation + apply at 512x512: {min(fps):.0f} to {max(fps):.0f} frames/s")
    return "\n".join(lines) + "\n"


def bias_sweep() -> str:
    """Largest error over a sweep of fractional shifts (noise-free, 21 frames
    shifted by 0 .. 1 px in y and 0.75 .. 0.25 px in x), per content and
    method: the sub-pixel bias towards whole pixels."""
    fracs = np.linspace(0, 1, 21)
    motion = FrameTransforms.from_shifts(np.column_stack([fracs, 0.75 - 0.5 * fracs]), center=(127.5, 127.5))
    rows = ["| content | ours | skimage up100 | cv2 phaseCorrelate+Hann | pystackreg |", "|---|---|---|---|---|"]
    for kind in ("beads", "texture", "lattice"):
        stack, truth = make_stack(kind, n_frames=fracs.size, shape=(256, 256), motion=motion, snr=None, seed=3)
        stack = stack.astype(np.float32)
        cells = []
        for fn in (run_ours, lambda st: run_skimage(st, 100), run_cv2, run_pystackreg):
            res = fn(stack)
            cells.append(f"{alignment_error(res.transforms, truth)['max']:.4f}")
        rows.append(f"| {kind} | " + " | ".join(cells) + " |")
    return (
        "Sub-pixel bias: largest error (px) over 21 noise-free frames whose shifts sweep the fraction of a "
        "pixel (256x256, after removing one constant offset):\n\n" + "\n".join(rows) + "\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small subset of the cases")
    parser.add_argument("--out", default=None, help="write the markdown table to this file")
    parser.add_argument(
        "--peers",
        default="skimage20,skimage100,cv2,pystackreg,suite2p",
        help="comma-separated peers (skimage20, skimage100, cv2, pystackreg, suite2p; against the first frame "
        "instead of the mean: skimage20_f0, cv2_f0)",
    )
    parser.add_argument(
        "--cases",
        default=None,
        help="run only the cases whose label contains one of these comma-separated strings, as whole "
        "words (labels look like 'lattice 256px x100 SNR 5'; 'x100' does not select 'x1000')",
    )
    parser.add_argument(
        "--no-sweep", action="store_true", help="skip the noise-free sub-pixel bias sweep"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="time ours and the cv2 peers this many times and keep the best of each timing "
        "(the machine's speed varies from run to run; the slow peers run once)",
    )
    args = parser.parse_args(argv)
    peers = [p for p in args.peers.split(",") if p]
    if "suite2p" in peers and _suite2p() is None:
        print("suite2p is not installed (or does not import): skipped", file=sys.stderr)
        peers.remove("suite2p")
    all_results = []
    t_start = time.perf_counter()
    todo = cases(args.quick)
    if args.cases:
        wanted = [w.strip() for w in args.cases.split(",") if w.strip()]
        # whole words: 'x100' is not 'x1000'
        todo = [c for c in todo if any(f" {w} " in f" {c.label} " for w in wanted)]
        if not todo:
            raise SystemExit(f"--cases {args.cases!r} matches none of: " + "; ".join(c.label for c in cases(args.quick)))
    for case in todo:
        results = run_case(case, peers, args.quick, args.repeat)
        all_results.append((case, results))
        print(table([(case, results)]), flush=True)
    text = table(all_results)
    summ = summary(all_results)
    print(summ)
    sweep = "" if args.no_sweep else bias_sweep()
    print(sweep)
    load = os.getloadavg()
    info = (
        f"Machine: {os.cpu_count()} cores ({platform.processor() or platform.machine()}), "
        f"Python {platform.python_version()}, numpy {np.__version__}, OpenCV {cv2.__version__}. "
        f"Load average at the end: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}. "
        f"Total run time {time.perf_counter() - t_start:.0f} s.\n"
    )
    print(info)
    if args.out:
        cmd = "flock /tmp/bench.lock /tmp/venv/bin/python tests/benchmarks/bench_pyramid.py" + (
            " --quick" if args.quick else ""
        )
        if args.cases:
            cmd += f" --cases '{args.cases}'"
        if args.peers != parser.get_default("peers"):
            cmd += f" --peers {args.peers}"
        if args.no_sweep:
            cmd += " --no-sweep"
        if args.repeat > 1:
            cmd += f" --repeat {args.repeat}"
        cmd += f" --out {args.out}"
        body = (
            "# Benchmark: pyramid registration against its peers\n\n"
            f"Rerun with:\n\n```\n{cmd}\n```\n\n"
            + info
            + "\nSNR = std(clean frame) / std(noise), Poisson noise: "
            + ", ".join(f"{k} {v:g}" for k, v in SNR.items())
            + ". Drift: a random walk plus trend reaching 10 % of the frame (lattice: 3 px, below half its 8 px "
            "period, because a perfect lattice is ambiguous modulo its period), jitter 0.3 px per frame. "
            "Errors are against the known motion after removing one global constant offset. fps: frames per "
            "second of wall time; peers run frame after frame as a user would write them; ours estimates in one "
            "thread (GIL-bound: a second estimating thread is slower, see bench_threads.py) and its est+apply is "
            "one register_and_apply call, which resamples in a background thread while it estimates. Slow peers (skimage up100, pystackreg, suite2p; skimage up20 at 512 px) run on the "
            f"first {SUBSET} frames of the 1000-frame stacks (noted). Peak MB: largest increase of the process's resident memory during the run (input stack "
            "excluded, output included)."
            + (
                f" Timings of ours and of the cv2 peers are the best of {args.repeat} runs (each timing on its own)."
                if args.repeat > 1
                else ""
            )
            + "\n\n"
            + summ
            + "\n"
            + sweep
            + "\n"
            + text
        )
        with open(args.out, "w") as f:
            f.write(body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
