"""Batch runs: several inputs of different formats in one command, one of them corrupt; positions (P axis)."""

from __future__ import annotations

import csv
import shlex

import h5py
import numpy as np
import pytest
import tifffile

from napari_stackalign.cli import main
from napari_stackalign.cli._batch import SUMMARY_COLUMNS
from napari_stackalign.io import read_stack, write_stack
from napari_stackalign.synthetic import make_stack
from napari_stackalign.transforms import FrameTransforms

FLAGS = "--num_frames 6 --downsample_rates [1/2,1] -q"


def _run(argline: str) -> int:
    return main(shlex.split(argline))


def _summary(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """a.tif (TIFF), b.h5 (HDF5), c/ (a folder of TIFF frames), bad.tif (corrupt)."""
    folder = tmp_path_factory.mktemp("batch_in")
    stacks = {}
    for i, name in enumerate("abc"):
        stack, _ = make_stack("beads", n_frames=12, shape=(64, 72), drift=4, snr=6, dtype=np.uint16, seed=40 + i)
        stacks[name] = stack
    tifffile.imwrite(folder / "a.tif", stacks["a"])
    write_stack(folder / "b.h5", stacks["b"])
    (folder / "c").mkdir()
    for t, frame in enumerate(stacks["c"]):
        tifffile.imwrite(folder / "c" / f"{t}.tif", frame)
    (folder / "bad.tif").write_bytes(b"II*\x00" + bytes(range(256)) * 8)  # a TIFF header, then garbage
    return folder, stacks


def test_a_batch_of_formats_with_a_corrupt_file(inputs, tmp_path):
    folder, stacks = inputs
    out = tmp_path / "out"
    out.mkdir()
    files = " ".join(f"-i {folder / n}" for n in ("a.tif", "b.h5", "c", "bad.tif"))
    code = _run(f"register {files} -o {out} --transforms shifts.csv {FLAGS}")
    assert code == 1  # one file failed
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        [
            "a_registered.h5",
            "a_shifts.csv",
            "b_registered.h5",
            "b_shifts.csv",
            "c_registered.h5",
            "c_shifts.csv",
            "stackalign_summary.csv",
        ]
    )
    rows = _summary(out / "stackalign_summary.csv")
    assert list(rows[0]) == list(SUMMARY_COLUMNS)
    by_name = {r["input"].rsplit("/", 1)[-1]: r for r in rows}
    assert [by_name[n]["status"] for n in ("a.tif", "b.h5", "c", "bad.tif")] == ["ok", "ok", "ok", "failed"]
    assert by_name["bad.tif"]["error"] and by_name["bad.tif"]["output"] == ""
    for name in "abc":
        row = by_name["c" if name == "c" else f"{name}.{'tif' if name == 'a' else 'h5'}"]
        table = FrameTransforms.load(out / f"{name}_shifts.csv")
        assert int(row["frames"]) == 12 == len(table)
        assert float(row["dy_min"]) == pytest.approx(table.dy.min(), abs=1e-3)
        assert float(row["dx_max"]) == pytest.approx(table.dx.max(), abs=1e-3)
        assert int(row["flagged"]) == int((~table.ok).sum())
        assert float(row["seconds"]) > 0
        got = read_stack(out / f"{name}_registered.h5", lazy=False)
        assert got.data.shape == stacks[name].shape


def test_a_file_failing_while_writing_leaves_none_of_its_outputs(inputs, tmp_path, monkeypatch):
    folder, _ = inputs
    out = tmp_path / "out"
    out.mkdir()
    real = FrameTransforms.save

    def save(self, path, *a, **k):
        if str(path).rsplit("/", 1)[-1].startswith("b_"):
            raise OSError("the disk went away")  # after b's stack was written
        return real(self, path, *a, **k)

    monkeypatch.setattr(FrameTransforms, "save", save)
    code = _run(f"register -i {folder / 'a.tif'} -i {folder / 'b.h5'} -o {out} --transforms t.csv {FLAGS}")
    assert code == 1
    assert sorted(p.name for p in out.iterdir()) == ["a_registered.h5", "a_t.csv", "stackalign_summary.csv"]
    rows = _summary(out / "stackalign_summary.csv")
    assert rows[1]["status"] == "failed" and "disk went away" in rows[1]["error"]


def test_a_quoted_glob_and_the_other_subcommands(inputs, tmp_path):
    folder, _ = inputs
    out = tmp_path / "out"
    out.mkdir()
    assert _run(f"stack -i '{folder}/[ab].*' -o {out} --log log.csv -q") == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "a_log.csv",
        "a_stack.tif",
        "b_log.csv",
        "b_stack.tif",
        "stackalign_summary.csv",
    ]
    rows = _summary(out / "stackalign_summary.csv")
    assert [r["status"] for r in rows] == ["ok", "ok"] and all(int(r["frames"]) == 12 for r in rows)


def test_names_and_folders_are_checked_before_any_work(inputs, tmp_path):
    folder, _ = inputs
    out = tmp_path / "out"
    assert _run(f"register -i {folder / 'a.tif'} -i {folder / 'b.h5'} -o {out} {FLAGS}") == 2  # no such folder
    out.mkdir()
    (out / "b_registered.h5").write_bytes(b"old")
    assert _run(f"register -i {folder / 'a.tif'} -i {folder / 'b.h5'} -o {out} {FLAGS}") == 2  # would replace
    assert sorted(p.name for p in out.iterdir()) == ["b_registered.h5"]  # a was not started
    assert _run(f"register -i '{folder}/nothing*.tif' -o {out} {FLAGS}") == 2


def test_positions_of_a_p_axis_are_registered_one_by_one(tmp_path):
    stacks = [make_stack("beads", n_frames=10, shape=(60, 64), drift=4, dtype=np.uint16, seed=s)[0] for s in (7, 8)]
    plate = tmp_path / "plate.h5"
    with h5py.File(plate, "w") as fh:
        fh["image_data"] = np.stack(stacks)  # (P, T, Y, X), no labels
    single = tmp_path / "p1.h5"
    write_stack(single, stacks[1])
    out = tmp_path / "out"
    out.mkdir()
    assert _run(f"register -i {plate} --axes PTYX -o {out} --transforms t.csv {FLAGS}") == 0
    rows = _summary(out / "stackalign_summary.csv")
    assert [(r["position"], r["status"]) for r in rows] == [("0", "ok"), ("1", "ok")]
    assert _run(f"register -i {single} -o {tmp_path / 'ref.h5'} {FLAGS}") == 0
    got = read_stack(out / "plate_p1_registered.h5", lazy=False).data
    np.testing.assert_array_equal(got, read_stack(tmp_path / "ref.h5", lazy=False).data)
    assert (out / "plate_p0_t.csv").exists()


def test_template_from_registers_every_file_onto_one_template(inputs, tmp_path):
    folder, stacks = inputs
    copy = tmp_path / "copy.h5"  # the same scene in another format: the same template, the same transforms
    write_stack(copy, stacks["a"])
    out = tmp_path / "out"
    out.mkdir()
    files = f"-i {folder / 'a.tif'} -i {copy}"
    code = _run(f"register {files} -o {out} --template-from {folder / 'a.tif'} --transforms t.csv {FLAGS}")
    assert code == 0, _summary(out / "stackalign_summary.csv")
    a, b = FrameTransforms.load(out / "a_t.csv"), FrameTransforms.load(out / "copy_t.csv")
    assert b.params.get("reference") == "user"
    assert a.allclose(b, atol=1e-9)
    assert _run(f"register {files} -o {out} --template-from {tmp_path / 'none.tif'} --overwrite {FLAGS}") == 2


def test_a_p_axis_reported_by_the_reader_is_looped_over(tmp_path, monkeypatch):
    """Readers that know positions report 'P' in the axes: each position is one run."""
    from napari_stackalign.cli import _positions
    from napari_stackalign.io import StackData

    stacks = [make_stack("beads", n_frames=10, shape=(60, 64), drift=4, dtype=np.uint16, seed=s)[0] for s in (3, 4)]
    plate = tmp_path / "plate.h5"
    write_stack(plate, stacks[0])
    real = _positions.read_stack

    def reader(path, **kwargs):
        if str(path) != str(plate):
            return real(path, **kwargs)
        return StackData(data=np.stack(stacks), axes="PTYX", scale=(1.0, 1.0, 0.5, 0.5), path=plate)

    monkeypatch.setattr(_positions, "read_stack", reader)
    out = tmp_path / "out"
    out.mkdir()
    assert _run(f"register -i {plate} -o {out} {FLAGS}") == 0
    rows = _summary(out / "stackalign_summary.csv")
    assert [r["position"] for r in rows] == ["0", "1"]
    second = tmp_path / "p1.h5"
    write_stack(second, stacks[1])
    assert _run(f"register -i {second} -o {tmp_path / 'ref.h5'} {FLAGS}") == 0
    np.testing.assert_array_equal(
        read_stack(out / "plate_p1_registered.h5", lazy=False).data, read_stack(tmp_path / "ref.h5", lazy=False).data
    )
    assert _run(f"register -i {plate} -o {tmp_path / 'one.h5'} {FLAGS}") == 2  # positions need a folder


def test_average_batch_reports_its_corrupt_file(inputs, tmp_path):
    folder, _ = inputs
    out = tmp_path / "out"
    out.mkdir()
    code = _run(f"average -i {folder / 'a.tif'} -i {folder / 'bad.tif'} -o {out} --transforms t.csv -q")
    assert code == 1
    assert sorted(p.name for p in out.iterdir()) == ["a_average.tif", "a_t.csv", "stackalign_summary.csv"]
    rows = _summary(out / "stackalign_summary.csv")
    assert [r["status"] for r in rows] == ["ok", "failed"] and rows[0]["frames"] == "12"
