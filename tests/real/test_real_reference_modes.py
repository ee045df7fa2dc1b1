"""Reference modes on real bright-field drift videos (``shared/data/real``,
skipped when absent).

These videos have no ground truth (their README gives rough phase-correlation
figures, "a guide, not ground truth"), and they have a fixed structure, so
every mode should agree with the template: the test checks that the chained
modes ('previous', 'running') and a frame range follow the same drift there,
and the README's rough end point on bfdc.
"""

import numpy as np
import pytest
import tifffile

from napari_stackalign.core.pyramid import register_pyramid

pytestmark = pytest.mark.real

MODES = [{"reference_mode": "previous"}, {"reference_mode": "running"}, {"reference_frames": (4, 12)}]


def _correction(ft) -> np.ndarray:
    c = np.stack([ft.dy, ft.dx], axis=1)
    return c - c[0]


@pytest.fixture
def bfdc(real_data):
    path = real_data / "bfdc-brightfield-drift" / "bf_Substack_1-16384-1000_l.tif"
    if not path.exists():
        pytest.skip("bfdc bright-field video not present")
    return tifffile.imread(path)


@pytest.fixture
def shkirskiy(real_data):
    folder = real_data / "shkirskiy-particles" / "example_data2"
    if not folder.is_dir():
        pytest.skip("shkirskiy-particles not present")
    return np.stack([tifffile.imread(folder / f"{i}.tif") for i in range(1, 6)])


@pytest.mark.parametrize("kwargs", MODES, ids=["previous", "running", "frames"])
def test_bfdc_modes_agree_with_the_template(bfdc, kwargs):
    roi = (40, bfdc.shape[1], 0, bfdc.shape[2])  # below the burned-in label
    template = register_pyramid(bfdc, roi=roi)
    ft = register_pyramid(bfdc, roi=roi, **kwargs)
    assert ft.ok.all(), ft.failure_summary()
    # measured: every mode within 0.02 px of the template
    np.testing.assert_allclose(_correction(ft), _correction(template), atol=0.1)
    # the README's rough figure for frame 16: (-8.95, -13.65)
    np.testing.assert_allclose(_correction(ft)[-1], [-8.95, -13.65], atol=0.3)


@pytest.mark.parametrize("mode", ["previous", "running"])
def test_shkirskiy_chained_modes_agree_with_the_template(shkirskiy, mode):
    template = register_pyramid(shkirskiy)
    ft = register_pyramid(shkirskiy, reference_mode=mode)
    assert ft.ok.all(), ft.failure_summary()
    # measured: within 0.07 px (pystackreg 'previous' loses this set: hundreds of px)
    np.testing.assert_allclose(_correction(ft), _correction(template), atol=0.15)
