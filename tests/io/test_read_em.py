"""Electron-microscopy files through RosettaSciIO.

Real files: HyperSpy .hspy written by rsciio's own writer, Berkeley .emd written
by rsciio's EMD writer, an MRC2014 file written here byte by byte after the
CCP-EM header specification, and the real HyperSpy STEM movie of
../shared/data/real (skipped when absent).

.dm3/.dm4/.ser/.emi and Velox .emd cannot be written by any library here, so
those tests replace the rsciio plugin's ``file_reader`` (the library boundary)
with one returning the signal dicts rsciio documents, and check the dispatch,
the calibration mapping, the choice among signals and the missing-extra message.
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_stackalign.io import _formats, read_stack
from napari_stackalign.io._rsciio import read_rsciio

rsciio = pytest.importorskip("rsciio")


def _signal(data, *, title="movie", nav_units="s", nav_scale=0.5, px=0.2, unit="nm", nav_navigate=True):
    axes = [
        {
            "name": "time",
            "size": data.shape[0],
            "scale": nav_scale,
            "offset": 0.0,
            "units": nav_units,
            "navigate": nav_navigate,
        },
        {"name": "y", "size": data.shape[1], "scale": px, "offset": 0.0, "units": unit, "navigate": False},
        {"name": "x", "size": data.shape[2], "scale": px, "offset": 0.0, "units": unit, "navigate": False},
    ]
    return {
        "data": data,
        "axes": axes,
        "metadata": {"General": {"title": title}, "Signal": {"signal_type": ""}},
        "original_metadata": {"Microscope": {"Voltage": 300}, "positions": np.zeros(1000)},
        "tmp_parameters": {},
        "attributes": {"_lazy": False},
        "package_info": {"name": "", "version": ""},
        "learning_results": {},
        "models": {},
    }


def _movie(shape=(4, 12, 14), dtype=np.uint16):
    return (np.arange(np.prod(shape)) % 1000).astype(dtype).reshape(shape)


def write_mrc(path, data, pixel_angstrom):
    """An MRC2014 file: the 1024-byte header (words 1-3 size, 4 mode, 8-10 grid, 11-13 cell in Å,
    17-19 axis map, 53 'MAP ', 54 machine stamp) and the pixels, little-endian."""
    nz, ny, nx = data.shape
    mode = {np.dtype(np.int16): 1, np.dtype(np.float32): 2, np.dtype(np.uint16): 6}[data.dtype]
    header = np.zeros(256, dtype="<i4")
    header[0:3] = (nx, ny, nz)
    header[3] = mode
    header[7:10] = (nx, ny, nz)
    words = header.view("<f4")
    words[10:13] = (nx * pixel_angstrom, ny * pixel_angstrom, nz * pixel_angstrom)
    words[13:16] = (90.0, 90.0, 90.0)
    header[16:19] = (1, 2, 3)
    words[19:22] = (data.min(), data.max(), data.mean())
    raw = header.tobytes()
    raw = raw[:208] + b"MAP " + bytes([0x44, 0x44, 0, 0]) + raw[216:]
    path.write_bytes(raw + np.ascontiguousarray(data, dtype=data.dtype.newbyteorder("<")).tobytes())


def test_hspy_written_by_rsciio_keeps_calibration_and_frame_interval(tmp_path):
    from rsciio.hspy import file_writer

    data = _movie()
    file_writer(str(tmp_path / "m.hspy"), _signal(data))
    s = read_rsciio(tmp_path / "m.hspy", lazy=True, memory_fraction=0.25)
    assert s.lazy and s.axes == "TYX" and s.shape == data.shape
    np.testing.assert_array_equal(np.asarray(s.data), data)
    assert s.units == "nm" and s.pixel_size == pytest.approx((0.2, 0.2))
    assert s.scale[0] == pytest.approx(0.5) and s.metadata["rsciio"]["frame_interval_s"] == pytest.approx(0.5)
    assert s.metadata["rsciio"]["metadata"]["General"]["title"] == "movie"
    # the h5py reader of read_stack agrees on pixels and calibration
    h5 = read_stack(tmp_path / "m.hspy")
    np.testing.assert_array_equal(h5.data, data)
    assert h5.units == "nm" and h5.pixel_size == pytest.approx((0.2, 0.2))


def test_berkeley_emd_written_by_rsciio(tmp_path):
    from rsciio.emd import file_writer

    data = _movie((5, 10, 16), np.float32)
    file_writer(str(tmp_path / "m.emd"), _signal(data, px=0.05))
    s = read_stack(tmp_path / "m.emd", lazy=False)
    assert not s.lazy and isinstance(s.data, np.ndarray)
    assert s.axes == "TYX" and s.shape == (5, 10, 16) and s.dtype == np.float32
    np.testing.assert_array_equal(s.data, data)
    assert s.units == "nm" and s.pixel_size == pytest.approx((0.05, 0.05))
    assert s.metadata["rsciio"]["reader"] == "emd"


def test_mrc_written_from_the_specification(tmp_path):
    data = _movie((6, 12, 14), np.int16)
    write_mrc(tmp_path / "tilt.mrc", data, pixel_angstrom=2.5)
    s = read_stack(tmp_path / "tilt.mrc")
    assert s.axes == "TYX" and s.shape == (6, 12, 14) and s.dtype == np.int16
    np.testing.assert_array_equal(np.asarray(s.data), data)
    assert s.units == "nm" and s.pixel_size == pytest.approx((0.25, 0.25))  # 2.5 Å
    assert s.scale[0] == 1.0  # the frame axis has no time unit: no frame interval


@pytest.mark.real
def test_real_stem_movie_through_rsciio_matches_h5py_reader(real_data):
    path = real_data / "hyperspy-stem-abf/stem_abf_data_imagestack.hspy"
    s = read_rsciio(path, memory_fraction=0.25)
    ref = read_stack(path)
    np.testing.assert_array_equal(np.asarray(s.data), ref.data)
    assert s.units == ref.units == "nm"
    assert s.pixel_size == pytest.approx(ref.pixel_size)
    assert s.metadata["rsciio"]["metadata"]["General"]["original_filename"] == "004_ABF_movie_21.dm3"


# ---------------------------------------------------------------- formats no library here can write
@pytest.mark.parametrize(
    ("suffix", "plugin"),
    [(".dm3", "digitalmicrograph"), (".dm4", "digitalmicrograph"), (".ser", "tia"), (".emi", "tia")],
)
def test_dm_and_tia_dispatch_and_calibration(tmp_path, monkeypatch, suffix, plugin):
    import importlib

    import dask.array as da

    module = importlib.import_module(f"rsciio.{plugin}")
    data = _movie((3, 8, 9))
    calls = []

    def file_reader(filename, lazy=False, **kwargs):
        calls.append((filename, lazy))
        return [_signal(da.from_array(data, chunks=(1, 8, 9)), nav_units="ms", nav_scale=40.0, px=1.5, unit="µm")]

    monkeypatch.setattr(module, "file_reader", file_reader)
    path = tmp_path / f"series{suffix}"
    path.write_bytes(b"\0")
    s = read_stack(path, lazy=True)
    assert calls == [(str(path), True)]
    assert s.lazy and s.axes == "TYX" and s.shape == (3, 8, 9)
    np.testing.assert_array_equal(np.asarray(s.data), data)
    assert s.units == "µm" and s.pixel_size == pytest.approx((1.5, 1.5)) and s.scale[0] == pytest.approx(0.04)
    assert s.metadata["rsciio"]["original_metadata"]["Microscope"]["Voltage"] == 300
    assert s.metadata["rsciio"]["original_metadata"]["positions"] == "<array (1000,) float64>"


def test_velox_with_several_detectors_needs_dataset(tmp_path, monkeypatch):
    import rsciio.emd

    haadf, bf = _movie((3, 8, 9)), _movie((3, 8, 9)) + 7
    spectrum = {
        "data": np.zeros((8, 9, 100)),
        "metadata": {"General": {"title": "EDS"}},
        "axes": [
            {"name": "y", "navigate": True},
            {"name": "x", "navigate": True},
            {"name": "E", "navigate": False, "units": "keV", "scale": 0.01},
        ],
    }
    signals = [_signal(haadf, title="HAADF"), _signal(bf, title="BF"), spectrum]
    monkeypatch.setattr(rsciio.emd, "file_reader", lambda filename, lazy=False, **kw: signals)
    path = tmp_path / "velox.emd"
    path.write_bytes(b"\0")
    with pytest.raises(ValueError, match=r"several image signals: 0: 'HAADF' \(3, 8, 9\), 1: 'BF'.*dataset="):
        read_stack(path)
    np.testing.assert_array_equal(read_stack(path, dataset="BF").data, bf)
    np.testing.assert_array_equal(read_stack(path, dataset="0").data, haadf)
    with pytest.raises(ValueError, match="no signal named 'DF'"):
        read_stack(path, dataset="DF")


def test_single_em_image_and_scan_are_refused(tmp_path, monkeypatch):
    import rsciio.digitalmicrograph as dm

    image = _signal(_movie((1, 8, 9))[0][None], nav_navigate=True)
    image["data"] = image["data"][0]
    image["axes"] = image["axes"][1:]
    monkeypatch.setattr(dm, "file_reader", lambda filename, lazy=False, **kw: [image])
    path = tmp_path / "one.dm4"
    path.write_bytes(b"\0")
    with pytest.raises(ValueError, match="single 2-D image"):
        read_stack(path)

    def broken(filename, lazy=False, **kw):
        raise ValueError("not a DM file")

    monkeypatch.setattr(dm, "file_reader", broken)
    with pytest.raises(ValueError, match="cannot read .*one.dm4: rsciio's digitalmicrograph reader failed"):
        read_stack(path)


def test_missing_rsciio_names_the_extra(tmp_path, monkeypatch):
    real = _formats.find_spec_safe
    monkeypatch.setattr(_formats, "find_spec_safe", lambda module: False if module == "rsciio" else real(module))
    path = tmp_path / "a.ser"
    path.write_bytes(b"\0")
    with pytest.raises(ImportError, match=r'needs rosettasciio.*pip install "napari-stackalign\[em\]"'):
        read_stack(path)
