"""Light-microscopy files through bioio: OME-TIFF series and OME-Zarr (real files written by
tifffile and ome-zarr), .nd2/.czi/.lif with the reader mocked at bioio's boundary.

No library here writes .nd2, .czi or .lif, so those tests replace ``bioio.BioImage``
with bioio's own in-memory (array) reader holding the scenes, pixel sizes and
channel names a plugin would report; they check the dispatch to the right
plugin, the P axis, ``position=``, the calibration and the missing-extra message.
"""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_stackalign.io import _formats, read_stack

bioio = pytest.importorskip("bioio")
_REAL_BIOIMAGE = bioio.BioImage


def _data(shape, seed=0, dtype=np.uint16):
    return np.random.default_rng(seed).integers(0, 4000, size=shape, dtype=dtype)


def _write_ome(path, series, **meta):
    with tifffile.TiffWriter(path, ome=True) as w:
        for data in series:
            w.write(
                data,
                metadata={
                    "axes": "TCYX" if data.ndim == 4 else "TYX",
                    "PhysicalSizeX": 0.4,
                    "PhysicalSizeY": 0.4,
                    "PhysicalSizeXUnit": "µm",
                    "PhysicalSizeYUnit": "µm",
                    **meta,
                },
            )


def test_ome_tiff_series_of_one_shape_become_a_p_axis(tmp_path):
    pytest.importorskip("bioio_ome_tiff")
    a, b = _data((4, 2, 16, 20), 1), _data((4, 2, 16, 20), 2)
    _write_ome(tmp_path / "wells.ome.tif", [a, b], Channel={"Name": ["GFP", "RFP"]})
    s = read_stack(tmp_path / "wells.ome.tif", lazy=True)
    assert s.axes == "PTCYX" and s.channel_axis == 2 and s.shape == (2, 4, 2, 16, 20) and s.lazy
    np.testing.assert_array_equal(np.asarray(s.data[1]), b)
    assert s.units == "µm" and s.pixel_size == pytest.approx((0.4, 0.4))
    assert s.metadata["bioio"]["channel_names"] == ["GFP", "RFP"]
    assert len(s.metadata["bioio"]["scenes"]) == 2
    one = read_stack(tmp_path / "wells.ome.tif", position=1, lazy=False)
    assert one.axes == "TCYX" and one.channel_axis == 1 and isinstance(one.data, np.ndarray)
    np.testing.assert_array_equal(one.data, b)
    with pytest.raises(ValueError, match="no position 5: its positions"):
        read_stack(tmp_path / "wells.ome.tif", position=5)


def test_ome_tiff_series_of_different_shapes_read_first_with_a_warning(tmp_path):
    a, b = _data((3, 16, 18), 1), _data((5, 8, 8), 2)
    _write_ome(tmp_path / "s.ome.tif", [a, b])
    with pytest.warns(UserWarning, match="holds 2 OME series; only the first is read: pass position="):
        s = read_stack(tmp_path / "s.ome.tif")
    assert s.axes == "TYX" and s.shape == (3, 16, 18)
    np.testing.assert_array_equal(s.data, a)


def test_ome_zarr_written_by_ome_zarr(tmp_path):
    pytest.importorskip("bioio_ome_zarr")
    zarr = pytest.importorskip("zarr")
    writer = pytest.importorskip("ome_zarr.writer")
    data = _data((5, 24, 32), 3)
    root = zarr.open_group(str(tmp_path / "movie.ome.zarr"), mode="w")
    writer.write_image(
        data,
        root,
        axes=[
            {"name": "t", "type": "time"},
            {"name": "y", "type": "space"},
            {"name": "x", "type": "space"},
        ],
        scale_factors=[],
        scale={"t": 1.0, "y": 0.25, "x": 0.25},
        axes_units={"y": "micrometer", "x": "micrometer"},
    )
    s = read_stack(tmp_path / "movie.ome.zarr")
    assert s.axes == "TYX" and s.shape == (5, 24, 32) and s.dtype == np.uint16
    np.testing.assert_array_equal(np.asarray(s.data), data)
    assert s.pixel_size == pytest.approx((0.25, 0.25))


class _FakeBioImage:
    """Stands in for ``bioio.BioImage(path, reader=...)``: bioio's own array reader over given scenes."""

    def __init__(self, scenes, *, pixel=0.65, channels=None):
        self.scenes, self.pixel, self.channels, self.calls = scenes, pixel, channels, []

    def __call__(self, path, reader=None):
        from bioio_base.types import PhysicalPixelSizes

        self.calls.append((str(path), reader.__module__.split(".")[0]))
        return _REAL_BIOIMAGE(
            list(self.scenes),
            dim_order="TCZYX",
            channel_names=[self.channels] * len(self.scenes) if self.channels else None,
            physical_pixel_sizes=PhysicalPixelSizes(None, self.pixel, self.pixel),
        )


@pytest.mark.parametrize(("suffix", "plugin"), [(".nd2", "bioio_nd2"), (".czi", "bioio_czi"), (".lif", "bioio_lif")])
def test_nd2_czi_lif_dispatch_positions_and_calibration(tmp_path, monkeypatch, suffix, plugin):
    pytest.importorskip(plugin)
    scenes = [_data((6, 1, 1, 12, 10), seed) for seed in range(3)]
    fake = _FakeBioImage(scenes, pixel=0.65)
    monkeypatch.setattr(bioio, "BioImage", fake)
    path = tmp_path / f"run{suffix}"
    path.write_bytes(b"\0")
    s = read_stack(path, lazy=True)
    assert fake.calls[0] == (str(path), plugin)
    assert s.axes == "PTYX" and s.channel_axis is None and s.shape == (3, 6, 12, 10)
    np.testing.assert_array_equal(np.asarray(s.data[2]), scenes[2][:, 0, 0])
    assert s.units == "µm" and s.pixel_size == pytest.approx((0.65, 0.65)) and s.scale[:2] == (1.0, 1.0)
    one = read_stack(path, position=1)
    assert one.axes == "TYX"
    np.testing.assert_array_equal(np.asarray(one.data), scenes[1][:, 0, 0])


def test_positions_of_different_sizes_need_position(tmp_path, monkeypatch):
    pytest.importorskip("bioio_nd2")
    scenes = [_data((4, 2, 1, 12, 10), 0), _data((4, 2, 1, 8, 10), 1)]
    monkeypatch.setattr(bioio, "BioImage", _FakeBioImage(scenes, channels=["DAPI", "GFP"]))
    path = tmp_path / "grid.nd2"
    path.write_bytes(b"\0")
    with pytest.raises(ValueError, match="positions of different sizes.*position=INDEX"):
        read_stack(path)
    s = read_stack(path, position="1")
    assert s.axes == "TCYX" and s.shape == (4, 2, 8, 10)
    assert s.metadata["bioio"]["channel_names"] == ["DAPI", "GFP"]


def test_volume_over_time_is_refused(tmp_path, monkeypatch):
    pytest.importorskip("bioio_czi")
    monkeypatch.setattr(bioio, "BioImage", _FakeBioImage([_data((4, 1, 3, 12, 10), 0)]))
    path = tmp_path / "vol.czi"
    path.write_bytes(b"\0")
    with pytest.raises(ValueError, match="volume over time"):
        read_stack(path)
    with pytest.raises(ValueError, match="axes= does not apply"):
        read_stack(path, axes="TZYX")


def test_missing_bioio_or_plugin_names_the_extra(tmp_path, monkeypatch):
    real = _formats.find_spec_safe
    path = tmp_path / "a.lif"
    path.write_bytes(b"\0")
    monkeypatch.setattr(_formats, "find_spec_safe", lambda m: False if m == "bioio" else real(m))
    with pytest.raises(ImportError, match=r'needs bioio.*pip install "napari-stackalign\[bio\]"'):
        read_stack(path)
    monkeypatch.setattr(_formats, "find_spec_safe", lambda m: False if m == "bioio_lif" else real(m))
    with pytest.raises(ImportError, match=r'needs bioio-lif.*\[bio\]"? \(or pip install bioio-lif\)'):
        read_stack(path)


def test_position_is_refused_for_single_position_formats(tmp_path):
    tifffile.imwrite(tmp_path / "a.tif", _data((3, 8, 8)))
    with pytest.raises(ValueError, match="position= applies to multi-position files"):
        read_stack(tmp_path / "a.tif", position=0)
