"""Every bad input gets a clear error saying what to do."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import tifffile

from napari_stackalign import FrameTransforms
from napari_stackalign.io import read_stack, write_stack


def _data(shape=(5, 16, 16), dtype=np.uint16):
    return np.random.default_rng(0).integers(0, 1000, size=shape).astype(dtype)


# ---------------------------------------------------------------- reading
def test_single_2d_tiff(tmp_path):
    tifffile.imwrite(tmp_path / "one.tif", _data((32, 32)))
    with pytest.raises(ValueError, match="single 2-D image.*not a time series.*folder of single-frame files"):
        read_stack(tmp_path / "one.tif")


def test_single_frame_imagej_stack_is_a_single_image(tmp_path):
    tifffile.imwrite(tmp_path / "t1.tif", _data((1, 32, 32)), imagej=True, metadata={"axes": "TYX"})
    with pytest.raises(ValueError, match="single 2-D image"):
        read_stack(tmp_path / "t1.tif")


def test_volume_over_time_tiff(tmp_path):
    tifffile.imwrite(tmp_path / "tzyx.tif", _data((4, 3, 16, 16)), imagej=True, metadata={"axes": "TZYX"})
    with pytest.raises(ValueError, match=r"volume over time.*not supported.*pick one plane"):
        read_stack(tmp_path / "tzyx.tif")


def test_volume_with_one_plane_is_fine(tmp_path):
    data = _data((4, 1, 16, 16))
    tifffile.imwrite(tmp_path / "tz1.tif", data, imagej=True, metadata={"axes": "TZYX"})
    np.testing.assert_array_equal(read_stack(tmp_path / "tz1.tif").data, data[:, 0])


def test_volume_over_time_hdf5(tmp_path):
    with h5py.File(tmp_path / "vol.h5", "w") as f:
        ds = f.create_dataset("imaging", data=_data((4, 3, 8, 8, 2), np.uint8))
        for dim, label in zip(ds.dims, "tzyxc"):
            dim.label = label
    with pytest.raises(ValueError, match=r"volume over time \(T=4 x Z=3 x Y=8 x X=8 x C=2\).*pick one plane"):
        read_stack(tmp_path / "vol.h5")


def test_truncated_tiff(tmp_path):
    tifffile.imwrite(tmp_path / "ok.tif", _data(), compression="zlib")
    raw = (tmp_path / "ok.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="truncated"):
        read_stack(tmp_path / "cut.tif")


def test_truncated_uncompressed_tiff(tmp_path):
    tifffile.imwrite(tmp_path / "ok.tif", _data())
    raw = (tmp_path / "ok.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(raw[:-100])
    with pytest.raises(ValueError, match="(?i)truncated.*copy or export it again"):
        read_stack(tmp_path / "cut.tif")


@pytest.mark.parametrize("suffix", [".tif", ".h5", ".gif", ".hspy"])
def test_corrupt_and_empty_files(tmp_path, suffix):
    (tmp_path / f"junk{suffix}").write_bytes(b"this is not an image file at all" * 10)
    with pytest.raises(ValueError, match="not a valid .* file or it is truncated/corrupt"):
        read_stack(tmp_path / f"junk{suffix}")
    (tmp_path / f"empty{suffix}").write_bytes(b"")
    with pytest.raises(ValueError, match="cannot read"):
        read_stack(tmp_path / f"empty{suffix}")


def test_truncated_hdf5(tmp_path):
    write_stack(tmp_path / "ok.h5", _data((20, 64, 64)))
    raw = (tmp_path / "ok.h5").read_bytes()
    (tmp_path / "cut.h5").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="truncated"):
        read_stack(tmp_path / "cut.h5")


def test_unknown_extension_and_missing_file(tmp_path):
    (tmp_path / "movie.avi").write_bytes(b"RIFF")
    with pytest.raises(ValueError, match=r"unknown file extension '.avi'.*\.tif.*\.h5.*folder"):
        read_stack(tmp_path / "movie.avi")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_stack(tmp_path / "missing.tif")


def test_bad_read_options(tmp_path):
    path = write_stack(tmp_path / "a.tif", _data())
    with pytest.raises(ValueError, match="memory_fraction must be in"):
        read_stack(path, memory_fraction=0)
    with pytest.raises(ValueError, match="lazy must be True, False or None"):
        read_stack(path, lazy="yes")
    with pytest.raises(ValueError, match="dataset= applies to HDF5 files only"):
        read_stack(path, dataset="x")
    with pytest.raises(ValueError, match="has 2 letters but the data has 3"):
        read_stack(path, axes="YX")
    with pytest.raises(ValueError, match="repeats a letter"):
        read_stack(path, axes="TTX")
    with pytest.raises(ValueError, match="without both 'Y' and 'X'"):
        read_stack(path, axes="TYZ")


def test_list_with_non_tiff(tmp_path):
    a = write_stack(tmp_path / "a.tif", _data())
    b = write_stack(tmp_path / "b.h5", _data())
    with pytest.raises(ValueError, match="TIFF, PNG, JPEG and BMP frames only"):
        read_stack([a, b])
    with pytest.raises(ValueError, match="no files given"):
        read_stack([])


def test_empty_stack(tmp_path):
    with h5py.File(tmp_path / "empty.h5", "w") as f:
        f["image_data"] = np.zeros((0, 8, 8), np.uint8)
    with pytest.raises(ValueError, match="empty stack"):
        read_stack(tmp_path / "empty.h5")


# ---------------------------------------------------------------- writing
def test_write_2d_and_volume_refused(tmp_path):
    with pytest.raises(ValueError, match="single 2-D image, not a time series"):
        write_stack(tmp_path / "a.tif", _data((16, 16)))
    with pytest.raises(ValueError, match="axes must be 'TYX', 'TCYX' or, for volumes over time, 'TZYX' or 'TCZYX'"):
        write_stack(tmp_path / "a.tif", _data((3, 2, 2, 16, 16)), axes="TZCYX")
    with pytest.raises(ValueError, match="5 dimensions"):
        write_stack(tmp_path / "a.tif", _data((3, 2, 2, 16, 16)))


def test_write_unknown_extension(tmp_path):
    with pytest.raises(ValueError, match=r"unknown file extension '.png'.*\.tif, \.tiff, \.h5"):
        write_stack(tmp_path / "a.png", _data())


def test_write_bad_values(tmp_path):
    out = tmp_path / "a.h5"
    with pytest.raises(ValueError, match="convert booleans to uint8"):
        write_stack(out, np.zeros((3, 4, 4), bool))
    with pytest.raises(ValueError, match="compression must be one of"):
        write_stack(out, _data(), compression="jpeg")
    with pytest.raises(ValueError, match="lzf compression exists for HDF5 only"):
        write_stack(tmp_path / "a.tif", _data(), compression="lzf")
    with pytest.raises(ValueError, match="scale has 4 values"):
        write_stack(out, _data(), scale=[1, 2, 3, 4])
    with pytest.raises(ValueError, match="finite and positive"):
        write_stack(out, _data(), scale=-1)
    with pytest.raises(ValueError, match="3 rows but the stack has 5 frames"):
        write_stack(out, _data(), transforms=FrameTransforms.identity(3))
    with pytest.raises(ValueError, match="metadata must be a dict"):
        write_stack(out, _data(), metadata=[1, 2])
    with pytest.raises(ValueError, match="empty"):
        write_stack(out, np.zeros((0, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="axes must be 'TYX', 'TCYX' or"):
        write_stack(out, _data(), axes="YXT")
    assert not out.exists()
