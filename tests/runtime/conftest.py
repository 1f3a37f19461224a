"""The runtime tests serve a run whose configured spec set is proven (overrides the suite's fixture)."""

from __future__ import annotations

import pytest
from served_runs import calibrated_run_at, certified_run_at


@pytest.fixture(scope="session")
def certified_run(tmp_path_factory):
    """A monotone-by-construction model, configured with ``SERVED_SPEC`` and certified for it."""
    return certified_run_at(tmp_path_factory.mktemp("served"))


@pytest.fixture(scope="session")
def calibrated_run(certified_run, tmp_path_factory):
    """The certified run with a conformal calibration, certified with the calibration bound in."""
    return calibrated_run_at(certified_run[0], tmp_path_factory.mktemp("calibrated") / "run")
