"""Starting and stopping the harness's own processes.

Every process is started in a new session (so its process-group id is its own PID), placed into
its cgroup and pinned to its CPUs *before* ``exec`` (so no worker it forks escapes), and stopped by
that PID: SIGTERM to its process group, a bounded wait, then SIGKILL. Nothing is ever killed by name.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger(__name__)


def _preexec(procs_files: Sequence[Path], cpus: Sequence[int] | None):
    files = [str(p) for p in procs_files]
    cpu_set = set(cpus) if cpus else None

    def fn():  # runs in the child between fork and exec
        pid = str(os.getpid())
        for f in files:
            with open(f, "w") as fh:
                fh.write(pid)
        if cpu_set:
            os.sched_setaffinity(0, cpu_set)

    return fn


class ProcessManager:
    """Owns every process the harness starts; ``stop_all`` is safe to call any number of times."""

    def __init__(self):
        self.procs: dict[int, tuple[str, subprocess.Popen]] = {}
        self.grace: dict[int, float] = {}

    def spawn(
        self,
        name: str,
        argv: Sequence[str],
        *,
        procs_files: Sequence[Path] = (),
        cpus: Sequence[int] | None = None,
        cwd: str | os.PathLike | None = None,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env: dict | None = None,
        grace_s: float = 3.0,
    ) -> subprocess.Popen:
        p = subprocess.Popen(
            list(argv),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            env=env,
            start_new_session=True,
            # single-threaded harness; the child must join its cgroup before exec so no worker escapes
            preexec_fn=_preexec(procs_files, cpus),  # noqa: PLW1509
        )
        self.procs[p.pid] = (name, p)
        self.grace[p.pid] = grace_s
        log.debug("started %s pid=%d: %s", name, p.pid, " ".join(argv))
        return p

    def run(self, name: str, argv: Sequence[str], *, timeout_s: float, **kw) -> tuple[int, str, str]:
        """Run to completion with a hard time bound; the process is killed on timeout or error."""
        p = self.spawn(name, argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
        try:
            out, err = p.communicate(timeout=timeout_s)
            return p.returncode, out.decode(errors="replace"), err.decode(errors="replace")
        except subprocess.TimeoutExpired:
            self.stop(p)
            return -9, "", f"{name} timed out after {timeout_s:.1f}s"
        finally:
            self.stop(p)

    def stop(self, p: subprocess.Popen, grace_s: float | None = None) -> None:
        """SIGTERM the process group led by ``p.pid`` (our own child), then SIGKILL after ``grace_s``."""
        if p.pid not in self.procs:
            return
        if grace_s is None:
            grace_s = self.grace.get(p.pid, 3.0)
        name = self.procs[p.pid][0]
        if p.returncode is None:
            _signal_group(p.pid, signal.SIGTERM)
            try:
                p.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                _signal_group(p.pid, signal.SIGKILL)
        # workers the leader forked may outlive it: kill what is left of its group
        _signal_group(p.pid, signal.SIGKILL)
        try:
            p.wait(timeout=1.0)
        except subprocess.TimeoutExpired:  # pragma: no cover - a D-state process
            log.warning("%s pid=%d did not exit", name, p.pid)
            return
        self.procs.pop(p.pid, None)
        self.grace.pop(p.pid, None)
        for s in (p.stdout, p.stderr):
            if s is not None:
                s.close()

    def stop_all(self) -> None:
        for _pid, (_name, p) in list(self.procs.items())[::-1]:
            try:
                self.stop(p)
            except Exception as e:  # noqa: BLE001 - cleanup must go on
                log.warning("stopping pid %d failed: %s", p.pid, e)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def kill_pids(pids: set[int], timeout_s: float = 3.0) -> None:
    """SIGKILL leftover PIDs found in the harness's own cgroups (only our descendants are there)."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    deadline = time.monotonic() + timeout_s
    while pids and time.monotonic() < deadline:
        pids = {p for p in pids if Path(f"/proc/{p}").exists() and not _is_zombie(p)}
        if pids:
            time.sleep(0.05)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True
