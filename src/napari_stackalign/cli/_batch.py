"""Batch runs: many inputs (or the positions of one) in one ``stackalign`` command.

``-i`` may be given more than once and may be a quoted glob (``-i 'runs/*.tif'``).
With several inputs, a glob, or an input that holds several positions (a
``P`` axis), the run is a batch (one input with ``-o`` a folder is refused, as
always):

* ``-o`` names an existing folder; each output is named after its input
  (:data:`OUTPUT_ENDINGS`: ``run1.tif`` -> ``run1_registered.h5``; position 2 of
  ``plate.h5`` -> ``plate_p2_registered.h5``);
* a side output names an ending: ``--transforms shifts.csv`` writes
  ``<folder>/run1_shifts.csv`` (in the folder the flag names, if it names one);
* every name is checked before any work; then the files run one after the
  other, each in its own output transaction: a file that fails leaves none of
  its outputs (the others' outputs stay), is reported, and the rest carry on;
* a summary table (``stackalign_summary.csv`` in the folder, or ``--summary``)
  lists every file and position: status, frames, drift range, flagged frames,
  seconds, and the error of a failed one;
* the exit code is the number of files that failed (0: all done; at most
  :data:`MAX_EXIT_FAILED`). A batch refused before any work exits 2 and writes
  no summary, as a single run does.
"""

from __future__ import annotations

import argparse
import csv
import glob
import io
import re
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..files import atomic_write_text, output_transaction
from ..io import natural_key
from ..transforms import FrameTransforms, NoSignalWarning
from ._memory_cap import resolve_max_memory
from ._positions import count_positions
from ._progress_bar import batch_item
from ._safety import same_path

__all__ = [
    "MAX_EXIT_FAILED",
    "OUTPUT_ENDINGS",
    "SIDE_OUTPUTS",
    "SUMMARY_COLUMNS",
    "add_batch_arguments",
    "dispatch",
    "expand_inputs",
    "record_result",
]

#: the exit code of a batch is the number of failed files, at most this
MAX_EXIT_FAILED = 100
#: what each subcommand appends to an input's name for its main output, and the extension
OUTPUT_ENDINGS = {
    "register": ("_registered", ".h5"),
    "average": ("_average", ".tif"),
    "stack": ("_stack", ".tif"),
    "track": ("_aligned", ".h5"),
}
#: the side outputs (argparse dests) of each subcommand; in a batch each names an ending
SIDE_OUTPUTS = {
    "register": ("transforms",),
    "average": ("registered", "transforms", "report"),
    "stack": ("log", "registered", "coverage"),
    "track": ("tracks", "transforms", "validation", "plots"),
}
#: the columns of the summary table
SUMMARY_COLUMNS = (
    "input",
    "position",
    "status",
    "output",
    "frames",
    "dy_min",
    "dy_max",
    "dx_min",
    "dx_max",
    "max_shift_px",
    "flagged",
    "flagged_frames",
    "seconds",
    "error",
)
SUMMARY_NAME = "stackalign_summary.csv"
_GLOB_CHARS = re.compile(r"[*?\[]")
#: extensions dropped from an input's name before its outputs are named (``a.ome.tif`` -> ``a``)
_DOUBLE_SUFFIXES = (".ome",)


def add_batch_arguments(group: Any) -> None:
    """``--summary`` (where the batch's table goes)."""
    group.add_argument(
        "--summary",
        metavar="CSV",
        default=None,
        help=f"batch runs: write the per-file summary table here (default: {SUMMARY_NAME} in the -o folder).",
    )


def record_result(args: argparse.Namespace, transforms: FrameTransforms) -> None:
    """Note a run's transforms for the batch summary (a no-op outside a batch)."""
    args.batch_result = transforms


@dataclass
class _Job:
    """One file (or one position of a file) of a batch."""

    input: Path
    position: int | None
    label: str
    args: argparse.Namespace | None = None
    outputs: list[Path] = field(default_factory=list)
    error: str | None = None


def expand_inputs(texts: Sequence[str]) -> tuple[list[Path], bool]:
    """The inputs ``-i`` names, globs expanded (natural order), duplicates dropped; and whether a glob was used.

    Raises
    ------
    FileNotFoundError
        For a path that does not exist or a glob that matches nothing.
    """
    found: list[Path] = []
    used_glob = False
    for text in texts:
        path = Path(text).expanduser()
        if path.exists():
            matches = [path]
        elif _GLOB_CHARS.search(str(text)):
            used_glob = True
            matches = sorted((Path(m) for m in glob.glob(str(path))), key=lambda p: natural_key(str(p)))
            if not matches:
                raise FileNotFoundError(f"-i {text}: no file matches: check the pattern (quote it: -i 'runs/*.tif').")
        else:
            raise FileNotFoundError(f"input {path} does not exist: check the path.")
        for match in matches:
            if not any(same_path(match, other) for other in found):
                found.append(match)
    return found, used_glob


def dispatch(args: argparse.Namespace) -> int:
    """Run a parsed command: ``--max-memory`` resolved, then one input as before, or a batch."""
    if hasattr(args, "max_memory"):
        args.max_memory = resolve_max_memory(args.max_memory)
    texts = getattr(args, "input", None)
    if not isinstance(texts, list):
        return int(args.func(args) or 0)
    inputs, used_glob = expand_inputs(texts)
    if len(inputs) == 1 and not used_glob and _positions(args, inputs[0]) <= 1:
        # one input: the run as it always was (an -o that is a folder is refused, see docs/reliability.md)
        args.input = str(inputs[0])
        return int(args.func(args) or 0)
    return _run_batch(args, inputs)


def _positions(args: argparse.Namespace, path: Path) -> int:
    """Positions of one input (1 when it has none, or cannot be opened: the run then says why)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return count_positions(path, dataset=getattr(args, "dataset", None), axes=getattr(args, "axes", None))
    except Exception:  # noqa: BLE001 - the run itself reports what is wrong with the file
        return 1


# ---------------------------------------------------------------- the batch
def _run_batch(args: argparse.Namespace, inputs: list[Path]) -> int:
    say = _say(args)
    folder = _output_folder(args)
    template = getattr(args, "template_from", None)
    if template is not None and not Path(template).expanduser().exists():
        raise FileNotFoundError(f"--template-from {template} does not exist: check the path.")
    jobs = _jobs(args, inputs)
    summary_path = _summary_path(args, folder)
    _name_outputs(args, jobs, folder, inputs, summary_path)
    rows = []
    t_batch = time.perf_counter()
    for number, job in enumerate(jobs, 1):
        tag = f"[{number}/{len(jobs)}] {job.label}"
        try:
            rows.append(_run_job(job, tag, say))
        except KeyboardInterrupt:  # a signal: stop; the files done keep their outputs, this one leaves none
            done = sum(row["status"] == "ok" for row in rows)
            say(
                f"stackalign {args.command}: batch stopped at {tag}; the {done} file(s) done before keep their outputs."
            )
            raise
    failed = sum(row["status"] != "ok" for row in rows)
    atomic_write_text(summary_path, _table(rows))
    say(
        f"stackalign {args.command}: batch of {len(jobs)}: {len(jobs) - failed} done, {failed} failed "
        f"in {time.perf_counter() - t_batch:.1f} s; summary {summary_path}"
    )
    return min(failed, MAX_EXIT_FAILED)


def _say(args: argparse.Namespace) -> Callable[..., None]:
    if getattr(args, "quiet", False):
        return lambda *a: None
    return lambda *a: print(*a, file=sys.stderr)


def _output_folder(args: argparse.Namespace) -> Path:
    folder = Path(str(args.output)).expanduser()
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"-o {folder} is a file: a batch (several inputs, a glob or positions) writes into a folder.")
    if not folder.is_dir():
        raise ValueError(
            f"-o: the output folder {folder} does not exist: a batch (several inputs, a glob or the positions of "
            "a P axis) writes into a folder; create it first or choose another path."
        )
    from ._safety import _check_folder

    _check_folder("-o", folder)
    return folder


def _jobs(args: argparse.Namespace, inputs: list[Path]) -> list[_Job]:
    """One job per input, or per position of a multi-position input; an input that cannot be opened is a failed job."""
    jobs: list[_Job] = []
    for path in inputs:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                n = count_positions(path, dataset=getattr(args, "dataset", None), axes=getattr(args, "axes", None))
        except Exception as exc:  # noqa: BLE001 - reported in the summary, the others carry on
            jobs.append(_Job(path, None, path.name, error=_error_text(exc)))
            continue
        if n <= 1 and not _names_p(args):
            jobs.append(_Job(path, None, path.name))
        else:
            jobs.extend(_Job(path, k, f"{path.name} position {k}") for k in range(n))
    return jobs


def _names_p(args: argparse.Namespace) -> bool:
    axes = getattr(args, "axes", None)
    return axes is not None and "P" in axes.upper()


def _stem(path: Path) -> str:
    name = path.name if path.is_dir() else path.stem
    for suffix in _DOUBLE_SUFFIXES:
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return name


def _summary_path(args: argparse.Namespace, folder: Path) -> Path:
    text = getattr(args, "summary", None)
    path = Path(text).expanduser() if text else folder / SUMMARY_NAME
    if path.suffix.lower() != ".csv":
        raise ValueError(f"--summary {path.name}: the summary is a CSV table; name it *.csv.")
    if path.exists() and not args.overwrite:
        raise ValueError(f"{path} already exists: pass --overwrite to replace it, or choose another --summary.")
    if not path.parent.is_dir():
        raise ValueError(f"--summary: the folder {path.parent} does not exist: create it first.")
    return path


def _name_outputs(args: argparse.Namespace, jobs: list[_Job], folder: Path, inputs: list[Path], summary: Path) -> None:
    """Give every job its outputs; refuse the batch (before any work) on a clash or an existing file."""
    ending, suffix = OUTPUT_ENDINGS[args.command]
    if args.command == "register" and getattr(args, "save_as_tif", None) == 1:
        suffix = ".tif"
    taken: dict[Path, str] = {summary.resolve(): "the summary table"}
    for job in jobs:
        if job.error is not None:
            continue
        width = 0 if job.position is None else max(1, len(str(_max_position(jobs, job.input))))
        base = _stem(job.input) + ("" if job.position is None else f"_p{job.position:0{width}d}")
        values = {"output": str(folder / f"{base}{ending}{suffix}")}
        for dest in SIDE_OUTPUTS.get(args.command, ()):
            given = getattr(args, dest, None)
            if given is not None:
                side = Path(given).expanduser()
                where = side.parent if str(side.parent) not in ("", ".") else folder
                values[dest] = str(where / f"{base}_{side.name}")
        for dest, value in values.items():
            path = Path(value).resolve()
            if path in taken:
                raise ValueError(
                    f"{job.label} and {taken[path]} would both write {value}: give the inputs different names, "
                    "or run them in separate batches."
                )
            if any(same_path(Path(value), src) for src in inputs):
                raise ValueError(f"{value} is an input of this batch: choose another -o folder.")
            if Path(value).exists() and not args.overwrite:
                raise ValueError(
                    f"{value} already exists: pass --overwrite to replace it, or choose another -o folder."
                )
            taken[path] = job.label
        job.outputs = [Path(v) for v in values.values()]
        job.args = argparse.Namespace(**{**vars(args), **values, "input": str(job.input), "position": job.position})


def _max_position(jobs: list[_Job], path: Path) -> int:
    return max(j.position or 0 for j in jobs if j.input == path)


def _run_job(job: _Job, tag: str, say: Callable[..., None]) -> dict[str, Any]:
    """Run one job in its own transaction; returns its summary row (a failure is caught and reported)."""
    row: dict[str, Any] = {"input": str(job.input), "position": "" if job.position is None else job.position}
    t0 = time.perf_counter()
    if job.error is None and job.args is not None:
        say(f"stackalign {job.args.command}: {tag}")
        try:
            with batch_item(tag), output_transaction():
                code = int(job.args.func(job.args) or 0)
            if code != 0:
                job.error = f"exit code {code}"
        except NoSignalWarning as exc:
            job.error = f"{exc} Nothing was written for this file; pass --force to write it anyway."
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop the batch
            job.error = _error_text(exc)
    row["seconds"] = f"{time.perf_counter() - t0:.2f}"
    if job.error is not None:
        say(f"stackalign: {tag}: failed: {job.error}")
        row.update(status="failed", error=job.error)
        return row
    assert job.args is not None
    row.update(status="ok", output=str(job.outputs[0]), error="")
    transforms = getattr(job.args, "batch_result", None)
    if transforms is not None:
        row.update(_drift_columns(transforms))
    return row


def _error_text(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if not isinstance(exc, (ValueError, OSError, KeyError)):
        text = f"{type(exc).__name__}: {text}"
    return " ".join(text.split())


def _drift_columns(transforms: FrameTransforms) -> dict[str, Any]:
    dy, dx = np.asarray(transforms.dy, float), np.asarray(transforms.dx, float)
    bad = np.flatnonzero(~np.asarray(transforms.ok, bool))
    return {
        "frames": len(transforms),
        "dy_min": f"{np.nanmin(dy):.3f}",
        "dy_max": f"{np.nanmax(dy):.3f}",
        "dx_min": f"{np.nanmin(dx):.3f}",
        "dx_max": f"{np.nanmax(dx):.3f}",
        "max_shift_px": f"{np.nanmax(np.hypot(dy, dx)):.3f}",
        "flagged": int(bad.size),
        "flagged_frames": " ".join(map(str, bad.tolist())),
    }


def _table(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SUMMARY_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({name: row.get(name, "") for name in SUMMARY_COLUMNS})
    return buffer.getvalue()
