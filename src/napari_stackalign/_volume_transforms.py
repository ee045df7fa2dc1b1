"""`VolumeTransforms`: per-frame 3-D translations of a volume time series.

A :class:`~napari_stackalign.transforms.FrameTransforms` with a ``dz`` column
next to ``dy`` and ``dx``, in the same correction sign: the registered volume
is ``registered[p] = volume[p - (dz, dy, dx)]`` for ``p = (plane, row, col)``.
It is a translation per frame (``angle`` 0, ``scale`` 1); the 2-D matrix
helpers that would silently drop ``dz`` (``to_cv2_matrices``) refuse it.
Saved and loaded as CSV and JSON like the 2-D table, with a ``dz`` column
(:meth:`FrameTransforms.load` of such a file gives a ``VolumeTransforms``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .transforms import (
    FrameTransforms,
    _as_float_array,
    _frame_list,
    _interpolate_over,
    _join_reasons,
)

__all__ = ["VOLUME_TABLE_COLUMNS", "VolumeTransforms"]

#: Column order of the CSV table of volume transforms.
VOLUME_TABLE_COLUMNS = ("frame", "dz", "dy", "dx", "angle", "scale", "quality", "ok", "reason")


@dataclass
class VolumeTransforms(FrameTransforms):
    """Per-frame 3-D translations (dz, dy, dx) of a (T, [C,] Z, Y, X) stack.

    Parameters
    ----------
    dz : array_like of float, shape (T,)
        Correction along the planes (Z), in planes, with the sign of ``dy``
        and ``dx`` (see :class:`~napari_stackalign.transforms.FrameTransforms`
        for the other fields). Default 0.
    """

    dz: np.ndarray | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        n = len(self)
        self.dz = _as_float_array(self.dz, n, 0.0, "dz")
        if np.any(np.isinf(self.dz)):
            raise ValueError(
                f"dz is infinite at frame(s) {_frame_list(np.flatnonzero(np.isinf(self.dz)))}: "
                "a transform must be finite."
            )
        bad = np.isnan(self.dz) & self.ok
        if bad.any():
            raise ValueError(
                f"dz is NaN at frame(s) {_frame_list(np.flatnonzero(bad))} marked ok: "
                "a frame without a transform must be marked failed (ok=False)."
            )
        rotated = np.isfinite(self.angle) & (self.angle != 0)
        scaled = np.isfinite(self.scale) & (self.scale != 1)
        if rotated.any() or scaled.any():
            frames = np.flatnonzero(rotated | scaled)
            raise ValueError(
                f"volume transforms are translations only (angle 0, scale 1); frame(s) {_frame_list(frames)} "
                "have a rotation or a scale."
            )

    # ------------------------------------------------------------------ basics
    def __getitem__(self, index: Any) -> VolumeTransforms:
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        return VolumeTransforms(
            dz=self.dz[index],
            dy=self.dy[index],
            dx=self.dx[index],
            center=self.center,
            quality=self.quality[index],
            ok=self.ok[index],
            reason=self.reason[index],
            method=self.method,
            params=self.params,
        )

    @classmethod
    def from_shifts(cls, shifts: np.ndarray, **kwargs: Any) -> VolumeTransforms:
        """Build from a (T, 3) array of (dz, dy, dx)."""
        shifts = np.asarray(shifts, dtype=np.float64)
        if shifts.ndim != 2 or shifts.shape[1] != 3:
            raise ValueError("shifts must have shape (T, 3) holding (dz, dy, dx) per frame.")
        return cls(dz=shifts[:, 0], dy=shifts[:, 1], dx=shifts[:, 2], **kwargs)

    @property
    def shifts_zyx(self) -> np.ndarray:
        """(T, 3) array of (dz, dy, dx). (``shifts`` stays the in-plane (dy, dx).)"""
        return np.stack([self.dz, self.dy, self.dx], axis=1)

    # ------------------------------------------------------------ failed frames
    def resolve_failed(self, policy: str = "interpolate") -> tuple[VolumeTransforms, np.ndarray]:
        """As :meth:`FrameTransforms.resolve_failed`, ``dz`` included."""
        out, replaced = super().resolve_failed(policy)
        if replaced.size:
            if policy == "identity" or not self.ok.any():
                out.dz[replaced] = 0.0
            else:
                out.dz = _interpolate_over(self.dz, self.ok)
        return out, replaced

    def with_center(self, center: tuple[float, float]) -> VolumeTransforms:
        """A translation does not depend on the centre: the same shifts, ``center`` replaced."""
        out = self.copy()
        out.center = (float(center[0]), float(center[1]))
        return out

    # ---------------------------------------------------------------- matrices
    def to_matrices(self) -> np.ndarray:
        """Homogeneous 4x4 matrices in (plane, row, col) order, shape (T, 4, 4)."""
        mats = np.tile(np.eye(4), (len(self), 1, 1))
        mats[:, 0, 3] = self.dz
        mats[:, 1, 3] = self.dy
        mats[:, 2, 3] = self.dx
        return mats

    def to_cv2_matrices(self) -> np.ndarray:
        """Refused: a 2-D matrix per frame would drop ``dz``."""
        raise ValueError(
            "these are volume transforms (dz, dy, dx): they cannot be applied frame by frame in 2-D; "
            "use apply_transforms on the (T, Z, Y, X) or (T, C, Z, Y, X) stack."
        )

    def _from_shifts_like(self, shifts: np.ndarray, **kwargs: Any) -> VolumeTransforms:
        fields = {
            "center": self.center,
            "quality": self.quality,
            "ok": self.ok,
            "reason": self.reason,
            "method": self.method,
            "params": self.params,
        }
        fields.update(kwargs)
        return VolumeTransforms.from_shifts(shifts, **fields)

    def compose(self, other: FrameTransforms) -> VolumeTransforms:
        """Apply ``self`` first, then ``other`` (translations add)."""
        if not isinstance(other, VolumeTransforms):
            raise ValueError(  # noqa: TRY004 - bad values raise ValueError (house rule)
                "volume transforms compose only with volume transforms."
            )
        if len(other) != len(self):
            raise ValueError(f"cannot compose {len(self)} transforms with {len(other)}.")
        params = dict(self.params)
        params.update(other.params)
        return self._from_shifts_like(
            self.shifts_zyx + other.shifts_zyx,
            quality=other.quality,
            ok=self.ok & other.ok,
            reason=_join_reasons(self.reason, other.reason),
            method=other.method or self.method,
            params=params,
        )

    def invert(self) -> VolumeTransforms:
        """The inverse translations."""
        return self._from_shifts_like(-self.shifts_zyx)

    def relative_to(self, frame: int) -> VolumeTransforms:
        """Re-express the transforms so that ``frame`` is left unchanged."""
        return self._from_shifts_like(self.shifts_zyx - self.shifts_zyx[frame])

    def allclose(self, other: FrameTransforms, *, atol: float = 1e-9) -> bool:
        """True when ``other`` holds the same volume translations."""
        return (
            isinstance(other, VolumeTransforms)
            and len(self) == len(other)
            and bool(np.allclose(self.shifts_zyx, other.shifts_zyx, atol=atol, equal_nan=True))
        )

    # ------------------------------------------------------------------ tables
    def to_table(self) -> dict[str, np.ndarray]:
        """Column name -> array, in :data:`VOLUME_TABLE_COLUMNS` order."""
        table = super().to_table()
        return {name: (self.dz if name == "dz" else table[name]) for name in VOLUME_TABLE_COLUMNS}

    def to_dict(self) -> dict[str, Any]:
        """As :meth:`FrameTransforms.to_dict`, with ``dz``."""
        data = super().to_dict()
        data["dz"] = [None if not np.isfinite(v) else float(v) for v in self.dz]
        return data

    def _table_columns(self) -> tuple[str, ...]:
        """The CSV header of :meth:`FrameTransforms.to_csv`, with a ``dz`` column before ``dy``."""
        return VOLUME_TABLE_COLUMNS

    def _table_row(self, t: int) -> list:
        row = super()._table_row(t)
        return [row[0], repr(float(self.dz[t])), *row[1:]]
