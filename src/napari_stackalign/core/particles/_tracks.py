"""`ParticleTracks`: the table of fitted particle positions over time.

One row per (frame, particle): the fitted centre, the spot parameters, the
goodness of fit, ``ok`` and the reason a fit was rejected. Failed fits keep
their row (``ok`` False, values NaN where nothing was fitted) so a user sees
them; every consumer uses only ``ok`` rows.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...files import atomic_write_text, jsonable
from ._gaussian_fit import FIT_COLUMNS

__all__ = ["TRACK_COLUMNS", "ParticleTracks"]

#: Column order of the CSV table: frame, particle, the fit's columns, the reason a fit failed.
TRACK_COLUMNS = ("frame", "particle", *FIT_COLUMNS, "reason")
_FLOAT_COLUMNS = TRACK_COLUMNS[2:11]


@dataclass
class ParticleTracks:
    """Fitted positions of ``N`` particles in ``T`` frames.

    Attributes
    ----------
    y, x, amplitude, sigma_major, sigma_minor, angle, background, r2, pos_err : ndarray, shape (T, N)
        Fit results (see :class:`~napari_stackalign.core.particles.GaussianFit`);
        NaN where no fit was attempted or it did not converge.
    ok : ndarray of bool, shape (T, N)
        True where the fit passed every quality gate. Only these positions
        are used downstream.
    reason : ndarray of str, shape (T, N)
        Why a fit failed (empty where ``ok``).
    shape : (int, int)
        Frame shape (rows, cols), needed for the rotation centre.
    picks : ndarray, shape (N, 3)
        The (frame, y, x) each particle was started from.
    params : dict
        Tracking parameters (box, gates, ...), for provenance.
    """

    y: np.ndarray
    x: np.ndarray
    amplitude: np.ndarray
    sigma_major: np.ndarray
    sigma_minor: np.ndarray
    angle: np.ndarray
    background: np.ndarray
    r2: np.ndarray
    pos_err: np.ndarray
    ok: np.ndarray
    reason: np.ndarray
    shape: tuple[int, int]
    picks: np.ndarray
    params: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.y = np.asarray(self.y, dtype=np.float64)
        if self.y.ndim != 2:
            raise ValueError(f"track arrays must have shape (T, N), got {self.y.shape}.")
        for name in _FLOAT_COLUMNS:
            arr = np.asarray(getattr(self, name), dtype=np.float64)
            if arr.shape != self.y.shape:
                raise ValueError(f"{name} has shape {arr.shape}, expected {self.y.shape}.")
            setattr(self, name, arr)
        self.ok = np.asarray(self.ok, dtype=bool).reshape(self.y.shape)
        reason = np.empty(self.y.shape, dtype=object)
        reason[...] = np.asarray(self.reason, dtype=object).reshape(self.y.shape)
        self.reason = reason
        self.shape = (int(self.shape[0]), int(self.shape[1]))
        self.picks = np.asarray(self.picks, dtype=np.float64).reshape(-1, 3)
        if self.picks.shape[0] != self.y.shape[1]:
            raise ValueError(f"{self.picks.shape[0]} picks for {self.y.shape[1]} particles.")
        self.params = dict(self.params)

    # ------------------------------------------------------------------ basics
    @property
    def n_frames(self) -> int:
        return int(self.y.shape[0])

    @property
    def n_particles(self) -> int:
        return int(self.y.shape[1])

    @property
    def frame_center(self) -> tuple[float, float]:
        """Centre of the frame ``((H - 1) / 2, (W - 1) / 2)``."""
        return ((self.shape[0] - 1) / 2.0, (self.shape[1] - 1) / 2.0)

    def positions(self, *, only_ok: bool = True) -> np.ndarray:
        """(T, N, 2) fitted (y, x); NaN where the fit failed (``only_ok``)."""
        pos = np.stack([self.y, self.x], axis=-1)
        if only_ok:
            pos = np.where(self.ok[..., None], pos, np.nan)
        return pos

    def success_rate(self) -> np.ndarray:
        """(N,) share of frames with a good fit, per particle."""
        return self.ok.mean(axis=0)

    def select(self, particles: Any) -> ParticleTracks:
        """A table with only the given particle indices (renumbered from 0)."""
        idx = np.asarray(particles, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.n_particles):
            raise ValueError(f"particle indices must be in 0..{self.n_particles - 1}, got {idx.tolist()}.")
        kw = {name: getattr(self, name)[:, idx] for name in (*_FLOAT_COLUMNS, "ok", "reason")}
        params = dict(self.params)
        params["selected_from"] = idx.tolist()
        return ParticleTracks(**kw, shape=self.shape, picks=self.picks[idx], params=params)

    # ------------------------------------------------------------------ tables
    def to_table(self) -> dict[str, np.ndarray]:
        """Column name -> array in long format (one row per frame and particle)."""
        t, n = self.y.shape
        table: dict[str, np.ndarray] = {
            "frame": np.repeat(np.arange(t), n),
            "particle": np.tile(np.arange(n), t),
        }
        for name in _FLOAT_COLUMNS:
            table[name] = getattr(self, name).reshape(-1)
        table["ok"] = self.ok.reshape(-1)
        table["reason"] = self.reason.reshape(-1)
        return table

    def to_dataframe(self) -> Any:
        """The long table as a :class:`pandas.DataFrame` (needs pandas)."""
        try:
            import pandas as pd
        except ImportError as exc:  # pragma: no cover - pandas is usually present
            raise ImportError("to_dataframe needs pandas; use to_table() or to_csv() without it.") from exc
        return pd.DataFrame(self.to_table())

    def to_csv(self, path: str | Path | None = None) -> str:
        """Write the long table as CSV (``#`` header lines hold the frame
        shape, the picks and the parameters). Returns the text."""
        buf = io.StringIO()
        buf.write("# napari-stackalign particle tracks\n")
        buf.write(f"# shape={json.dumps(list(self.shape))}\n")
        buf.write(f"# picks={json.dumps(jsonable(self.picks))}\n")
        buf.write(f"# params={json.dumps(jsonable(self.params))}\n")
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(TRACK_COLUMNS)
        table = self.to_table()
        rows = len(table["frame"])
        for i in range(rows):
            writer.writerow(
                [int(table["frame"][i]), int(table["particle"][i])]
                + [repr(float(table[name][i])) for name in _FLOAT_COLUMNS]
                + [int(bool(table["ok"][i])), table["reason"][i]]
            )
        text = buf.getvalue()
        if path is not None:
            atomic_write_text(Path(path), text)
        return text

    @classmethod
    def from_csv(cls, source: str | Path) -> ParticleTracks:
        """Read a table written by :meth:`to_csv`."""
        path = Path(source)
        try:
            text = path.read_text()
        except OSError as exc:
            raise ValueError(f"cannot read particle tracks {path}: {exc}") from exc
        meta: dict[str, Any] = {}
        lines = []
        for line in text.splitlines():
            if line.startswith("#"):
                body = line[1:].strip()
                for key in ("shape", "picks", "params"):
                    if body.startswith(key + "="):
                        meta[key] = json.loads(body[len(key) + 1 :])
            elif line.strip():
                lines.append(line)
        rows = list(csv.DictReader(lines))
        if not rows or "frame" not in rows[0] or "particle" not in rows[0]:
            raise ValueError(f"{path} is not a particle tracks table (needs frame and particle columns).")
        if "shape" not in meta:
            raise ValueError(f"{path} has no '# shape=' header line; write it with ParticleTracks.to_csv.")
        frames = np.array([int(r["frame"]) for r in rows])
        parts = np.array([int(r["particle"]) for r in rows])
        t, n = int(frames.max()) + 1, int(parts.max()) + 1
        arrays = {name: np.full((t, n), np.nan) for name in _FLOAT_COLUMNS}
        ok = np.zeros((t, n), dtype=bool)
        reason = np.full((t, n), "not fitted", dtype=object)
        for r, f, p in zip(rows, frames, parts):
            for name in _FLOAT_COLUMNS:
                value = r.get(name, "")
                arrays[name][f, p] = float(value) if value not in ("", None) else np.nan
            ok[f, p] = str(r.get("ok", "0")).strip().lower() in ("1", "true")
            reason[f, p] = r.get("reason", "") or ""
        picks = np.asarray(meta.get("picks", np.column_stack([np.zeros(n), arrays["y"][0], arrays["x"][0]])))
        return cls(**arrays, ok=ok, reason=reason, shape=tuple(meta["shape"]), picks=picks, params=meta.get("params", {}))

    # ------------------------------------------------------------- dictionary
    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dictionary (for layer metadata); NaN as null."""
        out: dict[str, Any] = {
            "format": "napari-stackalign particle tracks",
            "version": 1,
            "shape": list(self.shape),
            "picks": jsonable(self.picks),
            "params": jsonable(self.params),
            "ok": self.ok.astype(int).tolist(),
            "reason": self.reason.tolist(),
        }
        for name in _FLOAT_COLUMNS:
            out[name] = jsonable(getattr(self, name))
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ParticleTracks:
        """Inverse of :meth:`to_dict`."""
        try:
            arrays = {
                name: np.array([[np.nan if v is None else v for v in row] for row in data[name]], dtype=np.float64)
                for name in _FLOAT_COLUMNS
            }
            return cls(
                **arrays,
                ok=np.asarray(data["ok"], dtype=bool),
                reason=np.asarray(data["reason"], dtype=object),
                shape=tuple(data["shape"]),
                picks=np.asarray(data["picks"], dtype=np.float64),
                params=data.get("params", {}),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a particle tracks dictionary: {exc}") from exc

    # ------------------------------------------------------------------ napari
    def to_napari_tracks(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Data for a napari Tracks layer: (K, 4) rows (track_id, t, y, x) of
        the good fits, and per-row features (r2, amplitude)."""
        t_idx, p_idx = np.nonzero(self.ok)
        order = np.lexsort((t_idx, p_idx))
        t_idx, p_idx = t_idx[order], p_idx[order]
        data = np.column_stack([p_idx, t_idx, self.y[t_idx, p_idx], self.x[t_idx, p_idx]]).astype(np.float64)
        features = {"r2": self.r2[t_idx, p_idx], "amplitude": self.amplitude[t_idx, p_idx]}
        return data, features
