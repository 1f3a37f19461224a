"""The co-location workload harness: sweep, measure, write, always clean up.

One *point* = one application configuration (CPU quota, memory limit) x one co-runner (kind,
level), measured as: apply the configuration, start the co-runner, warm up, snapshot, run the
benchmark client for the window, snapshot, stop the co-runner. The row holds every column of the
canonical schema (``vpals_jax.data.schema``) plus extras (see ``EXTRA_COLUMNS``).

Guarantees:
* the plan is deterministic for a seed and prefix-stable in ``points`` (``points=250`` after
  ``points=200`` measures 50 more); finished ``point_id`` s already in the CSV are skipped (resume);
* the sweep order is shuffled; a baseline point (no co-runner) comes every ``baseline_every`` points;
* every loop is bounded in count and in time (``max_wall_s``, per-client timeouts, bounded retries);
* servers, stressors and clients are stopped by their own PIDs and the cgroups removed on normal
  exit, on error and on Ctrl-C/SIGTERM/SIGHUP (signal handlers + ``try/finally``).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import itertools
import json
import logging
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from vpals_jax.data.collect.apps import App, make_app, tool_version
from vpals_jax.data.collect.cgroups import Cgroup, Layout, detect_layout
from vpals_jax.data.collect.corunner import KINDS, fractions, stress_ng_argv
from vpals_jax.data.collect.procfs import psi_available, read_system
from vpals_jax.data.collect.procs import ProcessManager, kill_pids
from vpals_jax.data.collect.window import Tick, window_metrics
from vpals_jax.data.schema import COLUMNS

log = logging.getLogger(__name__)
SCHEMA_COLUMNS = tuple(c.name for c in COLUMNS)

#: extra columns the harness adds after the schema columns (documented in docs/collect.md)
EXTRA_COLUMNS = (
    "point_id",
    "run_id",
    "baseline",
    "corunner_level",
    "noisy",
    "latency_avg_ms",
    "bench_requests",
    "bench_errors",
    "client_rc",
    "warmup_s",
    "layout",
    "corunner_cpu_cores",
    "corunner_psi_cpu_some_pct",
    "client_cpu_cores",
    "client_psi_cpu_some_pct",
    "sys_cpu_busy_cores",
    "steal_pct",
    "unattributed_cpu_cores",
    "unattributed_cpu_pct",
    "ncpu",
    "sys_mem_available_mb",
    "cg_throttled_ms",
    "cg_io_read_mb_s",
    "cg_io_write_mb_s",
    "cg_mem_anon_mb",
    "cg_mem_file_mb",
    *(
        f"{s}_psi_{r}_{lv}_{a}"
        for s in ("sys", "cg")
        for r in ("cpu", "mem", "io")
        for lv in ("some", "full")
        for a in ("avg10", "avg60")
    ),
)
ALL_COLUMNS = SCHEMA_COLUMNS + EXTRA_COLUMNS

DEFAULTS: dict = {
    "app": "redis",
    "points": 200,
    "out": "data/real",
    "format": "csv",  # csv | parquet | both (CSV is always written: it is the resume log)
    "seed": 0,
    "warmup_s": 1.0,
    "window_s": 3.0,
    "baseline_every": 5,
    "max_wall_s": 3600.0,
    "max_failures": 10,
    "max_server_restarts": 3,
    "cgroup_root": "/sys/fs/cgroup",
    "proc_root": "/proc",
    "cgroup_parent": "",
    "experiment_cpu_weight": 100,
    "tmp_dir": None,
    "app_cpus": [0],
    "client_cpus": [1],
    "corunner_cpus": [0],
    "sweep": {
        "app_quota_cores": [0.2, 0.35, 0.5, 0.75, 1.0],
        "mem_limit_mb": [256, 1024],
        "corunner_kinds": list(KINDS),
        "corunner_levels": [0.1, 0.2, 0.3, 0.4, 0.5],
    },
    "corunner": {"mem_budget_mb": 2048, "hdd_bytes_mb": 256},
    "quality": {"max_unattributed_pct": 15.0, "max_steal_pct": 5.0, "drop_noisy": False},
    "apps": {},
}


def merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in (over or {}).items():
        out[k] = merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return out


@dataclass(frozen=True)
class Point:
    point_id: int
    app_quota_cores: float
    mem_limit_mb: float | None
    corunner_kind: str
    corunner_level: float
    baseline: bool


def plan_signature(cfg: dict) -> str:
    """Hash of everything that defines the plan except its length (plans are prefix-stable)."""
    key = json.dumps(
        {"seed": cfg["seed"], "sweep": cfg["sweep"], "baseline_every": cfg["baseline_every"]}, sort_keys=True
    )
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def make_plan(points: int, sweep: dict, seed: int, baseline_every: int) -> list[Point]:
    """Shuffled grid (cycled when exhausted, reshuffled each cycle) with a baseline every N points."""
    rng = np.random.default_rng(seed)
    quotas = [float(q) for q in sweep["app_quota_cores"]]
    mems = [None if m is None else float(m) for m in sweep["mem_limit_mb"]]
    grid = list(
        itertools.product(quotas, mems, list(sweep["corunner_kinds"]), [float(x) for x in sweep["corunner_levels"]])
    )
    out: list[Point] = []
    order: list[int] = []
    for i in range(int(points)):
        if baseline_every and i % int(baseline_every) == 0:
            q = quotas[int(rng.integers(len(quotas)))]
            m = mems[int(rng.integers(len(mems)))]
            out.append(Point(i, q, m, "none", 0.0, True))
            continue
        if not order:
            order = list(rng.permutation(len(grid)))
        q, m, k, lv = grid[order.pop()]
        out.append(Point(i, q, m, k, lv, False))
    return out


def finished_points(csv_path: Path) -> set[int]:
    if not csv_path.exists() or csv_path.stat().st_size == 0:
        return set()
    try:
        df = pd.read_csv(csv_path, usecols=["point_id"])
    except (ValueError, pd.errors.EmptyDataError):
        return set()
    return {int(x) for x in df["point_id"].dropna()}


def append_row(csv_path: Path, row: dict) -> None:
    """Append one row (schema columns first); the header is written once and kept on resume."""
    if csv_path.exists() and csv_path.stat().st_size > 0:
        header = pd.read_csv(csv_path, nrows=0).columns.tolist()
    else:
        header = list(ALL_COLUMNS) + sorted(k for k in row if k not in ALL_COLUMNS)
    df = pd.DataFrame([{k: row.get(k, np.nan) for k in header}], columns=header)
    write_header = not (csv_path.exists() and csv_path.stat().st_size > 0)
    with open(csv_path, "a") as fh:
        df.to_csv(fh, header=write_header, index=False)
        fh.flush()
        os.fsync(fh.fileno())


class Interrupted(KeyboardInterrupt):
    """Raised from the SIGTERM/SIGHUP handler so ``finally`` blocks run."""


@contextlib.contextmanager
def signals_raise():
    """SIGINT, SIGTERM and SIGHUP raise ``Interrupted`` (a KeyboardInterrupt).

    SIGINT is installed explicitly too: a shell starts background jobs with SIGINT ignored, and
    Python keeps an inherited SIG_IGN, so ``kill -INT`` would otherwise do nothing.
    """

    def handler(signum, _frame):
        raise Interrupted(f"signal {signum}")

    old = {}
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        try:
            old[s] = signal.signal(s, handler)
        except ValueError:  # not the main thread
            pass
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


class Session:
    """Temporary directory, cgroups, the server; ``measure`` one point; ``cleanup`` everything.

    ``procs`` is injectable (tests pass a mock); ``cleanup`` is idempotent and never raises.
    """

    def __init__(self, cfg: dict, app: App, layout: Layout, procs: ProcessManager | None = None):
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
        self.server = None
        self.restarts = 0
        self.rate_by_quota: dict[float, float] = {}
        self.last_rate: tuple[float, float] | None = None
        self.ncpu = os.cpu_count() or 1
        self.meminfo_total_mb = read_system(cfg["proc_root"]).meminfo.get("MemTotal", math.nan)
        self.cleanup_errors: list[str] = []
        self._cleaned = False

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(self, *exc):
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

    def _run_helper(self, name, argv, timeout_s):
        return self.procs.run(
            name,
            argv,
            timeout_s=timeout_s,
            procs_files=self.groups["client"].procs_files(),
            cpus=self.cfg["client_cpus"],
            cwd=self.tmp,
        )

    def start_server(self) -> None:
        from vpals_jax.data.collect.apps import wait_port

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
            wait_port(self.app.port, self.app.start_timeout_s, alive=lambda: self.server.poll() is None)
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
        with _deferred_signals():
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
        if quota in self.rate_by_quota:
            return self.rate_by_quota[quota]
        if self.last_rate is not None:
            q0, r0 = self.last_rate
            return r0 * quota / q0
        return None

    def measure(self, p: Point) -> dict:
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


@contextlib.contextmanager
def _deferred_signals():
    """Hold SIGINT/SIGTERM/SIGHUP during cleanup so a second Ctrl-C cannot cut it short."""
    pending = []
    old = {}

    def hold(signum, _frame):
        pending.append(signum)

    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        try:
            old[s] = signal.signal(s, hold)
        except ValueError:
            pass
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        if pending:
            log.warning("signals %s arrived during cleanup", pending)


def environment(app: App, layout: Layout, proc_root: str) -> dict:
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path(proc_root, "cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    return {
        "kernel": " ".join(platform.uname()),
        "os": _os_release(),
        "python": sys.version.split()[0],
        "vpals_jax": _package_version(),
        "git_commit": _git_commit(),
        "pandas": pd.__version__,
        "numpy": np.__version__,
        "cpu_model": cpu_model,
        "ncpu": os.cpu_count(),
        "mem_total_mb": read_system(proc_root).meminfo.get("MemTotal"),
        "layout": layout.describe(),
        "psi_available": psi_available(proc_root),
        "tools": {**app.versions(), "stress-ng": tool_version(["stress-ng", "--version"])},
    }


def _package_version() -> str:
    try:
        return importlib.metadata.version("vpals-jax")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _git_commit() -> str:
    """The checkout's HEAD (provenance of the harness code), or "unknown" outside a git checkout."""
    try:
        r = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return r.stdout.strip() if r.returncode == 0 else "unknown"


def _os_release() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    return platform.platform()


def run(cfg: dict, procs: ProcessManager | None = None, progress: bool = True) -> dict:
    """Collect ``cfg['points']`` points for ``cfg['app']``; returns a summary dict."""
    cfg = merge(DEFAULTS, cfg)
    app = make_app(cfg["app"], cfg.get("apps", {}).get(cfg["app"], {}))
    layout = detect_layout(cfg["cgroup_root"])
    if layout.kind == "none":
        raise RuntimeError(f"no cgroup hierarchy under {cfg['cgroup_root']}")
    missing = [t for t in app.required_tools() + ["stress-ng"] if shutil.which(t) is None]
    if missing:
        raise RuntimeError(f"missing tools {missing}; see docs/collect.md for the apt-get line")
    out = Path(cfg["out"])
    out.mkdir(parents=True, exist_ok=True)
    csv_path, meta_path = out / f"{app.name}.csv", out / f"{app.name}.meta.json"
    sig = plan_signature(cfg)
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    if meta.get("plan_signature") not in (None, sig) and finished_points(csv_path):
        raise RuntimeError(
            f"{csv_path} was collected with another plan (seed/sweep/baseline_every); "
            "use another out= or the same settings"
        )
    plan = make_plan(cfg["points"], cfg["sweep"], cfg["seed"], cfg["baseline_every"])
    done = finished_points(csv_path)
    todo = [p for p in plan if p.point_id not in done]
    summary = {
        "app": app.name,
        "planned": len(plan),
        "already_done": len(plan) - len(todo),
        "written": 0,
        "failed": 0,
        "dropped_noisy": 0,
        "exit": "normal",
    }
    if not todo:
        log.info("%s: all %d points already collected in %s", app.name, len(plan), csv_path)
        return summary

    from tqdm import tqdm

    t_start = time.monotonic()
    run_rec = {"started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "config": cfg}
    consecutive = 0
    with signals_raise():
        session = Session(cfg, app, layout, procs)
        run_rec["run_id"] = session.run_id
        try:
            session.__enter__()
            meta.update(
                {
                    "app": app.name,
                    "plan_signature": sig,
                    "schema_columns": list(SCHEMA_COLUMNS),
                    "extra_columns": list(EXTRA_COLUMNS),
                    "environment": environment(app, layout, cfg["proc_root"]),
                    "commands": {
                        "server": app.server_argv(),
                        "client": app.client_argv(cfg["window_s"], None),
                        "corunner_example": stress_ng_argv(
                            "cpu",
                            0.3,
                            workers=len(cfg["corunner_cpus"]),
                            timeout_s=cfg["warmup_s"] + cfg["window_s"] + 60,
                            temp_dir="<tmp>",
                        ),
                        "cgroups": {n: [str(d) for d in g.dirs()] for n, g in session.groups.items()},
                    },
                }
            )
            meta.setdefault("runs", []).append(run_rec)
            meta_path.write_text(json.dumps(meta, indent=1, default=str))
            bar = tqdm(
                total=len(plan), initial=len(plan) - len(todo), desc=app.name, disable=not progress, dynamic_ncols=True
            )
            try:
                for p in todo:  # bounded by len(todo)
                    if time.monotonic() - t_start > cfg["max_wall_s"]:
                        summary["exit"] = "max_wall_s"
                        break
                    try:
                        row = session.measure(p)
                    except (KeyboardInterrupt, SystemExit):
                        raise
                    except Exception as e:
                        summary["failed"] += 1
                        consecutive += 1
                        log.warning("point %d failed: %s", p.point_id, e)
                        if consecutive >= cfg["max_failures"]:
                            raise RuntimeError(f"{consecutive} consecutive failed points; last: {e}") from e
                        continue
                    consecutive = 0
                    if row["noisy"] and cfg["quality"]["drop_noisy"]:
                        summary["dropped_noisy"] += 1
                    else:
                        append_row(csv_path, row)
                        summary["written"] += 1
                    bar.update(1)
                    bar.set_postfix(p50=f"{row['latency_p50_ms']:.3g}", kind=p.corunner_kind)
            finally:
                bar.close()
        except KeyboardInterrupt as e:
            summary["exit"] = f"interrupted ({e or 'SIGINT'})"
            raise
        except Exception as e:
            summary["exit"] = f"error: {e}"
            raise
        finally:
            errs = session.cleanup()
            run_rec.update(
                {
                    "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "summary": dict(summary),
                    "cleanup_errors": errs,
                }
            )
            meta["points_in_file"] = len(finished_points(csv_path))
            with contextlib.suppress(OSError):
                meta_path.write_text(json.dumps(meta, indent=1, default=str))
    if cfg["format"] in ("parquet", "both") and csv_path.exists():
        pd.read_csv(csv_path).to_parquet(out / f"{app.name}.parquet", index=False)
    return summary
