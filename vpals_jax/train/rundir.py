"""Guards of a run directory: one training at a time, and a resume continues the same run.

Both are checked before the trainer writes anything, so a refused command leaves the run
directory as it found it.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from omegaconf import OmegaConf

from vpals_jax.config import Config

LOCK_FILE = ".lock"

# What a resumed run may not change. data, model and spec define what is trained and proven;
# optim, the seed, the batch size and the loop define the trajectory a resume promises to continue
# bitwise; pool_capacity fixes the shapes of the saved counterexample pool. Budgets (train.epochs,
# loop_epochs, max_wall_s, verifier.time_budget_s, ...) may change: extending a run is a resume.
FROZEN = ("data", "model", "spec", "optim", "train.seed", "train.batch_size", "train.loop", "train.pool_capacity")


class RunDirError(ValueError):
    """The run directory cannot be used as asked (busy, holds another run, cannot be resumed)."""


class RunLock:
    """``fcntl.flock`` on ``<run_dir>/.lock`` for the duration of a training.

    Two trainings in one directory would interleave ``metrics.jsonl`` and overwrite each other's
    checkpoints. The file holds the holder's pid while it is held (emptied on release), so the
    refusal can name it; the kernel drops the lock when the holder dies, so a killed job never
    leaves the directory locked.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self._fd: int | None = None

    def __enter__(self) -> Self:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RunDirError(
                f"run directory {self.path.parent} is in use by pid {holder} (it holds {self.path}); "
                "wait for it to finish or choose another run directory"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        assert self._fd is not None
        os.ftruncate(self._fd, 0)
        os.close(self._fd)  # releases the lock
        self._fd = None


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": [1]}}`` -> ``{"a.b.0": 1}``; an empty dict or list stays a value."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    flat: dict[str, Any] = {}
    for key, item in items:
        flat.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    return flat or {prefix: value}


def _frozen(key: str) -> bool:
    return any(key == f or key.startswith(f + ".") for f in FROZEN)


def _schema_defaults() -> dict[str, Any]:
    return _flatten(json.loads(json.dumps(OmegaConf.to_container(OmegaConf.structured(Config)))))


def check_resumable(saved: dict[str, Any], config: dict[str, Any], run_dir: str | Path) -> None:
    """Refuse, naming the first key, a config that changes what the checkpoint in ``run_dir`` was trained as.

    A key the run was trained without (added to the schema since) stands for its default: the
    run was trained as the default says, so a resume that keeps the default continues it.
    """
    old, new = _flatten(saved), _flatten(json.loads(json.dumps(config)))  # both sides as JSON types
    defaults = _schema_defaults()
    for key in sorted(k for k in old.keys() | new.keys() if _frozen(k)):
        was, now = old.get(key, defaults.get(key, "<absent>")), new.get(key, "<absent>")
        if was != now:
            raise RunDirError(f"cannot resume {run_dir}: {key} was {was!r} when it was trained, now {now!r} "
                              f"({', '.join(FROZEN)} are fixed for a run; train a new one)")  # fmt: skip
