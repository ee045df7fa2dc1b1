"""Screenshots of the "Pyramid registration" and "Compare" widgets docked in napari.

Not a test (pytest does not collect it). Run it under a display, e.g.::

    xvfb-run -a -s "-screen 0 1600x1000x24" /tmp/venv/bin/python tests/napari/make_pyramid_screenshots.py

It opens the bundled bright-field sample, masks its burned-in label, runs
the registration (smoothed), opens Compare with the result's "Compare with
input" button, measures before/after quality and writes
``docs/images/pyramid_widget.png`` and ``docs/images/compare_widget.png``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import napari
import numpy as np
from qtpy.QtWidgets import QApplication

from napari_stackalign.io.samples import load_sample

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "docs" / "images"


def _wait(app, runner, seconds: float = 60.0) -> None:
    start = time.time()
    while runner.worker is not None:
        app.processEvents()
        if time.time() - start > seconds:
            raise RuntimeError("the run did not finish in time")
        time.sleep(0.02)
    for _ in range(20):
        app.processEvents()


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    sample = load_sample("brightfield")
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1500, 950)
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
    _wait(app, pyramid.runner)
    viewer.dims.set_current_step(0, 16)
    viewer.screenshot(str(OUT / "pyramid_widget.png"), canvas_only=False, flash=False)

    # the result's "Compare with input" button docks Compare on the pair
    compare = pyramid.results.compare_with_input()
    app.processEvents()
    compare.measure()
    _wait(app, compare.runner)
    compare.add_difference()
    _wait(app, compare.runner)
    bar = compare._scroll.verticalScrollBar()
    bar.setValue(bar.maximum())
    app.processEvents()
    viewer.screenshot(str(OUT / "compare_widget.png"), canvas_only=False, flash=False)
    print("wrote", OUT / "pyramid_widget.png", "and", OUT / "compare_widget.png")
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
