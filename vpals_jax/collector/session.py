"""Running one point: the server and cgroups of a sweep, one measurement, and cleanup on every exit.

One *point* is measured as: apply the application's configuration (CPU quota, memory limit), start
the co-runner, warm up, snapshot, run the benchmark client for the window, snapshot, stop the
co-runner. The row holds every schema column plus the extras of ``rows.EXTRA_COLUMNS``.

Every loop is bounded in count and in time (per-client timeouts, bounded server restarts);
servers, stressors and clients are stopped by their own PIDs and the cgroups removed by
``Session.cleanup``, which the run loop calls on normal exit, on error and on a stop signal.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Self

from vpals_jax.collector import apps
from vpals_jax.collector.apps import App
from vpals_jax.collector.cgroups import Cgroup, Layout
from vpals_jax.collector.corunner import fractions, stress_ng_argv
from vpals_jax.collector.plan import Point
from vpals_jax.collector.procfs import read_system
from vpals_jax.collector.procs import ProcessManager, kill_pids
from vpals_jax.collector.rows import ALL_COLUMNS
from vpals_jax.collector.signals import deferred_signals
from vpals_jax.collector.window import Tick, window_metrics

log = logging.getLogger(__name__)


class Session:
    """Temporary directory, cgroups, the server; ``measure`` one point; ``cleanup`` everything.

    ``procs`` is injectable (tests pass a mock); ``cleanup`` is idempotent and never raises.
    """

    def __init__(self, cfg: dict, app: App, layout: Layout, procs: ProcessManager | None = None) -> None:
        self.cfg = cfg
        self.app = app
        self.layout = layout
        self.procs = procs or ProcessManager()
        self.run_id = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{os.getpid()}"
        parent = str(cfg.get("cgroup_parent") or "").strip("/")
        self.root_rel = f"{parent}/vpals-{app.name}-{os.getpid()}".strip("/")
        self.groups: dict[str, Cgroup] = {}
        self.root: Cgroup | None = None
        self.tmp: Path | None = None
        self.server: Any = None  # the server's Popen (or the injected manager's stand-in)
        self.restarts = 0
        self.rate_by_quota: dict[float, float] = {}
        self.last_rate: tuple[float, float] | None = None
        self.ncpu = os.cpu_count() or 1
        self.meminfo_total_mb = read_system(cfg["proc_root"]).meminfo.get("MemTotal", math.nan)
        self.cleanup_errors: list[str] = []
        self._cleaned = False

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(self, *exc: object) -> bool:
        self.cleanup()
        return False

    def start(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix=f"vpals-{self.app.name}-", dir=self.cfg.get("tmp_dir")))
        self.root = Cgroup(self.layout, self.root_rel)
        self.root.create()
        if int(self.cfg.get("experiment_cpu_weight", 100)) != 100:
            self.root.set_cpu_weight(int(self.cfg["experiment_cpu_weight"]))
        for name in ("app", "corunner", "client"):
            g = Cgroup(self.layout, f"{self.root_rel}/{name}")
            g.create()
            self.groups[name] = g
        self.app.setup(self.tmp / "app", self._run_helper)
        self.start_server()

    def _run_helper(self, name: str, argv: list[str], timeout_s: float) -> tuple[int, str, str]:
        """A bounded set-up command of the app (data load, schema), run like a client."""
        return self.procs.run(
            name,
            argv,
            timeout_s=timeout_s,
            procs_files=self.groups["client"].procs_files(),
            cpus=self.cfg["client_cpus"],
            cwd=self.tmp,
        )

    def start_server(self) -> None:
        app_g = self.groups["app"]
        # generous limits while the server starts and loads its data
        app_g.set_cpu_quota(None)
        app_g.set_mem_limit(None)
        with open(self.tmp / f"{self.app.name}-server.out", "ab") as logf:
            self.server = self.procs.spawn(
                f"{self.app.name}-server",
                self.app.server_argv(),
                procs_files=app_g.procs_files(),
                cpus=self.cfg["app_cpus"],
                cwd=self.tmp,
                stdout=logf,
                stderr=logf,
                grace_s=self.app.server_grace_s,
            )
        try:
            apps.wait_port(self.app.port, self.app.start_timeout_s, alive=lambda: self.server.poll() is None)
        except (RuntimeError, TimeoutError) as e:
            tail = ""
            with contextlib.suppress(OSError):
                tail = (self.tmp / f"{self.app.name}-server.out").read_text(errors="replace")[-800:]
            raise RuntimeError(f"{self.app.name} server did not start: {e}; output: {tail}") from e
        self.app.after_start(self._run_helper)

    def restart_server_if_dead(self) -> None:
        if self.server is not None and self.server.poll() is None:
            return
        if self.restarts >= int(self.cfg["max_server_restarts"]):
            raise RuntimeError(f"{self.app.name} server died {self.restarts + 1} times; giving up")
        self.restarts += 1
        log.warning("%s server is gone; restarting (%d)", self.app.name, self.restarts)
        if self.server is not None:
            self.procs.stop(self.server)
        self.start_server()

    def cleanup(self) -> list[str]:
        """Stop every process by its PID, kill leftovers in our cgroups, remove cgroups and tmp."""
        if self._cleaned:
            return self.cleanup_errors
        self._cleaned = True
        with deferred_signals():
            try:
                self.procs.stop_all()
            except Exception as e:  # noqa: BLE001
                self.cleanup_errors.append(f"stop_all: {e}")
            for name, g in list(self.groups.items()):
                try:
                    left = g.member_pids()
                    if left:
                        log.warning("killing leftover pids %s in %s", sorted(left), name)
                        kill_pids(left)
                except Exception as e:  # noqa: BLE001
                    self.cleanup_errors.append(f"{name} pids: {e}")
                self.cleanup_errors += g.remove()
            if self.root is not None:
                self.cleanup_errors += self.root.remove()
            if self.tmp is not None:
                shutil.rmtree(self.tmp, ignore_errors=True)
        for e in self.cleanup_errors:
            log.error("cleanup: %s", e)
        return self.cleanup_errors

    # ------------------------------------------------------------------ measuring
    def tick(self) -> Tick:
        """A snapshot of the system and of every group, at one moment."""
        mono, wall = time.monotonic(), time.time()
        system = read_system(self.cfg["proc_root"])
        return Tick(mono, wall, system, {n: g.read() for n, g in self.groups.items()})

    def _client(self, duration_s: float, est_rps: float | None) -> tuple[int, str, str]:
        argv = self.app.client_argv(duration_s, est_rps)
        timeout = 5.0 * duration_s + 20.0
        return self.procs.run(
            f"{self.app.name}-client",
            argv,
            timeout_s=timeout,
            procs_files=self.groups["client"].procs_files(),
            cpus=self.cfg["client_cpus"],
            cwd=self.tmp,
        )

    def _est_rate(self, quota: float) -> float | None:
        """The rate last seen at this quota (else scaled from the last one): it sizes a client run."""
        if quota in self.rate_by_quota:
            return self.rate_by_quota[quota]
        if self.last_rate is not None:
            q0, r0 = self.last_rate
            return r0 * quota / q0
        return None

    def measure(self, p: Point) -> dict:
        """One row: the window's metrics, the client's report and the point's settings."""
        cfg = self.cfg
        self.restart_server_if_dead()
        app_g, co_g = self.groups["app"], self.groups["corunner"]
        app_g.set_cpu_quota(p.app_quota_cores)
        app_g.set_mem_limit(p.mem_limit_mb)
        co = None
        if not p.baseline:
            co_g.set_cpu_quota(p.corunner_level * self.ncpu)
            argv = stress_ng_argv(
                p.corunner_kind,
                p.corunner_level,
                workers=len(cfg["corunner_cpus"]),
                timeout_s=cfg["warmup_s"] + cfg["window_s"] + 60,
                temp_dir=str(self.tmp),
                mem_budget_mb=cfg["corunner"]["mem_budget_mb"],
                hdd_bytes_mb=cfg["corunner"]["hdd_bytes_mb"],
            )
            co = self.procs.spawn(
                "stress-ng", argv, procs_files=co_g.procs_files(), cpus=cfg["corunner_cpus"], cwd=self.tmp
            )
        try:
            est = self._est_rate(p.app_quota_cores)
            rc_w, out_w, _ = self._client(cfg["warmup_s"], est)
            if rc_w == 0:
                with contextlib.suppress(ValueError):
                    est = self.app.parse(out_w)["throughput_rps"]
            a = self.tick()
            rc, out, err = self._client(cfg["window_s"], est)
            b = self.tick()
        finally:
            if co is not None:
                self.procs.stop(co)
        if rc != 0:
            raise RuntimeError(f"client rc={rc}: {(err or out)[-300:]}")
        perf = self.app.parse(out)
        errs, reqs = perf.get("bench_errors", 0.0), perf.get("bench_requests", math.nan)
        if errs > 0 and not (errs <= 0.01 * reqs):
            raise RuntimeError(f"client reported {errs:.0f} errors of {reqs:.0f} requests")
        self.rate_by_quota[p.app_quota_cores] = perf["throughput_rps"]
        self.last_rate = (p.app_quota_cores, perf["throughput_rps"])
        m = window_metrics(a, b)
        row = {c: math.nan for c in ALL_COLUMNS}
        row.update(m)
        row.update(perf)
        row.update(fractions(p.corunner_kind, p.corunner_level))
        row.update(
            {
                "app": self.app.name,
                "corunner_kind": p.corunner_kind,
                "corunner_level": p.corunner_level,
                "point_id": p.point_id,
                "run_id": self.run_id,
                "baseline": bool(p.baseline),
                "client_rc": rc,
                "warmup_s": cfg["warmup_s"],
                "layout": self.layout.kind,
            }
        )
        # the configured quota/limit; "unlimited" is the machine size
        row["cpu_quota_cores"] = p.app_quota_cores
        row["mem_limit_mb"] = p.mem_limit_mb if p.mem_limit_mb is not None else self.meminfo_total_mb
        q = cfg["quality"]
        row["noisy"] = bool(
            (row.get("unattributed_cpu_pct", 0) or 0) > q["max_unattributed_pct"]
            or (row.get("steal_pct", 0) or 0) > q["max_steal_pct"]
            or (row.get("bench_errors", 0) or 0) > 0
        )
        return row
