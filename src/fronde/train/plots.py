"""PNG plots of a stage's metrics.jsonl: loss (train and validation), learning rate, throughput, the expert-load
heatmap (fraction of routed tokens per expert, per MoE layer, at the last logged step), and for RL the rewards,
test accuracy and GRPO's diagnostics (clipping, KL, entropy, zero-signal groups, completion length)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

from fronde.train.metrics import read_metrics


def _series(records: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    pts = [(r["step"], r[key]) for r in records if r.get(key) is not None]
    return [p[0] for p in pts], [p[1] for p in pts]


def save_png(fig: plt.Figure, path: Path) -> Path:
    """Write a figure atomically (temp file + rename) and close it."""
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)
    return path


def plot_metrics(metrics_path: Path, out_dir: Path, title: str = "") -> list[Path]:
    """Write loss.png, lr.png, throughput.png and (for MoE models) expert_load.png; return the paths written."""
    records = read_metrics(metrics_path)
    if not records:
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    fig, ax = plt.subplots(figsize=(7, 4))
    for key, label in (("loss", "train"), ("val_loss", "validation"), ("mtp_loss", "MTP (t+2)")):
        steps, values = _series(records, key)
        if steps:
            ax.plot(steps, values, label=label, marker="o" if key == "val_loss" else None, markersize=3)
    ax.set(xlabel="step", ylabel="cross-entropy (nats/token)", title=f"{title} loss".strip())
    ax.grid(alpha=0.3)
    ax.legend()
    written.append(save_png(fig, out_dir / "loss.png"))
    for key, ylabel, name in (("lr", "learning rate", "lr.png"), ("tokens_per_s", "tokens / s", "throughput.png")):
        steps, values = _series(records, key)
        fig, ax = plt.subplots(figsize=(7, 3))
        ax.plot(steps, values)
        ax.set(xlabel="step", ylabel=ylabel, title=f"{title} {ylabel}".strip())
        ax.grid(alpha=0.3)
        written.append(save_png(fig, out_dir / name))
    loads = [r for r in records if r.get("expert_load")]
    if loads:
        matrix = loads[-1]["expert_load"]
        fig, ax = plt.subplots(figsize=(max(5, len(matrix[0]) * 0.25), max(2.5, len(matrix) * 0.35)))
        im = ax.imshow(matrix, aspect="auto", cmap="viridis", interpolation="nearest")
        ax.set_yticks(range(len(matrix)))
        if len(matrix[0]) <= 32:
            ax.set_xticks(range(len(matrix[0])))
        ax.set(xlabel="expert", ylabel="MoE layer (0 = first MoE layer)", title=f"expert load at step {loads[-1]['step']} "
               f"(max/mean {loads[-1].get('expert_load_imbalance', float('nan')):.2f})")
        fig.colorbar(im, ax=ax, label="fraction of routed tokens")
        written.append(save_png(fig, out_dir / "expert_load.png"))
    written += _rl_plots(records, out_dir, title)
    return written


def _lines(records: list[dict[str, Any]], keys: list[str], ylabel: str, path: Path, title: str,
           marker: str | None = None) -> Path | None:
    fig, ax = plt.subplots(figsize=(7, 3.5))
    drawn = False
    for key in keys:
        steps, values = _series(records, key)
        if steps:
            ax.plot(steps, values, label=key, marker=marker, markersize=4)
            drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set(xlabel="step", ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_png(fig, path)


def _rl_plots(records: list[dict[str, Any]], out_dir: Path, title: str) -> list[Path]:
    keys = sorted({k for r in records for k in r})
    rewards = [k for k in keys if k.startswith("reward/") and not k.endswith("_std")]
    if not rewards:
        return []
    plots = [
        _lines(records, rewards, "mean reward", out_dir / "rewards.png", f"{title} rewards".strip()),
        _lines(records, [k for k in keys if k.startswith("test_accuracy/")], "greedy test accuracy",
               out_dir / "test_accuracy.png", f"{title} test accuracy".strip(), marker="o"),
        _lines(records, [k for k in ("clip_ratio/region", "zero_std_groups", "truncated_fraction") if k in keys],
               "fraction", out_dir / "grpo_fractions.png", f"{title} clipping and zero-signal groups".strip()),
        _lines(records, [k for k in ("kl", "entropy") if k in keys], "nats", out_dir / "kl_entropy.png",
               f"{title} KL to reference and entropy".strip()),
        _lines(records, ["completion_length"], "tokens", out_dir / "completion_length.png",
               f"{title} completion length".strip()),
    ]
    return [p for p in plots if p is not None]
