"""Benchmark: ``stackalign register --max-memory`` on a large HDF5, peak memory against the cap.

Writes a drifting (T, 512, 512) uint16 HDF5 file of the size asked for, then
registers it twice in child processes: under ``--max-memory CAP`` (streamed)
and with the whole machine allowed (loaded, the in-memory path). The peak
resident memory of each child is read with ``resource.getrusage`` of a
wrapper process; the two outputs are compared bit for bit.

Usage (the issue asks for 4 GB with a 1.5G cap; scale down on small machines)::

    PYTHONPATH=src python tests/benchmarks/bench_max_memory.py --size 1G --cap 0.4G
    PYTHONPATH=src python tests/benchmarks/bench_max_memory.py --size 4G --cap 1.5G --folder /data/tmp
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from napari_stackalign.io import available_memory, total_memory
from napari_stackalign.parsing import parse_byte_size
from napari_stackalign.synthetic import make_stack

FRAME = (512, 512)
#: the child measures the peak of its own child (the stackalign run) and prints it in kB
_WRAPPER = (
    "import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, code)"
)


def write_big(path: Path, nbytes: int) -> int:
    """A drifting stack of about ``nbytes`` (a 40-frame scene, shifted frame by frame); returns the frame count."""
    frame_bytes = FRAME[0] * FRAME[1] * 2
    n = max(40, nbytes // frame_bytes)
    scene, _ = make_stack("beads", n_frames=1, shape=(FRAME[0] + 64, FRAME[1] + 64), drift=0, snr=None, seed=3)
    base = np.asarray(scene[0], np.float32)
    rng = np.random.default_rng(0)
    noisy = [np.clip(rng.poisson(base * 400 + 50), 0, 65535).astype(np.uint16) for _ in range(8)]
    path_y = np.cumsum(rng.normal(0, 0.15, n)).clip(-30, 30)
    path_x = np.cumsum(rng.normal(0, 0.15, n)).clip(-30, 30)
    with h5py.File(path, "w") as fh:
        ds = fh.create_dataset("image_data", (n, *FRAME), np.uint16, chunks=(1, *FRAME))
        block = 64
        for start in range(0, n, block):
            stop = min(n, start + block)
            frames = np.empty((stop - start, *FRAME), np.uint16)
            for i, t in enumerate(range(start, stop)):
                y, x = 32 + int(np.rint(path_y[t])), 32 + int(np.rint(path_x[t]))
                frames[i] = noisy[t % len(noisy)][y : y + FRAME[0], x : x + FRAME[1]]
            ds[start:stop] = frames
    return n


def run_register(src: Path, out: Path, cap: str, flags: list[str]) -> tuple[float, float, int]:
    """Seconds, peak resident memory (bytes) and exit code of one ``stackalign register`` child."""
    cmd = [
        sys.executable,
        "-c",
        _WRAPPER,
        sys.executable,
        "-m",
        "napari_stackalign.cli",
        "register",
        "-i",
        str(src),
        "-o",
        str(out),
        "--max-memory",
        cap,
        "-q",
        "--overwrite",
        *flags,
    ]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy(), check=False)
    seconds = time.perf_counter() - t0
    peak_kb, code = done.stdout.split()[-2:]
    if int(code) != 0:
        print(done.stderr, file=sys.stderr)
    return seconds, int(peak_kb) * 1024, int(code)


def same_output(a: Path, b: Path) -> bool:
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        da, db = fa["image_data"], fb["image_data"]
        if da.shape != db.shape:
            return False
        return all(np.array_equal(da[s : s + 256], db[s : s + 256]) for s in range(0, da.shape[0], 256))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1G", help="input size (default 1G; the issue's figure is 4G)")
    parser.add_argument("--cap", default="0.4G", help="--max-memory of the capped run (default 0.4G)")
    parser.add_argument("--folder", default=None, help="where the files go (default: a temporary folder)")
    parser.add_argument("--flags", default="", help="more flags for stackalign register, e.g. '--num_frames 50'")
    parser.add_argument("--skip-in-memory", action="store_true", help="only the capped run")
    opts = parser.parse_args()
    size, cap = parse_byte_size(opts.size, what="--size"), parse_byte_size(opts.cap, what="--cap")
    folder = Path(tempfile.mkdtemp(prefix="bench_max_memory_", dir=opts.folder))
    free = shutil.disk_usage(folder).free
    print(
        f"machine: {total_memory() / 1e9:.1f} GB RAM, {available_memory() / 1e9:.1f} GB available, "
        f"{free / 1e9:.0f} GB free disk in {folder}, {os.cpu_count()} cores"
    )
    if free < 3.2 * size:
        print(f"not enough disk for a {size / 1e9:.1f} GB input and two outputs: give --size smaller", file=sys.stderr)
        return 2
    try:
        src = folder / "big.h5"
        t0 = time.perf_counter()
        n = write_big(src, size)
        print(
            f"input: {n} frames of {FRAME[0]}x{FRAME[1]} uint16 = {src.stat().st_size / 1e9:.2f} GB "
            f"(written in {time.perf_counter() - t0:.0f} s)"
        )
        sec_c, peak_c, code_c = run_register(src, folder / "capped.h5", opts.cap, opts.flags.split())
        print(
            f"--max-memory {opts.cap}: {sec_c:.1f} s, peak RSS {peak_c / 1e9:.3f} GB "
            f"({peak_c / cap:.2f} of the cap), exit {code_c}"
        )
        if opts.skip_in_memory:
            return 0 if code_c == 0 and peak_c <= cap else 1
        big = f"{int(min(total_memory(), 0.9 * available_memory()))}"
        sec_m, peak_m, code_m = run_register(src, folder / "loaded.h5", big, opts.flags.split())
        print(
            f"in memory (--max-memory {int(big) / 1e9:.1f}G): {sec_m:.1f} s, peak RSS {peak_m / 1e9:.3f} GB "
            f"({peak_m / size:.2f} x the input), exit {code_m}"
        )
        equal = code_c == 0 and code_m == 0 and same_output(folder / "capped.h5", folder / "loaded.h5")
        print(
            f"ratios: capped/in-memory time {sec_c / sec_m:.2f}, peak {peak_c / peak_m:.2f}; outputs identical: {equal}"
        )
        return 0 if equal and peak_c <= cap else 1
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
