"""The napari reader claims the new formats (PNG/JPEG/BMP frames, EM and bioio files, OME-Zarr
folders), passes a P axis through, and its manifest lists every suffix read_stack reads."""

from __future__ import annotations

from pathlib import Path

import npe2
import numpy as np
import pytest
import tifffile

from napari_stackalign.io import READ_SUFFIXES, StackData
from napari_stackalign.napari._reader import get_reader, stack_to_layer_data

TOP_MANIFEST = Path(__file__).resolve().parents[2] / "napari.yaml"
iio = pytest.importorskip("imageio.v3")


def test_manifest_lists_every_read_suffix():
    manifest = npe2.PluginManifest.from_file(TOP_MANIFEST)
    patterns = set(manifest.contributions.readers[0].filename_patterns)
    assert {f"*{suffix}" for suffix in READ_SUFFIXES} <= patterns
    assert manifest.contributions.readers[0].accepts_directories


def test_png_folder_is_claimed_and_read(tmp_path):
    frames = np.random.default_rng(0).integers(0, 255, (11, 8, 9), dtype=np.uint8)
    for t, frame in enumerate(frames):
        iio.imwrite(tmp_path / f"frame{t}.png", frame)
    reader = get_reader(str(tmp_path))
    assert reader is not None
    [(data, kwargs, kind)] = reader(str(tmp_path))
    assert kind == "image" and kwargs["axis_labels"] == ("t", "y", "x")
    np.testing.assert_array_equal(np.asarray(data), frames)  # frame10 after frame9, not after frame1
    # a single picture is left to napari's own image reader
    assert get_reader(str(tmp_path / "frame0.png")) is None
    # a list of frames ("Open Files as Stack")
    paths = [str(tmp_path / f"frame{t}.png") for t in (0, 1, 2)]
    assert get_reader(paths) is not None


def test_em_and_bioio_files_are_claimed(tmp_path):
    for name in ("a.dm3", "a.dm4", "a.ser", "a.emi", "a.emd", "a.mrc", "a.nd2", "a.czi", "a.lif", "a.asd"):
        (tmp_path / name).write_bytes(b"\0")
        assert get_reader(str(tmp_path / name)) is not None, name
    zarr_folder = tmp_path / "plate.ome.zarr"
    zarr_folder.mkdir()
    (zarr_folder / "zarr.json").write_text("{}")
    assert get_reader(str(zarr_folder)) is not None


def test_position_axis_passes_through_to_the_layer():
    data = np.zeros((2, 3, 2, 8, 9), np.uint16)
    stack = StackData(data=data, axes="PTCYX", channel_axis=2, scale=(1.0, 1.0, 1.0, 0.5, 0.5), units="µm")
    _, kwargs, _ = stack_to_layer_data(stack, name="wells")
    assert kwargs["channel_axis"] == 2 and kwargs["name"] == ["wells ch0", "wells ch1"]
    assert kwargs["axis_labels"] == ("p", "t", "y", "x")
    assert kwargs["scale"] == (1.0, 1.0, 0.5, 0.5)
    assert kwargs["units"] == ("pixel", "pixel", "µm", "µm")


def test_lazy_position_stack_gets_contrast_limits_per_channel():
    import dask.array as da

    data = np.zeros((2, 3, 2, 8, 9), np.uint16)
    data[0, :, 1] = 100
    data[1] = 60000  # the second position is not sampled
    stack = StackData(data=da.from_array(data, chunks=(1, 1, 2, 8, 9)), axes="PTCYX", channel_axis=2, lazy=True)
    _, kwargs, _ = stack_to_layer_data(stack, name="wells")
    assert kwargs["contrast_limits"] == [(0.0, 1.0), (100.0, 101.0)]


def test_ome_tiff_series_open_with_a_p_axis(tmp_path):
    pytest.importorskip("bioio_ome_tiff")
    a = np.arange(3 * 8 * 9, dtype=np.uint16).reshape(3, 8, 9)
    with tifffile.TiffWriter(tmp_path / "w.ome.tif", ome=True) as w:
        for k in range(2):
            w.write(a + k, metadata={"axes": "TYX", "PhysicalSizeX": 0.3, "PhysicalSizeY": 0.3})
    [(data, kwargs, _)] = get_reader(str(tmp_path / "w.ome.tif"))(str(tmp_path / "w.ome.tif"))
    assert kwargs["axis_labels"] == ("p", "t", "y", "x") and tuple(data.shape) == (2, 3, 8, 9)
    assert kwargs["scale"] == pytest.approx((1.0, 1.0, 0.3, 0.3))
    np.testing.assert_array_equal(np.asarray(data[1]), a + 1)


@pytest.fixture
def _installed_plugin():
    pm = npe2.PluginManager.instance()
    pm.discover(include_npe1=False)


def test_npe2_reads_a_png_folder_and_an_ome_zarr_folder(tmp_path, _installed_plugin):
    frames = np.random.default_rng(1).integers(0, 255, (4, 8, 9), dtype=np.uint8)
    folder = tmp_path / "pngs"
    folder.mkdir()
    for t, frame in enumerate(frames):
        iio.imwrite(folder / f"{t}.png", frame)
    [(data, kwargs, _)] = npe2.read([str(folder)], stack=False, plugin_name="napari-stackalign")
    np.testing.assert_array_equal(np.asarray(data), frames)
    zarr = pytest.importorskip("zarr")
    writer = pytest.importorskip("ome_zarr.writer")
    pytest.importorskip("bioio_ome_zarr")
    root = zarr.open_group(str(tmp_path / "m.ome.zarr"), mode="w")
    writer.write_image(frames, root, axes="tyx", scale_factors=[])
    [(data, kwargs, _)] = npe2.read([str(tmp_path / "m.ome.zarr")], stack=False, plugin_name="napari-stackalign")
    np.testing.assert_array_equal(np.asarray(data), frames)
    assert kwargs["name"] == "m.ome.zarr" and kwargs["axis_labels"] == ("t", "y", "x")
