"""The sweep: check the machine, plan, measure point after point, write, always clean up.

``run`` is resumable: the points already in ``<out>/<app>.csv`` are skipped, and a file collected
with another plan is refused. Its loop is bounded in count (the plan), in time (``max_wall_s``)
and in consecutive failures (``max_failures``); the session is cleaned up on normal exit, on error
and on Ctrl-C/SIGTERM/SIGHUP (signal handlers + ``try/finally``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import time
from pathlib import Path

import pandas as pd

from vpals_jax.collector.apps import App, make_app
from vpals_jax.collector.cgroups import Layout, detect_layout
from vpals_jax.collector.corunner import stress_ng_argv
from vpals_jax.collector.plan import DEFAULTS, make_plan, merge, plan_signature
from vpals_jax.collector.procs import ProcessManager
from vpals_jax.collector.provenance import environment
from vpals_jax.collector.rows import EXTRA_COLUMNS, SCHEMA_COLUMNS, append_row, finished_points
from vpals_jax.collector.session import Session
from vpals_jax.collector.signals import signals_raise

log = logging.getLogger(__name__)


class Refused(RuntimeError):
    """The sweep cannot start on this machine or into this file; nothing was started or written.

    The entry point reports it as one line with exit code 2, like any other bad input.
    """


def check_machine(cfg: dict, app: App) -> Layout:
    """The cgroup layout, once a hierarchy and every tool the sweep runs are known to be there."""
    layout = detect_layout(cfg["cgroup_root"])
    if layout.kind == "none":
        raise Refused(f"no cgroup hierarchy under {cfg['cgroup_root']}")
    missing = [t for t in app.required_tools() + ["stress-ng"] if shutil.which(t) is None]
    if missing:
        raise Refused(f"missing tools {missing}; see docs/collect.md for the apt-get line")
    return layout


def run_meta(cfg: dict, app: App, layout: Layout, session: Session, signature: str) -> dict:
    """What ``<app>.meta.json`` records of this run: plan, columns, environment and commands."""
    return {
        "app": app.name,
        "plan_signature": signature,
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


def run(cfg: dict, procs: ProcessManager | None = None, progress: bool = True) -> dict:
    """Collect ``cfg['points']`` points for ``cfg['app']``; returns a summary dict."""
    cfg = merge(DEFAULTS, cfg)
    app = make_app(cfg["app"], cfg.get("apps", {}).get(cfg["app"], {}))
    layout = check_machine(cfg, app)
    out = Path(cfg["out"])
    out.mkdir(parents=True, exist_ok=True)
    csv_path, meta_path = out / f"{app.name}.csv", out / f"{app.name}.meta.json"
    sig = plan_signature(cfg)
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    if meta.get("plan_signature") not in (None, sig) and finished_points(csv_path):
        raise Refused(
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
            meta.update(run_meta(cfg, app, layout, session, sig))
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
