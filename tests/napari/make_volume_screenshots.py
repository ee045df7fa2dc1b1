"""Screenshot of the "Pyramid registration" widget on volumes over time, docked in a 1366x768 napari window.

Not a test (pytest does not collect it). Run it under a display, e.g.::

    XDG_CACHE_HOME=$(mktemp -d) QT_API=pyqt6 PYTHONPATH=src xvfb-run -a -s "-screen 0 1600x1000x24" \
        /work/main/.venv/bin/python tests/napari/make_volume_screenshots.py [OUT.png]

It writes a (T, Z, Y, X) ImageJ hyperstack of drifting beads (known drift,
Z step 2 µm) to a temporary folder, opens it with the plugin's reader,
registers it in 3-D with smoothing and writes ``docs/images/pyramid_volumes.png``
(or OUT.png: the form) and ``pyramid_volumes_drift.png`` beside it (scrolled to
the drift plot).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from _screenshots import IMAGES, laptop_viewer, wait_for
from qtpy.QtWidgets import QApplication

from napari_stackalign.io import write_stack
from napari_stackalign.synthetic_volume import make_volume_stack

OUT = IMAGES / "pyramid_volumes.png"


def main(out: Path = OUT) -> int:
    out.parent.mkdir(parents=True, exist_ok=True)
    vols = make_volume_stack(12, (24, 96, 96), scene="beads", snr=5.0, seed=1)
    folder = Path(tempfile.mkdtemp())
    path = write_stack(folder / "beads volumes.tif", vols.data, axes="TZYX", scale=(1.0, 2.0, 0.5, 0.5), units="µm")
    viewer = laptop_viewer()
    [image] = viewer.open(str(path), plugin="napari-stackalign")
    app = QApplication.instance()
    _dock, pyramid = viewer.window.add_plugin_dock_widget("napari-stackalign", "Pyramid registration")
    pyramid.layer.value = image
    pyramid.form.set_values(smooth=True, window_length=5, polyorder=2)
    pyramid.run()
    wait_for(pyramid.runner, seconds=300)
    viewer.dims.set_current_step(0, 11)
    viewer.dims.set_current_step(1, 12)  # the middle plane
    for layer in viewer.layers:
        layer.contrast_limits = (0.0, 0.35)  # the beads, not the noise's extremes
    for _ in range(20):
        app.processEvents()
    viewer.screenshot(str(out), canvas_only=False, flash=False)
    # the same window scrolled down to the transforms: the drift along z, y and x
    pyramid._scroll.ensureWidgetVisible(pyramid.panel.plot, 0, 0)
    for _ in range(20):
        app.processEvents()
    drift = out.with_name(out.stem + "_drift.png")
    viewer.screenshot(str(drift), canvas_only=False, flash=False)
    print("wrote", out, "and", drift, "window", viewer.window._qt_window.size())
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT))
