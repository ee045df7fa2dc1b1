"""`stackalign register`: the reference tool's flags, formats, dtype, tables, bad input."""

from __future__ import annotations

import builtins
import shlex

import h5py
import numpy as np
import pytest
import tifffile

from napari_stackalign import FrameTransforms, apply_transforms
from napari_stackalign.cli import build_parser, main
from napari_stackalign.cli._register_common import CLI_OPTIONS, pyramid_options
from napari_stackalign.cli.register import resolve_output_format
from napari_stackalign.core.pyramid import PyramidOptions, register_pyramid
from napari_stackalign.core.smoothing import smooth_transforms
from napari_stackalign.io import read_stack, write_stack
from napari_stackalign.synthetic import alignment_error, make_stack

#: the usage line of the reference tool's README, flags exactly as written there
README_FLAGS = "--iterate 2 -s 1 --num_frames 50 --downsample_rates [1/8,1/4,1/2,1] --max_movement 0.5 --save_as_tif 0"


def _run(argline: str) -> int:
    return main(["register", *shlex.split(argline)])


@pytest.fixture(scope="module")
def drifting():
    """A 24-frame uint16 stack with smooth known drift (no jitter: smoothing keeps it)."""
    stack, truth = make_stack("beads", n_frames=24, shape=(96, 112), drift=9, jitter=0.0, snr=8, dtype="uint16", seed=5)
    return stack, truth


@pytest.fixture
def tif_in(tmp_path, drifting):
    path = tmp_path / "input_stack.tif"
    tifffile.imwrite(path, drifting[0])
    return path


def _stored(path):
    data = read_stack(path, lazy=False)
    return data


def test_reference_readme_flags_write_hdf5_with_metadata_and_transforms(tmp_path, drifting, capsys, monkeypatch):
    # the bar is drawn on a terminal only: pretend stderr is one
    monkeypatch.setattr("napari_stackalign.cli._progress_bar.bar_enabled", lambda quiet=False, stream=None: not quiet)
    stack, truth = drifting
    src = tmp_path / "input.h5"
    write_stack(src, stack, metadata={"experiment": "slice 3", "objective": "20x"}, scale=(0.5, 0.5), units="um")
    out = tmp_path / "output.h5"
    assert _run(f"-i {src} -o {out} {README_FLAGS}") == 0
    with h5py.File(out, "r") as f:  # the reference tool's layout: /image_data
        assert f["image_data"].dtype == np.uint16
        assert f["image_data"].shape == stack.shape
    result = _stored(out)
    assert result.dtype == np.uint16
    assert result.metadata["experiment"] == "slice 3" and result.metadata["objective"] == "20x"
    block = result.metadata["stackalign"]
    assert block["method"] == "pyramid"
    assert block["params"]["iterate"] == 2 and block["params"]["smooth"] is True
    assert block["params"]["num_frames"] == 50
    assert block["params"]["downsample_rates"] == [0.125, 0.25, 0.5, 1.0]
    assert result.pixel_size == pytest.approx((0.5, 0.5)) and result.units == "µm"
    ft = result.transforms
    assert ft is not None and len(ft) == 24
    assert ft.params["smoothing"]["window_length"] == 11
    # the engine's result with the same settings, and close to the smoothed truth
    expected = register_pyramid(stack, iterate=2, smooth=True, num_frames=50, max_movement=0.5)
    assert ft.allclose(expected, atol=1e-9)
    assert alignment_error(ft, smooth_transforms(truth))["rms"] < 0.1
    np.testing.assert_array_equal(np.asarray(result.data), apply_transforms(stack, ft))
    err = capsys.readouterr()
    assert "measuring the drift" in err.err  # the progress bar, its stage in words
    assert "correction dy" in err.out and "wrote" in err.out


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32", "int16"])
def test_tiff_to_tiff_keeps_dtype(tmp_path, dtype):
    raw, truth = make_stack("texture", n_frames=8, shape=(80, 80), drift=6, snr=10, seed=1)
    stack = (raw / raw.max() * 120).astype(dtype)  # fits every type's range (uint8 included)
    src, out, table = tmp_path / "in.tif", tmp_path / "out.tif", tmp_path / "t.csv"
    tifffile.imwrite(src, stack)
    assert _run(f"-i {src} -o {out} --transforms {table} -q") == 0
    result = tifffile.imread(out)
    assert result.dtype == np.dtype(dtype) and result.shape == stack.shape
    ft = FrameTransforms.load(table)
    assert alignment_error(ft, truth)["rms"] < 0.15
    np.testing.assert_array_equal(result, apply_transforms(stack, ft))
    np.testing.assert_array_equal(tifffile.imread(src), stack)  # input untouched


def test_hdf5_to_tiff_by_save_as_tif_and_bare_name(tmp_path, drifting):
    stack, _ = drifting
    src = tmp_path / "in.h5"
    with h5py.File(src, "w") as f:  # written the way the reference tool writes
        f.create_dataset("image_data", data=stack)
    assert _run(f"-i {src} -o {tmp_path / 'registered'} --save_as_tif 1 -q") == 0
    out = tmp_path / "registered.tif"
    assert out.is_file() and tifffile.imread(out).dtype == np.uint16


def test_reapplying_a_saved_table_gives_identical_output(tmp_path, drifting):
    stack, _ = drifting
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, stack)
    first, again, table = tmp_path / "first.tif", tmp_path / "again.tif", tmp_path / "shifts.csv"
    assert _run(f"-i {src} -o {first} --transforms {table} -q") == 0
    assert _run(f"-i {src} -o {again} --apply-transforms {table} -q") == 0
    np.testing.assert_array_equal(tifffile.imread(first), tifffile.imread(again))


def test_table_from_one_channel_corrects_another(tmp_path):
    stack, _truth = make_stack(
        "beads", n_frames=10, shape=(96, 96), drift=7, snr=8, n_channels=2, dtype="uint16", seed=3
    )
    ch0, ch1 = tmp_path / "ch0.tif", tmp_path / "ch1.tif"
    tifffile.imwrite(ch0, stack[:, 0])
    tifffile.imwrite(ch1, stack[:, 1])
    table = tmp_path / "ch0.csv"
    assert _run(f"-i {ch0} -o {tmp_path / 'ch0_reg.tif'} --transforms {table} -q") == 0
    assert _run(f"-i {ch1} -o {tmp_path / 'ch1_reg.h5'} --apply-transforms {table} -q") == 0
    result = read_stack(tmp_path / "ch1_reg.h5", lazy=False)
    ft = FrameTransforms.load(table)
    np.testing.assert_array_equal(np.asarray(result.data), apply_transforms(stack[:, 1], ft))
    assert result.transforms.allclose(ft, atol=1e-9)
    assert result.metadata["stackalign"]["method"] == "apply"


def test_multichannel_file_estimates_on_one_channel_and_corrects_all(tmp_path):
    stack, truth = make_stack(
        "beads", n_frames=10, shape=(96, 96), drift=7, snr=8, n_channels=2, dtype="uint16", seed=3
    )
    src = tmp_path / "tc.tif"
    write_stack(src, stack)
    out, table = tmp_path / "tc_reg.tif", tmp_path / "tc.csv"
    assert _run(f"-i {src} -o {out} --channel 1 --transforms {table} -q") == 0
    ft = FrameTransforms.load(table)
    assert alignment_error(ft, truth)["rms"] < 0.15
    result = read_stack(out, lazy=False)
    assert result.shape == stack.shape
    np.testing.assert_array_equal(np.asarray(result.data), apply_transforms(stack, ft))


def test_roi_and_mask_keep_a_static_label_out(tmp_path):
    stack, truth = make_stack("texture", n_frames=12, shape=(112, 112), drift=8, snr=6, static_label=True, seed=7)
    src = tmp_path / "label.tif"
    tifffile.imwrite(src, stack)
    table_roi, table_mask = tmp_path / "roi.csv", tmp_path / "mask.csv"
    assert _run(f"-i {src} -o {tmp_path / 'a.tif'} --roi 30,112,0,112 --transforms {table_roi} -q") == 0
    mask = np.ones((112, 112), np.uint8)
    mask[:30, :] = 0
    tifffile.imwrite(tmp_path / "mask.tif", mask)
    assert _run(f"-i {src} -o {tmp_path / 'b.tif'} --mask {tmp_path / 'mask.tif'} --transforms {table_mask} -q") == 0
    for table in (table_roi, table_mask):
        assert alignment_error(FrameTransforms.load(table), truth)["rms"] < 0.2


def test_rate_syntaxes_are_equivalent(tmp_path, drifting):
    stack, _ = drifting
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, stack[:6])
    tables = []
    for k, rates in enumerate(["[1/4,1/2,1]", "0.25,0.5,1", "'(0.25, 0.5, 1)'"]):
        table = tmp_path / f"t{k}.csv"
        assert _run(f"-i {src} -o {tmp_path / f'o{k}.tif'} --downsample_rates {rates} --transforms {table} -q") == 0
        tables.append(FrameTransforms.load(table))
    assert tables[0].allclose(tables[1]) and tables[0].allclose(tables[2])


def test_rates_are_never_evaluated(tmp_path, drifting, monkeypatch, capsys):
    stack, _ = drifting
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, stack[:6])

    def forbidden(*args, **kwargs):
        raise AssertionError("eval/exec must not be used to parse arguments")

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    pwned = tmp_path / "pwned"
    code = main(
        [
            "register",
            "-i",
            str(src),
            "-o",
            str(tmp_path / "o.tif"),
            "-q",
            "--downsample_rates",
            f"__import__('os').system('touch {pwned}')",
        ]
    )
    assert code == 2 and not pwned.exists()
    assert "not a number or fraction" in capsys.readouterr().err
    assert _run(f"-i {src} -o {tmp_path / 'ok.tif'} --downsample_rates [1/2,1] -q") == 0


def test_format_flag_and_extension_must_agree(tmp_path, tif_in, capsys):
    assert _run(f"-i {tif_in} -o {tmp_path / 'out.tif'} --save_as_tif 0") == 2
    err = capsys.readouterr().err
    assert "--save_as_tif 0 asks for HDF5" in err and "out.tif" in err
    assert _run(f"-i {tif_in} -o {tmp_path / 'out.h5'} --save_as_tif 1") == 2
    assert "asks for TIFF" in capsys.readouterr().err
    assert not (tmp_path / "out.tif").exists() and not (tmp_path / "out.h5").exists()
    assert resolve_output_format(tmp_path / "x.TIFF", 1)[1] == "tiff"
    assert resolve_output_format(tmp_path / "x.hdf5", None)[1] == "hdf5"
    assert resolve_output_format(tmp_path / "x", None)[0].name == "x.h5"  # the reference default: HDF5


@pytest.mark.parametrize(
    "args, message",
    [
        ("-i {d}/missing.tif -o {d}/o.tif", "does not exist"),
        ("-i {d}/flat.tif -o {d}/o.tif", "2-D"),
        ("-i {d}/input_stack.tif -o {d}/o.png", "must be a TIFF"),
        ("-i {d}/input_stack.tif -o {d}/input_stack.tif --overwrite", "is the input file"),
        ("-i {d}/input_stack.tif -o {d}/exists.tif", "already exists"),
        ("-i {d}/input_stack.tif -o {d}/o.tif --downsample_rates [1/8,abc]", "not a number"),
        ("-i {d}/input_stack.tif -o {d}/o.tif --downsample_rates [0,1]", "outside (0, 1]"),
        ("-i {d}/input_stack.tif -o {d}/o.tif --downsample_rates [1,1/2]", "increase"),
        ("-i {d}/input_stack.tif -o {d}/o.tif --max_movement 3", "--max_movement"),
        ("-i {d}/input_stack.tif -o {d}/o.tif --iterate 0", "--iterate"),
        ("-i {d}/short.tif -o {d}/o.tif -s 1", "fewer than the smoothing window_length"),
        ("-i {d}/input_stack.tif -o {d}/o.tif --roi 0,500,0,50", "is not a rectangle inside the 96x112 frame"),
        ("-i {d}/input_stack.tif -o {d}/o.tif --roi 1,2,3", "four integers"),
        ("-i {d}/input_stack.tif -o {d}/o.tif --mask {d}/flat.tif", "but frames are (96, 112)"),
        ("-i {d}/input_stack.tif -o {d}/o.tif --apply-transforms {d}/short.csv", "has 5 frames"),
        ("-i {d}/input_stack.tif -o {d}/o.tif --channel 1", "--channel"),
        ("-i {d}/input_stack.tif -o {d}/o.tif --transforms {d}/t.txt", "*.csv"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(tmp_path, tif_in, drifting, capsys, args, message):
    tifffile.imwrite(tmp_path / "flat.tif", np.ones((40, 40), np.uint16))
    tifffile.imwrite(tmp_path / "short.tif", drifting[0][:5])
    FrameTransforms.identity(5).to_csv(tmp_path / "short.csv")
    (tmp_path / "exists.tif").write_bytes(b"keep me")
    before = tif_in.read_bytes()
    assert _run(args.format(d=tmp_path) + " -q") == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "o.tif").exists()
    assert (tmp_path / "exists.tif").read_bytes() == b"keep me"
    assert tif_in.read_bytes() == before


def test_argparse_rejects_bad_choices(tif_in, tmp_path, capsys):
    for flag in ("-s 2", "--save_as_tif 3", "--iterate two"):
        with pytest.raises(SystemExit) as exc:
            _run(f"-i {tif_in} -o {tmp_path / 'o.tif'} {flag}")
        assert exc.value.code == 2
    assert "invalid" in capsys.readouterr().err


def test_overwrite_replaces_output_and_table(tmp_path, tif_in):
    out, table = tmp_path / "o.tif", tmp_path / "t.csv"
    out.write_bytes(b"old")
    table.write_text("old")
    assert _run(f"-i {tif_in} -o {out} --transforms {table} -q") == 2
    assert _run(f"-i {tif_in} -o {out} --transforms {table} --overwrite -q") == 0
    assert tifffile.imread(out).shape == (24, 96, 112)
    assert len(FrameTransforms.load(table)) == 24


def test_output_is_the_library_result(tmp_path, tif_in, drifting):
    """The in-memory path (estimation and resampling overlapped) writes
    exactly apply_transforms(stack, register_pyramid(stack)), and re-applying
    its table gives the same pixels again."""
    out, table = tmp_path / "o.tif", tmp_path / "t.csv"
    assert _run(f"-i {tif_in} -o {out} --transforms {table} -q") == 0
    stack = drifting[0]
    expected_transforms = register_pyramid(stack)
    expected = apply_transforms(stack, expected_transforms)
    written = tifffile.imread(out)
    assert written.dtype == stack.dtype
    np.testing.assert_array_equal(written, expected)
    np.testing.assert_allclose(FrameTransforms.load(table).dy, expected_transforms.dy, atol=1e-9)
    again = tmp_path / "again.tif"
    assert _run(f"-i {tif_in} -o {again} --apply-transforms {table} -q") == 0
    np.testing.assert_array_equal(tifffile.imread(again), written)


def test_compression_flag(tmp_path, tif_in):
    plain, packed = tmp_path / "plain.h5", tmp_path / "packed.h5"
    assert _run(f"-i {tif_in} -o {plain} -q") == 0
    assert _run(f"-i {tif_in} -o {packed} --compression lzf -q") == 0
    with h5py.File(plain, "r") as a, h5py.File(packed, "r") as b:
        assert a["image_data"].compression is None  # the default writes at disk speed
        assert b["image_data"].compression == "lzf"
        np.testing.assert_array_equal(a["image_data"][()], b["image_data"][()])
    # lzf does not exist for TIFF: refused before any work, nothing written
    tif = tmp_path / "o.tif"
    assert _run(f"-i {tif_in} -o {tif} --compression lzf -q") == 2
    assert not tif.exists()


# ---------------------------------------------------- flags from PyramidOptions
def _parsed(argline: str = ""):
    return build_parser().parse_args(["register", "-i", "a.tif", "-o", "b.tif", *shlex.split(argline)])


def test_every_offered_option_has_the_options_default():
    args = _parsed()
    options = pyramid_options(args)
    assert options == PyramidOptions()
    defaults = PyramidOptions.defaults()
    for name in CLI_OPTIONS:
        assert getattr(options, name) == defaults[name], name
    # the flags as typed: 0/1 for the switches, the reference tool's text for the rates
    assert args.smooth == 0 and args.normalize == 1
    assert args.downsample_rates == "[1/8,1/4,1/2,1]"
    assert (args.num_frames, args.max_movement, args.iterate) == (100, 0.5, 1)
    assert (args.window_length, args.polyorder, args.roi) == (11, 3, None)


def test_every_spelling_reaches_the_options():
    dashes = pyramid_options(
        _parsed(
            "--num-frames 7 --downsample-rates 0.5,1 --max-movement 0.25 --window-length 5 "
            "--iterate 2 --smooth 1 --polyorder 2 --normalize 0 --roi 1,20,2,30"
        )
    )
    underscores = pyramid_options(
        _parsed(
            "--num_frames 7 --downsample_rates [1/2,1] --max_movement 0.25 --window_length 5 "
            "--iterate 2 -s 1 --polyorder 2 --normalize 0 --roi 1,20,2,30"
        )
    )
    expected = PyramidOptions(
        num_frames=7,
        downsample_rates=(0.5, 1),
        max_movement=0.25,
        window_length=5,
        iterate=2,
        smooth=True,
        polyorder=2,
        normalize=False,
        roi=(1, 20, 2, 30),
    )
    assert dashes == expected and underscores == expected


def test_help_is_the_options_help(capsys):
    with pytest.raises(SystemExit):
        main(["register", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name, spec in PyramidOptions.specs().items():
        if name in CLI_OPTIONS:
            assert " ".join(spec.help.split()) in text, name
    assert "(default [1/8,1/4,1/2,1])" in text


@pytest.mark.parametrize(
    "flags, values",
    [
        ("--iterate 0", {"iterate": 0}),
        ("--num_frames 0", {"num_frames": 0}),
        ("--max_movement 3", {"max_movement": 3.0}),
        ("--max_movement 0", {"max_movement": 0.0}),
        ("--polyorder -1", {"polyorder": -1}),
        ("-s 1 --window_length 4", {"smooth": True, "window_length": 4}),
        ("-s 1 --window_length 3 --polyorder 3", {"smooth": True, "window_length": 3, "polyorder": 3}),
        ("--downsample_rates [1,1/2]", {"downsample_rates": (1, 0.5)}),
    ],
)
def test_bad_values_give_the_options_message_and_exit_2(tif_in, tmp_path, capsys, flags, values):
    with pytest.raises(ValueError) as expected:
        PyramidOptions(**values)
    assert _run(f"-i {tif_in} -o {tmp_path / 'o.tif'} -q {flags}") == 2
    err = capsys.readouterr().err
    assert str(expected.value) in err and "Traceback" not in err
    for name in set(values) - {"smooth"}:  # the message names the flag(s) to change
        assert ("--" + name) in err
    assert not (tmp_path / "o.tif").exists()
