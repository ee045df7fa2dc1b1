"""`stackalign demo`: files written, quality improved, drift as measured independently."""

from __future__ import annotations

import numpy as np
import tifffile

from napari_stackalign import FrameTransforms, apply_transforms
from napari_stackalign.cli import main
from napari_stackalign.cli.demo import FILES, run_demo
from napari_stackalign.io.samples import load_sample

PNG = b"\x89PNG\r\n\x1a\n"


def test_demo_command_writes_files_and_reports(tmp_path, capsys):
    outdir = tmp_path / "nested" / "demo"
    assert main(["demo", "-o", str(outdir)]) == 0
    out = capsys.readouterr().out
    for name in FILES.values():
        assert (outdir / name).is_file(), name
        assert name in out
    for role in ("drift", "before_after"):
        assert (outdir / FILES[role]).read_bytes()[:8] == PNG
    registered = tifffile.imread(outdir / FILES["stack"])
    raw = np.asarray(load_sample("brightfield").data)
    assert registered.shape == raw.shape == (17, 290, 325) and registered.dtype == np.uint8
    table = FrameTransforms.load(outdir / FILES["table"])
    assert len(table) == 17
    np.testing.assert_array_equal(registered, apply_transforms(raw, table))
    for words in (
        "17 frames",
        "Sample drift",
        "sharpness of the mean image",
        "frame-to-mean correlation",
        "Time taken",
    ):
        assert words in out
    # runs again into the same folder (its own files are replaced)
    assert main(["demo", "-o", str(outdir)]) == 0


def test_demo_improves_sharpness_and_correlation_and_matches_known_drift(tmp_path):
    result = run_demo(tmp_path)
    before, after = result["before"], result["after"]
    assert after["sharpness"] > 2.0 * before["sharpness"]
    assert after["correlation_mean"] > 0.95
    assert before["correlation_mean"] < 0.7
    assert after["correlation_min"] > before["correlation_min"]
    ft = result["transforms"]
    assert ft.ok.all()
    # the data README measured (dy, dx) ~ (-8.95, -13.65) px from frame 0 to frame 16
    # (label cropped, skimage sign = the correction)
    relative = ft.shifts[16] - ft.shifts[0]
    np.testing.assert_allclose(relative, (-8.95, -13.65), atol=0.5)
    (r_lo, r_hi), (c_lo, c_hi) = result["drift_range"]
    assert 8 < r_hi - r_lo < 10 and 12.5 < c_hi - c_lo < 14.5


def test_demo_refuses_a_file_as_outdir(tmp_path, capsys):
    target = tmp_path / "a_file"
    target.write_text("x")
    assert main(["demo", "-o", str(target)]) == 2
    assert "is a file" in capsys.readouterr().err
