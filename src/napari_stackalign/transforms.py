"""`FrameTransforms`: the one result type every registration method returns.

One rigid/similarity transform per frame, stored as plain per-frame arrays.

Sign convention (used everywhere in this package)
-------------------------------------------------
``dy, dx`` is the *correction* that moves frame ``t`` onto the reference, the
sign :func:`skimage.registration.phase_cross_correlation` returns: the
registered frame is ``registered[p] = frame[p - (dy, dx)]`` for a pure
translation. The sample's drift is the negative of the correction.

The full per-frame transform maps a point ``p = (row, col)`` of the input frame
to its position in the registered (reference) frame::

    p_registered = scale * R(angle) @ (p - center) + center + (dy, dx)

with ``R(angle) = [[cos a, -sin a], [sin a, cos a]]`` in (row, col) order, so a
positive angle turns the content counter-clockwise as displayed (rows grow
downwards). ``angle`` is in degrees.
"""

from __future__ import annotations

import csv
import io
import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._transforms_read import csv_fields, dict_fields
from .files import atomic_write_text, jsonable
from .textfiles import read_text_file

__all__ = ["NUMERIC_COLUMNS", "TABLE_COLUMNS", "FrameTransforms", "NoSignalWarning"]

#: Column order of the CSV / HDF5 transform table.
TABLE_COLUMNS = ("frame", "dy", "dx", "angle", "scale", "quality", "ok", "reason")
#: The numeric columns of the table (``reason`` is text).
NUMERIC_COLUMNS = TABLE_COLUMNS[:-1]
#: The reason a frame gets when it is marked failed without one.
UNSPECIFIED_REASON = "flagged (no reason recorded)"


#: What :meth:`FrameTransforms.resolve_failed` can do with a failed frame.
FAILED_POLICIES = ("interpolate", "identity", "apply")


def _frame_list(frames: Any, limit: int = 8) -> str:
    """'3, 7, 12' (at most ``limit`` numbers, then '... (N in all)')."""
    frames = [int(f) for f in np.asarray(frames).reshape(-1)]
    text = ", ".join(str(f) for f in frames[:limit])
    return text + (f", ... ({len(frames)} in all)" if len(frames) > limit else "")


class NoSignalWarning(UserWarning):
    """No frame of a stack has a trustworthy transform: nothing was corrected."""


def _as_float_array(values: Any, n: int, default: float, name: str) -> np.ndarray:
    if values is None:
        return np.full(n, default, dtype=np.float64)
    given = np.asarray(values, dtype=np.float64)
    arr = given.reshape(-1)
    if given.ndim == 0 and n != 1:
        arr = np.full(n, float(given))
    if arr.size != n:
        raise ValueError(
            f"{name} has {arr.size} values but there are {n} frames (dy has {n})."
        )
    return arr.copy()


def _as_reasons(values: Any, ok: np.ndarray) -> np.ndarray:
    """One text per frame: '' where ``ok``, a non-empty reason where not."""
    n = ok.size
    if values is None:
        reasons = np.full(n, "", dtype=object)
    elif isinstance(values, str):
        reasons = np.full(n, values, dtype=object)
    else:
        reasons = np.array(
            [
                "" if v is None else str(v)
                for v in np.asarray(values, dtype=object).reshape(-1)
            ],
            dtype=object,
        )
        if reasons.size != n:
            raise ValueError(
                f"reason has {reasons.size} values but there are {n} frames."
            )
    reasons[ok] = ""
    reasons[~ok & (reasons == "")] = UNSPECIFIED_REASON
    return reasons


def _join_reasons(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Frame by frame, the non-empty reasons of both, joined with '; '."""
    return np.array(
        ["; ".join(r for r in (a, b) if r) for a, b in zip(first, second)], dtype=object
    )


def _interpolate_over(values: np.ndarray, good: np.ndarray) -> np.ndarray:
    """``values`` with the entries where ``good`` is False linearly interpolated
    over the frame index from the good ones (the nearest good value beyond the ends)."""
    index = np.arange(values.size)
    return np.interp(index, index[good], values[good])


@dataclass
class FrameTransforms:
    """Per-frame similarity transforms (translation, rotation, scale).

    Parameters
    ----------
    dy, dx : array_like of float, shape (T,)
        Correction in pixels (rows, columns) that moves each frame onto the
        reference (see the module docstring for the sign).
    angle : array_like of float, shape (T,), optional
        Rotation in degrees about ``center`` (counter-clockwise as displayed).
        Default 0.
    scale : array_like of float, shape (T,), optional
        Isotropic scale about ``center``. Default 1.
    center : tuple of float, optional
        (row, col) centre of rotation and scale, in input-frame pixels.
        Default (0, 0); methods that estimate rotation set it explicitly
        (usually the frame centre ``((H - 1) / 2, (W - 1) / 2)``).
    quality : array_like of float, shape (T,), optional
        A per-frame score whose meaning each method documents (NaN if
        unknown).
    ok : array_like of bool, shape (T,), optional
        Whether each frame's transform is trustworthy. A frame with
        ``ok=False`` is *failed*: by default it is not applied as estimated
        (see :meth:`resolve_failed`), and its transform may be NaN.
    reason : array_like of str, shape (T,), optional
        Why each failed frame failed ('' for trustworthy frames; a failed frame
        without a reason gets ``"flagged (no reason recorded)"``).
    method : str
        Name of the method that produced the transforms.
    params : dict
        Parameters of that method (JSON-serialisable), for provenance.
    """

    dy: np.ndarray
    dx: np.ndarray
    angle: np.ndarray | None = None
    scale: np.ndarray | None = None
    center: tuple[float, float] = (0.0, 0.0)
    quality: np.ndarray | None = None
    ok: np.ndarray | None = None
    reason: np.ndarray | None = None
    method: str = ""
    params: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        dy = np.asarray(self.dy, dtype=np.float64).reshape(-1)
        n = dy.size
        self.dy = dy.copy()
        self.dx = _as_float_array(self.dx, n, 0.0, "dx")
        self.angle = _as_float_array(self.angle, n, 0.0, "angle")
        self.scale = _as_float_array(self.scale, n, 1.0, "scale")
        self.quality = _as_float_array(self.quality, n, np.nan, "quality")
        if self.ok is None:
            self.ok = np.ones(n, dtype=bool)
        else:
            ok = np.asarray(self.ok, dtype=bool).reshape(-1)
            if ok.size != n:
                raise ValueError(f"ok has {ok.size} values but there are {n} frames.")
            self.ok = ok.copy()
        self.reason = _as_reasons(self.reason, self.ok)
        center = np.asarray(self.center, dtype=np.float64).reshape(-1)
        if center.size != 2 or not np.all(np.isfinite(center)):
            raise ValueError("center must be a finite (row, col) pair.")
        self.center = (float(center[0]), float(center[1]))
        self._check_values()
        self.params = dict(self.params)

    def _check_values(self) -> None:
        """Finite geometry on every trustworthy frame; NaN (never inf) only on failed ones."""
        for name in ("dy", "dx", "angle", "scale"):
            values = getattr(self, name)
            if np.any(np.isinf(values)):
                frames = np.flatnonzero(np.isinf(values))
                raise ValueError(
                    f"{name} is infinite at frame(s) {_frame_list(frames)}: a transform must be finite."
                )
            bad = np.isnan(values) & self.ok
            if bad.any():
                raise ValueError(
                    f"{name} is NaN at frame(s) {_frame_list(np.flatnonzero(bad))} marked ok: "
                    "a frame without a transform must be marked failed (ok=False)."
                )
        scale = self.scale[np.isfinite(self.scale)]
        if np.any(scale <= 0):
            raise ValueError("scale must be positive for every frame.")

    # ------------------------------------------------------------------ basics
    def __len__(self) -> int:
        return int(self.dy.size)

    def __getitem__(self, index: Any) -> FrameTransforms:
        """Select frames (slice, integer array or boolean mask)."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        return FrameTransforms(
            dy=self.dy[index],
            dx=self.dx[index],
            angle=self.angle[index],
            scale=self.scale[index],
            center=self.center,
            quality=self.quality[index],
            ok=self.ok[index],
            reason=self.reason[index],
            method=self.method,
            params=self.params,
        )

    @classmethod
    def identity(
        cls, n_frames: int, *, center: tuple[float, float] = (0.0, 0.0)
    ) -> FrameTransforms:
        """Transforms that leave ``n_frames`` frames unchanged."""
        return cls(
            dy=np.zeros(n_frames),
            dx=np.zeros(n_frames),
            center=center,
            method="identity",
        )

    @classmethod
    def from_shifts(cls, shifts: np.ndarray, **kwargs: Any) -> FrameTransforms:
        """Build translation-only transforms from a (T, 2) array of (dy, dx)."""
        shifts = np.asarray(shifts, dtype=np.float64)
        if shifts.ndim != 2 or shifts.shape[1] != 2:
            raise ValueError(
                "shifts must have shape (T, 2) holding (dy, dx) per frame."
            )
        return cls(dy=shifts[:, 0], dx=shifts[:, 1], **kwargs)

    @property
    def shifts(self) -> np.ndarray:
        """(T, 2) array of the translation part (dy, dx)."""
        return np.stack([self.dy, self.dx], axis=1)

    @property
    def is_translation(self) -> bool:
        """True when every frame is a pure translation."""
        return bool(np.all(self.angle == 0) and np.all(self.scale == 1))

    def copy(self) -> FrameTransforms:
        return self[slice(None)]

    # ------------------------------------------------------------ failed frames
    @property
    def failed(self) -> np.ndarray:
        """Boolean mask of the failed frames (``~ok``)."""
        return ~self.ok

    def flag(self, frames: Any, reason: str) -> FrameTransforms:
        """A copy with ``frames`` (indices or a boolean mask) marked failed for ``reason``.

        A frame that had already failed keeps its earlier reason too.
        """
        if not reason:
            raise ValueError("a flagged frame needs a reason.")
        mask = np.zeros(len(self), dtype=bool)
        mask[
            np.asarray(frames).reshape(-1) if not isinstance(frames, slice) else frames
        ] = True
        out = self.copy()
        add = np.where(mask, reason, "").astype(object)
        keep = np.where(out.ok, "", out.reason).astype(object)
        out.ok = out.ok & ~mask
        out.reason = _as_reasons(_join_reasons(keep, add), out.ok)
        return out

    def failure_summary(self, limit: int = 8) -> str:
        """One line per distinct reason with the frames it covers ('' when none failed)."""
        lines = []
        for reason in dict.fromkeys(self.reason[self.failed]):
            frames = np.flatnonzero(self.failed & (self.reason == reason))
            lines.append(
                f"{len(frames)} frame(s) {_frame_list(frames, limit)}: {reason}"
            )
        return "\n".join(lines)

    def resolve_failed(
        self, policy: str = "interpolate"
    ) -> tuple[FrameTransforms, np.ndarray]:
        """The transforms to apply, with the failed frames' estimates replaced.

        Parameters
        ----------
        policy : {"interpolate", "identity", "apply"}
            ``"interpolate"`` (default): each failed frame gets the transform
            interpolated (linearly over the frame index) from the trustworthy
            frames, or the nearest one beyond the ends. ``"identity"``: failed
            frames are left unshifted. ``"apply"``: the estimates are applied as
            they are (a NaN estimate is an error).

        Returns
        -------
        (transforms, replaced) : (FrameTransforms, ndarray of int)
            The transforms (``ok`` and ``reason`` unchanged, so the flags still
            say which frames failed) and the frames whose estimate was replaced.
            When no frame is trustworthy, ``"interpolate"`` leaves every frame
            unshifted and warns with :class:`NoSignalWarning`.

        Raises
        ------
        ValueError
            For an unknown policy, or NaN estimates with ``"apply"``.
        """
        if policy not in FAILED_POLICIES:
            raise ValueError(
                f"failed-frame policy must be one of {FAILED_POLICIES}, got {policy!r}."
            )
        failed = self.failed
        if policy == "apply" or not failed.any():
            missing = ~np.isfinite(self.to_matrices()).all(axis=(1, 2))
            if missing.any():
                raise ValueError(
                    f"frame(s) {_frame_list(np.flatnonzero(missing))} have no transform (NaN): "
                    "interpolate them (failed='interpolate') or leave them unshifted (failed='identity')."
                )
            return self.copy(), np.zeros(0, dtype=int)
        out = self.copy()
        if policy == "identity" or self.ok.sum() == 0:
            if self.ok.sum() == 0 and policy == "interpolate":
                warnings.warn(
                    f"no frame of the {len(self)} has a trustworthy transform, so nothing was corrected "
                    f"(every frame left unshifted). {self.failure_summary(limit=4)}",
                    NoSignalWarning,
                    stacklevel=2,
                )
            identity = FrameTransforms.identity(len(self), center=self.center)
            replace = failed
            for name in ("dy", "dx", "angle", "scale"):
                getattr(out, name)[replace] = getattr(identity, name)[replace]
            return out, np.flatnonzero(replace)
        good = self.ok
        out.dy = _interpolate_over(self.dy, good)
        out.dx = _interpolate_over(self.dx, good)
        out.angle = _interpolate_over(self.angle, good)
        out.scale = np.exp(
            _interpolate_over(np.log(np.where(good, self.scale, 1.0)), good)
        )
        return out, np.flatnonzero(failed)

    def with_center(self, center: tuple[float, float]) -> FrameTransforms:
        """The same geometric transforms expressed about another centre."""
        return FrameTransforms.from_matrices(
            self.to_matrices(),
            center=center,
            quality=self.quality,
            ok=self.ok,
            reason=self.reason,
            method=self.method,
            params=self.params,
        )

    # ---------------------------------------------------------------- matrices
    def to_matrices(self, frames: Any = None) -> np.ndarray:
        """Homogeneous 3x3 matrices in (row, col) order, shape (T, 3, 3).

        Each matrix maps input-frame coordinates to registered coordinates
        (napari's affine convention for a layer's data-to-world transform).
        ``frames`` (an index, a slice or an index array) computes only those
        frames' matrices: ``to_matrices(t)`` is ``to_matrices()[t]``.
        """
        angle, scale = self.angle, self.scale
        dy, dx = self.dy, self.dx
        if frames is not None:
            angle, scale, dy, dx = angle[frames], scale[frames], dy[frames], dx[frames]
            if np.ndim(angle) == 0:
                return self._matrices(np.atleast_1d(angle), np.atleast_1d(scale), np.atleast_1d(dy), np.atleast_1d(dx))[0]
        return self._matrices(angle, scale, dy, dx)

    def _matrices(self, angle: np.ndarray, scale: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
        n = len(angle)
        theta = np.deg2rad(angle)
        c, s = np.cos(theta) * scale, np.sin(theta) * scale
        cy, cx = self.center
        mats = np.zeros((n, 3, 3), dtype=np.float64)
        mats[:, 0, 0] = c
        mats[:, 0, 1] = -s
        mats[:, 1, 0] = s
        mats[:, 1, 1] = c
        # t = -A c + c + d
        mats[:, 0, 2] = -(c * cy - s * cx) + cy + dy
        mats[:, 1, 2] = -(s * cy + c * cx) + cx + dx
        mats[:, 2, 2] = 1.0
        return mats

    @classmethod
    def from_matrices(
        cls,
        matrices: np.ndarray,
        *,
        center: tuple[float, float] = (0.0, 0.0),
        atol: float = 1e-6,
        **kwargs: Any,
    ) -> FrameTransforms:
        """Build transforms from (T, 3, 3) similarity matrices in (row, col) order.

        Raises
        ------
        ValueError
            If a matrix is not a similarity (rotation + isotropic scale +
            translation).
        """
        mats = np.asarray(matrices, dtype=np.float64)
        if mats.ndim == 2:
            mats = mats[None]
        if mats.shape[1:] != (3, 3):
            raise ValueError("matrices must have shape (T, 3, 3).")
        a, b = mats[:, 0, 0], mats[:, 0, 1]
        c, d = mats[:, 1, 0], mats[:, 1, 1]
        known = np.isfinite(mats).all(
            axis=(1, 2)
        )  # a failed frame may have no transform (NaN)
        if not (
            np.allclose(a[known], d[known], atol=atol)
            and np.allclose(b[known], -c[known], atol=atol)
        ):
            raise ValueError(
                "matrices are not similarity transforms (shear or anisotropic scale)."
            )
        scale = np.hypot(a, c)
        angle = np.rad2deg(np.arctan2(c, a))
        cy, cx = center
        # d = t + A c - c
        dy = mats[:, 0, 2] + (a * cy + b * cx) - cy
        dx = mats[:, 1, 2] + (c * cy + d * cx) - cx
        return cls(dy=dy, dx=dx, angle=angle, scale=scale, center=center, **kwargs)

    def to_cv2_matrices(self) -> np.ndarray:
        """(T, 2, 3) forward matrices in OpenCV's (x, y) order for ``cv2.warpAffine``."""
        m = self.to_matrices()
        out = np.empty((len(self), 2, 3), dtype=np.float64)
        out[:, 0, 0] = m[:, 1, 1]
        out[:, 0, 1] = m[:, 1, 0]
        out[:, 0, 2] = m[:, 1, 2]
        out[:, 1, 0] = m[:, 0, 1]
        out[:, 1, 1] = m[:, 0, 0]
        out[:, 1, 2] = m[:, 0, 2]
        return out

    # ----------------------------------------------------------- composition
    def compose(self, other: FrameTransforms) -> FrameTransforms:
        """Apply ``self`` first, then ``other`` (frame by frame).

        Used by iterative refinement: the result resamples the pixels once.
        Quality and method come from ``other``; ``ok`` is the logical and.
        """
        if len(other) != len(self):
            raise ValueError(
                f"cannot compose {len(self)} transforms with {len(other)}."
            )
        mats = other.to_matrices() @ self.to_matrices()
        params = dict(self.params)
        params.update(other.params)
        return FrameTransforms.from_matrices(
            mats,
            center=self.center,
            quality=other.quality,
            ok=self.ok & other.ok,
            reason=_join_reasons(self.reason, other.reason),
            method=other.method or self.method,
            params=params,
        )

    def invert(self) -> FrameTransforms:
        """The inverse transforms (from the reference back to each frame)."""
        return FrameTransforms.from_matrices(
            np.linalg.inv(self.to_matrices()),
            center=self.center,
            quality=self.quality,
            ok=self.ok,
            reason=self.reason,
            method=self.method,
            params=self.params,
        )

    def relative_to(self, frame: int) -> FrameTransforms:
        """Re-express the transforms so that ``frame`` is left unchanged."""
        mats = self.to_matrices()
        ref_inv = np.linalg.inv(mats[frame])
        return FrameTransforms.from_matrices(
            ref_inv[None] @ mats,
            center=self.center,
            quality=self.quality,
            ok=self.ok,
            reason=self.reason,
            method=self.method,
            params=self.params,
        )

    # ------------------------------------------------------------------ tables
    def to_table(self) -> dict[str, np.ndarray]:
        """Column name -> array, in :data:`TABLE_COLUMNS` order."""
        return {
            "frame": np.arange(len(self)),
            "dy": self.dy,
            "dx": self.dx,
            "angle": self.angle,
            "scale": self.scale,
            "quality": self.quality,
            "ok": self.ok,
            "reason": self.reason,
        }

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dictionary (NaN stored as null)."""

        def clean(arr: np.ndarray) -> list:
            return [None if not np.isfinite(v) else float(v) for v in arr]

        return {
            "format": "napari-stackalign transforms",
            "version": 1,
            "method": self.method,
            "params": jsonable(self.params),
            "center": list(self.center),
            "dy": clean(self.dy),
            "dx": clean(self.dx),
            "angle": clean(self.angle),
            "scale": clean(self.scale),
            "quality": clean(self.quality),
            "ok": [bool(v) for v in self.ok],
            "reason": [str(v) for v in self.reason],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "transforms") -> FrameTransforms:
        """Inverse of :meth:`to_dict`; ``source`` names the dictionary in messages
        (a file name)."""
        return _build(cls, dict_fields(data, source), source)

    def to_json(self, path: str | Path | None = None) -> str:
        """Serialise to JSON; write it to ``path`` too when given."""
        text = json.dumps(self.to_dict(), indent=1)
        if path is not None:
            atomic_write_text(Path(path), text)
        return text

    @classmethod
    def from_json(cls, source: str | Path) -> FrameTransforms:
        """Load from a JSON file path or a JSON string."""
        text = str(source)
        name = "the JSON text"
        if not text.lstrip().startswith("{"):
            path = Path(source)
            name = path.name
            text = read_text_file(path, "transforms table")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"{name} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}): "
                "is it a transforms file written by napari-stackalign?"
            ) from exc
        return cls.from_dict(data, source=name)

    def _table_columns(self) -> tuple[str, ...]:
        """The CSV table's header (a subclass with more per-frame values adds its columns)."""
        return TABLE_COLUMNS

    def _table_row(self, t: int) -> list:
        """Frame ``t``'s CSV row, in the order of :meth:`_table_columns` (floats written exactly)."""
        numbers = (self.dy[t], self.dx[t], self.angle[t], self.scale[t], self.quality[t])
        return [t, *(repr(float(v)) for v in numbers), int(bool(self.ok[t])), str(self.reason[t])]

    def to_csv(self, path: str | Path | None = None) -> str:
        """Write the per-frame table as CSV (one header block of ``#`` comments
        holds the centre, method and parameters). Returns the text."""
        buf = io.StringIO()
        buf.write(f"# napari-stackalign transforms; method={self.method}\n")
        buf.write(f"# center={json.dumps(list(self.center))}\n")
        buf.write(f"# params={json.dumps(jsonable(self.params))}\n")
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(self._table_columns())
        writer.writerows(self._table_row(t) for t in range(len(self)))
        text = buf.getvalue()
        if path is not None:
            atomic_write_text(Path(path), text)
        return text

    @classmethod
    def from_csv(cls, source: str | Path) -> FrameTransforms:
        """Read a table written by :meth:`to_csv`.

        Plain CSV files with at least ``dy`` and ``dx`` columns (and optionally
        ``angle``, ``scale``, ``quality``, ``ok``, ``reason``) are accepted too.

        Raises
        ------
        ValueError
            For a file that is not such a table, naming the file and the line,
            row and column at fault.
        FileNotFoundError
            When the file does not exist.
        """
        return _build(cls, csv_fields(Path(source)), Path(source).name)

    @classmethod
    def load(cls, path: str | Path) -> FrameTransforms:
        """Load a table from ``.csv`` or ``.json`` (chosen by extension)."""
        suffix = Path(path).suffix.lower()
        if suffix == ".json":
            return cls.from_json(path)
        if suffix in (".csv", ".txt", ".tsv"):
            return cls.from_csv(path)
        raise ValueError(f"unknown transforms file type {suffix!r}: use .csv or .json.")

    def save(self, path: str | Path) -> Path:
        """Save as ``.csv`` or ``.json`` (chosen by extension)."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix == ".json":
            self.to_json(path)
        elif suffix == ".csv":
            self.to_csv(path)
        else:
            raise ValueError(
                f"unknown transforms file type {suffix!r}: use .csv or .json."
            )
        return path

    def allclose(self, other: FrameTransforms, *, atol: float = 1e-9) -> bool:
        """True when both describe the same geometric transforms."""
        return len(self) == len(other) and bool(
            np.allclose(self.to_matrices(), other.to_matrices(), atol=atol)
        )


def _build(cls: type, fields: dict[str, Any], source: str) -> FrameTransforms:
    """``cls(**fields)``, its validation errors prefixed with the file they came from
    (a table with a ``dz`` column gives a ``VolumeTransforms``)."""
    if fields.get("dz") is not None:
        from ._volume_transforms import VolumeTransforms

        cls = VolumeTransforms
    try:
        return cls(**fields)
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from exc


def stack_transforms(parts: Sequence[FrameTransforms]) -> FrameTransforms:
    """Concatenate transforms of consecutive frame chunks (same centre)."""
    if not parts:
        raise ValueError("nothing to concatenate")
    first = parts[0]
    return FrameTransforms(
        dy=np.concatenate([p.dy for p in parts]),
        dx=np.concatenate([p.dx for p in parts]),
        angle=np.concatenate([p.angle for p in parts]),
        scale=np.concatenate([p.scale for p in parts]),
        center=first.center,
        quality=np.concatenate([p.quality for p in parts]),
        ok=np.concatenate([p.ok for p in parts]),
        reason=np.concatenate([p.reason for p in parts]),
        method=first.method,
        params=first.params,
    )
