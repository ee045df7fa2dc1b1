"""Writes are atomic: temp file + rename; refusals for existing and source files."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from napari_stackalign import files as _atomic
from napari_stackalign.core import Cancelled
from napari_stackalign.io import _lazy, read_stack, write_stack


def _data(value=0, shape=(6, 16, 16)):
    return np.full(shape, value, np.uint16)


def _leftovers(folder):
    return [p.name for p in folder.iterdir() if p.name.endswith(".part")]


@pytest.mark.parametrize("suffix", [".tif", ".h5"])
def test_cancelled_write_leaves_old_file_and_no_temp(tmp_path, suffix, monkeypatch):
    target = write_stack(tmp_path / f"out{suffix}", _data(1))
    before = target.read_bytes()
    monkeypatch.setattr(_lazy, "ITER_CHUNK_BYTES", 16 * 16 * 2)  # one frame per chunk

    def progress(done, total, stage):
        if done >= 3:
            raise Cancelled()

    with pytest.raises(Cancelled):
        write_stack(target, _data(2), overwrite=True, progress=progress)
    assert target.read_bytes() == before
    np.testing.assert_array_equal(read_stack(target).data, _data(1))
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("suffix", [".tif", ".h5"])
def test_failing_source_leaves_no_file(tmp_path, suffix):
    class Broken:
        shape = (5, 8, 8)
        dtype = np.dtype(np.uint8)
        ndim = 3

        def __getitem__(self, key):
            raise OSError("disk unplugged")

    with pytest.raises(OSError, match="unplugged"):
        write_stack(tmp_path / f"new{suffix}", Broken())
    assert list(tmp_path.iterdir()) == []


def test_existing_file_is_refused_without_overwrite(tmp_path):
    target = write_stack(tmp_path / "a.h5", _data(1))
    with pytest.raises(ValueError, match="already exists: pass overwrite=True"):
        write_stack(target, _data(2))
    write_stack(target, _data(3), overwrite=True)
    np.testing.assert_array_equal(read_stack(target).data, _data(3))


@pytest.mark.parametrize("suffix", [".tif", ".h5"])
def test_source_file_is_refused_even_with_overwrite(tmp_path, suffix):
    source = write_stack(tmp_path / f"src{suffix}", _data(1))
    lazy = read_stack(source, lazy=True)
    with pytest.raises(ValueError, match="read from. Save under a new name"):
        write_stack(source, lazy, overwrite=True)
    with pytest.raises(ValueError, match="read from"):
        write_stack(source, _data(5), overwrite=True, source_path=str(source))
    np.testing.assert_array_equal(np.asarray(lazy.data), _data(1))
    # forcing replaces it atomically; the lazily read data stayed valid while it was written
    write_stack(source, lazy.data + 1, force=True, source_path=source)
    lazy.close()
    np.testing.assert_array_equal(read_stack(source).data, _data(2))
    assert _leftovers(tmp_path) == []


def test_new_file_gets_normal_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        target = write_stack(tmp_path / "perm.tif", _data())
    finally:
        os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_replaced_file_keeps_its_permissions(tmp_path):
    target = write_stack(tmp_path / "keep.h5", _data())
    os.chmod(target, 0o640)
    write_stack(target, _data(1), overwrite=True)
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


def test_missing_and_unwritable_output_folders(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="does not exist: create it first"):
        write_stack(tmp_path / "nowhere" / "x.tif", _data())
    monkeypatch.setattr(_atomic.os, "access", lambda path, mode: False)
    with pytest.raises(ValueError, match="not writable: choose a folder you can write to"):
        write_stack(tmp_path / "x.tif", _data())


def test_target_that_is_a_folder(tmp_path):
    (tmp_path / "d.tif").mkdir()
    with pytest.raises(ValueError, match="is a folder"):
        write_stack(tmp_path / "d.tif", _data(), overwrite=True)
