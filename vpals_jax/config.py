"""Structured-config schemas: the single source of truth for every key under ``conf/``.

They are registered in Hydra's ConfigStore as ``config_schema`` so that ``conf/train.yaml``
(and every group file merged into it) is type-checked: a misspelt key or a wrong type fails at
compose time instead of being silently ignored. The training code takes these dataclasses (or
the equivalent DictConfig) and never touches Hydra itself.

Names that become path components (``name``, ``data.app``, ``spec.name``, ``verifier.name``) must
be plain names: checked when the dataclasses are built, and by the ``vpals.plain`` resolver in the
Hydra output directories of ``conf/train.yaml`` and ``conf/verify.yaml``, because Hydra creates
them before any job code runs (``data.app=../../x`` would otherwise create one outside ``runs/``).
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

_PLAIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def check_plain_name(key: str, value: Any) -> str:
    """``value`` if it is a plain name (letters, digits, ``_ . -``; not starting with ``.``), else ValueError."""
    if not isinstance(value, str) or not _PLAIN.fullmatch(value):
        raise ValueError(f"{key}={value!r} is not a plain name (letters, digits, '_', '.', '-', not starting "
                         "with '.'): it names a directory")  # fmt: skip
    return value


def _prog() -> str:
    """The console-script name (``vpals-train``), also under ``python -m vpals_jax.train``."""
    path = Path(sys.argv[0])
    name = path.parent.name if path.stem == "__main__" else path.stem
    return name if name.startswith("vpals-") else f"vpals-{name}"


def _plain_names_resolver(*pairs: Any) -> str:
    """``${vpals.plain:key1,value1,key2,value2,...}``: checks every pair, returns the last value.

    An exception here would reach the user as Hydra's multi-line report with exit code 1, so a bad
    name is the one-line error and exit code 2 of every CLI instead.
    """
    try:
        for key, value in zip(pairs[::2], pairs[1::2], strict=True):
            check_plain_name(key, value)
    except ValueError as e:
        print(f"{_prog()}: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    return pairs[-1]


OmegaConf.register_new_resolver("vpals.plain", _plain_names_resolver, replace=True)


@dataclass
class DataConfig:
    # synthetic | table (canonical-schema CSV/Parquet) | linnos | cardwiki | auto_mpg | heart
    source: str = "synthetic"
    app: str = "nginx"
    # table: the CSV/Parquet file; benchmark sources: override the shipped copy under data/external
    path: str | None = None
    n_samples: int = 20000
    seed: int = 0
    # random: shuffled hold-out; ood: train on interference <= ood_threshold, test above it;
    # given: the source's own train/test files (auto_mpg, heart)
    split: str = "random"
    test_fraction: float = 0.2
    ood_threshold: float = 0.5
    target: str | None = None  # None: the source's default target
    features: list[str] | None = None  # None: the source's default features
    nan_policy: str = "drop"  # drop (count is logged) | fail
    min_target: float | None = None  # keep rows with target > min_target (CardWiki uses 100)
    # learn log(target) (named log_<target>) instead of the target: for heavy-tailed targets such as
    # cardinalities, whose min-max scale leaves most rows within 1e-3 of 0. log is increasing, so an
    # exact monotonicity spec means the same of both; tolerances and bounds are then in log units
    target_log: bool = False
    # fraction of the training rows held out (deterministic in data.seed) to calibrate the served
    # prediction intervals (vpals_jax.train.calibrate, docs/uncertainty.md); 0 trains on them all
    # and serves no intervals
    calibration_fraction: float = 0.1
    # table files from elsewhere: file column -> schema column (one '*' may stand for any text on
    # both sides, e.g. {"target_*": "cg_*"}), then schema column -> factor into the schema's unit
    # (CPU in % of a core: 0.01; memory in bytes: 9.5367431640625e-07)
    columns: dict[str, str] = field(default_factory=dict)
    units: dict[str, float] = field(default_factory=dict)
    test_path: str | None = None  # table: test on this file (same app, columns, units) instead of a split

    def __post_init__(self) -> None:
        check_plain_name("data.app", self.app)


MODEL_NAMES = ("mlp", "cmnn", "lmn")
LOSSES = ("mse", "bce")  # train.loss


@dataclass
class ModelConfig:
    # mlp: free ReLU network | cmnn, lmn: monotone by construction (vpals_jax/models, docs/baselines.md)
    name: str = "mlp"
    depth: int = 2  # hidden layers
    width: int = 64
    activation: str = "relu"  # relu (verifiable) | tanh | gelu; cmnn: relu only; lmn: GroupSort, ignored
    # cmnn / lmn: feature -> increasing | decreasing; empty: the monotonicity specs of spec=
    monotone: dict[str, str] = field(default_factory=dict)
    cmnn_split: list[int] = field(default_factory=lambda: [2, 2, 1])  # convex : concave : saturated units
    lmn_lipschitz: float = 1.0  # lambda: Lipschitz bound of the free part and slope of the linear term

    def __post_init__(self) -> None:
        if self.name not in MODEL_NAMES:
            raise ValueError(f"unknown model.name {self.name!r}; use one of {list(MODEL_NAMES)}")
        for feature, direction in (self.monotone or {}).items():
            if direction not in ("increasing", "decreasing"):
                raise ValueError(f"model.monotone.{feature}={direction!r}: use increasing or decreasing")
        split = list(self.cmnn_split)
        if len(split) != 3 or any(not isinstance(k, int) or k < 0 for k in split) or sum(split) == 0:
            raise ValueError(f"model.cmnn_split must be three counts >= 0, not all 0, got {split}")
        lip = self.lmn_lipschitz
        if not (isinstance(lip, (int, float)) and math.isfinite(lip) and lip > 0):
            raise ValueError(f"model.lmn_lipschitz must be a finite number > 0, got {lip!r}")


@dataclass
class OptimConfig:
    name: str = "adam"  # adam | adamw | sgd
    lr: float = 1e-3
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"optim.lr must be a finite number > 0, got {self.lr!r}")
        if not (isinstance(self.weight_decay, (int, float)) and math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"optim.weight_decay must be a finite number >= 0, got {self.weight_decay!r}")


@dataclass
class TrainConfig:
    epochs: int = 30
    batch_size: int = 256
    seed: int = 0
    tolerance: float = 0.05  # accuracy-within-tolerance on the normalised target (Ouroboros)
    # mse: regress the min-max normalised target | bce: binary cross-entropy, for a 0/1 target only
    # (refused otherwise). With bce the network outputs a logit: monotone in the logit is monotone in
    # the probability, accuracy is logit > 0 (probability 0.5) against the target (tolerance unused),
    # spec tolerances and output bounds stay in output units, i.e. logits, and no conformal
    # intervals are fitted
    loss: str = "mse"
    resume: bool = False
    # epochs between checkpoints; the last epoch, every verification round and a stop are always
    # saved (with fsync, each save cost 9 ms: every epoch, 2.7 s of a 300-epoch run on 220 rows)
    save_every: int = 10
    progress: bool = True
    # The training-verification loop: normal | vanilla | spec_data | early_rejection (Ouroboros) | certified
    loop: str = "normal"
    verify_at_end: bool = False  # normal loop: verify the final model once (the unverified baseline)
    accuracy_threshold: float = 0.9  # verify only once train accuracy reaches it; stop needs it too
    verify_every: int = 1  # epochs between verification rounds
    verify_from: int = 0  # no round before this epoch (certified: rounds before min_epochs cannot end the run)
    # > 0: a round's time budget per spec starts here and doubles after every round that leaves a
    # spec unproven, up to verifier.time_budget_s (the last epoch's round always gets all of it);
    # 0: every round gets verifier.time_budget_s
    round_budget_s: float = 0.0
    # > 0: a round's box budget per spec (search backends: crown, ouroboros) starts here and doubles
    # like round_budget_s, up to the backend's max_boxes (the last epoch's round gets that): a
    # round then decides the same way on any machine; 0: the backend's max_boxes
    round_budget_boxes: int = 0
    # > 0 (certified, with round_budget_boxes): after a round's first unproven spec, the specs it has
    # not reached still get this fraction of its box budget, so that training sees where each of
    # them fails at once; 0: the round stops there (early rejection)
    round_survey: float = 0.0
    min_epochs: int = 0  # correcting loops stop at the first all-VERIFIED round at or after this epoch
    loop_epochs: int = 0  # epoch budget of the correcting loops (0: epochs); normal always trains epochs
    lam: float = 0.1  # weight of the spec-aware hinge loss (slope form, see steps.spec_hinge)
    eps: float = 1e-2  # step along the spec's feature for counterexample pairs (normalised units)
    # required slope sign * df/dx_i on training pairs (normalised units); > 0 leaves the interval
    # proof room to succeed, 0 is the plain Ouroboros hinge
    margin: float = 0.05
    slope_hinge: bool = True  # hinge on the slope (f(x') - f(x)) / |x' - x|; false: on the difference
    # spec_data / early_rejection: also draw fresh pairs every step from the region of each spec
    # that a round did not prove (the verifier's unproven volume), not only at its witnesses
    sample_regions: bool = True
    margin_growth: float = 2.0  # a region still unproven without a witness asks for margin x this next round
    max_margin: float = 0.4
    max_wall_s: float = 600.0  # wall-clock budget of the whole loop (training + verification)
    reset_weights: bool = False  # re-initialise after each round instead of training on (incremental)
    augment: int = 8  # spec_data: jittered copies added per counterexample
    pool_capacity: int = 4096  # counterexample pairs kept (ring buffer)
    pair_batch: int = 256  # pairs drawn per training step
    # certified: the interval bound of every spec over boxes that grow to the whole region is
    # pushed above cert_margin (see steps.certified_hinge and docs/certified.md)
    cert_lam: float = 1.0  # weight of the bound hinge
    # > cert_lam: the weight doubles after each round in a row that leaves a spec unproven, up to this
    # (a multiplier raised while its constraint is violated); 0: cert_lam throughout
    cert_lam_max: float = 0.0
    cert_warmup: int = 2  # epochs of plain training first
    cert_ramp: int = 10  # epochs over which the boxes grow from cert_min_scale to the whole region
    cert_min_scale: float = 0.05
    cert_margin: float = 0.0  # slope the bound must reach beyond -t / W_i (normalised units)
    cert_boxes: int = 64  # boxes per training step...
    cert_full_boxes: int = 0  # ...of which this many span the current scale (the rest are smaller)

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"unknown train.loss {self.loss!r}; use mse or bce")
        if not 0 < self.eps < 1:
            raise ValueError(f"train.eps must be in (0, 1), got {self.eps}")
        if not 0 <= self.round_budget_s < float("inf"):
            raise ValueError(f"train.round_budget_s must be a number of seconds >= 0, got {self.round_budget_s}")
        if not 0 <= self.round_survey <= 1 or (self.round_survey and not self.round_budget_boxes):
            raise ValueError(f"train.round_survey must be in [0, 1] and needs train.round_budget_boxes > 0; got "
                             f"{self.round_survey:g} with {self.round_budget_boxes} boxes")
        if self.cert_lam_max < 0 or 0 < self.cert_lam_max < self.cert_lam:
            raise ValueError(f"train.cert_lam_max must be 0 (no growth) or >= train.cert_lam ({self.cert_lam:g}); "
                             f"got {self.cert_lam_max:g}")


@dataclass
class SpecSetConfig:
    """A ``conf/spec`` file: see ``vpals_jax.spec_files`` for the format."""

    name: str = "specs"
    space: str = "raw"  # units of region bounds: raw | normalized
    region: dict[str, Any] = field(default_factory=lambda: {"default": "domain"})
    specs: list[Any] = field(default_factory=list)
    # a spec naming a feature the model was not trained on: skip (warned, named) | fail
    missing_features: str = "skip"

    def __post_init__(self) -> None:
        check_plain_name("spec.name", self.name)


@dataclass
class VerifierConfig:
    name: str = "ouroboros"  # any registered backend: ouroboros, crown, lirpa, milp
    time_budget_s: float = 60.0  # per spec
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_plain_name("verifier.name", self.name)


@dataclass
class CalibrationConfig:
    """Conformal prediction intervals fitted on the calibration split (``docs/uncertainty.md``)."""

    method: str = "mondrian"  # split | normalized | mondrian (per load level)
    coverage: float = 0.9  # nominal coverage of the served intervals
    bins: int = 4  # mondrian: load-level bins (fewer when a bin would hold < min_bin_rows rows)
    min_bin_rows: int = 50

    def __post_init__(self) -> None:
        # checked when the config is built, so a bad value is refused before training writes anything
        if self.method not in ("split", "normalized", "mondrian"):
            raise ValueError(f"calibration.method must be split, normalized or mondrian, got {self.method!r}")
        if not (isinstance(self.coverage, (int, float)) and 0.0 < self.coverage < 1.0):
            raise ValueError(f"calibration.coverage must be a number in (0, 1), got {self.coverage!r}")
        if self.bins < 1 or self.min_bin_rows < 1:
            raise ValueError(f"calibration.bins and calibration.min_bin_rows must be >= 1 (got {self.bins}, "
                             f"{self.min_bin_rows})")


@dataclass
class Config:
    name: str = "default"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    spec: SpecSetConfig = field(default_factory=SpecSetConfig)
    verifier: VerifierConfig = field(default_factory=VerifierConfig)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    # where a Hydra-free call writes; the Hydra entry point uses its own output directory
    run_dir: str = MISSING

    def __post_init__(self) -> None:
        check_plain_name("name", self.name)


def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(name="config_schema", node=Config)
