"""High-speed AFM .asd movies through libasd.

No library writes .asd files and none ships a sample, so the tests put a stand-in
``libasd`` module (the objects ``libasd.read_asd`` documents: a header and frames
whose ``image()`` is heights in nm) at the library boundary; they check the
dispatch, the calibration (scanning range / pixels, frame time in ms), the
two-channel case and the missing-extra message.
"""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from napari_stackalign.io import _formats, read_stack


def _fake_libasd(frames, *, two_channels=False, x_range=200.0, y_range=100.0, frame_ms=50.0):
    header = types.SimpleNamespace(
        file_version=1,
        num_frames=len(frames),
        x_pixel=frames[0].shape[1],
        y_pixel=frames[0].shape[0],
        x_scanning_range=x_range,
        y_scanning_range=y_range,
        frame_acquision_time=frame_ms,
        comment="myosin V on mica",
    )
    wrapped = [types.SimpleNamespace(image=lambda f=f: f, header=None) for f in frames]
    if two_channels:
        data = types.SimpleNamespace(header=header, channels=[wrapped, wrapped[::-1]])
    else:
        data = types.SimpleNamespace(header=header, frames=wrapped)
    module = types.ModuleType("libasd")
    module.read_asd = lambda file_name: data
    return module


@pytest.fixture
def asd_file(tmp_path, monkeypatch):
    real = _formats.find_spec_safe
    monkeypatch.setattr(_formats, "find_spec_safe", lambda m: m == "libasd" or real(m))
    path = tmp_path / "movie.asd"
    path.write_bytes(b"\0")
    return path


def test_asd_heights_and_calibration(asd_file, monkeypatch):
    frames = [np.random.default_rng(t).normal(2.0, 0.5, (40, 80)) for t in range(5)]
    monkeypatch.setitem(sys.modules, "libasd", _fake_libasd(frames))
    s = read_stack(asd_file)
    assert s.axes == "TYX" and s.shape == (5, 40, 80) and s.dtype == np.float64
    np.testing.assert_array_equal(s.data, np.stack(frames))
    assert s.units == "nm" and s.pixel_size == pytest.approx((2.5, 2.5))  # 100 nm / 40 rows, 200 nm / 80 cols
    assert s.scale[0] == pytest.approx(0.05)  # 50 ms per frame
    assert s.metadata["asd"]["comment"] == "myosin V on mica" and s.metadata["asd"]["channels"] == 1


def test_asd_two_channels_reads_topography(asd_file, monkeypatch):
    frames = [np.full((8, 8), float(t)) for t in range(3)]
    monkeypatch.setitem(sys.modules, "libasd", _fake_libasd(frames, two_channels=True, x_range=0.0))
    s = read_stack(asd_file)
    np.testing.assert_array_equal(s.data[:, 0, 0], [0.0, 1.0, 2.0])
    assert s.scale is None and s.units is None  # no scanning range: uncalibrated
    assert s.metadata["asd"]["channels"] == 2


def test_asd_errors(asd_file, monkeypatch):
    module = types.ModuleType("libasd")

    def broken(file_name):
        raise RuntimeError("unknown file version")

    module.read_asd = broken
    monkeypatch.setitem(sys.modules, "libasd", module)
    with pytest.raises(ValueError, match="cannot read .*movie.asd: libasd failed"):
        read_stack(asd_file)
    with pytest.raises(ValueError, match="axes= does not apply"):
        read_stack(asd_file, axes="TYX")


def test_missing_libasd_names_the_extra(tmp_path, monkeypatch):
    real = _formats.find_spec_safe
    monkeypatch.setattr(_formats, "find_spec_safe", lambda m: False if m == "libasd" else real(m))
    path = tmp_path / "a.asd"
    path.write_bytes(b"\0")
    with pytest.raises(ImportError, match=r'needs libasd.*pip install "napari-stackalign\[afm\]"'):
        read_stack(path)
