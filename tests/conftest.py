"""Fixtures shared by the whole suite (plain helpers are in helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import certify, make_table, write_monotone_run


@pytest.fixture
def table_csv(tmp_path: Path) -> Path:
    path = tmp_path / "table.csv"
    make_table().to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def certified_run(tmp_path_factory):
    """A monotone-by-construction model with a real ouroboros certificate over part of its domain."""
    run_dir, norm = write_monotone_run(tmp_path_factory.mktemp("certified"))
    certify(run_dir)
    return run_dir, norm
