"""``vpals-bench key=value ...``: the verifier benchmark's command line, in the house convention.

Every entry point takes ``key=value`` settings (``vpals-train``, ``vpals-verify``, ``vpals-export``
through Hydra, ``vpals-predict`` through its own parser): so does ``vpals-bench``. The driver is
not a Hydra app itself (it launches one: the multirun of ``job.py`` over the verifier configs),
so the settings are parsed here. The older ``--flag value`` spellings (``python -m
experiments.bench_verifiers --quick --time-limit 1``) are accepted too. Bad input is one line,
``vpals-bench: error: ...``, and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, NoReturn

import vpals_jax
from vpals_jax.cli import fail

PROG = "vpals-bench"
CONF = Path(vpals_jax.__file__).resolve().parent / "conf"  # the config tree, installed or not
DEFAULT_VERIFIERS = "ouroboros,crown,hybrid,milp,lirpa_crown,lirpa_alpha_crown"
# key -> (default, help); booleans take true/false, lists take a,b or [a,b]
OPTIONS: dict[str, tuple[Any, str]] = {
    "out": ("results/verifier_bench", "where the suite, the jobs and the report go"),
    "time_limit": (8.0, "seconds per instance and verifier (compilation included)"),
    "verifiers": (DEFAULT_VERIFIERS, "conf/verifier/*.yaml names, comma-separated"),
    "quick": (False, "the quick suite: small nets, one app's 17-input predictors (what the tests run)"),
    "trained": (True, "train the predictor instances (false: synthetic and ranking nets only)"),
    "apps": ("nginx,redis", "synthetic apps of the 17-input whole-domain predictors (quick: nginx)"),
    "widths": ("16,64", "widths of the small trained instances (full suite)"),
    "nnet": ([], "extra NNet files, checked for monotonicity in every input"),
    "reuse_suite": (False, "keep an existing suite.json instead of building it"),
    "launcher": ("basic", "basic (one process) or joblib (one process per verifier)"),
}
HEADER = f"""{PROG} (= python -m experiments.bench_verifiers): rank the verifier backends on one instance
suite. Builds the suite (planted violations, monotone-by-construction nets, near-tolerance bands,
ACAS Xu- and Ouroboros-sized nets, 17-input latency predictors trained normally and certified over
whole domains), runs every backend on every instance as a Hydra multirun over the verifier configs,
and writes summary.md (suite size; per backend VERIFIED / FALSIFIED, total wall time with
compilation, wrong verdicts), results.csv, cactus.png and scaling.png. Exit code 1 if any verdict
is wrong (against planted truth, the exact MILP, or another backend's re-checked counterexample)."""


def help_text() -> str:
    rows = []
    for k, (d, h) in OPTIONS.items():
        item = f"{k}={_show(d)}"
        rows.append(f"    {item:<35} {h}" if len(item) < 35 else f"    {item}\n    {'':<35} {h}")
    known = ", ".join(sorted(p.stem for p in (CONF / "verifier").glob("*.yaml")))
    return "\n".join([
        HEADER, "", "Usage:", f"  {PROG} [key=value ...]", "", "Examples:",
        f"  {PROG}                                   the full ranking (results/verifier_bench/summary.md)",
        f"  {PROG} quick=true time_limit=1           the quick suite, seconds per backend",
        f"  {PROG} verifiers=crown,milp nnet=[my.nnet] trained=false",
        f"  {PROG} launcher=joblib                   one process per verifier",
        f'  eval "$({PROG} -sc install=bash)"         tab completion of the settings in bash', "",
        "Options (key=value; the values this command would use):", *rows, "",
        f"  == verifier configs (verifiers=...) ==\n    {known}", "",
        "The --flag spellings work too (--time-limit 1 --quick). More: docs/interchange.md, README.md.",
    ]) + "\n"  # fmt: skip


def _show(v: Any) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, list):
        return "[" + ",".join(v) + "]"
    return f"{v:g}" if isinstance(v, float) else str(v)


class ArgumentParser(argparse.ArgumentParser):
    """Usage errors are one line (the house rule); --help prints the option list above."""

    def error(self, message: str) -> NoReturn:
        fail(self.prog, ValueError(message))

    def format_help(self) -> str:
        return help_text()


def _value(key: str, text: str) -> Any:
    default = OPTIONS[key][0]
    if isinstance(default, bool):
        if text.lower() not in ("true", "false"):
            raise ValueError(f"{key} must be true or false, got {text!r}")
        return text.lower() == "true"
    if isinstance(default, float):
        try:
            x = float(text)
        except ValueError:
            x = float("nan")
        if not x > 0:
            raise ValueError(f"{key} must be a number > 0, got {text!r}")
        return x
    if isinstance(default, list):
        return [p for p in text.strip("[]").split(",") if p]
    return text


def completion_script() -> str:
    """Bash completion of the ``key=`` settings, installed as Hydra's commands install theirs
    (``eval "$(vpals-bench -sc install=bash)"``), so every entry point completes alike."""
    words = " ".join([*(f"{k}=" for k in OPTIONS), "--help"])
    return f'complete -o nospace -W "{words}" {PROG}'


def parse_args(argv: list[str] | None = None) -> dict[str, Any]:
    """Settings from ``key=value`` items (and the older ``--key value`` flags)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:2] in (["-sc", "install=bash"], ["--shell-completion", "install=bash"]):
        print(completion_script())
        raise SystemExit(0)
    ap = ArgumentParser(prog=PROG, add_help=True)
    for key, (default, help_) in OPTIONS.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(default, bool):
            ap.add_argument(flag, dest=key, action="store_true", default=None, help=help_)
        elif isinstance(default, list):
            ap.add_argument(flag, dest=key, nargs="*", default=None, help=help_)
        else:
            ap.add_argument(flag, dest=key, default=None, help=help_)
    ap.add_argument("--no-trained", dest="trained", action="store_false", default=None)
    ap.add_argument("settings", nargs="*", help="key=value")
    ns = ap.parse_args(argv)
    args = {k: d for k, (d, _) in OPTIONS.items()}
    try:
        for key in OPTIONS:
            v = getattr(ns, key)
            if v is not None:
                args[key] = v if isinstance(v, (bool, list)) else _value(key, v)
        for item in ns.settings:
            key, sep, text = item.partition("=")
            if not sep or key not in OPTIONS:
                raise ValueError(f"expected key=value with a key among {list(OPTIONS)}, got {item!r}")
            args[key] = _value(key, text)
        if args["launcher"] not in ("basic", "joblib"):
            raise ValueError(f"launcher must be basic or joblib, got {args['launcher']!r}")
        for name in args["verifiers"].split(","):
            if not (CONF / "verifier" / f"{name}.yaml").is_file():
                raise ValueError(f"verifiers: unknown verifier config {name!r} (see {PROG} --help)")
    except ValueError as e:
        ap.error(str(e))
    return args
