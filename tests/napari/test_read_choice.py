"""The reader's decision (no Qt): which dataset and axis order to propose, and when to ask."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from napari_stackalign.napari._read_choice import Candidate, describe_reading, guess_axes, propose_read
from napari_stackalign.napari._reader import hdf5_proposal, read_layers


def test_yxt_shape_is_proposed_as_yxt_and_asked():
    proposal = propose_read([Candidate("imaging", (128, 256, 20), "uint16")])
    assert proposal.dataset == "imaging" and proposal.axes == "YXT"
    assert proposal.ask and "last axis (20)" in proposal.reasons[0]
    assert describe_reading(proposal.axes, (128, 256, 20)) == "20 frames of 128 x 256"


@pytest.mark.parametrize(
    ("shape", "axes", "unclear"),
    [
        ((20, 128, 256), "TYX", False),
        ((5, 64, 64), "TYX", False),
        ((128, 256, 20), "YXT", True),
        ((64, 64, 3), "YXT", True),
        ((10, 2, 64, 64), "TCYX", True),
        ((10, 3, 64, 64, 2), "TZCYX", True),
    ],
)
def test_guess_axes(shape, axes, unclear):
    guessed, doubt = guess_axes(shape)
    assert guessed == axes and (doubt is not None) == unclear


def test_declared_axes_are_trusted_and_not_asked():
    proposal = propose_read([Candidate("movie", (128, 256, 20), "uint16", declared_axes="yxt")])
    assert (proposal.axes, proposal.ask) == ("YXT", False)
    labelled_tyx = propose_read([Candidate("movie", (64, 64, 3), "uint8", declared_axes="TYX")])
    assert (labelled_tyx.axes, labelled_tyx.ask) == ("TYX", False)


def test_several_datasets_propose_the_largest_and_ask():
    cands = [Candidate("small", (5, 32, 32), "uint8"), Candidate("big", (50, 64, 64), "uint16")]
    proposal = propose_read(cands)
    assert proposal.dataset == "big" and proposal.axes == "TYX" and proposal.ask
    assert "2 datasets" in proposal.reasons[0]
    assert propose_read([*cands, Candidate("image_data", (3, 8, 8), "f4")]).dataset == "image_data"
    with pytest.raises(ValueError, match="candidates are: small, big"):
        proposal.candidate("nope")
    with pytest.raises(ValueError, match="no stack"):
        propose_read([])


def test_describe_reading_refuses_what_the_reader_refuses():
    with pytest.raises(ValueError, match="only one time axis"):
        describe_reading("TQYX", (10, 3, 64, 64))
    assert describe_reading("TZYX", (10, 3, 64, 48)) == "10 volumes of 3 x 64 x 48 (Z x Y x X)"
    assert describe_reading("TZCYX", (10, 3, 2, 64, 48)) == "10 volumes of 3 x 64 x 48 (Z x Y x X), 2 channels"
    assert describe_reading("TCYX", (10, 2, 64, 48)) == "10 frames of 64 x 48, 2 channels"


def test_hdf5_proposal_reads_the_file_labels(tmp_path):
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f["imaging"] = np.zeros((32, 48, 6), np.uint16)
        f["labelled"] = np.zeros((32, 48, 6), np.uint16)
        for dim, label in zip(f["labelled"].dims, "yxt"):
            dim.label = label
    proposal = hdf5_proposal(tmp_path / "a.h5")
    assert {c.name: c.declared_axes for c in proposal.candidates} == {"imaging": None, "labelled": "YXT"}


def test_without_a_window_an_unclear_axis_order_is_read_as_proposed_with_a_warning(tmp_path):
    data = np.random.default_rng(0).integers(0, 100, (32, 48, 6)).astype(np.uint16)
    with h5py.File(tmp_path / "yxt.h5", "w") as f:
        f["imaging"] = data
    with pytest.warns(UserWarning, match="axes='YXT'"):
        [(layer_data, _kwargs, _)] = read_layers(str(tmp_path / "yxt.h5"))
    np.testing.assert_array_equal(np.asarray(layer_data), np.moveaxis(data, -1, 0))
