"""The npe2 reader and writers, driven through npe2.read / npe2.write as napari does."""

from __future__ import annotations

import json
import warnings
from importlib import resources
from pathlib import Path

import h5py
import npe2
import numpy as np
import pytest
import tifffile

from napari_stackalign import FrameTransforms
from napari_stackalign.io import read_stack, write_stack
from napari_stackalign.napari._reader import get_reader

PLUGIN = "napari-stackalign"
#: the manifest at the top of the repository (src/napari_stackalign/napari.yaml links to it)
TOP_MANIFEST = Path(__file__).resolve().parents[2] / "napari.yaml"


@pytest.fixture(autouse=True)
def _installed_plugin():
    """Make npe2 discover the installed plugin, as napari does at start-up."""
    pm = npe2.PluginManager.instance()
    pm.discover(include_npe1=False)
    assert PLUGIN in {m.name for m in pm.iter_manifests()}


def test_packaged_manifest_is_the_top_level_one():
    """One manifest, two paths: the packaged napari.yaml (what npe2 loads) has the top-level file's content."""
    packaged = resources.files("napari_stackalign") / "napari.yaml"
    assert packaged.read_text(encoding="utf-8") == TOP_MANIFEST.read_text(encoding="utf-8")
    discovered = npe2.PluginManager.instance().get_manifest(PLUGIN)
    top = npe2.PluginManifest.from_file(TOP_MANIFEST)
    assert (discovered.name, discovered.contributions) == (top.name, top.contributions)


def _data(shape=(6, 20, 24), dtype=np.uint16):
    return np.random.default_rng(0).integers(0, 1000, size=shape).astype(dtype)


def _read(path, stack=False):
    paths = path if isinstance(path, list) else [path]
    return npe2.read([str(p) for p in paths], stack=stack, plugin_name=PLUGIN)


def test_read_tiff_through_npe2(tmp_path):
    data = _data()
    ft = FrameTransforms(dy=np.arange(6.0), dx=np.zeros(6), method="test")
    path = write_stack(tmp_path / "a.tif", data, scale=0.5, units="µm", metadata={"note": "x"}, transforms=ft)
    [(layer_data, kwargs, layer_type)] = _read(path)
    assert layer_type == "image"
    np.testing.assert_array_equal(layer_data, data)
    assert kwargs["name"] == "a"
    assert kwargs["scale"] == (1.0, 0.5, 0.5)
    assert kwargs["units"] == ("pixel", "µm", "µm")
    assert kwargs["axis_labels"] == ("t", "y", "x")
    assert kwargs["metadata"]["note"] == "x"
    assert kwargs["metadata"]["source_path"] == str(path)
    assert FrameTransforms.from_dict(kwargs["metadata"]["stackalign"]["transforms"]).allclose(ft)
    assert "contrast_limits" not in kwargs  # small data: napari computes them itself


def test_read_lazy_hdf5_gets_contrast_limits(tmp_path, monkeypatch):
    data = _data()
    data[4, 0, 0] = 5000  # sampled (frames 0, 1, 2, 4, 5 of 6)
    data[3, 0, 0] = 9000  # not sampled: the limits come from a few frames, not a full scan
    path = write_stack(tmp_path / "big.h5", data)
    # make every file "big": the reader opens it lazily
    monkeypatch.setattr("napari_stackalign.io._lazy.total_memory", lambda: 1)
    [(layer_data, kwargs, _)] = _read(path)
    assert type(layer_data).__module__.startswith("dask")
    assert kwargs["multiscale"] is False
    lo, hi = kwargs["contrast_limits"]
    assert lo == data[[0, 1, 2, 4, 5]].min() and hi == 5000


def test_read_tcyx_sets_channel_axis(tmp_path):
    data = _data(shape=(4, 2, 16, 16))
    path = write_stack(tmp_path / "c.h5", data, scale=(0.2, 0.2), units="nm")
    [(_, kwargs, _)] = _read(path)
    assert kwargs["channel_axis"] == 1
    assert kwargs["name"] == ["c ch0", "c ch1"]
    assert kwargs["scale"] == (1.0, 0.2, 0.2) and kwargs["axis_labels"] == ("t", "y", "x")


def test_read_folder_and_list_of_files(tmp_path):
    data = _data()
    paths = []
    for t, frame in enumerate(data):
        paths.append(tmp_path / f"{t + 1}.tif")
        tifffile.imwrite(paths[-1], frame)
    [(folder_data, kwargs, _)] = _read(tmp_path)
    np.testing.assert_array_equal(folder_data, data)
    assert kwargs["name"] == tmp_path.name
    [(listed, _, _)] = _read(list(reversed(paths)), stack=True)  # "Open Files as Stack": natural order
    np.testing.assert_array_equal(listed, data)


def test_get_reader_returns_none_for_what_it_cannot_read(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "movie.avi").write_bytes(b"RIFF")
    (tmp_path / "fake.tif").write_bytes(b"not a tiff")
    (tmp_path / "fake.gif").write_bytes(b"not a gif")
    (tmp_path / "fake.h5").write_bytes(b"not hdf5")
    tifffile.imwrite(tmp_path / "single.tif", _data(shape=(16, 16)))
    with h5py.File(tmp_path / "table.h5", "w") as f:
        f["x"] = np.arange(5)
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    for name in [
        "notes.txt",
        "movie.avi",
        "fake.tif",
        "fake.gif",
        "fake.h5",
        "single.tif",
        "table.h5",
        "missing.tif",
        "empty_dir",
    ]:
        assert get_reader(str(tmp_path / name)) is None, name
    assert get_reader([str(tmp_path / "notes.txt"), str(tmp_path / "single.tif")]) is None
    assert get_reader([]) is None
    assert get_reader(None) is None  # nonsense input: None, never an exception


def test_get_reader_accepts_stacks_folders_and_lists(tmp_path):
    write_stack(tmp_path / "s.tif", _data())
    write_stack(tmp_path / "s.h5", _data())
    frames = tmp_path / "frames"
    frames.mkdir()
    for t in range(3):
        tifffile.imwrite(frames / f"{t}.tif", _data(shape=(8, 8)))
    for target in [tmp_path / "s.tif", tmp_path / "s.h5", frames, [frames / "0.tif", frames / "1.tif"]]:
        arg = [str(p) for p in target] if isinstance(target, list) else str(target)
        assert callable(get_reader(arg)), target


def test_ambiguous_hdf5_is_claimed_and_explained(tmp_path):
    with h5py.File(tmp_path / "two.h5", "w") as f:
        f["a"] = _data()
        f["b"] = _data()
    reader = get_reader(str(tmp_path / "two.h5"))
    assert callable(reader)
    with pytest.raises(ValueError, match="several datasets"):
        reader(str(tmp_path / "two.h5"))


@pytest.mark.parametrize("suffix", [".tif", ".h5"])
def test_write_through_npe2_roundtrip(tmp_path, suffix):
    napari = pytest.importorskip("napari")
    data = _data(dtype=np.float32)
    ft = FrameTransforms(dy=np.linspace(0, 2, 6), dx=np.linspace(0, -1, 6), method="pyramid", params={"levels": 2})
    layer = napari.layers.Image(
        data,
        name="registered",
        scale=(1.0, 0.1, 0.1),
        units=("pixel", "nm", "nm"),
        metadata={"stackalign": {"method": "pyramid", "transforms": ft.to_dict()}, "owner": "lab"},
    )
    written = npe2.write(str(tmp_path / f"out{suffix}"), [layer.as_layer_data_tuple()], plugin_name=PLUGIN)
    assert written == [str(tmp_path / f"out{suffix}")]
    back = read_stack(written[0])
    np.testing.assert_array_equal(back.data, data)
    assert back.units == "nm" and back.pixel_size == pytest.approx((0.1, 0.1))
    assert back.transforms.allclose(ft) and back.transforms.method == "pyramid"
    assert back.metadata == {"stackalign": {"method": "pyramid"}, "owner": "lab"}
    # and back through the reader, the layer metadata is as it was (plus the new source)
    [(_, kwargs, _)] = _read(written[0])
    assert kwargs["metadata"]["stackalign"]["transforms"] == back.transforms.to_dict()
    assert kwargs["metadata"]["owner"] == "lab"


def test_writer_refuses_the_layers_source_file(tmp_path):
    path = write_stack(tmp_path / "src.tif", _data())
    [(data, kwargs, layer_type)] = _read(path)
    before = path.read_bytes()
    with pytest.raises(ValueError, match="was read from this file.*Choose another file name"):
        npe2.write(str(path), [(data, kwargs, layer_type)], plugin_name=PLUGIN)
    assert path.read_bytes() == before
    # another name is fine, and the source path is not stored in the new file
    out = npe2.write(str(tmp_path / "copy.tif"), [(data, kwargs, layer_type)], plugin_name=PLUGIN)
    assert "source_path" not in read_stack(out[0]).metadata


def test_writer_rgb_layer_and_single_rgb_image(tmp_path):
    napari = pytest.importorskip("napari")
    rgb = _data(shape=(3, 10, 12, 3), dtype=np.uint8)
    layer = napari.layers.Image(rgb, rgb=True)
    out = npe2.write(str(tmp_path / "rgb.h5"), [layer.as_layer_data_tuple()], plugin_name=PLUGIN)
    back = read_stack(out[0])
    assert back.axes == "TCYX"
    np.testing.assert_array_equal(back.data, np.moveaxis(rgb, -1, 1))
    single = napari.layers.Image(_data(shape=(10, 12, 3), dtype=np.uint8), rgb=True)
    with pytest.raises(ValueError, match="single RGB image.*napari's own image writer"):
        npe2.write(str(tmp_path / "one.tif"), [single.as_layer_data_tuple()], plugin_name=PLUGIN)


def _average_layers(napari, ft):
    block = {"method": "similarity", "params": {"template": "mean"}, "transforms": ft.to_dict()}
    image = np.random.default_rng(2).random((16, 20)).astype(np.float32)
    coverage = np.full((16, 20), 6, np.uint16)
    coverage[0] = 3
    average = napari.layers.Image(
        image, name="cells average", scale=(0.2, 0.2), units=("nm", "nm"),
        metadata={"stackalign": block, "source_path": "/nowhere/cells.tif", "owner": "lab"},
    )
    cov = napari.layers.Image(coverage, name="cells coverage", metadata={"stackalign": {**block, "role": "coverage"}})
    return average, cov


@pytest.mark.parametrize("suffix", [".tif", ".h5"])
def test_2d_average_is_written_with_all_its_metadata(tmp_path, suffix):
    napari = pytest.importorskip("napari")
    ft = FrameTransforms(dy=np.arange(6.0), dx=np.zeros(6), method="similarity")
    average, _ = _average_layers(napari, ft)
    [out] = npe2.write(str(tmp_path / f"avg{suffix}"), [average.as_layer_data_tuple()], plugin_name=PLUGIN)
    if suffix == ".tif":
        with tifffile.TiffFile(out) as tif:
            image = tif.asarray()
            meta = json.loads(tif.imagej_metadata["Info"])
            assert tif.imagej_metadata["unit"] == "nm"
    else:
        with h5py.File(out) as f:
            image = f["image"][()]
            meta = json.loads(f.attrs["metadata"])
            assert list(f.attrs["pixel_size"]) == pytest.approx([0.2, 0.2]) and "coverage" not in f
    np.testing.assert_array_equal(image, average.data)
    assert meta["owner"] == "lab" and "source_path" not in meta
    assert meta["stackalign"]["params"] == {"template": "mean"}
    assert FrameTransforms.from_dict(meta["stackalign"]["transforms"]).allclose(ft)


@pytest.mark.parametrize("suffix", [".tif", ".h5"])
def test_average_with_its_coverage(tmp_path, suffix):
    napari = pytest.importorskip("napari")
    ft = FrameTransforms(dy=np.arange(6.0), dx=np.zeros(6), method="similarity")
    average, cov = _average_layers(napari, ft)
    layers = [cov.as_layer_data_tuple(), average.as_layer_data_tuple()]  # either order
    written = npe2.write(str(tmp_path / f"avg{suffix}"), layers, plugin_name=PLUGIN)
    if suffix == ".h5":
        assert written == [str(tmp_path / "avg.h5")]
        with h5py.File(written[0]) as f:
            np.testing.assert_array_equal(f["image"][()], average.data)
            np.testing.assert_array_equal(f["coverage"][()], cov.data)
    else:
        assert written == [str(tmp_path / "avg.tif"), str(tmp_path / "avg-coverage.tif")]
        np.testing.assert_array_equal(tifffile.imread(written[0]), average.data)
        np.testing.assert_array_equal(tifffile.imread(written[1]), cov.data)
    two_averages = [average.as_layer_data_tuple(), average.as_layer_data_tuple()]
    with pytest.raises(ValueError, match="not an average and its coverage map: select one layer"):
        npe2.write(str(tmp_path / f"two{suffix}"), two_averages, plugin_name=PLUGIN)


def test_in_a_window_writer_errors_are_notifications_that_say_what_to_do(make_napari_viewer, tmp_path, monkeypatch):
    """Saved through napari's layer save, the message is ours (not "not a valid writer", not a traceback)."""
    viewer = make_napari_viewer()
    shown = []
    monkeypatch.setattr("napari_stackalign.napari._writer.show_error", shown.append)
    path = write_stack(tmp_path / "src.tif", _data())
    before = path.read_bytes()
    viewer.open(str(path), plugin=PLUGIN)
    with warnings.catch_warnings(record=True) as caught:  # the filters as napari runs them
        saved = viewer.layers.save(str(path), plugin=PLUGIN)
    assert saved == [] and path.read_bytes() == before
    assert len(shown) == 1 and shown[0].startswith("Not saved: refusing to save over src.tif")
    assert "Choose another file name" in shown[0]
    assert not [w for w in caught if "not a valid writer" in str(w.message) or "did not return" in str(w.message)]
    # a 2-D layer saves fine through the same path
    viewer.add_image(np.ones((8, 9), np.float32), name="flat")
    viewer.layers.selection = {viewer.layers["flat"]}
    assert viewer.layers.save(str(tmp_path / "flat.tif"), selected=True, plugin=PLUGIN) == [str(tmp_path / "flat.tif")]
    missing = tmp_path / "no-such-folder" / "x.h5"
    assert viewer.layers.save(str(missing), selected=True, plugin=PLUGIN) == []
    assert "does not exist: create it first" in shown[-1]
