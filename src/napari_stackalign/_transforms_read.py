"""Reading a transforms table (CSV) or dictionary (JSON) into the fields of a
:class:`~napari_stackalign.transforms.FrameTransforms`, with messages that
name the file, the row and the column at fault."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .textfiles import parse_number, read_csv_table, read_text_file

__all__ = ["csv_fields", "dict_fields"]

#: Columns read as numbers (``frame`` is only the row's label).
_NUMBER_COLUMNS = ("dy", "dx", "angle", "scale", "quality")
#: How the ``ok`` column may say yes and no.
_TRUE = ("1", "true", "yes", "1.0")
_FALSE = ("0", "false", "no", "0.0", "")


def _ok_value(value: Any, where: str) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower() if isinstance(value, str) else None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(
        f"{where}: {value!r} is not 1/0 or true/false (ok says whether the frame's estimate is trustworthy)."
    )


def csv_fields(path: Path) -> dict[str, Any]:
    """The keyword arguments of ``FrameTransforms`` a CSV transforms table holds."""
    text = read_text_file(path, "transforms table")
    meta: dict[str, Any] = {"center": [0.0, 0.0], "params": {}, "method": ""}
    lines: list[tuple[int, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("#"):
            body = line[1:].strip()
            for key in ("center", "params"):
                if body.startswith(key + "="):
                    try:
                        meta[key] = json.loads(body[len(key) + 1 :])
                    except json.JSONDecodeError as exc:
                        raise ValueError(
                            f"{path.name}, line {number}: the '{key}=' comment is not valid JSON ({exc.msg}); "
                            f"fix or delete that line."
                        ) from exc
            if "method=" in body:
                meta["method"] = body.split("method=", 1)[1].strip()
            continue
        if line.strip():
            lines.append((number, line))
    if not lines:
        raise ValueError(
            f"{path} holds no table: is it a transforms table (columns dy, dx, ...)?"
        )
    table = read_csv_table(path, lines, "transforms table")
    if "dy" not in table.columns or "dx" not in table.columns:
        shown = ", ".join(repr(c) for c in table.columns[:8]) + (
            ", ..." if len(table.columns) > 8 else ""
        )
        raise ValueError(
            f"{path} has no 'dy' and 'dx' columns (its header, line {lines[0][0]}, is {shown}); "
            "is it a transforms table?"
        )
    if not table.rows:
        raise ValueError(f"{path} has a header but no rows: it holds no transforms.")
    fields: dict[str, Any] = {key: None for key in _NUMBER_COLUMNS}
    for key in _NUMBER_COLUMNS:
        if key in table.columns:
            fields[key] = np.array(table.numbers(key), dtype=np.float64)
    if "ok" in table.columns:
        fields["ok"] = np.array(
            [
                _ok_value(v, table.where(i, "ok"))
                for i, v in enumerate(table.texts("ok"))
            ]
        )
    fields["reason"] = table.texts("reason") if "reason" in table.columns else None
    if "dz" in table.columns:  # a volume table (VolumeTransforms)
        fields["dz"] = np.array(table.numbers("dz"), dtype=np.float64)
    fields["center"] = _center(meta["center"], f"{path.name}, the 'center=' comment")
    fields["method"] = str(meta["method"])
    params = meta["params"]
    if not isinstance(params, dict):
        raise ValueError(  # noqa: TRY004 - bad values raise ValueError (house rule)
            f"{path.name}: the 'params=' comment must be a JSON object, got {type(params).__name__}."
        )
    fields["params"] = params
    return _checked(fields, path.name)


def _center(value: Any, where: str) -> tuple[float, float]:
    if (
        isinstance(value, (str, bytes))
        or not hasattr(value, "__len__")
        or len(value) != 2
    ):
        raise ValueError(
            f"{where}: the centre must be a (row, col) pair of numbers, got {value!r}."
        )
    return (parse_number(value[0], where), parse_number(value[1], where))


def _column(data: dict, key: str, default: float, source: str) -> np.ndarray | None:
    if key not in data or data[key] is None:
        return None
    values = data[key]
    if isinstance(values, (str, bytes, dict)) or not isinstance(
        values, (list, tuple, np.ndarray)
    ):
        if isinstance(values, (int, float)) and not isinstance(values, bool):
            raise ValueError(  # noqa: TRY004 - bad values raise ValueError (house rule)
                f"{source}, '{key}': a single number {values!r}; give one value per frame (a list)."
            )
        raise ValueError(  # noqa: TRY004 - bad values raise ValueError (house rule)
            f"{source}, '{key}': expected a list of numbers (one per frame), got {type(values).__name__}."
        )
    out = np.empty(len(values), dtype=np.float64)
    for i, v in enumerate(values):
        out[i] = (
            default
            if v is None
            else parse_number(v, f"{source}, '{key}' item {i} (frame {i})")
        )
    return out


def dict_fields(data: Any, source: str = "transforms") -> dict[str, Any]:
    """The keyword arguments of ``FrameTransforms`` a dictionary (from
    :meth:`~napari_stackalign.transforms.FrameTransforms.to_dict` or JSON) holds."""
    if not isinstance(data, dict):
        kind = "a JSON list" if isinstance(data, list) else type(data).__name__
        raise ValueError(  # noqa: TRY004 - bad values raise ValueError (house rule)
            f"{source} holds {kind}, not a transforms dictionary: expected an object with "
            "'dy' and 'dx' lists (one value per frame), as written by FrameTransforms.to_json."
        )
    missing = [k for k in ("dy", "dx") if k not in data]
    if missing:
        raise ValueError(
            f"{source} has no {' and '.join(repr(k) for k in missing)}: a transforms dictionary needs "
            "'dy' and 'dx' lists (one value per frame)."
        )
    fields: dict[str, Any] = {
        "dy": _column(data, "dy", np.nan, source),
        "dx": _column(data, "dx", np.nan, source),
        "angle": _column(data, "angle", 0.0, source),
        "scale": _column(data, "scale", 1.0, source),
        "quality": _column(data, "quality", np.nan, source),
    }
    if fields["dy"] is None or fields["dx"] is None:
        raise ValueError(f"{source}: 'dy' and 'dx' must be lists of numbers, not null.")
    if data.get("dz") is not None:  # a volume table (VolumeTransforms)
        fields["dz"] = _column(data, "dz", np.nan, source)
    ok = data.get("ok")
    if ok is not None:
        if not isinstance(ok, (list, tuple, np.ndarray)):
            raise ValueError(
                f"{source}, 'ok': expected a list of true/false (one per frame), got {type(ok).__name__}."
            )
        ok = np.array(
            [_ok_value(v, f"{source}, 'ok' item {i}") for i, v in enumerate(ok)],
            dtype=bool,
        )
    fields["ok"] = ok
    reason = data.get("reason")
    if reason is not None and not isinstance(reason, (str, list, tuple, np.ndarray)):
        raise ValueError(
            f"{source}, 'reason': expected a list of texts (one per frame), got {type(reason).__name__}."
        )
    fields["reason"] = reason
    fields["center"] = _center(data.get("center", (0.0, 0.0)), f"{source}, 'center'")
    method = data.get("method", "")
    fields["method"] = "" if method is None else str(method)
    params = data.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ValueError(  # noqa: TRY004 - bad values raise ValueError (house rule)
            f"{source}, 'params': expected an object (dictionary), got {type(params).__name__}."
        )
    fields["params"] = params
    return _checked(fields, source)


def _checked(fields: dict[str, Any], source: str) -> dict[str, Any]:
    """Refuse columns of different lengths here, naming the source (the
    dataclass's own checks would not name it)."""
    n = fields["dy"].size
    for key in ("dz", "dx", "angle", "scale", "quality", "ok", "reason"):
        value = fields.get(key)
        if value is None or isinstance(value, str):
            continue
        if len(value) != n:
            raise ValueError(
                f"{source}: '{key}' has {len(value)} values but 'dy' has {n}: one value per frame."
            )
    return fields
