"""Each sample opens in a real viewer (File > Open Sample), and files open through the plugin."""

from __future__ import annotations

import npe2
import numpy as np
import pytest

from napari_stackalign import FrameTransforms
from napari_stackalign.io import write_stack
from napari_stackalign.io.samples import SAMPLE_NAMES, SAMPLES, load_sample

PLUGIN = "napari-stackalign"

EXPECTED = {
    "brightfield": ((17, 290, 325), np.uint8),
    "particles": ((5, 500, 500), np.uint16),
    "beads": ((50, 256, 256), np.uint16),
    "lattice": ((40, 256, 256), np.float32),
    "texture": ((40, 256, 256), np.uint16),
}


def test_sample_names_match_the_manifest():
    manifest = npe2.PluginManifest.from_distribution(PLUGIN)
    keys = [s.key for s in manifest.contributions.sample_data]
    assert keys == list(SAMPLE_NAMES) == list(EXPECTED)
    titles = {s.key: s.display_name for s in manifest.contributions.sample_data}
    assert titles == {name: sample.display_name for name, sample in SAMPLES.items()}


def test_open_every_sample_in_viewer(make_napari_viewer):
    viewer = make_napari_viewer()
    for key, (shape, dtype) in EXPECTED.items():
        viewer.layers.clear()
        viewer.open_sample(PLUGIN, key)
        assert len(viewer.layers) == 1, key
        layer = viewer.layers[0]
        assert layer.data.shape == shape and layer.data.dtype == dtype, key
        assert layer.ndim == 3 and not layer.rgb
        assert tuple(layer.axis_labels) == ("t", "y", "x")
        assert viewer.dims.nsteps[0] == shape[0]  # the time slider covers every frame
        if key in ("brightfield", "particles"):
            assert "license" in layer.metadata["sample"]
            assert layer.metadata["source_path"].endswith(".tif")
        else:
            truth = FrameTransforms.from_dict(layer.metadata["stackalign"]["truth"])
            assert len(truth) == shape[0]
            assert truth.method == "ground truth"
            assert "transforms" not in layer.metadata["stackalign"]  # the truth is not an estimate


def test_synthetic_samples_are_reproducible():
    a, b = load_sample("beads"), load_sample("beads")
    np.testing.assert_array_equal(a.data, b.data)
    assert a.metadata == b.metadata
    with pytest.raises(ValueError, match="unknown sample 'nope': choose one of brightfield"):
        load_sample("nope")


def test_viewer_opens_files_with_the_plugin(make_napari_viewer, tmp_path):
    data = np.random.default_rng(0).integers(0, 255, size=(4, 2, 32, 40)).astype(np.uint8)
    path = write_stack(tmp_path / "two_channels.h5", data, scale=(0.25, 0.25), units="µm")
    viewer = make_napari_viewer()
    layers = viewer.open(str(path), plugin=PLUGIN)
    assert [layer.name for layer in layers] == ["two_channels ch0", "two_channels ch1"]
    for c, layer in enumerate(layers):
        np.testing.assert_array_equal(layer.data, data[:, c])
        assert tuple(layer.scale) == (1.0, 0.25, 0.25)
        assert str(layer.units[-1]) in ("micrometer", "µm")
