"""Dock widget "Particles": click particles, see the Gaussian fit at once, track them.

"Pick particles" creates (or reuses) the Points layer ``"<input> picks"`` on
the chosen image and puts it in add mode. Every click is fitted right away
(:func:`~napari_stackalign.fit_gaussian`, about a millisecond) in the frame
shown: on success the point moves to the fitted centre as a green ring, on
failure it stays where clicked as a red cross labelled with the reason. The
fit's parameters show in the widget; every point's fit is also in the
layer's features (``ok``, ``r2``, ``reason``, ...). Dragging a point refits
it. Undo removes the last pick, Delete removes the selected ones; picks are
saved to / loaded from CSV (napari can also save the Points layer itself).

"Track" follows the good picks through the stack in a worker
(:func:`~napari_stackalign.track_particles`) and adds the Tracks layer
``"<input> tracks"``, which the Trajectories widget uses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from magicgui.widgets import ComboBox, Container, FloatSpinBox, SpinBox
from napari.layers import Image, Points, Tracks
from napari.utils.notifications import show_info
from qtpy.QtWidgets import (
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QWidget,
)

from ..core.particles import (
    BOX_LIMITS,
    SPOT_TYPES,
    FitOptions,
    GaussianFit,
    TrackOptions,
    fit_gaussian,
    read_picks,
    track_particles,
    write_picks,
)
from ._forms import OptionsForm, layer_picker
from ._layers import frame_stack
from ._particle_layers import (
    PICKS_SUFFIX,
    TRACKS_SUFFIX,
    image_to_layer_coords,
    layer_to_image_coords,
    tracks_layer_kwargs,
)
from ._results import ResultsRow, result_name
from ._runner import TaskRunner, notify_user_error
from ._scripting import particles_recipe
from ._scrolling import ScrollingDock
from ._volume_run import volumes_elsewhere

__all__ = ["FAIL_COLOR", "FEATURE_COLUMNS", "OK_COLOR", "ParticlesWidget", "particle_numbers", "track_settings"]

OK_COLOR = (0.1, 0.85, 0.2, 1.0)
FAIL_COLOR = (0.95, 0.1, 0.1, 1.0)
#: the spot types as the form shows them, and the ``dark`` value each means
POLARITIES = {(name if value is None else f"{name} spots"): value for name, value in SPOT_TYPES.items()}
#: Per-point features of the picks layer (the fit of each click).
FEATURE_COLUMNS = {
    "ok": False,
    "reason": "not fitted",
    "label": "",
    "particle": -1,
    "text_color": "yellow",
    "frame": 0,
    "r2": np.nan,
    "amplitude": np.nan,
    "background": np.nan,
    "sigma_major": np.nan,
    "sigma_minor": np.nan,
    "angle": np.nan,
    "pos_err": np.nan,
}


def _empty_features() -> pd.DataFrame:
    """An empty features table with the right column types."""
    dtypes = {bool: "bool", str: "object", int: "int64", float: "float64"}
    return pd.DataFrame(
        {k: pd.Series([], dtype=dtypes.get(type(v), "float64")) for k, v in FEATURE_COLUMNS.items()}
    )


def track_settings(params: dict) -> list[str]:
    """The tracking settings in a result's name: ``["box 11", "R² ≥ 0.5", "auto"]``."""
    spots = next(name for name, value in POLARITIES.items() if value is params["dark"])
    return [f"box {int(params['box'])}", f"R\u00b2 \u2265 {params['min_r2']:g}", spots]


def particle_numbers(ok: np.ndarray) -> np.ndarray:
    """Each pick's particle number: good picks 0, 1, 2, ... in order (the numbers Track and
    Trajectories use), rejected picks -1."""
    ok = np.asarray(ok, dtype=bool)
    numbers = np.full(ok.shape, -1, dtype=np.int64)
    numbers[ok] = np.arange(int(ok.sum()))
    return numbers


def _label_offset(box: float) -> float:
    """How far above its pick (image pixels) a label is drawn: just clear of the ring."""
    return box * 0.35 + 5


def _label_style(ndim: int, box: float) -> dict:
    """The picks' labels: centred just above the ring, each in the colour that reads where it is drawn."""
    return {
        "string": "{label}",
        "size": 10,
        "color": {"feature": "text_color"},
        "anchor": "center",
        "translation": [0] * (ndim - 2) + [-_label_offset(box), 0],
    }


class ParticlesWidget(ScrollingDock):
    """Pick particles with live Gaussian-fit feedback, then track them.

    The settings are a magicgui form built from :class:`FitOptions` (remembered
    between sessions); the image picker is magicgui's napari layer type.
    """

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self._updating = False
        self._connected: set[int] = set()
        self.last_fit: GaussianFit | None = None

        self.inputs = self.add_magic(Container(widgets=[layer_picker(
            Image, "layer", "Image", "The image (a time series, or one frame) to click particles on."
        )]))
        self.layer = self.inputs.layer
        self.form = self.add_magic(self._build_form())
        self.box, self.min_r2, self.polarity = self.form.box, self.form.min_r2, self.form.dark
        self.pick_button = QPushButton("Pick particles (click on them)")
        self.pick_button.setToolTip("Creates or selects the Points layer '<image> picks' in add mode.")
        self.pick_button.clicked.connect(self._on_pick_clicked)
        fit_box = self._build_fit_panel()
        self.count_label = QLabel("No picks yet.")
        edit_row, file_row = self._build_edit_buttons()
        self.runner = TaskRunner("Track", self._on_track_clicked)
        self.result_label = QLabel("")
        self.result_label.setWordWrap(True)

        layout = self.body_layout
        layout.addWidget(self.pick_button)
        layout.addWidget(fit_box)
        layout.addWidget(self.count_label)
        layout.addLayout(edit_row)
        layout.addLayout(file_row)
        layout.addWidget(self.runner)
        layout.addWidget(self.result_label)
        self.results = ResultsRow(napari_viewer, "particles")
        self.results.compare_button.setToolTip("Tracks are points, not an image: nothing to compare here.")
        layout.addWidget(self.results)
        layout.addStretch(1)
        self.layer.changed.connect(self._on_image_changed)
        self._on_image_changed()

    def _build_form(self) -> OptionsForm:
        """Box, R\u00b2 gate and spot type: defaults, ranges and tooltips from :class:`FitOptions`."""
        r2 = FitOptions.specs()["min_r2"]
        overrides = {
            "box": {"widget": SpinBox, "min": BOX_LIMITS[0], "max": BOX_LIMITS[1], "step": 2, "label": "Box (px)"},
            # R\u00b2 stays below 1: a gate of 1 would reject every fit
            "min_r2": {"widget": FloatSpinBox, "min": r2.minimum, "max": 0.99, "step": 0.05, "label": "Min R\u00b2"},
            "dark": {"widget": ComboBox, "choices": list(POLARITIES.items()), "label": "Spots"},
        }
        return OptionsForm(FitOptions, ("box", "min_r2", "dark"), key="particles", overrides=overrides)

    def parameters(self) -> dict[str, Any]:
        """The form's values as :class:`FitOptions` keywords."""
        values = self.form.option_values()
        return {"box": int(values["box"]), "min_r2": float(values["min_r2"]), "dark": values["dark"]}

    def _build_fit_panel(self) -> QGroupBox:
        """The last fit's status and parameters."""
        fit_box = QGroupBox("Last fit")
        self.fit_status = QLabel("Click a particle in the image.")
        self.fit_status.setWordWrap(True)
        self.fit_labels: dict[str, QLabel] = {}
        fit_form = QFormLayout()
        fit_form.addRow(self.fit_status)
        for key, text in (
            ("center", "Centre (y, x)"),
            ("amplitude", "Amplitude"),
            ("background", "Background"),
            ("sigma", "\u03c3 major / minor"),
            ("angle", "Angle"),
            ("r2", "R\u00b2"),
            ("pos_err", "Centre error"),
        ):
            label = QLabel("-")
            self.fit_labels[key] = label
            fit_form.addRow(text, label)
        fit_box.setLayout(fit_form)
        return fit_box

    def _build_edit_buttons(self) -> tuple[QHBoxLayout, QHBoxLayout]:
        """Undo / delete / re-fit, and save / load picks."""
        self.undo_button = QPushButton("Undo last pick")
        self.delete_button = QPushButton("Delete selected")
        self.refit_button = QPushButton("Re-fit all")
        self.refit_button.setToolTip("Fit every pick again (after changing the box, gate or spot type).")
        self.save_button = QPushButton("Save picks…")
        self.load_button = QPushButton("Load picks…")
        self.undo_button.clicked.connect(self.undo_last)
        self.delete_button.clicked.connect(self.delete_selected)
        self.refit_button.clicked.connect(self.refit_all)
        self.save_button.clicked.connect(self._on_save_clicked)
        self.load_button.clicked.connect(self._on_load_clicked)
        edit_row = QHBoxLayout()
        for b in (self.undo_button, self.delete_button, self.refit_button):
            edit_row.addWidget(b)
        file_row = QHBoxLayout()
        file_row.addWidget(self.save_button)
        file_row.addWidget(self.load_button)
        return edit_row, file_row

    # ------------------------------------------------------------ settings
    @property
    def dark(self) -> bool | None:
        return self.form.dark.value

    def fit_options(self) -> FitOptions:
        """The fits' options: box, gate and polarity from the form, the rest at their defaults."""
        return FitOptions(**self.parameters())

    # ---------------------------------------------------------------- layers
    def _image(self) -> Any:
        image = self.layer.value
        if image is None:
            raise ValueError("open an image (a time series) first.")
        if getattr(image, "rgb", False):
            raise ValueError(f"layer {image.name!r} is RGB: split its channels first.")
        volumes_elsewhere(image, "the Particles widget")
        if image.ndim not in (2, 3):
            raise ValueError(f"layer {image.name!r} has {image.ndim} dimensions: pick particles on a (T, Y, X) image.")
        return image

    def picks_layer(self, *, create: bool = True) -> Points | None:
        """The ``"<image> picks"`` Points layer (created when missing)."""
        image = self.layer.value
        if image is None:
            return None
        name = f"{image.name} {PICKS_SUFFIX}"
        if name in self.viewer.layers and isinstance(self.viewer.layers[name], Points):
            layer = self.viewer.layers[name]
        elif create:
            step = tuple(self.viewer.dims.current_step)
            layer = self.viewer.add_points(
                np.empty((0, image.ndim)),
                name=name,
                scale=tuple(image.scale),
                translate=tuple(image.translate),
                size=max(6, int(self.form.box.value * 0.7)),
                face_color="#1ad933",
                border_width=0,
                symbol="ring",
                features=_empty_features(),
                feature_defaults=dict(FEATURE_COLUMNS),
                text=_label_style(image.ndim, float(self.form.box.value)),
            )
            # an empty layer must not move the viewer off the frame being picked
            self.viewer.dims.current_step = step
        else:
            return None
        self._connect(layer)
        return layer

    def _connect(self, layer: Points) -> None:
        if id(layer) in self._connected:
            return
        layer.events.data.connect(self._on_points_data)
        self._connected.add(id(layer))

    def _on_image_changed(self, *_: Any) -> None:
        layer = self.picks_layer(create=False)
        self._update_count(layer)

    def _on_pick_clicked(self) -> None:
        try:
            self._image()
            layer = self.picks_layer()
        except ValueError as exc:
            notify_user_error(exc)
            return
        self.viewer.layers.selection.active = layer
        layer.mode = "add"
        self.fit_status.setText("Click particles: each click is fitted at once.")

    # -------------------------------------------------------------- fitting
    def _on_points_data(self, event: Any) -> None:
        if self._updating:
            return
        action = str(getattr(event, "action", ""))
        layer = event.source
        if action in ("added", "changed"):
            n = len(layer.data)
            indices = sorted({int(i) % n for i in getattr(event, "data_indices", ()) if n})
            if indices:
                try:
                    self.fit_points(layer, indices)
                except ValueError as exc:
                    notify_user_error(exc)
        elif action == "removed":
            self._restyle(layer)

    def fit_points(self, layer: Points, indices: list[int]) -> list[GaussianFit]:
        """Fit the points ``indices`` of ``layer`` in their frames; move the
        good ones onto the fitted centre; style and label all of them."""
        image = self._image()
        opts = self.fit_options()
        coords = layer_to_image_coords(layer, image, layer.data[indices])
        data = layer.data.copy()
        features = self._features(layer)
        fits = []
        for row, idx in zip(coords, indices):
            if image.ndim == 3:
                t = int(np.clip(np.round(row[0]), 0, image.data.shape[0] - 1))
                frame = np.asarray(image.data[t])
            else:
                t = 0
                frame = np.asarray(image.data)
            fit = fit_gaussian(frame, row[-2:], options=opts)
            fits.append(fit)
            if fit.ok:
                new = row.copy()
                new[-2:] = (fit.y, fit.x)
                data[idx] = image_to_layer_coords(image, layer, new)[0]
            values = fit.as_dict()
            features.loc[idx, "ok"] = bool(fit.ok)
            features.loc[idx, "reason"] = fit.reason
            features.loc[idx, "frame"] = t
            for key in ("r2", "amplitude", "background", "sigma_major", "sigma_minor", "angle", "pos_err"):
                features.loc[idx, key] = float(values[key])
        self._updating = True
        try:
            layer.data = data
            layer.features = features
        finally:
            self._updating = False
        self._restyle(layer)
        if fits:
            self._show_fit(fits[-1])
        return fits

    def _features(self, layer: Points) -> pd.DataFrame:
        features = pd.DataFrame(layer.features).copy().reset_index(drop=True)
        for key, default in FEATURE_COLUMNS.items():
            if key not in features.columns:
                features[key] = default
        features["ok"] = features["ok"].astype(bool)
        features["reason"] = features["reason"].astype(object)
        return features

    def _restyle(self, layer: Points) -> None:
        """Colours, symbols and labels from the features (green ring / red cross)."""
        n = len(layer.data)
        self._updating = True
        try:
            if n:
                features = self._features(layer)
                ok = features["ok"].to_numpy(dtype=bool)
                particle = particle_numbers(ok)
                features["particle"] = particle
                # rejected picks carry no number (the red cross says it; the reason is in "Last fit" and the
                # features): short labels are never cut at the image's sides
                features["label"] = [str(p) if p >= 0 else "" for p in particle]
                features["text_color"] = self._label_colours(layer)
                layer.features = features
                layer.face_color = np.where(ok[:, None], np.array(OK_COLOR)[None], np.array(FAIL_COLOR)[None])
                layer.symbol = np.array(["ring" if v else "x" for v in ok], dtype=object)
                layer.refresh()
        finally:
            self._updating = False
        self._update_count(layer)

    def _label_colours(self, layer: Points) -> list[str]:
        """Per pick, the label colour that reads where the label is drawn: black on a bright part of
        the image, yellow on a dark part or off the image (napari's dark canvas)."""
        image = self.layer.value
        n = len(layer.data)
        if image is None or not n or image.ndim not in (2, 3):
            return ["yellow"] * n
        coords = layer_to_image_coords(layer, image, layer.data)
        low, high = (float(v) for v in image.contrast_limits)
        above = _label_offset(float(self.form.box.value))
        colours = []
        for row in coords:
            t = int(np.clip(np.round(row[0]), 0, image.data.shape[0] - 1)) if image.ndim == 3 else None
            frame = image.data[t] if t is not None else image.data
            y = int(np.round(row[-2] - above))
            x = int(np.round(row[-1]))
            if not (0 <= y < frame.shape[-2] and 0 <= x < frame.shape[-1]):
                colours.append("yellow")
                continue
            patch = np.asarray(frame[max(y - 3, 0) : y + 4, max(x - 4, 0) : x + 5], dtype=np.float64)
            level = (float(np.mean(patch)) - low) / (high - low) if high > low else 0.0
            colours.append("black" if level > 0.5 else "yellow")
        return colours

    def _update_count(self, layer: Points | None) -> None:
        if layer is None or len(layer.data) == 0:
            self.count_label.setText("No picks yet.")
            return
        ok = self._features(layer)["ok"].to_numpy(dtype=bool)
        self.count_label.setText(
            f"{len(ok)} pick(s): {int(ok.sum())} good (green, numbered 0..{max(int(ok.sum()) - 1, 0)} as in "
            f"Trajectories), {int((~ok).sum())} rejected (red, not tracked)."
        )

    def _show_fit(self, fit: GaussianFit) -> None:
        self.last_fit = fit
        if not fit.ok:
            # a rejected fit's numbers mean nothing (a sigma of 44963 px): show the reason only
            self.fit_status.setText(f"<b style='color:#ee2222'>rejected</b>: {fit.reason}")
            for key, label in self.fit_labels.items():
                label.setText(f"rejected: {fit.reason}" if key == "center" else "-")
            return
        self.fit_status.setText(f"<b style='color:#22bb33'>fit OK</b> ({'dark' if fit.dark else 'bright'} spot)")
        fmt = lambda v, d=2: "-" if not np.isfinite(v) else f"{v:.{d}f}"
        self.fit_labels["center"].setText(f"{fmt(fit.y)}, {fmt(fit.x)}")
        self.fit_labels["amplitude"].setText(fmt(fit.amplitude, 1))
        self.fit_labels["background"].setText(fmt(fit.background, 1))
        self.fit_labels["sigma"].setText(f"{fmt(fit.sigma_major)} / {fmt(fit.sigma_minor)} px")
        self.fit_labels["angle"].setText(f"{fmt(fit.angle, 1)}\u00b0")
        self.fit_labels["r2"].setText(fmt(fit.r2, 3))
        self.fit_labels["pos_err"].setText(f"{fmt(fit.pos_err, 3)} px")

    # ------------------------------------------------------------- editing
    def undo_last(self) -> None:
        """Remove the last pick."""
        layer = self.picks_layer(create=False)
        if layer is None or len(layer.data) == 0:
            return
        layer.selected_data = {len(layer.data) - 1}
        layer.remove_selected()

    def delete_selected(self) -> None:
        """Remove the selected picks."""
        layer = self.picks_layer(create=False)
        if layer is None or not layer.selected_data:
            show_info("Select picks first (select mode in the Points layer controls).")
            return
        layer.remove_selected()

    def refit_all(self) -> None:
        """Fit every pick again with the current settings."""
        layer = self.picks_layer(create=False)
        if layer is None or len(layer.data) == 0:
            return
        try:
            self.fit_points(layer, list(range(len(layer.data))))
        except ValueError as exc:
            notify_user_error(exc)

    def good_picks(self) -> np.ndarray:
        """(N, 3) (frame, y, x) of the picks that passed the fit, in image pixels."""
        image = self._image()
        layer = self.picks_layer(create=False)
        if layer is None or len(layer.data) == 0:
            raise ValueError("no picks: press 'Pick particles' and click on particles first.")
        ok = self._features(layer)["ok"].to_numpy(dtype=bool)
        if not ok.any():
            raise ValueError("no pick passed the fit (all red): click closer to particles, or change the box or gate.")
        coords = layer_to_image_coords(layer, image, layer.data[ok])
        if image.ndim == 2:
            coords = np.column_stack([np.zeros(coords.shape[0]), coords])
        return coords

    def save_picks(self, path: str | Path) -> Path:
        """Write all picks with their fit status (ok, R², reason) to CSV."""
        image = self._image()
        layer = self.picks_layer(create=False)
        if layer is None or len(layer.data) == 0:
            raise ValueError("no picks to save.")
        coords = layer_to_image_coords(layer, image, layer.data)
        if image.ndim == 2:
            coords = np.column_stack([np.zeros(coords.shape[0]), coords])
        features = self._features(layer)
        return write_picks(
            path, coords, ok=features["ok"].tolist(), r2=features["r2"].tolist(), reason=features["reason"].tolist()
        )

    def load_picks(self, path: str | Path) -> None:
        """Replace the picks by those in a CSV file (each one is fitted again)."""
        image = self._image()
        picks = read_picks(path)
        coords = picks if image.ndim == 3 else picks[:, 1:]
        layer = self.picks_layer()
        data = image_to_layer_coords(image, layer, coords)
        self._updating = True
        try:
            layer.data = np.empty((0, layer.ndim))
        finally:
            self._updating = False
        layer.data = data  # "added" for every point: each is fitted

    def _on_save_clicked(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save picks", "picks.csv", "CSV (*.csv)")
        if not path:
            return
        try:
            self.save_picks(path)
            show_info(f"Picks saved to {path}")
        except (ValueError, OSError) as exc:
            notify_user_error(exc)

    def _on_load_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load picks", "", "CSV (*.csv)")
        if not path:
            return
        try:
            self.load_picks(path)
        except (ValueError, OSError) as exc:
            notify_user_error(exc)

    # ------------------------------------------------------------- tracking
    def _on_track_clicked(self) -> None:
        try:
            image = self._image()
            stack = frame_stack(image)
            picks = self.good_picks()
        except ValueError as exc:
            notify_user_error(exc)
            return
        options = TrackOptions(**self.fit_options().to_dict())
        params = {name: getattr(options, name) for name in ("box", "min_r2", "dark")}

        recipe = particles_recipe(image, options, picks_layer=getattr(self.picks_layer(create=False), "name", None))

        def on_result(tracks: Any) -> None:
            self._add_tracks_layer(image, tracks, params)
            self.results.set_recipe(recipe)

        self.runner.start(track_particles, stack, picks, on_result=on_result, options=options)

    def _add_tracks_layer(self, image: Any, tracks: Any, params: dict) -> Tracks:
        data, kwargs = tracks_layer_kwargs(image, tracks, params)
        kwargs["name"] = result_name(image.name, TRACKS_SUFFIX, "particles", track_settings(params))
        picks = self.picks_layer(create=False)
        picking = picks is not None and str(picks.mode) == "add"
        step = tuple(self.viewer.dims.current_step)
        # replace (or keep) the previous run's tracks, found by its run id
        (layer,) = self.results.add_layers(image.name, [(data, kwargs)], compare_with=None, layer_type="tracks")
        self.viewer.dims.current_step = step  # stay on the frame being picked
        if picking:
            # napari selects the new layer; keep clicks adding picks
            self.viewer.layers.selection.active = picks
            picks.mode = "add"
        failed = int((~tracks.ok).sum())
        total = tracks.ok.size
        per = ", ".join(f"{i}: {100 * r:.0f}%" for i, r in enumerate(tracks.success_rate()))
        self.result_label.setText(
            f"Tracked {tracks.n_particles} particle(s) through {tracks.n_frames} frames; "
            f"{failed} of {total} fits failed (flagged, never used). Found per particle: {per}."
        )
        return layer
