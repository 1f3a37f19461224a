"""The three target applications: server start-up and the benchmark client of each.

Every server binds 127.0.0.1 on a free port and keeps its data in the harness's temporary
directory. Clients are run by the harness (in their own cgroup, pinned to their own cores) and
their output is parsed by ``vpals_jax.collector.reports``.
"""

from __future__ import annotations

import math
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from vpals_jax.collector.reports import parse_redis_benchmark_csv, parse_sysbench, parse_wrk

NAN = math.nan


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout_s: float, alive=lambda: True) -> None:
    """Poll until the port accepts connections; bounded in time."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError("server exited during start-up")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"port {port} not ready after {timeout_s}s")


def tool_version(argv: list[str]) -> str:
    if shutil.which(argv[0]) is None:
        return "not installed"
    try:
        r = subprocess.run(argv, capture_output=True, timeout=10, text=True, check=False)
        return (r.stdout + r.stderr).strip().splitlines()[0] if (r.stdout + r.stderr).strip() else ""
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unknown ({e})"


# ------------------------------------------------------------------------------------ apps
@dataclass
class App:
    """Base: ``start`` returns the server argv; ``client`` the benchmark argv for one run."""

    name: str = "app"
    params: dict = field(default_factory=dict)
    port: int = 0
    workdir: Path | None = None
    server_grace_s: float = 5.0
    start_timeout_s: float = 30.0

    def required_tools(self) -> list[str]:
        raise NotImplementedError

    def versions(self) -> dict[str, str]:
        raise NotImplementedError

    def setup(self, workdir: Path, run) -> None:
        """Prepare the data directory before the server starts (``run`` runs a bounded command)."""
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()

    def server_argv(self) -> list[str]:
        raise NotImplementedError

    def after_start(self, run) -> None:
        """Load data etc. once the server answers."""

    def client_argv(self, duration_s: float, est_rps: float | None) -> list[str]:
        raise NotImplementedError

    def parse(self, text: str) -> dict[str, float]:
        raise NotImplementedError


@dataclass
class Redis(App):
    name: str = "redis"

    def required_tools(self):
        return ["redis-server", "redis-benchmark"]

    def versions(self):
        return {
            "redis-server": tool_version(["redis-server", "--version"]),
            "redis-benchmark": tool_version(["redis-benchmark", "--version"]),
        }

    def server_argv(self):
        return [
            "redis-server",
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--dir",
            str(self.workdir),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
            "--logfile",
            str(self.workdir / "redis.log"),
        ]

    def after_start(self, run):
        keys = int(self.params.get("keyspace", 100000))
        rc, _out, err = run(
            "redis-load",
            [
                "redis-benchmark",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-t",
                "set",
                "-n",
                str(keys),
                "-r",
                str(keys),
                "-d",
                str(self.params.get("value_bytes", 64)),
                "-c",
                "20",
                "-q",
            ],
            120.0,
        )
        if rc != 0:
            raise RuntimeError(f"redis preload failed: {err[-300:]}")

    def client_argv(self, duration_s, est_rps):
        # redis-benchmark has no duration option: size the request count from the last rate seen
        rate = est_rps if est_rps and est_rps > 0 else float(self.params.get("initial_rps", 20000))
        n = int(min(max(rate * duration_s, 500), float(self.params.get("max_requests", 5_000_000))))
        self.last_n = n
        return [
            "redis-benchmark",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-t",
            str(self.params.get("tests", "get")),
            "-n",
            str(n),
            "-r",
            str(self.params.get("keyspace", 100000)),
            "-d",
            str(self.params.get("value_bytes", 64)),
            "-c",
            str(self.params.get("clients", 50)),
            "-P",
            str(self.params.get("pipeline", 1)),
            "--csv",
        ]

    def parse(self, text):
        r = parse_redis_benchmark_csv(text)
        r["bench_errors"] = 0.0
        r["bench_requests"] = float(getattr(self, "last_n", NAN))
        return r


NGINX_CONF = """\
worker_processes {workers};
daemon off;
master_process on;
pid {wd}/nginx.pid;
error_log {wd}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {wd}/tmp_body;
    proxy_temp_path {wd}/tmp_proxy;
    fastcgi_temp_path {wd}/tmp_fastcgi;
    uwsgi_temp_path {wd}/tmp_uwsgi;
    scgi_temp_path {wd}/tmp_scgi;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port};
        root {wd}/www;
        location / {{ }}
    }}
}}
"""


@dataclass
class Nginx(App):
    name: str = "nginx"

    def required_tools(self):
        return ["nginx", "wrk"]

    def versions(self):
        return {"nginx": tool_version(["nginx", "-v"]), "wrk": tool_version(["wrk", "-v"])}

    def setup(self, workdir, run):
        super().setup(workdir, run)
        (workdir / "www").mkdir(parents=True, exist_ok=True)
        # nginx workers run as an unprivileged user when started by root: make the docroot readable
        for d in (workdir.parent, workdir, workdir / "www"):
            d.chmod(0o755)
        size = int(self.params.get("page_bytes", 4096))
        (workdir / "www" / "index.html").write_text(("<p>vpals</p>" * (size // 12 + 1))[:size])
        (workdir / "nginx.conf").write_text(
            NGINX_CONF.format(workers=int(self.params.get("workers", 1)), wd=workdir, port=self.port)
        )

    def server_argv(self):
        return [
            "nginx",
            "-p",
            str(self.workdir),
            "-c",
            str(self.workdir / "nginx.conf"),
            "-e",
            str(self.workdir / "error.log"),
        ]

    def client_argv(self, duration_s, est_rps):
        d = max(1, round(duration_s))
        return [
            "wrk",
            f"-t{int(self.params.get('threads', 1))}",
            f"-c{int(self.params.get('connections', 32))}",
            f"-d{d}s",
            "--latency",
            f"http://127.0.0.1:{self.port}/index.html",
        ]

    def parse(self, text):
        return parse_wrk(text)


@dataclass
class MariaDB(App):
    name: str = "mariadb"
    server_grace_s: float = 20.0
    start_timeout_s: float = 60.0

    def required_tools(self):
        return ["mariadbd", "mariadb-install-db", "mariadb", "sysbench"]

    def versions(self):
        return {
            "mariadbd": tool_version(["mariadbd", "--version"]),
            "sysbench": tool_version(["sysbench", "--version"]),
        }

    @property
    def sock(self):
        return self.workdir / "mysqld.sock"

    def setup(self, workdir, run):
        super().setup(workdir, run)
        rc, out, err = run(
            "mariadb-install-db",
            [
                "mariadb-install-db",
                "--no-defaults",
                f"--datadir={workdir / 'data'}",
                "--user=root",
                "--skip-test-db",
                "--auth-root-authentication-method=socket",
            ],
            120.0,
        )
        if rc != 0:
            raise RuntimeError(f"mariadb-install-db failed: {(out + err)[-500:]}")

    def server_argv(self):
        wd = self.workdir
        return [
            "mariadbd",
            "--no-defaults",
            f"--datadir={wd / 'data'}",
            f"--socket={self.sock}",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            "--user=root",
            "--skip-name-resolve",
            f"--pid-file={wd / 'mariadb.pid'}",
            f"--log-error={wd / 'mariadb.err'}",
            "--skip-log-bin",
            f"--innodb-buffer-pool-size={int(self.params.get('buffer_pool_mb', 128))}M",
            "--innodb-log-file-size=48M",
            f"--max-connections={int(self.params.get('max_connections', 64))}",
        ]

    def _sb_common(self):
        return [
            "--db-driver=mysql",
            "--mysql-host=127.0.0.1",
            f"--mysql-port={self.port}",
            "--mysql-user=sb",
            "--mysql-password=sb",
            "--mysql-db=sbtest",
            f"--tables={int(self.params.get('tables', 4))}",
            f"--table-size={int(self.params.get('table_size', 10000))}",
        ]

    def after_start(self, run):
        sql = (
            "CREATE DATABASE IF NOT EXISTS sbtest; CREATE USER IF NOT EXISTS 'sb'@'127.0.0.1' IDENTIFIED BY 'sb'; "
            "GRANT ALL ON sbtest.* TO 'sb'@'127.0.0.1'; FLUSH PRIVILEGES;"
        )
        rc, _out, err = run("mariadb-init", ["mariadb", f"--socket={self.sock}", "-uroot", "-e", sql], 60.0)
        if rc != 0:
            raise RuntimeError(f"mariadb user setup failed: {err[-300:]}")
        rc, out, err = run("sysbench-prepare", ["sysbench", "oltp_read_only", *self._sb_common(), "prepare"], 300.0)
        if rc != 0:
            raise RuntimeError(f"sysbench prepare failed: {(out + err)[-500:]}")

    def client_argv(self, duration_s, est_rps):
        d = max(1, round(duration_s))
        return [
            "sysbench",
            "oltp_read_only",
            *self._sb_common(),
            f"--threads={int(self.params.get('threads', 4))}",
            f"--time={d}",
            "--percentile=99",
            "--histogram=on",
            "--report-interval=0",
            "run",
        ]

    def parse(self, text):
        return parse_sysbench(text)


APPS = {"redis": Redis, "nginx": Nginx, "mariadb": MariaDB}


def make_app(name: str, params: dict | None = None) -> App:
    if name not in APPS:
        raise ValueError(f"unknown app {name!r}; choose from {sorted(APPS)}")
    return APPS[name](params=dict(params or {}))
