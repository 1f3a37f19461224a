"""Checkpoints: train state, normaliser, config and loop state, committed by one atomic rename.

Layout of ``<run_dir>/checkpoint/``::

    meta.json                       the commit record: epoch, counters, and each file's SHA-256
    state-<sha256[:16]>.msgpack     params + optimiser state (Flax msgpack)
    normalizer-<...>.json, config-<...>.json, arrays-<...>.npz

A save writes the data files under new (content-addressed) names, each to ``*.tmp``, fsynced and
renamed, then replaces ``meta.json`` the same way: that one ``os.replace`` is the commit. A job
killed at any step (a SLURM preemption) leaves ``meta.json`` naming either the previous
checkpoint or the new one, complete in both cases, so no recovery step has to guess which copy
is the last complete one (the old two-rename folder swap, killed between its renames, restarted
at epoch 0 and deleted ``checkpoint.old``). Files named by neither the current nor the previous
record are garbage: ignored on load, deleted after the next commit.

Why not Orbax: its commit is also the rename of a finished temporary folder, so it is no safer;
it would move every reader (``checkpoint/meta.json``, the sweep tooling) to one folder per step,
make verification and serving import Orbax and TensorStore to read a few kilobytes of weights,
and it keeps no content digests: per-file SHA-256 checks would still need a manifest of its
internal files, committed separately from its own commit, which is this scheme again.

Every load (resume, verification, serving) checks every digest and refuses a mismatch, a
missing file or one that does not parse with a one-line ``CheckpointError`` naming the file.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from flax import serialization
from flax.training.train_state import TrainState

from vpals_jax.data.normalizer import MinMaxNormalizer

CHECKPOINT_DIR = "checkpoint"
RECORD = "meta.json"
FORMAT = 2
_RESERVED = ("format", "files", "sha256")  # keys of the commit record the caller's meta may not use


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt or does not match its recorded digest."""


@dataclass(frozen=True)
class Checkpoint:
    """A verified checkpoint: ``state`` is the raw state dict (nested NumPy arrays) Flax saved."""

    state: dict[str, Any]
    normalizer: MinMaxNormalizer
    config: dict[str, Any]
    meta: dict[str, Any]
    arrays: dict[str, np.ndarray]


def checkpoint_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR


def has_checkpoint(run_dir: str | Path) -> bool:
    return (checkpoint_path(run_dir) / RECORD).is_file()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _record_digest(record: dict[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != "sha256"}
    return _sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())


def _write_file(path: Path, data: bytes) -> None:
    """Write ``*.tmp``, fsync, rename: ``path`` never holds a partial file."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _fsync_dir(path: Path) -> None:
    """Make the renames in ``path`` durable (a power cut, not only a kill, keeps the commit)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _named_files(path: Path) -> set[str]:
    """The files the current record names (none if there is no readable record)."""
    try:
        return {f["file"] for f in json.loads((path / RECORD).read_bytes())["files"].values()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return set()


def save_checkpoint(
    run_dir: str | Path,
    state: TrainState | dict[str, Any],
    normalizer: MinMaxNormalizer,
    config: dict[str, Any],
    meta: dict[str, Any],
    arrays: dict[str, np.ndarray] | None = None,
) -> Path:
    """Commit a checkpoint (see the module docstring); returns the checkpoint folder."""
    if clash := sorted(set(meta) & set(_RESERVED)):
        raise ValueError(f"checkpoint meta may not use the reserved key(s) {clash}")
    path = checkpoint_path(run_dir)
    path.mkdir(parents=True, exist_ok=True)
    blobs = {
        "state.msgpack": serialization.to_bytes(state),
        "normalizer.json": json.dumps(normalizer.to_dict(), indent=1).encode(),
        "config.json": json.dumps(config, indent=1).encode(),
    }
    if arrays:
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        blobs["arrays.npz"] = buf.getvalue()
    files = {}
    for role, data in blobs.items():
        digest, stem, suffix = _sha256(data), *role.split(".")
        name = f"{stem}-{digest[:16]}.{suffix}"
        _write_file(path / name, data)
        files[role] = {"file": name, "sha256": digest}
    record = {**meta, "format": FORMAT, "files": files}
    record["sha256"] = _record_digest(record)
    previous = _named_files(path)
    _fsync_dir(path)  # the data files are durable before the record that names them
    _write_file(path / RECORD, json.dumps(record, indent=1).encode())
    _fsync_dir(path)
    # The previous checkpoint's files stay one more save: a reader (verify, serve) that has just
    # read the previous record still finds them.
    keep = {RECORD} | {f["file"] for f in files.values()} | previous
    for stale in path.iterdir():
        if stale.name not in keep and stale.is_file():
            os.unlink(stale)
    return path


def _read_record(path: Path) -> dict[str, Any]:
    file = path / RECORD
    if not file.is_file():
        raise FileNotFoundError(f"no checkpoint in run directory {path.parent} (expected {file})")
    try:
        record = json.loads(file.read_bytes())
    except (ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{file}: corrupt checkpoint record (not valid JSON: {e})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT or "files" not in record:
        raise CheckpointError(f"{file}: not a format-{FORMAT} checkpoint record (written by an older version "
                              "without file digests, or damaged); retrain the run")  # fmt: skip
    if record.get("sha256") != _record_digest(record):
        raise CheckpointError(f"{file}: SHA-256 mismatch, the checkpoint record is corrupt")
    return record


def _read_blob(path: Path, entry: dict[str, str]) -> tuple[Path, bytes]:
    file = path / entry["file"]
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{file}: missing (named by {path / RECORD})") from None
    if _sha256(data) != entry["sha256"]:
        raise CheckpointError(f"{file}: SHA-256 mismatch with {path / RECORD}, the file is corrupt")
    return file, data


def _parse(role: str, data: bytes) -> Any:
    if role == "state.msgpack":
        return serialization.msgpack_restore(data)
    if role == "arrays.npz":
        with np.load(io.BytesIO(data)) as npz:
            return dict(npz)
    parsed = json.loads(data)
    return MinMaxNormalizer.from_dict(parsed) if role == "normalizer.json" else parsed


def read_checkpoint(run_dir: str | Path) -> Checkpoint:
    """Load and verify every file of the run's checkpoint (raises ``CheckpointError`` naming the file)."""
    path = checkpoint_path(run_dir)
    record = _read_record(path)
    loaded: dict[str, Any] = {}
    for role, entry in record["files"].items():
        file, data = _read_blob(path, entry)
        try:
            loaded[role] = _parse(role, data)
        except Exception as e:  # noqa: BLE001 -- whichever decoder fails, the file is unreadable
            raise CheckpointError(f"{file}: does not parse ({type(e).__name__}) although its digest matches") from None
    meta = {k: v for k, v in record.items() if k not in _RESERVED}
    return Checkpoint(loaded["state.msgpack"], loaded["normalizer.json"], loaded["config.json"], meta,
                      loaded.get("arrays.npz", {}))  # fmt: skip


def restore_state(checkpoint: Checkpoint, target: TrainState) -> TrainState:
    """The saved state poured into ``target`` (a freshly created state of the same shapes)."""
    return serialization.from_state_dict(target, checkpoint.state)


def load_checkpoint(run_dir: str | Path) -> tuple[dict, MinMaxNormalizer, dict, dict]:
    """Framework-light load for verification and serving: (params, normaliser, config, meta).

    ``params`` is the nested dict of NumPy arrays Flax saved; no model object is needed.
    """
    ck = read_checkpoint(run_dir)
    return ck.state["params"], ck.normalizer, ck.config, ck.meta
