"""The P (position) axis: axis planning, StackData.position, writers refusing it; and the real
(y, x, t) HDF5 of ../shared/data/real/sima-2p, which must not be read silently as (T, Y, X)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from napari_stackalign.io import StackData, read_stack, write_stack
from napari_stackalign.io._axes import plan_axes


def test_plan_puts_positions_first_and_keeps_channels_explicit():
    plan = plan_axes("TCZYXP", (4, 2, 1, 8, 9, 3))
    assert plan.out_axes == "PTCYX" and plan.channel_axis == 2
    data = np.zeros((4, 2, 1, 8, 9, 3))
    assert plan.apply(data).shape == (3, 4, 2, 8, 9)
    assert plan_axes("PTYX", (1, 4, 8, 9)).out_axes == "TYX"  # one position: no P axis
    with pytest.raises(ValueError, match="volume over time"):
        plan_axes("PTZYX", (2, 4, 3, 8, 9))


def test_position_selects_one_position_and_writers_refuse_p(tmp_path):
    data = np.arange(2 * 3 * 2 * 4 * 5, dtype=np.uint16).reshape(2, 3, 2, 4, 5)
    stack = StackData(data=data, axes="PTCYX", channel_axis=2, scale=(1.0, 1.0, 1.0, 0.5, 0.5), units="µm")
    assert stack.n_positions == 2 and stack.n_frames == 3
    one = stack.position(-1)
    assert one.axes == "TCYX" and one.channel_axis == 1 and one.scale == (1.0, 1.0, 0.5, 0.5)
    assert one.metadata["position"] == 1
    np.testing.assert_array_equal(one.data, data[1])
    with pytest.raises(ValueError, match="position 2 does not exist: the stack has 2 positions"):
        stack.position(2)
    with pytest.raises(ValueError, match="no position"):
        one.position(0)
    with pytest.raises(ValueError, match=r"multi-position stack: write one position at a time"):
        write_stack(tmp_path / "a.tif", stack)
    write_stack(tmp_path / "a.tif", one)
    assert read_stack(tmp_path / "a.tif").shape == (3, 2, 4, 5)


@pytest.mark.real
def test_sima_yxt_hdf5_reads_with_axes_and_is_flagged_without(real_data):
    """example.h5 holds (128 rows, 256 cols, 20 frames), unlabelled (see the data README)."""
    path = real_data / "sima-2p/example.h5"
    reference = read_stack(real_data / "sima-2p/example.tif").data  # the same movie, frames first
    for lazy in (False, True):
        s = read_stack(path, dataset="imaging", axes="YXT", lazy=lazy)
        assert s.axes == "TYX" and s.shape == (20, 128, 256) and s.lazy is lazy
        np.testing.assert_array_equal(np.asarray(s.data), reference)
        s.close()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        guessed = read_stack(path, lazy=True)
    messages = [str(w.message) for w in caught]
    # without axes the file's 128 "frames" would be rows: the reader says so and names the fix
    assert guessed.shape == (128, 256, 20)
    assert any("no axis labels" in m and "axes='YXT'" in m for m in messages), messages
    guessed.close()
