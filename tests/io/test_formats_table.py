"""One table of input formats: the suffixes read_stack reads, the CLI help and the dispatch agree."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from napari_stackalign.cli import main
from napari_stackalign.io import INPUT_FORMATS, READ_SUFFIXES, input_formats_help, read_stack, suffix_of


def test_help_names_every_suffix_and_extra():
    text = input_formats_help()
    for fmt in INPUT_FORMATS:
        for suffix in fmt.suffixes:
            assert suffix in text, suffix
        if fmt.extra:
            assert f"[{fmt.extra}]" in text
    assert 'pip install "napari-stackalign[extra]"' in text
    assert set(READ_SUFFIXES) == {s for fmt in INPUT_FORMATS for s in fmt.suffixes}


@pytest.mark.parametrize("command", ["register", "stack", "track", "average", "info"])
def test_cli_help_lists_the_formats(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for suffix in (".tif", ".h5", ".gif", ".png", ".dm3", ".ser", ".nd2", ".czi", ".lif", ".ome.zarr", ".asd"):
        assert suffix in out, (command, suffix)
    assert "input TIFF (.tif/.tiff) or HDF5" not in out  # the old input help (outputs are still TIFF or HDF5)


def test_double_suffixes():
    from pathlib import Path

    assert suffix_of(Path("a.OME.TIF")) == ".ome.tif"
    assert suffix_of(Path("a.ome.zarr")) == ".ome.zarr"
    assert suffix_of(Path("a.dm4")) == ".dm4"


def test_unknown_extension_lists_the_new_formats(tmp_path):
    (tmp_path / "movie.avi").write_bytes(b"RIFF")
    with pytest.raises(ValueError, match=r"unknown file extension '.avi'.*\.png.*\.dm3.*\.nd2.*folder of frames"):
        read_stack(tmp_path / "movie.avi")


def test_hdf5_position_label_gives_a_p_axis(tmp_path):
    data = np.arange(2 * 3 * 4 * 5, dtype=np.uint16).reshape(2, 3, 4, 5)
    with h5py.File(tmp_path / "p.h5", "w") as f:
        ds = f.create_dataset("movie", data=data)
        for dim, label in zip(ds.dims, ("position", "t", "y", "x")):
            dim.label = label
    s = read_stack(tmp_path / "p.h5")
    assert s.axes == "PTYX" and s.n_positions == 2
    np.testing.assert_array_equal(s.position(1).data, data[1])
