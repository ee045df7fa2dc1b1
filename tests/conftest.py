"""Shared fixtures: the real data folder (skipped when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_CANDIDATES = [
    os.environ.get("STACKALIGN_REAL_DATA", ""),
    str(Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real"),
    "/work/shared/data/real",
]


def _real_root() -> Path | None:
    for cand in _CANDIDATES:
        if cand and Path(cand).is_dir():
            return Path(cand).resolve()
    return None


@pytest.fixture
def real_data():
    """Path to ``shared/data/real``; the test is skipped when it is absent."""
    root = _real_root()
    if root is None:
        pytest.skip("real data (../shared/data/real) not present")
    return root
