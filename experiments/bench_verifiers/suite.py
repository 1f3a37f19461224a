"""The benchmark's instance suite: networks (NNet files) and specs (JSON), generated and saved.

Kinds: ``planted`` (a violation planted in a known sub-box: ground truth FALSIFIED),
``near_tolerance`` (a drop of 1e-4..1e-6 against a tolerance 10 % below or above it),
``monotone`` (monotone by construction: ground truth VERIFIED for every tolerance), ``random``
(unknown), ``trained`` (small predictors trained on the synthetic apps, LinnOS and CardWiki, at
several widths and depths; unknown), ``user`` (NNet files a user points at, checked on every
input for monotonicity over the file's input box).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from verifiers import Box, Monotonicity, ReluNetwork, Spec, spec_from_dict
from verifiers.io import read_nnet, write_nnet
from verifiers.testing.instances import monotone_net, planted_violation, random_relu_net, split_band_net, unit_box


@dataclass
class Instance:
    name: str
    kind: str
    net: ReluNetwork
    spec: Spec
    truth: str | None  # "VERIFIED", "FALSIFIED" or None (unknown)
    width: int
    depth: int


def _mono(feature: int, n: int, direction: str = "increasing", tolerance: float = 0.0, region: Box | None = None,
          name: str = "") -> Monotonicity:  # fmt: skip
    return Monotonicity(feature=feature, direction=direction, region=region or unit_box(n), tolerance=tolerance,
                        name=name)  # fmt: skip


def synthetic_instances(seed: int = 0) -> list[Instance]:
    out = []
    for n, hidden in ((4, (8, 8)), (6, (16, 16)), (6, (24, 24)), (8, (32, 32))):
        tag = f"{n}x{'x'.join(map(str, hidden))}"
        p = planted_violation(n, hidden, feature=1, seed=seed)
        out.append(Instance(f"planted_{tag}", "planted", p.net, p.spec, "FALSIFIED", hidden[0], len(hidden)))
        m = monotone_net(n, hidden, increasing=(0,), decreasing=(2,), seed=seed)
        out.append(Instance(f"monotone_{tag}", "monotone", m, _mono(0, n, tolerance=1e-3), "VERIFIED",
                            hidden[0], len(hidden)))  # fmt: skip
        out.append(Instance(f"monotone_dec_{tag}", "monotone", m, _mono(2, n, "decreasing"), "VERIFIED",
                            hidden[0], len(hidden)))  # fmt: skip
    for k, (n, hidden) in enumerate(((3, (8,)), (4, (8, 8)), (5, (16,)), (5, (12, 12)))):
        net = random_relu_net(n, hidden, seed=seed + k)
        spec = _mono(0, n, region=Box(np.full(n, 0.4), np.full(n, 0.6)))
        out.append(Instance(f"random_{n}x{'x'.join(map(str, hidden))}", "random", net, spec, None, hidden[0],
                            len(hidden)))  # fmt: skip
    return out


def ranking_instances(quick: bool = False, seed: int = 0) -> list[Instance]:
    """Instances that take the best backend more than a second, so that the benchmark ranks:
    Ouroboros-sized 9-500-500 and LinnOS-sized 9-300-300 networks, 5-50^6 (ACAS Xu size), slices
    of growing spread, and violations of 1e-4..1e-6 just above or below the tolerance (a band of
    exactly that drop: tolerance 0.9 x drop is FALSIFIED, 1.1 x drop VERIFIED). ``quick``: the
    small ones only (the test suite runs them)."""
    out = []
    for drop in (1e-4, 1e-5, 1e-6):
        net = split_band_net(n_inputs=5, feature=1, drop=drop, mix=0.3)
        for factor, truth in ((0.9, "FALSIFIED"), (1.1, "VERIFIED")):
            out.append(Instance(f"band_{drop:.0e}_tol{factor}", "near_tolerance", net,
                                _mono(1, 5, tolerance=factor * drop), truth, 8, 1))  # fmt: skip
    small = Box(np.full(5, 0.6), np.full(5, 0.62))
    acas = planted_violation(5, (50,) * 6, feature=0, sub_box=small, seed=seed)
    out.append(Instance("planted_acas_5x50x6", "planted", acas.net, acas.spec, "FALSIFIED", 50, 6))
    out.append(Instance("monotone_acas_5x50x6", "monotone", monotone_net(5, (50,) * 6, increasing=(0,), seed=seed),
                        _mono(0, 5), "VERIFIED", 50, 6))  # fmt: skip
    if quick:
        return out
    for n, hidden in ((9, (300, 300)), (9, (500, 500))):
        tag = f"{n}x{hidden[0]}x{len(hidden)}"
        p = planted_violation(n, hidden, feature=4, sub_box=Box(np.full(n, 0.3), np.full(n, 0.33)), seed=seed)
        out.append(Instance(f"planted_{tag}", "planted", p.net, p.spec, "FALSIFIED", hidden[0], 2))
        out.append(Instance(f"monotone_{tag}", "monotone", monotone_net(n, hidden, increasing=(4,), seed=seed),
                            _mono(4, n), "VERIFIED", hidden[0], 2))  # fmt: skip
        net = random_relu_net(n, hidden, seed=seed)
        for spread in (0.02, 0.05, 0.1, 0.2):
            region = Box(np.full(n, 0.5 - spread / 2), np.full(n, 0.5 + spread / 2))
            out.append(Instance(f"random_{tag}_spread{spread}", "random", net, _mono(4, n, region=region), None,
                                hidden[0], 2))  # fmt: skip
    return out


def trained_instances(widths: tuple[int, ...] = (16, 32), epochs: int = 3) -> list[Instance]:
    """Small predictors trained here and now (seconds each), with the specs users would check."""
    from vpals_jax.config import Config, DataConfig, ModelConfig, TrainConfig
    from vpals_jax.convert import load_network
    from vpals_jax.spec_files import build_specs
    from vpals_jax.train.trainer import run_training

    jobs = [("nginx", DataConfig(source="synthetic", app="nginx", n_samples=4000), "psi_pair"),
            ("linnos", DataConfig(source="linnos"), "linnos"),
            ("cardwiki", DataConfig(source="cardwiki", min_target=100.0), "cardwiki")]  # fmt: skip
    spec_sets = {
        "psi_pair": {"space": "normalized", "region": {"default": [0.0, 1.0]}, "specs": [
            {"kind": "monotonicity", "feature": "cg_psi_cpu_some_pct", "direction": "increasing",
             "region": {"default": 0.5, "cg_psi_cpu_some_pct": [0.0, 1.0], "cpu_quota_cores": [0.3, 0.7]}},
            {"kind": "monotonicity", "feature": "cpu_quota_cores", "direction": "decreasing",
             "region": {"default": 0.5, "cpu_quota_cores": [0.0, 1.0], "cg_psi_cpu_some_pct": [0.3, 0.7]}}]},
        "linnos": {"space": "normalized", "region": {"default": 0.5, "queue_len_h0": [0.4, 0.6],
                                                     "queue_len_h1": [0.4, 0.6]},
                   "specs": [{"kind": "monotonicity", "feature": "queue_len_now", "direction": "increasing",
                              "region": {"queue_len_now": [0.1, 0.9]}}]},
        "cardwiki": {"space": "normalized", "region": {"default": [0.0, 1.0]},
                     "specs": [{"kind": "monotonicity", "feature": "page_latest_low", "direction": "decreasing"}]},
    }  # fmt: skip
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for app, data, spec_name in jobs:
            for depth in (1, 2):
                for width in widths:
                    run = Path(tmp) / f"{app}_{depth}x{width}"
                    cfg = Config(run_dir=str(run), data=data, model=ModelConfig(depth=depth, width=width),
                                 train=TrainConfig(epochs=epochs, batch_size=256, progress=False))  # fmt: skip
                    run_training(cfg)
                    net, norm, _ = load_network(str(run))
                    for j, spec in enumerate(build_specs(spec_sets[spec_name], norm)):
                        out.append(Instance(f"trained_{app}_{depth}x{width}_s{j}", "trained", net, spec, None,
                                            width, depth))  # fmt: skip
    return out


def user_instances(paths: list[str]) -> list[Instance]:
    out = []
    for path in paths:
        net = read_nnet(path).network
        for i in range(net.n_inputs):
            spec = _mono(i, net.n_inputs, region=unit_box(net.n_inputs))
            out.append(Instance(f"user_{Path(path).stem}_x{i}", "user", net, spec, None, net.weights[0].shape[1],
                                len(net.weights) - 1))  # fmt: skip
    return out


def save_suite(instances: list[Instance], out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    index = []
    for inst in instances:
        nnet = out_dir / f"{inst.name}.nnet"
        write_nnet(inst.net, nnet)
        index.append({"name": inst.name, "kind": inst.kind, "truth": inst.truth, "width": inst.width,
                      "depth": inst.depth, "nnet": nnet.name, "spec": inst.spec.to_dict()})  # fmt: skip
    path = out_dir / "suite.json"
    path.write_text(json.dumps(index, indent=1))
    return path


def load_suite(suite_dir: Path) -> list[Instance]:
    index = json.loads((suite_dir / "suite.json").read_text())
    return [Instance(e["name"], e["kind"], read_nnet(suite_dir / e["nnet"]).network, spec_from_dict(e["spec"]),
                     e["truth"], e["width"], e["depth"]) for e in index]  # fmt: skip
