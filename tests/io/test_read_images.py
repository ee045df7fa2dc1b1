"""PNG, JPEG and BMP frames: folders in natural order, lists, single files, colour and grey.

The files are written with imageio (its own PNG/JPEG/BMP writers), read back
with read_stack (Pillow).
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_stackalign.io import read_stack

iio = pytest.importorskip("imageio.v3")


def _frames(n=12, shape=(10, 14), dtype=np.uint8, seed=0):
    rng = np.random.default_rng(seed)
    hi = np.iinfo(dtype).max
    return rng.integers(0, hi, size=(n,) + shape, dtype=dtype)


def test_png_folder_in_natural_order(tmp_path):
    frames = _frames(12)
    for t, frame in enumerate(frames):
        iio.imwrite(tmp_path / f"frame{t}.png", frame)
    (tmp_path / "notes.txt").write_text("not a frame")
    s = read_stack(tmp_path)
    assert s.axes == "TYX" and s.shape == (12, 10, 14) and s.dtype == np.uint8
    # frame2 before frame10: natural, not alphabetical, order
    assert s.metadata["files"][:3] == ["frame0.png", "frame1.png", "frame2.png"]
    assert s.metadata["files"][-2:] == ["frame10.png", "frame11.png"]
    np.testing.assert_array_equal(s.data, frames)
    assert s.scale is None and s.units is None


def test_png_folder_lazy_equals_eager_16_bit(tmp_path):
    frames = _frames(5, dtype=np.uint16, seed=3)
    for t, frame in enumerate(frames):
        iio.imwrite(tmp_path / f"img_{t + 1}.png", frame)
    lazy = read_stack(tmp_path, lazy=True)
    assert lazy.lazy and lazy.dtype == np.uint16
    np.testing.assert_array_equal(np.asarray(lazy.data[2:4]), frames[2:4])
    np.testing.assert_array_equal(read_stack(tmp_path, lazy=False).data, frames)


def test_grey_saved_as_rgb_is_one_channel_and_colour_is_channels(tmp_path):
    grey = _frames(3, seed=1)
    folder = tmp_path / "grey"
    folder.mkdir()
    for t, frame in enumerate(grey):
        iio.imwrite(folder / f"{t}.png", np.stack([frame] * 3, axis=-1))
    s = read_stack(folder)
    assert s.axes == "TYX" and s.shape == (3, 10, 14)
    np.testing.assert_array_equal(s.data, grey)

    colour = _frames(3, shape=(10, 14, 3), seed=2)
    folder = tmp_path / "colour"
    folder.mkdir()
    for t, frame in enumerate(colour):
        iio.imwrite(folder / f"{t}.bmp", frame)
    s = read_stack(folder)
    assert s.axes == "TCYX" and s.channel_axis == 1 and s.shape == (3, 3, 10, 14)
    np.testing.assert_array_equal(s.data, np.moveaxis(colour, -1, 1))


def test_colour_frame_after_grey_first_frame_is_refused(tmp_path):
    grey = _frames(2, seed=4)
    iio.imwrite(tmp_path / "0.png", np.stack([grey[0]] * 3, axis=-1))
    iio.imwrite(tmp_path / "1.png", _frames(1, shape=(10, 14, 3), seed=5)[0])
    with pytest.raises(ValueError, match="colour image but 0.png .* is grey"):
        read_stack(tmp_path, lazy=False)


def test_jpeg_folder_reads_lossy_frames(tmp_path):
    base = np.tile(np.linspace(0, 250, 14, dtype=np.uint8), (10, 1))
    for t in range(4):
        iio.imwrite(tmp_path / f"f{t}.jpg", base, quality=95)
    s = read_stack(tmp_path)
    assert s.axes == "TYX" and s.shape == (4, 10, 14) and s.dtype == np.uint8
    assert np.abs(s.data.astype(int) - base).max() < 12  # JPEG is lossy


def test_mixed_types_and_bad_frames_are_refused(tmp_path):
    iio.imwrite(tmp_path / "0.png", _frames(1)[0])
    iio.imwrite(tmp_path / "1.jpg", _frames(1)[0])
    with pytest.raises(ValueError, match="several image types .*1 .jpg, 1 .png"):
        read_stack(tmp_path)
    (tmp_path / "1.jpg").unlink()
    iio.imwrite(tmp_path / "1.png", _frames(1, shape=(10, 15))[0])
    with pytest.raises(ValueError, match="same size and type"):
        read_stack(tmp_path)
    (tmp_path / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(ValueError, match="1.png: it is not a valid PNG"):
        read_stack(tmp_path)


def test_single_png_is_refused_and_a_list_is_a_stack(tmp_path):
    frames = _frames(3, seed=6)
    paths = []
    for t, frame in enumerate(frames):
        paths.append(tmp_path / f"{t}.png")
        iio.imwrite(paths[-1], frame)
    with pytest.raises(ValueError, match="single 2-D image.*open the folder of frames"):
        read_stack(paths[0])
    s = read_stack([paths[2], paths[0], paths[1]])  # a list keeps the order given
    np.testing.assert_array_equal(s.data, frames[[2, 0, 1]])
    iio.imwrite(tmp_path / "x.bmp", frames[0])
    with pytest.raises(ValueError, match="mixes frame types"):
        read_stack([paths[0], tmp_path / "x.bmp"])
