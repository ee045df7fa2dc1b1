"""Files another program is still writing or holds locked, truncated files,
and paths that are not regular files (a FIFO would block forever): each read
ends at once in a ValueError that says what is going on."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
import tifffile

from napari_stackalign.cli import main
from napari_stackalign.io import read_mask, read_stack
from napari_stackalign.io._tiff import tiff_header

STILL = "still being written or is locked by another program"
FIFO = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")


@pytest.fixture(scope="module")
def frames():
    return (np.random.default_rng(0).random((12, 48, 40)) * 1000).astype(np.uint16)


def _truncate(src, dst, keep):
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * keep)])
    return dst


@pytest.mark.parametrize("imagej", [False, True])
@pytest.mark.parametrize("keep", [0.05, 0.3, 0.6, 0.95])
def test_truncated_tiff_says_incomplete(tmp_path, frames, imagej, keep):
    full = tmp_path / "full.tif"
    tifffile.imwrite(full, frames, imagej=imagej, metadata={"axes": "TYX"})
    cut = _truncate(full, tmp_path / "cut.tif", keep)
    with pytest.raises(ValueError) as info:
        read_stack(cut)
    message = str(info.value)
    assert (
        "incomplete" in message
        and STILL in message
        and "try again when it is complete" in message
    ), message
    assert "2-D image" not in message and "axes" not in message


def test_old_truncated_file_does_not_claim_a_recent_write(tmp_path, frames):
    full = tmp_path / "full.tif"
    tifffile.imwrite(full, frames)
    cut = _truncate(full, tmp_path / "cut.tif", 0.5)
    old = time.time() - 3600
    os.utime(cut, (old, old))
    with pytest.raises(ValueError, match="incomplete") as info:
        read_stack(cut)
    assert "modified" not in str(info.value)
    assert "copy or export it again" in str(info.value)


def test_imagej_tiff_caught_while_being_written(tmp_path, frames):
    """An ImageJ writer updates its header last: a copy taken mid-write has a
    header describing one image followed by the data of several more."""
    growing = tmp_path / "growing.tif"
    snapshot = tmp_path / "snapshot.tif"
    with tifffile.TiffWriter(growing, imagej=True) as tw:
        for i in range(len(frames)):
            tw.write(frames[i : i + 1], contiguous=True)
            if i == 5:
                tw._fh.flush()
                shutil.copy(growing, snapshot)
    assert read_stack(growing).shape == frames.shape  # complete: fine
    with pytest.raises(ValueError, match=STILL) as info:
        read_stack(snapshot)
    assert "2-D image" not in str(info.value)


def test_truncated_hdf5_says_incomplete(tmp_path, frames):
    full = tmp_path / "full.h5"
    with h5py.File(full, "w") as f:
        f["image_data"] = frames
    cut = _truncate(full, tmp_path / "cut.h5", 0.5)
    with pytest.raises(ValueError, match="incomplete") as info:
        read_stack(cut)
    assert STILL in str(info.value)


_HOLD = """
import sys, time, h5py
f = h5py.File(sys.argv[1], "a")
f["image_data"][0] = 7
f.flush()
print("open", flush=True)
time.sleep(60)
"""


@pytest.mark.skipif(
    os.environ.get("HDF5_USE_FILE_LOCKING", "").upper() == "FALSE",
    reason="HDF5 locking is off",
)
def test_hdf5_open_for_writing_by_another_process(tmp_path, frames):
    path = tmp_path / "busy.h5"
    with h5py.File(path, "w") as f:
        f["image_data"] = frames
    env = {k: v for k, v in os.environ.items() if k != "HDF5_USE_FILE_LOCKING"}
    writer = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(path)],
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert writer.stdout.readline().strip() == "open"
        with pytest.raises(ValueError, match=STILL) as info:
            read_stack(path)
        assert "unable to lock file" in str(info.value)
        assert "corrupt" not in str(info.value)
    finally:
        writer.kill()
        writer.wait()
    assert read_stack(path).shape == frames.shape  # released: reads


@FIFO
@pytest.mark.parametrize("name", ["stack.tif", "stack.h5", "stack.gif"])
def test_fifo_is_refused_before_opening(tmp_path, name):
    fifo = tmp_path / name
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="named pipe"):
        read_stack(fifo)
    with pytest.raises(ValueError, match="named pipe"):
        read_stack([fifo, fifo])


@FIFO
def test_fifo_everywhere_a_tiff_is_opened(tmp_path, frames):
    fifo = tmp_path / "frame.tif"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="named pipe"):
        tiff_header(fifo)
    with pytest.raises(ValueError, match="named pipe"):
        read_mask(fifo)
    folder = tmp_path / "frames"
    folder.mkdir()
    tifffile.imwrite(folder / "0.tif", frames[0])
    tifffile.imwrite(folder / "2.tif", frames[1])
    os.mkfifo(folder / "1.tif")
    assert read_stack(folder).shape == (
        2,
        *frames.shape[1:],
    )  # a FIFO is not a frame file: skipped
    with pytest.raises(ValueError, match="named pipe"):
        read_stack([folder / "0.tif", folder / "1.tif"])


@FIFO
def test_cli_register_on_a_fifo_exits_2_at_once(tmp_path, capsys):
    fifo = tmp_path / "in.tif"
    os.mkfifo(fifo)
    start = time.monotonic()
    assert main(["register", "-i", str(fifo), "-o", str(tmp_path / "out.h5")]) == 2
    assert time.monotonic() - start < 30
    assert "named pipe" in capsys.readouterr().err
    assert not (tmp_path / "out.h5").exists()


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("text.tif", b"hello, I am not a TIFF", "not a valid TIFF"),
        ("empty.tif", b"", "TIFF"),
        ("empty.h5", b"", "HDF5"),
        ("text.h5", b"hello" * 100, "not a valid HDF5"),
    ],
)
def test_not_the_format_its_name_says(tmp_path, name, content, words):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ValueError, match=words):
        read_stack(path)


# ------------------------------------------------------------------ read_mask (--user-mask)
def test_read_mask_good(tmp_path):
    mask = np.random.default_rng(1).random((20, 30)).astype(np.float32)
    tifffile.imwrite(tmp_path / "m.tif", mask)
    got = read_mask(tmp_path / "m.tif", shape=(20, 30))
    assert got.dtype == np.float64 and np.allclose(got, mask)
    tifffile.imwrite(tmp_path / "m3.tif", mask[None])  # a singleton axis is dropped
    assert read_mask(tmp_path / "m3.tif").shape == (20, 30)


@pytest.mark.parametrize(
    ("name", "make", "words"),
    [
        ("text.tif", lambda p: p.write_text("not a tiff"), "not a valid TIFF"),
        ("mask.png", lambda p: p.write_bytes(b"\x89PNG"), "must be a TIFF"),
        ("mask.csv", lambda p: p.write_text("1,2\n"), "must be a TIFF"),
        (
            "stack.tif",
            lambda p: tifffile.imwrite(p, np.ones((3, 8, 8), np.float32)),
            "not a stack",
        ),
        (
            "complex.tif",
            lambda p: tifffile.imwrite(p, np.ones((8, 8), np.complex64)),
            "real numbers",
        ),
        (
            "nan.tif",
            lambda p: tifffile.imwrite(p, np.full((8, 8), np.nan, np.float32)),
            "NaN",
        ),
        (
            "small.tif",
            lambda p: tifffile.imwrite(p, np.ones((8, 8), np.float32)),
            "the frames are 20x30 px",
        ),
        ("folder.tif", lambda p: p.mkdir(), "folder"),
    ],
)
def test_read_mask_bad(tmp_path, name, make, words):
    path = tmp_path / name
    make(path)
    with pytest.raises(ValueError, match=words) as info:
        read_mask(path, shape=(20, 30))
    assert name in str(info.value)


def test_read_mask_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_mask(tmp_path / "nope.tif")


def test_cli_average_with_a_user_mask_that_is_not_a_tiff(tmp_path, frames, capsys):
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, frames)
    bad = tmp_path / "mask.tif"
    bad.write_text("not a tiff")
    assert (
        main(
            [
                "average",
                "-i",
                str(src),
                "-o",
                str(tmp_path / "avg.tif"),
                "--user-mask",
                str(bad),
                "-q",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "mask.tif" in err and "not a valid TIFF" in err
    assert "Traceback" not in err


def test_cli_average_with_a_user_mask_of_the_wrong_shape(tmp_path, frames, capsys):
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, frames)
    mask = tmp_path / "mask.tif"
    tifffile.imwrite(mask, np.ones((8, 8), np.float32))
    assert main(["average", "-i", str(src), "-o", str(tmp_path / "avg.tif"), "--user-mask", str(mask), "-q"]) == 2
    err = capsys.readouterr().err
    assert "(8, 8)" in err and "(48, 40)" in err and "Traceback" not in err
