"""Fixtures of the collector tests: fake external tools on PATH and a fake cgroupfs."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fake_tools import alive, cmdline, install, read_log

from vpals_jax.collector.cgroups import Cgroup

FX = Path(__file__).parent / "fixtures"


@dataclass
class FakeTools:
    bin_dir: Path
    log: Path

    def calls(self, tool: str | None = None) -> list[dict]:
        """The logged invocations (``--version`` excluded), oldest first."""
        return [r for r in read_log(self.log) if tool is None or r["tool"] == tool]

    def pids(self) -> list[int]:
        """Every process the fakes ran, with the workers they forked."""
        return [p for r in self.calls() for p in [r["pid"], *r["forked"]]]


@pytest.fixture
def fake_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTools]:
    """Fakes of every external tool first on PATH (whatever the machine has installed), switches off.

    Whatever a failing test left running is killed afterwards, so one bug does not leak processes
    into the rest of the run (only our fakes: their command line names this test's bin_dir).
    """
    tools = FakeTools(tmp_path / "fakebin", tmp_path / "fake_tools.jsonl")
    install(tools.bin_dir, tools.log)
    monkeypatch.setenv("PATH", f"{tools.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    for var in ("FAKE_FAIL", "FAKE_SIGNAL", "FAKE_SERVER_EXIT"):
        monkeypatch.delenv(var, raising=False)
    yield tools
    for pid in tools.pids():
        if alive(pid) and str(tools.bin_dir) in cmdline(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def work() -> Iterator[Path]:
    """A tmp_dir for the harness, unlike tmp_path short (mariadbd's socket path must fit in 108 bytes)
    and world-traversable (nginx started by root serves its docroot from workers running as www-data)."""
    d = Path(tempfile.mkdtemp(prefix="vpals-test-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@dataclass
class FakeCgroupfs:
    root: Path
    #: the last contents of each removed group's files: ``removed[rel][file name]``
    removed: dict[str, dict[str, str]] = field(default_factory=dict)


@pytest.fixture
def cgroupfs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeCgroupfs:
    """A writable copy of the v2 fixture tree that behaves like cgroupfs on rmdir.

    In the kernel a group's control files vanish with its directory; here the harness's writes
    (``cgroup.procs`` from the child before exec, ``cpu.max``, ``memory.max``) leave plain files,
    so ``Cgroup.remove`` first moves them into ``removed`` and then runs unchanged.
    """
    fs = FakeCgroupfs(tmp_path / "cgroup")
    shutil.copytree(FX / "v2" / "a" / "cgroup", fs.root)
    real_remove = Cgroup.remove

    def remove(self: Cgroup, timeout_s: float = 5.0) -> list[str]:
        for d in self.dirs():
            for f in d.glob("*") if d.is_dir() else ():
                if f.is_file():
                    fs.removed.setdefault(self.rel, {})[f.name] = f.read_text()
                    f.unlink()
        return real_remove(self, timeout_s)

    monkeypatch.setattr(Cgroup, "remove", remove)
    return fs
