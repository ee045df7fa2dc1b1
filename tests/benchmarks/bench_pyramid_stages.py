"""Where the pyramid's time goes: each stage of ``register_pyramid`` timed on its own.

Plain script (not collected by pytest); run from the repository root::

    PYTHONPATH=src python tests/benchmarks/bench_pyramid_stages.py [--repeats 3] [--seed 7] \\
        [--stacks beads:256:100,lattice:512:100]

Stacks come from the independent generator ``../shared/bench/anchors.py``
(``content:size:frames``, medium noise). For each, best of ``--repeats`` of
every stage (ms): building the template (``build_template``), the final
estimator (``job.estimator``), the final pass over every frame
(``estimate_range``), the lattice resolver (``resolve_periodic``), the weak
stack cross-check and ``finish`` (the trust tests, smoothing). Compare two
sources by running the script with each on ``PYTHONPATH``, interleaved: the
machine may be shared, and one run's figures move by 20-50 %.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from bench_short_stacks import DEFAULT_ANCHORS, load_anchors

from napari_stackalign.core.pyramid import _stages as stages
from napari_stackalign.core.pyramid._options import PyramidOptions
from napari_stackalign.core.pyramid._periodic import resolve_periodic


def stage_times(stack: np.ndarray) -> dict[str, float]:
    """Seconds of each stage of one default run on ``stack``."""
    times: dict[str, float] = {}
    t0 = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t0
        now = time.perf_counter()
        times[name] = now - t0
        t0 = now

    job = stages.plan_pyramid(tuple(stack.shape), stack.dtype, PyramidOptions())
    state = stages.build_template(stack, job)
    lap("template")
    estimator, preparer = job.estimator(state.template), job.preparer()
    lap("estimator")
    results = stages.estimate_range(stack, job, state, 0, job.n_frames, preparer=preparer, estimator=estimator)
    lap("final pass")
    results, notes, extra = resolve_periodic(stack, job, state, results, preparer=preparer, estimator=estimator)
    lap("lattice resolver")
    notes, extra = stages.cross_checked(stack, job, state, results, preparer, notes, extra, None)
    lap("cross-check")
    stages.finish(job, state, results, levels_used=estimator.active_rates, notes=notes, extra_params=extra)
    lap("finish")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--stacks", default="beads:256:100,camera:256:100,lattice:256:100,beads:512:100,camera:512:100,lattice:512:100"
    )
    args = parser.parse_args()
    anchors = load_anchors(DEFAULT_ANCHORS)
    warnings.simplefilter("ignore")
    print("| stack | template | estimator | final pass | lattice resolver | cross-check | finish | total (ms) |")
    print("|---|---|---|---|---|---|---|---|")
    for spec in args.stacks.split(","):
        content, size, frames = spec.split(":")
        case = anchors._case(content, int(size), int(frames), "medium")
        stack = anchors.generate_case(case, args.seed)[0]
        stage_times(stack[:8])  # warm up
        best: dict[str, float] = {}
        for _ in range(args.repeats):
            for name, seconds in stage_times(stack).items():
                best[name] = min(best.get(name, np.inf), seconds)
        cells = " | ".join(f"{1000 * s:.1f}" for s in best.values())
        print(f"| {case.name} | {cells} | {1000 * sum(best.values()):.1f} |", flush=True)


if __name__ == "__main__":
    main()
