"""``stackalign register --piecewise``: the field is estimated, written, re-applied and refused when streamed."""

from __future__ import annotations

import shlex

import numpy as np
import pytest
import tifffile

import napari_stackalign.io._lazy as lazy_io  # the reader's memory probe, patched to make inputs "big"
from napari_stackalign import FrameTransforms, PiecewiseTransforms, apply_transforms
from napari_stackalign.cli import main
from napari_stackalign.io import write_stack
from napari_stackalign.synthetic_warp import deformed_stack


def _run(argline: str) -> int:
    return main(["register", *shlex.split(argline)])


@pytest.fixture(scope="module")
def movie(tmp_path_factory):
    data = deformed_stack("neurons", n_frames=8, shape=(96, 96), drift=3.0, amplitude=2.0, snr=10.0, seed=4)
    path = tmp_path_factory.mktemp("pw") / "movie.tif"
    stack = np.clip(data.stack * 1000 + 500, 0, 65535).astype(np.uint16)
    tifffile.imwrite(path, stack)
    return path, stack


def test_piecewise_writes_the_field_and_reapplies_it(movie, tmp_path, capsys):
    src, stack = movie
    out, again, table = tmp_path / "out.tif", tmp_path / "again.tif", tmp_path / "shifts.csv"
    assert _run(f"-i {src} -o {out} --piecewise --patch-size 48 --patch-overlap 24 --transforms {table}") == 0
    said = capsys.readouterr().out
    assert "piecewise: 3x3 patches" in said
    result = PiecewiseTransforms.load(tmp_path / "shifts.npz")
    assert result.params["patch_size"] == 48 and result.params["patch_overlap"] == 24
    assert FrameTransforms.load(table).allclose(result.rigid)
    registered = tifffile.imread(out)
    assert registered.dtype == np.uint16
    np.testing.assert_array_equal(registered, apply_transforms(stack, result))
    # another file (channel) gets the same field
    assert _run(f"-i {src} -o {again} --apply-transforms {tmp_path / 'shifts.npz'} -q") == 0
    np.testing.assert_array_equal(tifffile.imread(again), registered)


def test_bad_patch_flags_exit_2(movie, tmp_path, capsys):
    src, _ = movie
    assert _run(f"-i {src} -o {tmp_path / 'o.tif'} --piecewise --patch-size 32 --patch-overlap 32") == 2
    assert "patch_overlap (32) must be below patch_size (32)" in capsys.readouterr().err


def test_streamed_inputs_refuse_piecewise(movie, tmp_path, monkeypatch, capsys):
    _, stack = movie
    src = tmp_path / "movie.h5"
    write_stack(src, stack)
    monkeypatch.setattr(lazy_io, "total_memory", lambda: 1_000)  # the input is opened lazily: streamed
    assert _run(f"-i {src} -o {tmp_path / 'o.h5'} --piecewise -q") == 2
    assert "--piecewise (or applying a .npz field) works on inputs that fit in memory" in capsys.readouterr().err
    assert not (tmp_path / "o.h5").exists()
