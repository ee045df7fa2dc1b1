"""``stackalign stack``: similarity stacking from the command line, against ground truth."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import tifffile

from napari_stackalign import FrameTransforms, apply_transforms
from napari_stackalign.cli import build_parser, main
from napari_stackalign.cli.stack import OPTION_FLAGS, parse_pair, similarity_options
from napari_stackalign.core.similarity import FALLBACKS, SimilarityOptions
from napari_stackalign.io import read_stack
from napari_stackalign.synthetic import make_stack

SHAPE = (96, 120)


def _known(n_channels: int, dtype=np.float32, seed: int = 31):
    center = ((SHAPE[0] - 1) / 2, (SHAPE[1] - 1) / 2)
    motion = FrameTransforms(
        dy=[1.5, -2.0, 0.0, 2.5, -1.0],
        dx=[-2.0, 1.0, 0.0, 3.0, 2.0],
        angle=[6.0, -9.0, 0.0, 14.0, -4.0],
        scale=[1.04, 0.95, 1.0, 1.1, 0.97],
        center=center,
    )
    return make_stack(
        "texture", n_frames=5, shape=SHAPE, motion=motion, snr=None, n_channels=n_channels, dtype=dtype, seed=seed
    )


def _read_image(path):
    with tifffile.TiffFile(path) as tif:
        return tif.asarray(), json.loads(tif.imagej_metadata["Info"])


def _check(ft: FrameTransforms, truth: FrameTransforms) -> None:
    est = ft.with_center(truth.center)
    assert np.abs(est.angle - truth.angle).max() < 0.03
    assert np.abs(est.scale - truth.scale).max() < 5e-4
    assert np.hypot(est.dy - truth.dy, est.dx - truth.dx).max() < 0.08


def test_folder_of_4_band_frames(tmp_path, capsys):
    stack, truth = _known(4, dtype=np.uint16)
    assert stack.max() > 50000
    folder = tmp_path / "frames"
    folder.mkdir()
    for t in range(5):  # one planar 4-band file per frame, like the reference script's GeoTIFFs
        tifffile.imwrite(folder / f"frame_{t + 1}.tif", stack[t], photometric="minisblack", planarconfig="separate")
    out, log, reg, cov = (tmp_path / n for n in ("avg.tif", "t.csv", "reg.tif", "cov.tif"))
    code = main(
        ["stack", "-i", str(folder), "-o", str(out), "--channel", "1", "--template", "middle", "--mode", "crop",
         "--log", str(log), "--registered", str(reg), "--coverage", str(cov),
         "--angle-range", "-30,30", "--scale-range", "0.8,1.25"]
    )
    assert code == 0, capsys.readouterr().err
    ft = FrameTransforms.from_csv(log)
    _check(ft, truth)
    assert ft.params["channel"] == 1 and ft.params["template_index"] == 2
    assert ft.params["angle_range"] == [-30.0, 30.0]
    # the registered stack: all four channels, uint16 preserved above 32767
    registered = read_stack(reg).data
    assert registered.shape == stack.shape and registered.dtype == np.uint16
    assert registered.max() > 40000
    np.testing.assert_array_equal(registered, apply_transforms(stack, ft))
    # the template frame keeps its own channels (the reference script copied channel 0 into all)
    for c in range(4):
        np.testing.assert_array_equal(registered[2, c], stack[2, c])
    # the cropped average: (C, Y, X) over the region every frame covers
    avg, meta = _read_image(out)
    r0, r1, c0, c1 = meta["stackalign"]["crop"]
    assert avg.shape == (4, r1 - r0, c1 - c0)
    assert avg.dtype == np.float32 and float(avg.max()) > 40000
    coverage, _ = _read_image(cov)
    assert coverage.shape == (r1 - r0, c1 - c0) and np.all(coverage == 5)
    err = capsys.readouterr().err
    assert "5 frames registered onto frame 2" in err


def test_multipage_tiff_full_mode_with_reference_alias(tmp_path):
    stack, truth = _known(1, seed=32)
    src = tmp_path / "movie.tif"
    tifffile.imwrite(src, stack)
    out = tmp_path / "avg.tif"
    log = tmp_path / "t.json"
    assert main(["stack", "-i", str(src), "-o", str(out), "--mode", "cmp", "--log", str(log), "-q"]) == 0
    ft = FrameTransforms.from_json(log)
    _check(ft, truth)
    avg, meta = _read_image(out)
    assert avg.shape == SHAPE
    assert meta["stackalign"]["params"]["mode"] == "full"
    assert not np.isnan(avg).any()  # the template frame covers every pixel
    h5 = tmp_path / "avg.h5"
    assert main(["stack", "-i", str(src), "-o", str(h5), "--template", "mean", "-q"]) == 0
    with h5py.File(h5) as fh:
        assert fh["image"].shape == SHAPE and fh["coverage"].shape == SHAPE
        assert json.loads(fh.attrs["metadata"])["stackalign"]["params"]["template"] == "mean"


def test_errors_are_clean(tmp_path, capsys):
    stack, _ = _known(1, seed=33)
    src = tmp_path / "movie.tif"
    tifffile.imwrite(src, stack)
    out = tmp_path / "avg.tif"
    assert main(["stack", "-i", str(src), "-o", str(out), "--channel", "2", "-q"]) == 2
    assert "--channel applies to multichannel input only" in capsys.readouterr().err
    assert main(["stack", "-i", str(src), "-o", str(out), "--angle-range", "ten", "-q"]) == 2
    assert "--angle-range takes two numbers" in capsys.readouterr().err
    assert main(["stack", "-i", str(src), "-o", str(out), "--scale-range", "0.1,3", "-q"]) == 2
    assert "within 0.5..2" in capsys.readouterr().err
    assert main(["stack", "-i", str(src), "-o", str(out), "--template", "12", "-q"]) == 2
    assert "out of range" in capsys.readouterr().err
    out.write_bytes(b"x")
    assert main(["stack", "-i", str(src), "-o", str(out), "-q"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["stack", "-i", str(tmp_path / "missing.tif"), "-o", str(tmp_path / "a.tif"), "-q"]) == 2
    assert main(["stack", "-i", str(src), "-o", str(tmp_path / "a.png"), "-q"]) == 2
    assert ".tif/.tiff or .h5" in capsys.readouterr().err


def test_parse_pair():
    assert parse_pair("-30,30", "--angle-range") == (-30.0, 30.0)
    assert parse_pair("0.8, 1.25", "--scale-range") == (0.8, 1.25)
    with pytest.raises(ValueError, match="two numbers"):
        parse_pair("1,2,3", "--angle-range")


def _stack_parser():
    subparsers = next(a for a in build_parser()._actions if a.dest == "command")
    return subparsers.choices["stack"]


def test_defaults_are_the_options_defaults():
    args = build_parser().parse_args(["stack", "-i", "in.tif", "-o", "out.tif"])
    assert similarity_options(args) == SimilarityOptions()
    for name in OPTION_FLAGS:
        assert getattr(args, name) == SimilarityOptions.default(name)


def test_flags_keep_their_spellings_choices_and_help():
    actions = {a.dest: a for a in _stack_parser()._actions}
    assert actions["template"].option_strings == ["--template"]
    assert actions["angle_range"].option_strings == ["--angle-range", "--angle_range"]
    assert actions["scale_range"].option_strings == ["--scale-range", "--scale_range"]
    assert actions["min_success"].option_strings == ["--min-success", "--min_success"]
    assert actions["angle_range"].metavar == actions["scale_range"].metavar == "MIN,MAX"
    assert tuple(actions["fallback"].choices) == FALLBACKS
    assert actions["channel"].default == 0
    for name in OPTION_FLAGS:
        assert actions[name].help == SimilarityOptions.help(name).replace("%", "%%")


def test_flags_give_the_options():
    args = build_parser().parse_args(
        ["stack", "-i", "in.tif", "-o", "out.tif", "--template", "3", "--angle-range", "-30,30",
         "--scale_range", "0.8,1.25", "--min-success", "0.4", "--fallback", "identity"]
    )
    assert similarity_options(args) == SimilarityOptions(
        template=3, angle_range=(-30, 30), scale_range=(0.8, 1.25), min_success=0.4, fallback="identity"
    )
    mean = build_parser().parse_args(["stack", "-i", "a", "-o", "b", "--template", "mean"])
    assert similarity_options(mean).template == "mean"
