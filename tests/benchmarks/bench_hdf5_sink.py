"""HDF5 writing speed through the full-disk-safe sink (run on demand; compare with an older checkout).

    PYTHONPATH=src python tests/benchmarks/bench_hdf5_sink.py [LABEL]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

import numpy as np

from napari_stackalign.io import write_stack


def main() -> None:
    label = sys.argv[1] if len(sys.argv) > 1 else "this checkout"
    data = np.random.default_rng(0).integers(0, 60000, size=(400, 512, 512), dtype=np.uint16)  # 210 MB
    with tempfile.TemporaryDirectory() as folder:
        for comp in ("none", "lzf"):
            times = []
            for k in range(3):
                path = os.path.join(folder, f"bench_{k}.h5")
                t0 = time.perf_counter()
                write_stack(path, data, overwrite=True, compression=comp)
                times.append(time.perf_counter() - t0)
                os.unlink(path)
            print(f"{label} compression={comp}: median {sorted(times)[1]:.3f} s of {[round(t, 2) for t in times]}")


if __name__ == "__main__":
    main()
