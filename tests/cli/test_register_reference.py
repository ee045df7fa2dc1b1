"""`stackalign register --reference MODE`, `--reference-frames`, `--running-frames`, `--reference-image`."""

from __future__ import annotations

import shlex

import numpy as np
import pytest
import tifffile

from napari_stackalign import FrameTransforms
from napari_stackalign.cli import build_parser, main
from napari_stackalign.cli._register_common import pyramid_options
from napari_stackalign.core.pyramid import PyramidOptions, register_pyramid
from napari_stackalign.synthetic import make_stack


def _run(argline: str) -> int:
    return main(["register", *shlex.split(argline)])


@pytest.fixture(scope="module")
def stack():
    return make_stack("beads", n_frames=16, shape=(80, 80), drift=6, jitter=0.2, snr=8, dtype="uint16", seed=2).stack


@pytest.fixture
def tif_in(tmp_path, stack):
    path = tmp_path / "in.tif"
    tifffile.imwrite(path, stack)
    return path


def _parsed(argline: str):
    return build_parser().parse_args(["register", "-i", "a.tif", "-o", "b.tif", *shlex.split(argline)])


def test_flags_reach_the_options(tmp_path):
    assert pyramid_options(_parsed("--reference previous")) == PyramidOptions(reference_mode="previous")
    assert pyramid_options(_parsed("--reference-mode running --running-frames 4")) == PyramidOptions(
        reference_mode="running", running_frames=4
    )
    framed = pyramid_options(_parsed("--reference-frames 3:9"))
    assert framed.reference_mode == "frames" and framed.reference_frames == (3, 9)
    image = tmp_path / "ref.tif"
    tifffile.imwrite(image, np.arange(64, dtype=np.uint16).reshape(8, 8))
    opts = pyramid_options(_parsed(f"--reference-image {image}"))
    assert opts.reference_mode == "image" and opts.reference.shape == (8, 8)


@pytest.mark.parametrize(
    "argline, kwargs",
    [
        ("--reference previous", {"reference_mode": "previous"}),
        ("--reference running --running-frames 3", {"reference_mode": "running", "running_frames": 3}),
        ("--reference-frames 4:10", {"reference_frames": (4, 10)}),
    ],
)
def test_the_table_is_the_apis(tif_in, tmp_path, stack, argline, kwargs):
    table = tmp_path / "t.csv"
    assert _run(f"-i {tif_in} -o {tmp_path / 'o.tif'} --transforms {table} -q {argline}") == 0
    saved = FrameTransforms.load(table)
    expected = register_pyramid(stack, **kwargs)
    np.testing.assert_allclose(saved.dy, expected.dy, atol=1e-6)
    np.testing.assert_allclose(saved.dx, expected.dx, atol=1e-6)


def test_reference_image_file(tif_in, tmp_path, stack):
    image = tmp_path / "ref.tif"
    tifffile.imwrite(image, stack[5])
    table = tmp_path / "t.csv"
    assert _run(f"-i {tif_in} -o {tmp_path / 'o.tif'} --transforms {table} -q --reference-image {image}") == 0
    saved = FrameTransforms.load(table)
    assert abs(saved.dy[5]) < 0.02 and abs(saved.dx[5]) < 0.02


@pytest.mark.parametrize(
    "argline, message",
    [
        ("--reference image", "needs a reference image"),
        ("--reference first", "invalid choice: 'first'"),
        ("--reference-frames 5-7", "--reference_frames: reference_frames must be written START:STOP"),
        ("--reference-frames 10:40", "reference_frames 10:40 reach beyond the stack's 16 frames"),
        ("--reference previous --iterate 2", "iterate refines a fixed template"),
        ("--reference previous --reference-frames 2:5", "reference_frames applies to reference_mode 'frames'"),
        ("--reference-image missing.tif", "reference image missing.tif does not exist"),
        ("--reference previous --workers 2", "cannot be split over a cluster"),
    ],
)
def test_bad_reference_flags_exit_2(tif_in, tmp_path, capsys, argline, message):
    try:
        code = _run(f"-i {tif_in} -o {tmp_path / 'o.tif'} -q {argline}")
    except SystemExit as exc:  # argparse refuses a choice itself
        code = exc.code
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o.tif").exists()


def test_help_lists_the_reference_flags(capsys):
    with pytest.raises(SystemExit):
        main(["register", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag in (
        "--reference MODE",
        "--reference-frames START:STOP",
        "--running-frames N",
        "--keyframe-every K",
        "--reference-image PATH",
    ):
        assert flag in text, flag
