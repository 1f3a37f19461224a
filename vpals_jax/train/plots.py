"""Training curves, drawn for people who would rather look than read metrics.jsonl."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator


def accuracy_limits(values: list[float]) -> tuple[float, float]:
    """Axis limits around the accuracies drawn, within [0, 1] plus a sliver: LinnOS lives in
    [0.99, 1], a two-epoch smoke run near 0, and both would be flat lines on a fixed [0, 1] axis."""
    if not values:
        return 0.0, 1.0
    lo, hi = min(values), max(values)
    pad = max(0.005, 0.08 * (hi - lo))
    return max(0.0, lo - pad), min(1.0, hi + pad) + 0.01 * pad


def plot_training_curve(records: list[dict[str, Any]], path: Path, title: str = "") -> Path:
    epochs = [r for r in records if "train" in r]
    if not epochs:
        return path
    x = [r["epoch"] for r in epochs]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.8))
    for split, style in (("train", "-"), ("test", "--")):
        ax_loss.plot(x, [r[split]["loss"] for r in epochs], style, label=split)
        ax_acc.plot(x, [r[split]["accuracy"] for r in epochs], style, label=split)
    ax_loss.set(xlabel="epoch", ylabel="MSE (normalised)", yscale="log", title="loss")
    accs = [r[split]["accuracy"] for r in epochs for split in ("train", "test")]
    ax_acc.set(xlabel="epoch", ylabel="accuracy within tolerance", ylim=accuracy_limits(accs), title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_wall_time(records: list[dict[str, Any]], path: Path, title: str = "") -> Path:
    """Accuracy against wall time with verification intervals shaded (the paper's Figure 5)."""
    epochs = [r for r in records if "train" in r]
    rounds = [r for r in records if r.get("event") == "verification"]
    fig, ax = plt.subplots(figsize=(8, 3.8))
    if epochs:
        t = [r["wall_s"] for r in epochs]
        ax.plot(t, [r["train"]["accuracy"] for r in epochs], "-o", ms=3, label="train accuracy")
        ax.plot(t, [r["test"]["accuracy"] for r in epochs], "--", label="test accuracy")
    for k, r in enumerate(rounds):
        ok = all(v["status"] == "VERIFIED" for v in r["verdicts"])
        ax.axvspan(r["start_s"], max(r["end_s"], r["start_s"] + 1e-3), color="tab:green" if ok else "tab:red",
                   alpha=0.25, label=("verification (all VERIFIED)" if ok else "verification (not verified)")
                   if k in (0, len(rounds) - 1) else None)  # fmt: skip
    accs = [r[split]["accuracy"] for r in epochs for split in ("train", "test")]
    ax.set(xlabel="wall time (s)", ylabel="accuracy within tolerance", ylim=accuracy_limits(accs))
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    ax.legend(unique.values(), unique.keys(), loc="lower right")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
