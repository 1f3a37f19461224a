"""Fake stand-ins for every external tool of the collector, so the harness tests run on a bare machine.

``install`` writes one executable per tool that runs ``main`` below. The fakes behave like the real
tools wherever the harness can tell the difference: servers listen on the port (and socket) their
command line names and fork a worker, as nginx and mariadbd do; stress-ng forks a worker and stops
after ``--timeout``; clients fail when nothing listens and otherwise print output captured from the
real tools (``fixtures/bench``); ``--version``/``-v`` print one line. Every other invocation
appends a JSON line (tool, call number, argv, pid, forked pids, CPU affinity) to the log, so a test
can check what ran, where it was pinned, and that it is gone afterwards.

Switches, read from the environment the harness passes on to its children:

* ``FAKE_FAIL="tool@2,5 other@1"``: those invocations of the tool print an error and exit 1;
* ``FAKE_SIGNAL="tool@3:15:<pid>"``: the 3rd invocation sends signal 15 to <pid>, then hangs;
* ``FAKE_SERVER_EXIT=1``: servers print an error and exit 1 during start-up.
"""

from __future__ import annotations

import json
import os
import re
import select
import socket
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent / "fixtures" / "bench"
SERVERS = ("redis-server", "nginx", "mariadbd")
CLIENTS = ("redis-benchmark", "wrk", "sysbench", "mariadb", "mariadb-install-db")
TOOLS = (*SERVERS, *CLIENTS, "stress-ng")
#: servers, workers and hung clients exit on their own after this, should a harness bug leave them behind
LIFETIME_S = 300.0


def version(tool: str) -> str:
    """What ``<tool> --version`` prints (the harness records it in the meta file)."""
    return f"{tool} (fake) 1.0"


def install(bin_dir: Path, log: Path) -> None:
    """Write an executable for each of ``TOOLS`` into ``bin_dir``, logging to ``log``."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    here = str(Path(__file__).resolve().parent)
    for tool in TOOLS:
        path = bin_dir / tool
        # -S: the fakes need only the standard library, and skipping site-packages keeps start-up short
        path.write_text(
            f"#!{sys.executable} -S\nimport sys\nsys.path.insert(0, {here!r})\nimport fake_tools\n"
            f"sys.exit(fake_tools.main({tool!r}, sys.argv[1:], {str(log)!r}))\n"
        )
        path.chmod(0o755)


def read_log(log: Path) -> list[dict]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line]


def alive(pid: int) -> bool:
    """A zombie counts as gone: it no longer runs and only waits for its parent to reap it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def wait_gone(pids: list[int], timeout_s: float = 5.0) -> list[int]:
    """The PIDs still alive after ``timeout_s`` (SIGKILL to a process group takes effect asynchronously)."""
    deadline = time.monotonic() + timeout_s
    left = [p for p in pids if alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [p for p in left if alive(p)]
    return left


# ------------------------------------------------------------------------------------ the fakes
def main(tool: str, args: list[str], log: str) -> int:
    if args in (["--version"], ["-v"]):
        print(version(tool))
        return 0
    call = 1 + sum(rec["tool"] == tool for rec in read_log(Path(log)))
    if tool in SERVERS:
        return _server(tool, args, log, call)
    if tool == "stress-ng":
        return _stressor(args, log, call)
    return _client(tool, args, log, call)


def _record(log: str, tool: str, call: int, args: list[str], forked: list[int]) -> None:
    rec = {
        "tool": tool,
        "call": call,
        "argv": args,
        "pid": os.getpid(),
        "forked": forked,
        "affinity": sorted(os.sched_getaffinity(0)),
    }
    with open(log, "a") as fh:
        fh.write(json.dumps(rec) + "\n")


def _opt(args: list[str], name: str) -> str | None:
    """The value of ``name value`` or ``name=value`` on a command line."""
    for i, a in enumerate(args):
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
        if a == name and i + 1 < len(args):
            return args[i + 1]
    return None


def _switch(var: str, tool: str, call: int) -> str | None:
    """The rest of ``tool@calls[:rest]`` in ``$var`` when ``call`` is among the calls, else None."""
    for entry in os.environ.get(var, "").split():
        name, _, spec = entry.partition("@")
        calls, _, rest = spec.partition(":")
        if name == tool and str(call) in calls.split(","):
            return rest
    return None


def _port(tool: str, args: list[str]) -> int:
    if tool == "nginx":
        conf = Path(_opt(args, "-c")).read_text()
        return int(re.search(r"listen 127\.0\.0\.1:(\d+);", conf).group(1))
    if tool == "wrk":
        return int(re.search(r":(\d+)/", args[-1]).group(1))
    name = {"redis-server": "--port", "mariadbd": "--port", "redis-benchmark": "-p", "sysbench": "--mysql-port"}
    return int(_opt(args, name[tool]))


def _server(tool: str, args: list[str], log: str, call: int) -> int:
    if os.environ.get("FAKE_SERVER_EXIT"):
        print(f"{tool}: fake start-up failure", file=sys.stderr)
        return 1
    listeners = [socket.create_server(("127.0.0.1", _port(tool, args)))]
    if _opt(args, "--socket"):
        unix = socket.socket(socket.AF_UNIX)
        unix.bind(_opt(args, "--socket"))
        unix.listen()
        listeners.append(unix)
    worker = os.fork()
    if worker == 0:
        time.sleep(LIFETIME_S)
        os._exit(0)
    _record(log, tool, call, args, [worker])
    deadline = time.monotonic() + LIFETIME_S
    while time.monotonic() < deadline:  # until the harness stops us
        ready, _, _ = select.select(listeners, [], [], 1.0)
        for s in ready:
            s.accept()[0].close()
    return 0


def _stressor(args: list[str], log: str, call: int) -> int:
    timeout_s = float(_opt(args, "--timeout").rstrip("s"))
    worker = os.fork()
    if worker == 0:
        time.sleep(timeout_s)
        os._exit(0)
    _record(log, "stress-ng", call, args, [worker])
    os.waitpid(worker, 0)
    return 0


def _connect(tool: str, args: list[str]) -> None:
    if tool == "mariadb":
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(_opt(args, "--socket"))
    else:
        socket.create_connection(("127.0.0.1", _port(tool, args)), timeout=5).close()


def _client(tool: str, args: list[str], log: str, call: int) -> int:
    _record(log, tool, call, args, [])
    if _switch("FAKE_FAIL", tool, call) is not None:
        print(f"{tool}: fake failure of call {call}", file=sys.stderr)
        return 1
    sig = _switch("FAKE_SIGNAL", tool, call)
    if sig:
        signum, pid = sig.split(":")
        os.kill(int(pid), int(signum))
        time.sleep(LIFETIME_S)
        return 1
    if tool == "mariadb-install-db":
        Path(_opt(args, "--datadir")).mkdir(parents=True)
        print("Installing MariaDB/MySQL system tables ... OK")
        return 0
    try:
        _connect(tool, args)
    except OSError as e:
        print(f"{tool}: could not connect: {e}", file=sys.stderr)
        return 1
    if tool == "redis-benchmark":
        out = (BENCH / "redis_benchmark.csv").read_text() if "--csv" in args else "SET: 24390.24 requests per second\n"
    elif tool == "wrk":
        out = (BENCH / "wrk.txt").read_text()
    elif tool == "sysbench":
        out = (BENCH / "sysbench.txt").read_text() if args[-1] == "run" else "Creating table 'sbtest1'...\n"
    else:
        out = ""
    sys.stdout.write(out)
    return 0
