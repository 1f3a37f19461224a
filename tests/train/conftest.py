"""Fixtures of the training tests."""

from __future__ import annotations

import pytest
from tiny_problem import write_dip_table


@pytest.fixture(scope="session")
def dip_table(tmp_path_factory):
    return write_dip_table(tmp_path_factory.mktemp("dip") / "table.csv")
