"""The report's figures (matplotlib, Agg): learning curves and accuracy against tokens spent."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def learning_curve(metrics: list[dict[str, Any]], path: Path, before: float | None, after: float | None) -> Path | None:
    """Training reward per step, held-out accuracy where it was measured; None without training."""
    if not metrics:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=110)
    steps = [m["step"] for m in metrics]
    ax.plot(steps, [m["reward/mean"] for m in metrics], color="#888", lw=1, label="training reward (sampled)")
    evals = [m for m in metrics if "eval/acc" in m]
    points = [(0, before)] if before is not None else []
    points += [(m["step"], m["eval/acc"]) for m in evals]
    if after is not None:
        points.append((steps[-1], after))
    if points:
        xs, ys = zip(*sorted(dict(points).items()))
        ax.plot(xs, ys, "o-", color="#1f6feb", label="held-out accuracy (greedy)")
    ax.set_xlabel("training step")
    ax.set_ylabel("reward / accuracy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def accuracy_vs_tokens(rows: list[dict[str, Any]], path: Path) -> Path:
    """One point per evaluated method: accuracy (95% CI) against generated tokens per question."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=110)
    for row in rows:
        low, high = max(row["acc"] - row["ci_low"], 0.0), max(row["ci_high"] - row["acc"], 0.0)
        ax.errorbar(row["tokens_per_q"], row["acc"], yerr=[[low], [high]], fmt="o", capsize=3,
                    color="#1f6feb" if row.get("network") else "#d1242f")
        ax.annotate(row["name"], (row["tokens_per_q"], row["acc"]), textcoords="offset points", xytext=(5, 4), fontsize=7)
    ax.margins(x=0.25)
    ax.set_xlabel("generated tokens per question")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
