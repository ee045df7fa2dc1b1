"""Screenshots of the "Pairwise averaging" and "Particles" widgets and the read dialog, docked in napari.

Not a test (pytest does not collect it). Run it under a display, e.g.::

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python tests/napari/make_pairwise_particles_screenshots.py

Each widget is docked from the Plugins menu (``add_plugin_dock_widget``) in a
1366x768 window and run with its defaults (a fresh settings folder); writes ``docs/images/pairwise_widget.png``,
``docs/images/particles_widget.png`` and, when the real two-photon file is present,
``docs/images/read_dialog.png``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from _screenshots import IMAGES as OUT
from _screenshots import ROOT, laptop_viewer, pump, shoot, wait_for
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QApplication

from napari_stackalign import synthetic
from napari_stackalign.synthetic import make_stack
from napari_stackalign.transforms import FrameTransforms

#: the real two-photon HDF5 with (y, x, t) axes (../shared/data/real, see its README)
SIMA = next(
    (p for p in (ROOT.parent / "shared", Path("/work/shared")) if (p / "data/real/sima-2p/example.h5").is_file()),
    ROOT.parent / "shared",
) / "data" / "real" / "sima-2p" / "example.h5"


def particles() -> None:
    """Dark beads on a bright field, picks near the edges (two rejected), after Track."""
    viewer = laptop_viewer()
    n, shape = 12, (96, 112)
    centre = ((shape[0] - 1) / 2, (shape[1] - 1) / 2)
    motion = FrameTransforms(dy=np.linspace(0, 6, n), dx=np.linspace(0, -4, n), center=centre)
    stack, truth = make_stack("beads", n_frames=n, shape=shape, motion=motion, snr=8, n_beads=14, seed=5)
    stack = stack.max() - stack
    beads = np.asarray(truth.params["bead_positions"])
    viewer.add_image(stack, name="beads")
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-stackalign", "Particles")
    viewer.dims.set_current_step(0, 0)
    widget.polarity.value = True
    widget.pick_button.click()
    picks = viewer.layers["beads picks"]
    inside = np.flatnonzero((beads[:, 0] > 9) & (beads[:, 0] < 86) & (beads[:, 1] > 9) & (beads[:, 1] < 102))
    order = inside[np.argsort(beads[inside, 1])]
    for k in [*order[:2], *order[-2:]]:
        picks.add([0, *(beads[k] + 0.4)])
    picks.add([0, 50.0, 2.0])  # rejected: at the left edge
    picks.add([0, 3.0, 108.0])  # rejected: in the top-right corner
    pump()
    widget.runner.run_button.click()
    wait_for(widget.runner)
    viewer.reset_view()
    pump()
    shoot(viewer, "particles_widget.png")
    viewer.close()


def pairwise() -> None:
    """A low-dose lattice, registered with the defaults (the mask chosen from the stack's spectrum)."""
    viewer = laptop_viewer()
    stack, _truth = synthetic.stem_stack(10, (128, 128), snr=1.0, seed=4)
    layer = viewer.add_image(stack, name="stem")
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-stackalign", "Pairwise averaging")
    widget.layer.value = layer
    widget.run()
    wait_for(widget.runner)
    shoot(viewer, "pairwise_widget.png")
    viewer.close()


def read_dialog() -> None:
    """The dialog a (Y, X, T) HDF5 opens: the dataset, its shape and the proposed axes."""
    if not SIMA.is_file():
        print(f"skipped the read dialog: {SIMA} is absent")
        return
    from napari_stackalign.napari._read_dialog import ReadChoiceDialog

    viewer = laptop_viewer()

    def drive() -> None:
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, ReadChoiceDialog):
            QTimer.singleShot(50, drive)
            return
        pump(10)
        dialog.grab().save(str(OUT / "read_dialog.png"))
        dialog.accept()

    QTimer.singleShot(0, drive)
    viewer.open(str(SIMA), plugin="napari-stackalign")
    pump()
    viewer.close()


def main(names: list[str]) -> int:
    for name in names or ["particles", "pairwise", "read_dialog"]:
        globals()[name]()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
