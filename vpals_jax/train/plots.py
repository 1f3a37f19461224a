"""Training curves, drawn for people who would rather look than read metrics.jsonl."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


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
    ax_acc.set(xlabel="epoch", ylabel="accuracy within tolerance", ylim=(0, 1.02), title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
