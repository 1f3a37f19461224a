"""Verification certificates: verdicts bound to the exact weights they were computed on.

A verdict is only evidence about the network it was computed for. Every ``verdicts.json``
(from ``vpals_jax.verify`` or the training loop) records the SHA-256 of the network's float64
weights; the runtime predictor trusts a verdict only if that fingerprint matches the network it
serves, so retraining or resuming a run can never leave a stale VERIFIED behind.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from verifiers import ReluNetwork, Verdict

log = logging.getLogger(__name__)

VERDICTS_FILE = "verdicts.json"


def network_fingerprint(net: ReluNetwork) -> str:
    h = hashlib.sha256()
    for arr in (*net.weights, *net.biases):
        h.update(str(arr.shape).encode())
        h.update(np.ascontiguousarray(arr, dtype=np.float64).tobytes())
    return h.hexdigest()


def save_verdicts(
    out_dir: str | Path, net: ReluNetwork, verdicts: list[Verdict], features: list[str], **info: Any
) -> Path:
    """Write ``verdicts.json`` with the network fingerprint; ``info`` adds context (spec set, verifier)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    payload = {**info, "network_sha256": network_fingerprint(net), "features": list(features),
               "verdicts": [v.to_dict() for v in verdicts]}  # fmt: skip
    path = out / VERDICTS_FILE
    path.write_text(json.dumps(payload, indent=1))
    return path


def load_certificate_sets(run_dir: str | Path, net: ReluNetwork, spec_set: str | None = None) -> list[list[Verdict]]:
    """The verdicts of every ``verdicts.json`` under ``run_dir`` computed on exactly ``net``.

    One list per file (a file covers one spec set). With ``spec_set``, only files for that spec
    set count, so a partial verification (some other, smaller spec set) never passes for the app's.
    """
    fingerprint = network_fingerprint(net)
    sets: list[list[Verdict]] = []
    for path in sorted(Path(run_dir).rglob(VERDICTS_FILE)):
        try:
            payload = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            log.warning("skipping unreadable certificate %s: %s", path, e)
            continue
        if payload.get("network_sha256") != fingerprint:
            log.info("skipping %s: computed on other weights", path)
            continue
        if spec_set is not None and payload.get("spec_set") != spec_set:
            log.info("skipping %s: spec set %r, the app's is %r", path, payload.get("spec_set"), spec_set)
            continue
        verdicts = [Verdict.from_dict(v) for v in payload.get("verdicts", [])]
        if len(verdicts) != payload.get("n_specs", len(verdicts)):
            log.info("skipping %s: covers %d of the %s specs of its set", path, len(verdicts), payload["n_specs"])
            continue
        sets.append(verdicts)
    return sets
