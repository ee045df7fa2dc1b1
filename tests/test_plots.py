"""Headless figures: the drift plot shows minus the correction; PNGs are written atomically."""

from __future__ import annotations

import numpy as np
import pytest

from napari_stackalign import FrameTransforms, VolumeTransforms
from napari_stackalign.plots import (
    draw_before_after,
    draw_correlations,
    draw_drift,
    new_figure,
    save_figure,
)


def test_drift_plot_shows_minus_the_correction(tmp_path):
    ft = FrameTransforms.from_shifts(np.array([[0.0, 1.0], [2.0, -3.0], [4.0, 0.5]]), ok=[True, False, True])
    smoothed = FrameTransforms.from_shifts(np.array([[0.5, 0.0], [2.0, -1.0], [3.5, 0.0]]))
    fig = draw_drift(new_figure(), ft, smoothed)
    ax = fig.axes[0]
    ys = [line.get_ydata() for line in ax.lines[:4]]
    np.testing.assert_allclose(ys[0], -ft.dy)
    np.testing.assert_allclose(ys[1], -ft.dx)
    np.testing.assert_allclose(ys[2], -smoothed.dy)
    assert "drift" in ax.get_ylabel() and "correction" in fig._suptitle.get_text()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["rows (y)", "columns (x)", "measured", "smoothed", "flagged"]
    path = save_figure(fig, tmp_path / "drift.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_other_figures_and_png_only(tmp_path):
    rep = {"correlations": np.array([0.5, 0.6]), "sharpness": 0.01, "correlation_mean": 0.55}
    fig = draw_correlations(new_figure(), {"a": rep, "a registered": dict(rep, correlations=np.array([0.9, 0.95]))})
    assert len(fig.axes[0].lines) == 2
    img = np.random.default_rng(0).random((20, 30))
    fig = draw_before_after(new_figure(), img, img, sharpness=(0.1, 0.2), correlation=(0.5, 0.9))
    assert "sharpness 0.2" in fig.axes[1].get_title()
    with pytest.raises(ValueError, match=".png"):
        save_figure(fig, tmp_path / "x.jpg")
    with pytest.raises(ValueError, match="does not exist"):
        save_figure(fig, tmp_path / "missing" / "x.png")


def test_drift_plot_of_volume_transforms_shows_the_planes_too():
    vt = VolumeTransforms.from_shifts(np.array([[1.0, 0.0, 2.0], [-0.5, 1.0, 0.0], [0.25, 2.0, -1.0]]), ok=[1, 0, 1])
    fig = draw_drift(new_figure(), vt)
    ax = fig.axes[0]
    np.testing.assert_allclose(ax.lines[0].get_ydata(), -vt.dz)  # planes first, then rows and columns
    np.testing.assert_allclose(ax.lines[1].get_ydata(), -vt.dy)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["planes (z)", "rows (y)", "columns (x)", "flagged"]
    assert "z in planes" in ax.get_ylabel()
