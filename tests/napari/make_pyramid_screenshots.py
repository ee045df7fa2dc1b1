"""Screenshots of the "Pyramid registration" and "Compare" widgets docked in napari.

Not a test (pytest does not collect it). Run it under a display, e.g.::

    QT_API=pyqt6 PYTHONPATH=src xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python tests/napari/make_pyramid_screenshots.py

It opens the bundled bright-field sample, masks its burned-in label, runs
the registration (smoothed) in a 1366x768 window, opens Compare with the result's "Compare with
input" button, measures before/after quality and writes
``docs/images/pyramid_widget.png`` and ``docs/images/compare_widget.png``.
"""

from __future__ import annotations

import sys

import numpy as np
from _screenshots import IMAGES as OUT
from _screenshots import laptop_viewer, shoot, wait_for
from qtpy.QtWidgets import QApplication

from napari_stackalign.io.samples import load_sample


def main() -> int:
    sample = load_sample("brightfield")
    viewer = laptop_viewer()
    image = viewer.add_image(np.asarray(sample.data), name="brightfield")
    paint = np.zeros(image.data.shape[-2:], np.uint8)
    paint[:24, :140] = 1
    viewer.add_labels(paint, name="label (ignored)", opacity=0.4)
    viewer.layers.selection.active = image
    app = QApplication.instance()

    _dock, pyramid = viewer.window.add_plugin_dock_widget("napari-stackalign", "Pyramid registration")
    pyramid.layer.value = image
    pyramid.mask_layer.value = viewer.layers["label (ignored)"]
    pyramid.form.set_values(smooth=True, window_length=7, polyorder=2)
    pyramid.run()
    wait_for(pyramid.runner)
    viewer.dims.set_current_step(0, 16)
    shoot(viewer, "pyramid_widget.png")

    # the result's "Compare with input" button docks Compare on the pair
    compare = pyramid.results.compare_with_input()
    app.processEvents()
    compare.measure()
    wait_for(compare.runner)
    compare.add_difference()
    wait_for(compare.runner)
    bar = compare._scroll.verticalScrollBar()
    bar.setValue(bar.maximum())
    app.processEvents()
    shoot(viewer, "compare_widget.png")
    print("wrote", OUT / "pyramid_widget.png", "and", OUT / "compare_widget.png")
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
