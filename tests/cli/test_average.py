"""`stackalign average`: the average TIFF with its JSON record, the optional
outputs, the options reaching the engine, and bad input."""

from __future__ import annotations

import shlex

import numpy as np
import pytest
import tifffile

from napari_stackalign import synthetic as pairwise_scenes
from napari_stackalign.cli import build_parser, main
from napari_stackalign.cli.average import CLI_OPTIONS, cli_options
from napari_stackalign.core.pairwise import (
    PAIRWISE_DEFAULTS,
    PairwiseOptions,
    fourier_mask,
    read_pairwise_tiff,
)
from napari_stackalign.synthetic import alignment_error
from napari_stackalign.transforms import FrameTransforms


def _run(argline: str) -> int:
    return main(["average", *shlex.split(argline)])


@pytest.fixture(scope="module")
def scene():
    stack, truth = pairwise_scenes.stem_stack(8, (96, 90), snr=1.5, seed=21)
    return np.clip(stack, 0, 65535).astype(np.uint16), truth


@pytest.fixture
def tif_in(tmp_path, scene):
    path = tmp_path / "stem.tif"
    tifffile.imwrite(path, scene[0])
    return path


def test_average_with_report_registered_and_table(tmp_path, tif_in, scene, capsys):
    stack, truth = scene
    out, rep, reg, tab = (tmp_path / n for n in ("avg.tif", "report.pdf", "reg.tif", "shifts.csv"))
    code = _run(
        f"-i {tif_in} -o {out} --mask hann --n 2 --maxima gf --correlation cc --threshold 1.5 --maxpaths 4 "
        f"--report {rep} --registered {reg} --transforms {tab}"
    )
    assert code == 0
    image, record = read_pairwise_tiff(out)
    assert image.dtype == np.float32
    r0, r1, c0, c1 = record["crop"]
    assert image.shape == (r1 - r0, c1 - c0)
    p = record["params"]
    assert (p["mask"], p["n"], p["maxima"], p["correlation"], p["threshold"], p["maxpaths"]) == (
        "hann", 2.0, "gf", "cc", 1.5, 4
    )
    assert record["dy"].shape == (8, 8) and np.allclose(record["dy"], -record["dy"].T)
    assert alignment_error(record["transforms"], truth)["rms"] < 0.08
    table = FrameTransforms.load(tab)
    np.testing.assert_allclose(table.shifts, record["transforms"].shifts, atol=1e-9)
    assert tifffile.imread(reg).shape == stack.shape
    assert rep.read_bytes()[:4] == b"%PDF"
    err = capsys.readouterr().err
    assert "8 frames, 28 pairs" in err and f"wrote {out}" in err


def test_options_reach_the_engine(tmp_path, tif_in):
    out = tmp_path / "a.tif"
    code = _run(
        f"-i {tif_in} -o {out} --mask elliptical --n 2 --n2 3 --theta 20 --maxima dft --upsample 10 "
        "--threshold none --max-shift 3 --bad-frames 2,5 --weights equal --average warp --no-crop -q"
    )
    assert code == 0
    image, record = read_pairwise_tiff(out)
    p = record["params"]
    assert p["mask"] == "elliptical" and p["n2"] == 3.0 and p["theta"] == 20.0
    assert p["threshold"] is None and p["max_shift"] == 3.0 and p["bad_frames"] == [2, 5]
    assert p["average"] == "warp" and p["weights"] == "equal" and p["upsample"] == 10
    assert image.shape == (96, 90) and record["cropped"] is False
    assert not record["transforms"].ok[[2, 5]].any()


def test_user_mask_file(tmp_path, tif_in):
    mask = tmp_path / "mask.tif"
    tifffile.imwrite(mask, fourier_mask((96, 90), "hann", 2, centered=True))
    out = tmp_path / "u.tif"
    assert _run(f"-i {tif_in} -o {out} --user-mask {mask} -q") == 0
    assert read_pairwise_tiff(out)[1]["params"]["mask"] == "user"


@pytest.mark.parametrize(
    "args, message",
    [
        ("--n 0.5", "n must be a number of at least 1"),
        ("--mask hann --n 60", "keeps no frequency"),
        ("--bad-frames 40", "outside the stack"),
        ("--window-radius 1", "window_radius"),
        ("--report r.svg", "report r.svg"),
        ("--transforms t.txt", "transforms table"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(tmp_path, tif_in, capsys, args, message):
    code = _run(f"-i {tif_in} -o {tmp_path / 'x.tif'} {args} -q")
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.tif").exists()


def test_refuses_to_overwrite_and_a_2d_input(tmp_path, tif_in, capsys):
    out = tmp_path / "avg.tif"
    assert _run(f"-i {tif_in} -o {out} -q --n 2") == 0
    assert _run(f"-i {tif_in} -o {out} -q --n 2") == 2
    assert "--overwrite" in capsys.readouterr().err
    assert _run(f"-i {tif_in} -o {out} -q --n 2 --overwrite") == 0
    flat = tmp_path / "flat.tif"
    tifffile.imwrite(flat, np.zeros((40, 40), np.uint16))
    assert _run(f"-i {flat} -o {tmp_path / 'f.tif'} -q") == 2
    assert "single 2-D image" in capsys.readouterr().err
    assert _run(f"-i {tmp_path / 'missing.tif'} -o {tmp_path / 'm.tif'} -q") == 2
    assert "does not exist" in capsys.readouterr().err


def _parse(argline: str):
    return build_parser().parse_args(["average", *shlex.split(argline)])


def test_defaults_are_the_options_defaults():
    args = _parse("-i in.tif -o out.tif")
    assert cli_options(args) == PairwiseOptions()
    for name in CLI_OPTIONS:
        assert PairwiseOptions(**{name: getattr(args, name)}) == PAIRWISE_DEFAULTS, name
    # every option but the ones the command derives (registered from --registered) has a flag
    assert set(PairwiseOptions.specs()) - set(CLI_OPTIONS) == {"registered"}
    assert cli_options(args, registered=True).registered is True


def test_flags_keep_their_spellings_and_choices():
    args = _parse(
        "-i in.tif -o out.tif --num_peaks 4 --sigma_guess 1.5 --window_radius 5 --max_shift 2 --bad_frames 1,3 "
        "--threshold off --mask gaussian --maxima pixel --correlation pc --weights equal --average warp"
    )
    opts = cli_options(args)
    assert (opts.num_peaks, opts.sigma_guess, opts.window_radius, opts.max_shift) == (4, 1.5, 5, 2.0)
    assert opts.bad_frames == (1, 3) and opts.threshold is None
    assert (opts.mask, opts.maxima, opts.correlation, opts.weights, opts.average) == ("gaussian", "pixel", "pc", "equal", "warp")
    with pytest.raises(SystemExit):
        _parse("-i in.tif -o out.tif --mask user")  # a user mask comes from --user-mask
    with pytest.raises(SystemExit):
        _parse("-i in.tif -o out.tif --maxima max")
