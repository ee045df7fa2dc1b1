"""Every real stack in ../shared/data/real reads with the right shape, dtype and calibration.

Skipped when the folder is absent (see the ``real_data`` fixture).
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_stackalign.io import read_stack

pytestmark = pytest.mark.real

TIFF_STACKS = {
    "bfdc-brightfield-drift/bf_Substack_1-16384-1000_l.tif": ((17, 290, 325), np.uint8),
    "hyperspy-stem-abf/stem_abf_data_imagestack.tif": ((5, 512, 512), np.uint16),
    "pystackreg-pc12/pc12-unreg.tif": ((5, 201, 199), np.uint16),
    "pystackreg-pc12/pc12-reg-translation.tif": ((5, 201, 199), np.uint16),
    "pystackreg-pc12/pc12-reg-rigid-body.tif": ((5, 201, 199), np.uint16),
    "sima-2p/example.tif": ((20, 128, 256), np.uint16),
}


@pytest.mark.parametrize("name", list(TIFF_STACKS))
def test_tiff_stacks(real_data, name):
    s = read_stack(real_data / name)
    shape, dtype = TIFF_STACKS[name]
    assert s.shape == shape and s.dtype == dtype and s.axes == "TYX"


def test_stem_tiff_and_hspy_agree_with_calibration(real_data):
    folder = real_data / "hyperspy-stem-abf"
    hspy = read_stack(folder / "stem_abf_data_imagestack.hspy")
    tif = read_stack(folder / "stem_abf_data_imagestack.tif")
    assert hspy.shape == (5, 512, 512) and hspy.dtype == np.uint16
    np.testing.assert_array_equal(hspy.data, tif.data)
    for s in (hspy, tif):
        assert s.units == "nm"
        assert s.pixel_size == pytest.approx((0.0092024, 0.0092024), rel=1e-4)
    assert hspy.metadata["hyperspy"]["General"]["original_filename"] == "004_ABF_movie_21.dm3"


def test_single_stem_image_is_refused(real_data):
    with pytest.raises(ValueError, match="single 2-D image"):
        read_stack(real_data / "hyperspy-stem-abf/stem_abf_data.hspy")


def test_sima_hdf5_named_dataset_and_axis_order(real_data):
    """example.h5 stores (y, x, t) in dataset 'imaging' without labels: the user names the order."""
    path = real_data / "sima-2p/example.h5"
    s = read_stack(path, dataset="imaging", axes="YXT")
    assert s.shape == (20, 128, 256) and s.dtype == np.uint16
    np.testing.assert_array_equal(s.data, read_stack(real_data / "sima-2p/example.tif").data)
    with pytest.warns(UserWarning, match="axes='YXT'"):
        read_stack(path)


def test_sima_volume_is_refused_clearly(real_data):
    with pytest.raises(ValueError, match=r"volume over time \(T=10 x Z=3 x Y=64 x X=64 x C=2\).*pick one plane"):
        read_stack(real_data / "sima-2p/example-volume.h5")


@pytest.mark.parametrize("folder", ["example_data1", "example_data2"])
def test_particle_folders(real_data, folder):
    s = read_stack(real_data / "shkirskiy-particles" / folder)
    assert s.shape == (5, 500, 500) and s.dtype == np.uint16
    assert s.metadata["files"] == ["1.tif", "2.tif", "3.tif", "4.tif", "5.tif"]
    assert 55000 < float(s.data[0].mean()) < 65535  # bright surface in frame 1


def test_brightfield_gif_matches_tiff(real_data):
    folder = real_data / "bfdc-brightfield-drift"
    gif = read_stack(folder / "bf_Substack_1-16384-1000_l.gif")
    assert gif.shape == (17, 290, 325) and gif.dtype == np.uint8 and gif.axes == "TYX"
    np.testing.assert_array_equal(gif.data, read_stack(folder / "bf_Substack_1-16384-1000_l.tif").data)


def test_real_files_open_lazily(real_data):
    s = read_stack(real_data / "sima-2p/example.tif", lazy=True)
    np.testing.assert_array_equal(np.asarray(s.data[5]), read_stack(real_data / "sima-2p/example.tif").data[5])
    s.close()
