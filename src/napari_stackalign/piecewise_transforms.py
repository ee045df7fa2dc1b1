"""`PiecewiseTransforms`: a rigid transform per frame plus a smooth residual field.

The result of :func:`~napari_stackalign.core.piecewise.register_piecewise`
(piecewise-rigid registration, as suite2p's and NoRMCorre's non-rigid modes).
Each frame has

- its rigid transform (a :class:`~napari_stackalign.FrameTransforms` row), and
- a residual correction ``(dy, dx)`` at the centre of every patch of a grid,
  in registered (template) coordinates.

The residual field between the patch centres is a natural bicubic spline
of the grid (constant beyond the outermost centres), so it is smooth. With
``M`` the frame's rigid matrix (input to registered) and ``r(p)`` the
residual at the registered pixel ``p``, the registered frame is::

    registered[p] = frame[M^-1 (p - r(p))]

one resampling per frame: rigid and residual are composed before any pixel is
read. For a translation ``M^-1 q = q - (dy, dx)``, so the total correction at
``p`` is ``(dy, dx) + r(p)``, the package's sign convention.
"""

from __future__ import annotations

import io
import itertools
import json
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from scipy.interpolate import CubicSpline

from .files import atomic_path, jsonable
from .transforms import FrameTransforms

__all__ = ["PATCH_FLAGS", "PiecewiseTransforms", "field_matrix"]

#: why a patch's own estimate was not used (``patch_flag``; 0: used)
PATCH_FLAGS = {
    0: "ok",
    1: "no usable pixels in the patch (template or frame)",
    2: "correlation peak not significant",
    3: "at the max_deviation bound",
    4: "sub-pixel refinement failed",
    5: "disagrees with its neighbours",
}

_FORMAT = "napari-stackalign piecewise transforms"


@lru_cache(maxsize=32)
def _field_matrix_cached(centres: tuple[float, ...], n: int) -> np.ndarray:
    pos = np.arange(n, dtype=np.float64)
    if len(centres) == 1:
        return np.ones((n, 1), dtype=np.float64)
    spline = CubicSpline(np.asarray(centres), np.eye(len(centres)), bc_type="natural")
    out = spline(pos)
    out.setflags(write=False)
    return out


def field_matrix(centres: np.ndarray, n: int) -> np.ndarray:
    """The (n, k) matrix that interpolates values at ``k`` patch centres onto
    ``n`` pixels along one axis.

    A natural cubic spline through the centres (linear for two, constant for
    one), constant beyond the outermost centres. The 2-D field is
    ``W_rows @ grid @ W_cols.T``: a separable bicubic spline.
    """
    centres = tuple(float(c) for c in np.asarray(centres, dtype=np.float64).reshape(-1))
    if not centres or any(b <= a for a, b in itertools.pairwise(centres)):
        raise ValueError("patch centres must be a non-empty, strictly increasing sequence.")
    return _field_matrix_cached(centres, int(n))


def _interpolate_time(values: np.ndarray, good: np.ndarray) -> np.ndarray:
    """``values`` (T, ...) with the frames where ``good`` is False linearly
    interpolated over the frame index (nearest good frame beyond the ends)."""
    index = np.arange(values.shape[0])
    flat = values.reshape(values.shape[0], -1)
    out = np.empty_like(flat)
    for j in range(flat.shape[1]):
        out[:, j] = np.interp(index, index[good], flat[good, j])
    return out.reshape(values.shape)


@dataclass
class PiecewiseTransforms:
    """Per-frame rigid transforms plus a residual patch field.

    Parameters
    ----------
    rigid : FrameTransforms
        The rigid step's transforms (one per frame); ``ok``/``reason`` say
        which frames failed.
    patch_rows, patch_cols : array_like of float
        Patch centres (rows, cols) in registered pixels, strictly increasing.
    residual : array_like, shape (T, len(patch_rows), len(patch_cols), 2)
        Residual correction (dy, dx) in px at each patch centre, applied
        after the rigid transform (see the module docstring). Patches whose
        own estimate was not used hold the value regularised from their
        neighbours.
    frame_shape : (int, int)
        (Y, X) of the frames.
    patch_flag : array_like of int, shape (T, ny, nx), optional
        :data:`PATCH_FLAGS` code per patch (0: the patch's own estimate).
    patch_quality : array_like of float, shape (T, ny, nx), optional
        Significance ``z`` of each patch's correlation peak (NaN: unknown).
    params : dict
        Parameters of the piecewise step (JSON-serialisable).
    """

    rigid: FrameTransforms
    patch_rows: np.ndarray
    patch_cols: np.ndarray
    residual: np.ndarray
    frame_shape: tuple[int, int]
    patch_flag: np.ndarray | None = None
    patch_quality: np.ndarray | None = None
    params: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.rigid, FrameTransforms):
            raise ValueError(  # noqa: TRY004 - the house rule: bad values raise ValueError
                f"rigid must be a FrameTransforms, got {type(self.rigid).__name__}."
            )
        self.patch_rows = np.asarray(self.patch_rows, dtype=np.float64).reshape(-1).copy()
        self.patch_cols = np.asarray(self.patch_cols, dtype=np.float64).reshape(-1).copy()
        shape = tuple(int(n) for n in self.frame_shape)
        if len(shape) != 2 or min(shape) < 1:
            raise ValueError(f"frame_shape must be (Y, X) with positive sizes, got {self.frame_shape!r}.")
        self.frame_shape = shape
        for name, centres, size in (
            ("patch_rows", self.patch_rows, shape[0]),
            ("patch_cols", self.patch_cols, shape[1]),
        ):
            field_matrix(centres, 1)  # checks the order
            if centres.size and (centres[0] < 0 or centres[-1] > size - 1):
                raise ValueError(
                    f"{name} must lie inside the frame (0 .. {size - 1}), got {centres.min()} .. {centres.max()}."
                )
        n, grid = len(self.rigid), (self.patch_rows.size, self.patch_cols.size)
        residual = np.asarray(self.residual, dtype=np.float64)
        if residual.shape != (n, *grid, 2):
            raise ValueError(
                f"residual must have shape {(n, *grid, 2)} (frames, patch rows, patch cols, dy/dx), "
                f"got {residual.shape}."
            )
        if not np.all(np.isfinite(residual)):
            raise ValueError("residual must be finite (a patch without an estimate holds its neighbours' value).")
        self.residual = residual.copy()
        self.patch_flag = (
            np.zeros((n, *grid), np.uint8) if self.patch_flag is None else np.asarray(self.patch_flag, np.uint8).copy()
        )
        self.patch_quality = (
            np.full((n, *grid), np.nan)
            if self.patch_quality is None
            else np.asarray(self.patch_quality, np.float64).copy()
        )
        for name in ("patch_flag", "patch_quality"):
            if getattr(self, name).shape != (n, *grid):
                raise ValueError(f"{name} must have shape {(n, *grid)}, got {getattr(self, name).shape}.")
        self.params = dict(self.params)

    # ------------------------------------------------------- the rigid part
    def __len__(self) -> int:
        return len(self.rigid)

    @property
    def method(self) -> str:
        return "piecewise"

    @property
    def dy(self) -> np.ndarray:
        """The rigid correction's rows (see :attr:`FrameTransforms.dy`)."""
        return self.rigid.dy

    @property
    def dx(self) -> np.ndarray:
        return self.rigid.dx

    @property
    def shifts(self) -> np.ndarray:
        return self.rigid.shifts

    @property
    def ok(self) -> np.ndarray:
        """Whether each frame's rigid transform is trustworthy (see ``patch_ok`` for the patches)."""
        return self.rigid.ok

    @property
    def reason(self) -> np.ndarray:
        return self.rigid.reason

    @property
    def quality(self) -> np.ndarray:
        return self.rigid.quality

    @property
    def center(self) -> tuple[float, float]:
        return self.rigid.center

    @property
    def failed(self) -> np.ndarray:
        return self.rigid.failed

    def failure_summary(self, limit: int = 8) -> str:
        return self.rigid.failure_summary(limit=limit)

    @property
    def patch_ok(self) -> np.ndarray:
        """(T, ny, nx) bool: the patch's own estimate was used (not regularised)."""
        return self.patch_flag == 0

    @property
    def patch_centres(self) -> np.ndarray:
        """(ny, nx, 2) (row, col) of every patch centre."""
        rr, cc = np.meshgrid(self.patch_rows, self.patch_cols, indexing="ij")
        return np.stack([rr, cc], axis=-1)

    def copy(self) -> PiecewiseTransforms:
        return self[slice(None)]

    def __getitem__(self, index: Any) -> PiecewiseTransforms:
        """Select frames (slice, integer array or boolean mask)."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        return PiecewiseTransforms(
            rigid=self.rigid[index],
            patch_rows=self.patch_rows,
            patch_cols=self.patch_cols,
            residual=self.residual[index],
            frame_shape=self.frame_shape,
            patch_flag=self.patch_flag[index],
            patch_quality=self.patch_quality[index],
            params=self.params,
        )

    def resolve_failed(self, policy: str = "interpolate") -> tuple[PiecewiseTransforms, np.ndarray]:
        """The transforms to apply, with the failed frames' estimates replaced.

        As :meth:`FrameTransforms.resolve_failed` for the rigid part; a
        replaced frame's residual field is interpolated over the frame index
        from the trustworthy frames (``"interpolate"``) or set to zero
        (``"identity"``, and ``"interpolate"`` when no frame is trustworthy).
        """
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            rigid, replaced = self.rigid.resolve_failed(policy)
        for w in caught:
            warnings.warn(w.message, w.category, stacklevel=2)
        out = self.copy()
        out.rigid = rigid
        if replaced.size:
            good = self.rigid.ok
            if policy == "interpolate" and good.any():
                out.residual = _interpolate_time(self.residual, good)
            else:
                out.residual[replaced] = 0.0
        return out, replaced

    # ------------------------------------------------------------ the field
    def residual_field(self, frame: int) -> np.ndarray:
        """(2, Y, X) float64 residual correction (dy, dx) of one frame at every registered pixel."""
        h, w = self.frame_shape
        wy = field_matrix(self.patch_rows, h)
        wx = field_matrix(self.patch_cols, w)
        res = self.residual[int(frame)]
        return np.stack([wy @ res[..., k] @ wx.T for k in range(2)])

    def correction_field(self, frame: int) -> np.ndarray:
        """(2, Y, X) total correction (dy, dx) at every registered pixel:
        ``registered[p] = frame[p - correction(p)]``."""
        h, w = self.frame_shape
        map_x, map_y = self.source_maps(frame)
        rr, cc = np.mgrid[0:h, 0:w]
        return np.stack([rr - map_y.astype(np.float64), cc - map_x.astype(np.float64)])

    def source_maps(self, frame: int) -> tuple[np.ndarray, np.ndarray]:
        """``(map_x, map_y)``, float32 (Y, X): the input-frame position (col,
        row) every registered pixel is read from (for ``cv2.remap``)."""
        h, w = self.frame_shape
        res = self.residual_field(frame)
        inv = np.linalg.inv(self.rigid.to_matrices(int(frame)))
        rows = np.arange(h, dtype=np.float64)[:, None] - res[0]
        cols = np.arange(w, dtype=np.float64)[None, :] - res[1]
        map_y = inv[0, 0] * rows + inv[0, 1] * cols + inv[0, 2]
        map_x = inv[1, 0] * rows + inv[1, 1] * cols + inv[1, 2]
        return map_x.astype(np.float32), map_y.astype(np.float32)

    def residual_rms(self) -> np.ndarray:
        """(T,) root-mean-square length (px) of each frame's residual field over the patch grid."""
        return np.sqrt(np.mean(np.sum(self.residual**2, axis=-1), axis=(1, 2)))

    # -------------------------------------------------------------- files
    def save(self, path: str | Path) -> Path:
        """Write everything to one ``.npz`` file (written to a temporary file and renamed).

        The rigid part is stored as its JSON text inside; ``rigid.save("x.csv")``
        writes it as the usual table too.
        """
        path = Path(path)
        if path.suffix.lower() != ".npz":
            raise ValueError(f"piecewise transforms are saved as .npz, got {path.suffix or 'no extension'!r}.")
        buf = io.BytesIO()
        np.savez_compressed(
            buf,
            format=np.array(_FORMAT),
            version=np.array(1),
            rigid=np.array(self.rigid.to_json()),
            params=np.array(json.dumps(jsonable(self.params))),
            patch_rows=self.patch_rows,
            patch_cols=self.patch_cols,
            residual=self.residual,
            frame_shape=np.array(self.frame_shape),
            patch_flag=self.patch_flag,
            patch_quality=self.patch_quality,
        )
        with atomic_path(path) as tmp:
            tmp.write_bytes(buf.getvalue())
        return path

    @classmethod
    def load(cls, path: str | Path) -> PiecewiseTransforms:
        """Read a file written by :meth:`save`.

        Raises
        ------
        ValueError
            For a file that is not a piecewise transforms file.
        """
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                if "format" not in data or str(data["format"]) != _FORMAT:
                    raise ValueError(f"{path.name} is not a piecewise transforms file written by napari-stackalign.")
                fields = {k: data[k] for k in data.files}
        except (OSError, EOFError, ValueError) as exc:
            if isinstance(exc, FileNotFoundError) or "is not a piecewise" in str(exc):
                raise
            raise ValueError(f"{path.name} cannot be read as a piecewise transforms file (.npz): {exc}") from exc
        try:
            return cls(
                rigid=FrameTransforms.from_json(str(fields["rigid"])),
                patch_rows=fields["patch_rows"],
                patch_cols=fields["patch_cols"],
                residual=fields["residual"],
                frame_shape=tuple(int(n) for n in fields["frame_shape"]),
                patch_flag=fields["patch_flag"],
                patch_quality=fields["patch_quality"],
                params=json.loads(str(fields["params"])),
            )
        except (KeyError, ValueError) as exc:
            raise ValueError(f"{path.name}: {exc}") from exc

    def allclose(self, other: PiecewiseTransforms, *, atol: float = 1e-9) -> bool:
        """True when both describe the same transforms (rigid part and residuals)."""
        return (
            isinstance(other, PiecewiseTransforms)
            and self.rigid.allclose(other.rigid, atol=atol)
            and self.residual.shape == other.residual.shape
            and np.allclose(self.patch_rows, other.patch_rows)
            and np.allclose(self.patch_cols, other.patch_cols)
            and bool(np.allclose(self.residual, other.residual, atol=atol))
        )
