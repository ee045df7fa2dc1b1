"""Reading TIFF variants (plain, ImageJ, OME), GIF, folders and lists of frames."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from napari_stackalign.io import natural_key, read_stack


def _frames(shape, seed=0, dtype=np.uint16):
    return np.random.default_rng(seed).integers(0, 4000, size=shape).astype(dtype)


def test_five_large_frames_load(tmp_path):
    """Fewer frames than rows must load (one reference tool rejects this)."""
    data = _frames((5, 500, 500))
    tifffile.imwrite(tmp_path / "five.tif", data)
    s = read_stack(tmp_path / "five.tif")
    assert s.shape == (5, 500, 500) and s.axes == "TYX"
    np.testing.assert_array_equal(s.data, data)


def test_plain_multipage_without_metadata(tmp_path):
    data = _frames((4, 30, 20))
    with tifffile.TiffWriter(tmp_path / "plain.tif") as w:
        for frame in data:
            w.write(frame, metadata=None)
    s = read_stack(tmp_path / "plain.tif")
    assert s.axes == "TYX"
    np.testing.assert_array_equal(s.data, data)


def test_imagej_hyperstack_axes_calibration_and_interval(tmp_path):
    data = _frames((6, 2, 30, 40))
    tifffile.imwrite(
        tmp_path / "ij.tif",
        data,
        imagej=True,
        resolution=(1 / 0.25, 1 / 0.5),
        metadata={"axes": "TCYX", "unit": "micron", "finterval": 2.0, "Info": "from a microscope"},
    )
    s = read_stack(tmp_path / "ij.tif")
    assert s.axes == "TCYX" and s.channel_axis == 1
    np.testing.assert_array_equal(s.data, data)
    assert s.units == "µm"
    assert s.scale == pytest.approx((2.0, 1.0, 0.5, 0.25))
    assert s.metadata["imagej"]["Info"] == "from a microscope"


def test_imagej_slices_are_taken_as_frames(tmp_path):
    """A stack saved by ImageJ as 'slices' (ZYX) is still a series of frames."""
    data = _frames((5, 20, 22))
    tifffile.imwrite(tmp_path / "z.tif", data, imagej=True, metadata={"axes": "ZYX"})
    s = read_stack(tmp_path / "z.tif")
    assert s.axes == "TYX" and s.shape == (5, 20, 22)


def test_ome_tiff_first_series(tmp_path):
    first = _frames((3, 2, 16, 18), seed=1)
    second = _frames((7, 8, 8), seed=2)
    with tifffile.TiffWriter(tmp_path / "s.ome.tif", ome=True) as w:
        w.write(
            first,
            metadata={
                "axes": "TCYX",
                "PhysicalSizeX": 0.1,
                "PhysicalSizeY": 0.1,
                "PhysicalSizeXUnit": "µm",
                "PhysicalSizeYUnit": "µm",
                "Name": "cells",
            },
        )
        w.write(second, metadata={"axes": "TYX"})
    s = read_stack(tmp_path / "s.ome.tif")
    assert s.axes == "TCYX" and s.shape == (3, 2, 16, 18)
    np.testing.assert_array_equal(s.data, first)
    assert s.units == "µm" and s.pixel_size == pytest.approx((0.1, 0.1))
    assert s.metadata["ome"]["Name"] == "cells" and s.metadata["ome"]["series_count"] == 2


def test_rgb_frames_become_channels(tmp_path):
    data = _frames((4, 12, 14, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "rgb.tif", data, photometric="rgb")
    s = read_stack(tmp_path / "rgb.tif")
    assert s.axes == "TCYX" and s.shape == (4, 3, 12, 14)
    np.testing.assert_array_equal(s.data, np.moveaxis(data, -1, 1))


def test_axes_override(tmp_path):
    """A (rows, cols, frames) TIFF is read correctly when the caller names its axes."""
    data = _frames((4, 10, 12))
    tifffile.imwrite(tmp_path / "yxt.tif", np.moveaxis(data, 0, -1), photometric="minisblack", metadata=None)
    s = read_stack(tmp_path / "yxt.tif", axes="YXT")
    np.testing.assert_array_equal(s.data, data)


def test_resolution_in_centimetres_is_a_calibration(tmp_path):
    data = _frames((3, 10, 10))
    tifffile.imwrite(
        tmp_path / "cm.tif",
        data,
        resolution=(1e4 / 0.65, 1e4 / 0.65),
        resolutionunit="CENTIMETER",
        photometric="minisblack",
        metadata=None,
    )
    s = read_stack(tmp_path / "cm.tif")
    assert s.units == "µm" and s.pixel_size == pytest.approx((0.65, 0.65))


def test_gif_grey_and_colour(tmp_path):
    grey = _frames((4, 20, 24), dtype=np.uint8)
    frames = [Image.fromarray(f, mode="L") for f in grey]
    frames[0].save(tmp_path / "g.gif", save_all=True, append_images=frames[1:], disposal=1)
    s = read_stack(tmp_path / "g.gif")
    assert s.axes == "TYX" and s.dtype == np.uint8 and s.shape == (4, 20, 24)
    np.testing.assert_array_equal(s.data, grey)

    colour = np.zeros((3, 10, 10, 3), np.uint8)
    colour[:, :, :5, 0] = 200
    colour[1, 3:6, 3:6, 2] = 255
    imgs = [Image.fromarray(f, mode="RGB") for f in colour]
    imgs[0].save(tmp_path / "c.gif", save_all=True, append_images=imgs[1:], disposal=1)
    c = read_stack(tmp_path / "c.gif")
    assert c.axes == "TCYX" and c.shape == (3, 3, 10, 10)
    assert c.data[0, 0, 0, 0] == 200 and c.data[1, 2, 4, 4] == 255


def test_natural_key_orders_numbers_as_numbers():
    names = ["10.tif", "2.tif", "1.tif", "frame_100.tif", "frame_20.tif", "frame_3.tif"]
    assert sorted(names, key=natural_key) == [
        "1.tif",
        "2.tif",
        "10.tif",
        "frame_3.tif",
        "frame_20.tif",
        "frame_100.tif",
    ]


def test_folder_natural_order(tmp_path):
    data = _frames((12, 16, 16))
    for t, frame in enumerate(data):
        tifffile.imwrite(tmp_path / f"{t + 1}.tif", frame)  # 1.tif ... 12.tif: 10.tif sorts after 9.tif
    (tmp_path / ".hidden.tif").write_bytes(b"junk")
    (tmp_path / "notes.txt").write_text("not a frame")
    s = read_stack(tmp_path)
    assert s.shape == (12, 16, 16) and s.path == tmp_path
    np.testing.assert_array_equal(s.data, data)
    assert s.metadata["files"][:3] == ["1.tif", "2.tif", "3.tif"] and s.metadata["files"][-1] == "12.tif"


def test_folder_lazy_and_list_of_files(tmp_path):
    data = _frames((5, 16, 16))
    paths = []
    for t, frame in enumerate(data):
        paths.append(tmp_path / f"f{t}.tif")
        tifffile.imwrite(paths[-1], frame)
    lazy = read_stack(tmp_path, lazy=True)
    assert lazy.lazy and type(lazy.data).__module__.startswith("dask")
    np.testing.assert_array_equal(np.asarray(lazy.data), data)
    listed = read_stack([paths[4], paths[0], paths[2]])  # the given order is kept
    np.testing.assert_array_equal(listed.data, data[[4, 0, 2]])


def test_folder_of_calibrated_frames_keeps_pixel_size(tmp_path):
    for t in range(3):
        tifffile.imwrite(
            tmp_path / f"{t}.tif", _frames((8, 8), seed=t), imagej=True, resolution=(4.0, 4.0), metadata={"unit": "um"}
        )
    s = read_stack(tmp_path)
    assert s.units == "µm" and s.pixel_size == pytest.approx((0.25, 0.25))


def test_folder_errors(tmp_path):
    with pytest.raises(ValueError, match=r"no frame files \(.tif, .tiff, .png"):
        read_stack(tmp_path)
    tifffile.imwrite(tmp_path / "1.tif", _frames((8, 8)))
    tifffile.imwrite(tmp_path / "2.tif", _frames((8, 9)))
    with pytest.raises(ValueError, match="same size and type"):
        read_stack(tmp_path)


def test_folder_of_stacks_is_refused(tmp_path):
    tifffile.imwrite(tmp_path / "a.tif", _frames((5, 8, 8)))
    tifffile.imwrite(tmp_path / "b.tif", _frames((5, 8, 8)))
    with pytest.raises(ValueError, match="one 2-D frame"):
        read_stack(tmp_path)


def test_three_planes_saved_as_rgb_can_be_named_frames(tmp_path):
    """tifffile saves a (3, Y, X) array as planar RGB by default; the error says how to read it as frames."""
    data = _frames((3, 8, 8))
    tifffile.imwrite(tmp_path / "three.tif", data)
    with pytest.raises(ValueError, match=r"single image with 3 channels.*axes='TYX'"):
        read_stack(tmp_path / "three.tif")
    np.testing.assert_array_equal(read_stack(tmp_path / "three.tif", axes="TYX").data, data)
