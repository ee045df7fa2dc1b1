"""The chained reference modes say when the frames hold a lattice (a chain cannot tell positions a lattice
vector apart), and say nothing on other content."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from napari_stackalign.core.pyramid import register_pyramid
from napari_stackalign.core.pyramid._periodic import detect_lattice
from napari_stackalign.core.pyramid._template import Template
from napari_stackalign.synthetic import make_stack

from .test_lattice_detection import _lattice_stack


def _run(stack, mode):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ft = register_pyramid(stack, reference_mode=mode)
    return ft, [str(w.message) for w in caught if "lattice" in str(w.message)]


@pytest.mark.parametrize("mode", ["previous", "running"])
def test_a_chain_on_a_weak_lattice_warns(mode):
    # a 6 px hexagonal lattice under noise 3 times its spread: none of the single frames shows a lattice
    # (detect_lattice), the mean of the frames at their chained positions does
    stack, _ = _lattice_stack(30, (128, 128), 6.0, 0.4, seed=3, background=0.1, noise=3.0)
    assert not any(detect_lattice(Template((f - f.mean()) / f.std(), None)) for f in stack.astype(np.float32))
    ft, said = _run(stack, mode)
    assert len(said) == 1 and f"reference_mode={mode!r}" in said[0] and "reference_mode='template'" in said[0]
    vectors = np.array(ft.params["lattice"]["vectors"])
    assert np.hypot(*vectors.T) == pytest.approx(6.0, abs=0.3)


@pytest.mark.parametrize("mode", ["previous", "running"])
def test_a_chain_on_beads_does_not_warn(mode):
    stack, _ = make_stack("beads", n_frames=20, shape=(96, 96), drift=3, snr=3, seed=4)
    ft, said = _run(stack, mode)
    assert said == [] and "lattice" not in ft.params
