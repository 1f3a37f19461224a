"""Verification certificates: verdicts bound to the exact function and spec content they prove.

A verdict is evidence about one network and one spec, nothing else. Every ``verdicts.json``
(written by ``vpals_jax.verify`` and at the end of a verified training run) records

* ``function_sha256``: ``function_fingerprint`` of the served function — weights, architecture,
  the normaliser (x and y scaling, feature names and their order, target) and, for a run that
  serves prediction intervals, its conformal calibration (``vpals_jax.train.calibrate``);
* per verdict, ``spec_sha256``: ``spec_digest`` of the spec's content in network space (kind,
  feature, direction, region, tolerance, bounds; the name is a label and is left out).

``certified_region`` trusts a certificate only if it was computed on exactly the served function
and its specs are exactly the deployment's required set, every one VERIFIED. A retrained or
edited model, an edited normaliser, or a spec set that shares a name but not its content
therefore serves nothing as verified. (The file is not signed: whoever can write it can forge it.)
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from verifiers import Box, ReluNetwork, Spec, Status, Verdict, spec_from_dict
from vpals_jax.data.normalizer import MinMaxNormalizer

log = logging.getLogger(__name__)

VERDICTS_FILE = "verdicts.json"
FORMAT = 2  # 1: matched by weights and spec-set name only; never trusted now


def canonical_json(obj: Any) -> str:
    """One exact text per value: sorted keys, floats as ``float.hex`` (no rounding, -0.0 kept)."""
    return json.dumps(_canonical(obj), sort_keys=True, separators=(",", ":"), allow_nan=False)


def _canonical(obj: Any) -> Any:
    if obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return {"float": float(obj).hex()}
    if isinstance(obj, np.ndarray):
        return _canonical(obj.tolist())
    if isinstance(obj, Mapping):
        return {str(k): _canonical(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    raise TypeError(f"no canonical form for a {type(obj).__name__}")


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def spec_digest(spec: Spec | Mapping[str, Any]) -> str:
    """SHA-256 of a spec's content in network space (a ``to_dict`` form is rebuilt first)."""
    content = (spec_from_dict(dict(spec)) if isinstance(spec, Mapping) else spec).to_dict()
    content.pop("name", None)
    return _sha256(canonical_json(content))


def network_fingerprint(net: ReluNetwork) -> str:
    """SHA-256 of the weights alone: tells whether a training round saw exactly these weights."""
    h = hashlib.sha256()
    for arr in (*net.weights, *net.biases):
        h.update(str(arr.shape).encode())
        h.update(np.ascontiguousarray(arr, dtype=np.float64).tobytes())
    return h.hexdigest()


def function_fingerprint(
    net: ReluNetwork, normalizer: MinMaxNormalizer, calibration: Mapping[str, Any] | None = None
) -> str:
    """SHA-256 of everything that defines the served map from raw features to raw target (and interval).

    The single definition used when certificates are written (verify CLI, training) and when
    they are served; any change to weights, layer shapes, scaling, feature order or the
    calibration (``Calibration.to_dict()``) changes it. Without a calibration the text is the one
    certificates had before intervals existed, so their certificates stay valid.
    """
    content: dict[str, Any] = {
        "activation": "relu",  # a ReluNetwork: ReLU hidden layers, linear output
        "layers": [list(w.shape) for w in net.weights],
        "weights_sha256": network_fingerprint(net),
        "normalizer": normalizer.to_dict(),
    }
    if calibration is not None:
        content["calibration_sha256"] = _sha256(canonical_json(calibration))
    return _sha256(canonical_json(content))


def save_verdicts(
    out_dir: str | Path,
    net: ReluNetwork,
    normalizer: MinMaxNormalizer,
    verdicts: Sequence[Verdict],
    calibration: Mapping[str, Any] | None = None,
    **info: Any,
) -> Path:
    """Write ``verdicts.json`` bound to the function (with the run's calibration, if it has one) and
    to each verdict's spec; ``info`` adds context."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    payload = {**info, "format": FORMAT, "function_sha256": function_fingerprint(net, normalizer, calibration),
               "features": list(normalizer.feature_names),
               "verdicts": [{"spec_sha256": spec_digest(v.spec), **v.to_dict()} for v in verdicts]}  # fmt: skip
    path = out / VERDICTS_FILE
    path.write_text(json.dumps(payload, indent=1))
    return path


def certified_region(run_dir: str | Path, fingerprint: str, required: Sequence[Spec]) -> Box | None:
    """Where every ``required`` spec is proven for the function ``fingerprint``, or None.

    Some certificate under ``run_dir`` must hold VERIFIED verdicts for exactly the required
    specs (compared by content: not fewer, which would leave one unproven, and not more or
    other, which would be a different requirement). The region is the intersection of the
    required specs' regions, in the network's input space.
    """
    want = {spec_digest(s) for s in required}
    if not want:
        return None
    if not any(_proves(path, fingerprint, want) for path in sorted(Path(run_dir).rglob(VERDICTS_FILE))):
        return None
    lo = np.max([s.region.lower for s in required], axis=0)
    hi = np.min([s.region.upper for s in required], axis=0)
    return Box(lo, hi) if np.all(lo <= hi) else None


def _proves(path: Path, fingerprint: str, want: set[str]) -> bool:
    try:
        payload = json.loads(path.read_text())
        if payload.get("function_sha256") != fingerprint:
            log.info("skipping %s: computed on another function (weights, normaliser or features)", path)
            return False
        proven = set()
        for entry in payload["verdicts"]:
            verdict = Verdict.from_dict({k: v for k, v in entry.items() if k != "spec_sha256"})
            digest = spec_digest(verdict.spec)
            if entry.get("spec_sha256") != digest or verdict.status != Status.VERIFIED:
                log.info("skipping %s: a spec is %s or its digest does not match", path, verdict.status.value)
                return False
            proven.add(digest)
    except (OSError, AttributeError, KeyError, TypeError, ValueError) as e:
        log.warning("skipping unreadable certificate %s: %s", path, e)
        return False
    if proven != want:
        log.info("skipping %s: its specs are not the required spec set", path)
    return proven == want
