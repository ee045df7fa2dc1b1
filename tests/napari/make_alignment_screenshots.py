"""Screenshots of the "Similarity stacking" and "Trajectories" widgets docked in napari.

Not a test (pytest does not collect it). Run it under a display, e.g.::

    QT_API=pyqt6 PYTHONPATH=src xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python tests/napari/make_alignment_screenshots.py

Both widgets are docked from the Plugins menu (``add_plugin_dock_widget``),
as a user docks them, in a 1366x768 window. Similarity stacking runs on a synthetic two-channel
stack with known rotation and scale; Trajectories corrects beads tracked
through a rotating, drifting stack (one particle moving on its own), then
validates. Writes ``docs/images/similarity_widget.png``,
``docs/images/trajectories_widget.png`` and
``docs/images/trajectories_widget_validation.png``.
"""

from __future__ import annotations

import sys

import numpy as np
from _screenshots import IMAGES as OUT
from _screenshots import laptop_viewer, shoot, wait_for
from qtpy.QtWidgets import QApplication

from napari_stackalign import FrameTransforms, track_particles
from napari_stackalign.napari._particle_layers import tracks_layer_kwargs
from napari_stackalign.synthetic import make_stack


def similarity(app) -> None:
    shape = (96, 128)
    motion = FrameTransforms(
        dy=[2.0, -1.5, 0.0, 3.0, -2.5], dx=[-3.0, 1.0, 0.0, 2.5, 1.5], angle=[8.0, -5.0, 0.0, 12.0, -10.0],
        scale=[1.05, 0.96, 1.0, 1.08, 0.93], center=((shape[0] - 1) / 2, (shape[1] - 1) / 2),
    )
    stack, _ = make_stack("texture", n_frames=5, shape=shape, motion=motion, snr=10, n_channels=2, seed=21)
    viewer = laptop_viewer()
    viewer.add_image(stack[:, 0], name="ch0", scale=(1, 0.5, 0.5))
    viewer.add_image(stack[:, 1], name="ch1", scale=(1, 0.5, 0.5))
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-stackalign", "Similarity stacking")
    widget.layer.value = viewer.layers["ch0"]
    widget.form.set_values(limit_angle=True, limit_scale=True)
    widget._on_run()
    wait_for(widget.runner)
    average = next(layer for layer in viewer.layers if layer.name.startswith("ch0 average"))
    for layer in viewer.layers:
        layer.visible = layer is average
    viewer.reset_view()
    app.processEvents()
    shoot(viewer, "similarity_widget.png")
    viewer.close()


def trajectories(app) -> None:
    t, shape = 10, (120, 128)
    center = ((shape[0] - 1) / 2, (shape[1] - 1) / 2)
    motion = FrameTransforms(
        dy=np.linspace(0, 8, t), dx=np.linspace(0, -5, t), angle=np.linspace(0, 1.5, t), center=center
    )
    stack, truth = make_stack("beads", n_frames=t, shape=shape, motion=motion, snr=10, n_beads=24, seed=11)
    pos = np.asarray(truth.params["bead_positions"])
    mats = motion.to_matrices()
    traj = np.einsum("tij,nj->tni", mats[:, :2, :2], pos) + mats[:, None, :2, 2]
    inside = np.all((traj[..., 0] > 10) & (traj[..., 0] < shape[0] - 10) & (traj[..., 1] > 10)
                    & (traj[..., 1] < shape[1] - 10), axis=0)
    dist = np.hypot(*(traj[0][:, None] - traj[0][None]).transpose(2, 0, 1))
    np.fill_diagonal(dist, 99)
    picks = traj[0][np.flatnonzero(inside & (dist.min(axis=1) > 13))[:6]]
    tracks = track_particles(stack, picks, box=11)
    tracks.x[:, 0] += np.linspace(0, 3, t)  # particle 0 moves on its own
    viewer = laptop_viewer()
    image = viewer.add_image(stack, name="beads")
    data, kwargs = tracks_layer_kwargs(image, tracks, {"box": 11})
    viewer.add_tracks(data, **kwargs)
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-stackalign", "Trajectories")
    widget.set_particle_state(2, hold_out=True)
    widget._on_correct_clicked()
    wait_for(widget.correct_runner)
    shoot(viewer, "trajectories_widget.png")
    widget._on_validate_clicked()
    wait_for(widget.validate_runner)
    area = widget._scroll
    area.ensureWidgetVisible(widget.tabs)
    app.processEvents()
    shoot(viewer, "trajectories_widget_validation.png")
    viewer.close()


def main() -> int:
    app = QApplication.instance() or QApplication([])
    similarity(app)
    trajectories(app)
    print("wrote", *(OUT / n for n in ("similarity_widget.png", "trajectories_widget.png",
                                      "trajectories_widget_validation.png")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
