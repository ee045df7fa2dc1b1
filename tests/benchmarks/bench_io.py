"""I/O speed: napari_stackalign.io against the libraries it wraps, on the same files in one run.

Run::

    /tmp/venv/bin/python tests/benchmarks/bench_io.py [--quick]

Cases (uint16 stack of 512 x 512 frames in a temporary folder; page cache warm):

- read TIFF into memory: ``read_stack`` vs ``tifffile.imread``
- read HDF5 into memory: ``read_stack`` vs ``h5py`` ``ds[()]``
- open a TIFF for viewing (the stack above, and a 1 GB one without ``--quick``):
  ``read_stack(lazy=True)`` + ``estimate_contrast_limits`` + one frame (what the napari
  reader does for big files) vs ``tifffile.imread`` + min/max + one frame (what a reader
  without lazy loading and contrast limits makes napari do)
- write TIFF: ``write_stack`` (atomic, streamed, ImageJ metadata) vs ``tifffile.imwrite``
- write HDF5 (gzip 4 + shuffle, 4 frames per chunk): ``write_stack`` vs ``h5py`` ``create_dataset``

Each pair runs alternately (ours, peer, ours, peer, ...) and the best time of each is kept,
so both see the same machine load.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import tifffile

from napari_stackalign.io import estimate_contrast_limits, read_stack, write_stack


def compare(ours, peer, repeat: int, setup=None) -> tuple[float, float]:
    """Best times of ``ours`` and ``peer``, run alternately so both see the same machine load."""
    times: dict[int, list[float]] = {0: [], 1: []}
    for _ in range(repeat):
        for which, func in ((0, ours), (1, peer)):
            if setup is not None:
                setup()
            t0 = time.perf_counter()
            func()
            times[which].append(time.perf_counter() - t0)
    return min(times[0]), min(times[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller stack, fewer repeats")
    args = parser.parse_args()
    n_frames = 40 if args.quick else 200
    repeat = 2 if args.quick else 5
    rng = np.random.default_rng(0)
    base = rng.integers(0, 1000, size=(512, 512), dtype=np.uint16)
    data = np.stack(
        [np.roll(base, t, axis=1) + rng.integers(0, 50, size=(512, 512), dtype=np.uint16) for t in range(n_frames)]
    )
    mb = data.nbytes / 1e6
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tif = tmp / "s.tif"
        h5 = tmp / "s.h5"
        write_stack(tif, data)
        write_stack(h5, data)

        def ours_read_tif():
            read_stack(tif, lazy=False)

        def ours_read_h5():
            read_stack(h5, lazy=False)

        def h5py_read():
            with h5py.File(h5, "r") as f:
                f["image_data"][()]

        rows.append(
            ("read TIFF into memory", "tifffile.imread", *compare(ours_read_tif, lambda: tifffile.imread(tif), repeat))
        )
        rows.append(("read HDF5 (gzip) into memory", "h5py ds[()]", *compare(ours_read_h5, h5py_read, repeat)))

        def ours_open_view():
            s = read_stack(tif, lazy=True)
            estimate_contrast_limits(s.data)
            s.data[n_frames // 2].compute()
            s.close()

        def eager_open_view():
            a = tifffile.imread(tif)
            (a.min(), a.max())
            a[n_frames // 2]

        rows.append(
            (
                "open TIFF for viewing (lazy + limits)",
                "imread + min/max",
                *compare(ours_open_view, eager_open_view, repeat),
            )
        )

        if not args.quick:
            big = tmp / "big.tif"
            tifffile.imwrite(big, np.tile(data, (10, 1, 1)))  # 2000 frames, 1 GB

            def ours_open_big():
                s = read_stack(big, lazy=True)
                estimate_contrast_limits(s.data)
                s.data[1000].compute()
                s.close()

            def eager_open_big():
                a = tifffile.imread(big)
                (a.min(), a.max())
                a[1000]

            rows.append(
                (
                    f"open 1 GB TIFF ({10 * n_frames} frames) for viewing",
                    "imread + min/max",
                    *compare(ours_open_big, eager_open_big, 3),
                )
            )
            big.unlink()

        def ours_write_tif():
            write_stack(tmp / "w.tif", data)

        def tifffile_write():
            tifffile.imwrite(tmp / "t.tif", data, imagej=True, metadata={"axes": "TYX"})

        def ours_write_h5():
            write_stack(tmp / "w.h5", data)

        def h5py_write():
            with h5py.File(tmp / "h.h5", "w") as f:
                f.create_dataset(
                    "image_data", data=data, chunks=(4, 512, 512), compression="gzip", compression_opts=4, shuffle=True
                )

        def clean():  # every writer creates a new file (no overwrite or unlink inside the timing)
            for name in ("w.tif", "t.tif", "w.h5", "h.h5"):
                (tmp / name).unlink(missing_ok=True)
            os.sync()

        rows.append(("write TIFF", "tifffile.imwrite", *compare(ours_write_tif, tifffile_write, repeat, clean)))
        rows.append(("write HDF5 (gzip 4)", "h5py create_dataset", *compare(ours_write_h5, h5py_write, repeat, clean)))

    print(
        f"stack: {n_frames} x 512 x 512 uint16 ({mb:.0f} MB); best of {repeat}; "
        f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, Python {platform.python_version()}"
    )
    print()
    print("| case | napari-stackalign (s) | peer | peer (s) | ours / peer |")
    print("|---|---:|---|---:|---:|")
    for case, peer, ours, theirs in rows:
        print(f"| {case} | {ours:.3f} | {peer} | {theirs:.3f} | {ours / theirs:.2f} |")


if __name__ == "__main__":
    main()
