"""``stackalign register --template-from FILE``: every file of a run registered onto one template.

By default each file (and each position) gets its own template: the
registered average of its first ``--num_frames`` frames. With
``--template-from FILE`` the template is built once, the same way, from
FILE (its ``--channel`` for multichannel input), and every input is
registered onto it, so that the outputs of a batch line up with each other.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from ..core.pyramid import PyramidOptions, register_and_apply
from ._positions import open_stack

__all__ = ["add_template_from_argument", "shared_template"]

#: templates built in this process, by (file, options) (a batch builds its template once)
_BUILT: dict[tuple[str, str, int], np.ndarray] = {}


def add_template_from_argument(group: Any) -> None:
    """Add ``--template-from FILE``."""
    group.add_argument(
        "--template-from",
        "--template_from",
        dest="template_from",
        default=None,
        metavar="FILE",
        help="register every input onto the template of FILE (the registered average of its first --num_frames "
        "frames), not each onto its own: the outputs of a batch then line up.",
    )


def shared_template(args: argparse.Namespace, options: PyramidOptions) -> np.ndarray | None:
    """The template ``--template-from`` asks for (None without the flag), built once per process.

    Raises
    ------
    FileNotFoundError
        When FILE does not exist.
    ValueError
        When FILE cannot be read or registered (the message names the flag).
    """
    text = getattr(args, "template_from", None)
    if text is None:
        return None
    path = Path(text).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"--template-from {path} does not exist: check the path.")
    if getattr(args, "apply_transforms", None) is not None:
        raise ValueError("--template-from and --apply-transforms exclude each other: a saved table is not estimated.")
    key = (str(path.resolve()), repr(options), int(getattr(args, "channel", 0)))
    if key not in _BUILT:
        _BUILT[key] = _build(path, args, options)
    return _BUILT[key]


def _build(path: Path, args: argparse.Namespace, options: PyramidOptions) -> np.ndarray:
    source = argparse.Namespace(max_memory=getattr(args, "max_memory", None), position=None)
    try:
        data = open_stack(path, source, dataset=getattr(args, "dataset", None), axes=getattr(args, "axes", None))
    except ValueError as exc:
        raise ValueError(f"--template-from {path.name}: {exc}") from exc
    try:
        n = min(int(data.data.shape[0]), options.num_frames)
        frames = np.asarray(data.data[:n])
        if data.channel_axis is not None:
            frames = frames[:, int(getattr(args, "channel", 0))]
    finally:
        data.close()
    if n < 2:
        raise ValueError(f"--template-from {path.name} has {n} frame: the template needs at least 2 frames.")
    aligned = register_and_apply(frames, **options.replace(num_frames=n, smooth=False).to_dict())
    good = np.asarray(aligned.transforms.ok, bool)
    kept = aligned.data[good] if good.any() else aligned.data
    return np.mean(kept, axis=0, dtype=np.float64).astype(np.float32)
