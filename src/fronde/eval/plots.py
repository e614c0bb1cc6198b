"""The scoreboard's PNGs: accuracy per task per model (grouped bars), mean accuracy against active parameters
(the small-model argument in one picture) and mean accuracy against training cost (quality per dollar)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

from fronde.eval.results import primary_metric
from fronde.train.plots import save_png

if TYPE_CHECKING:
    from fronde.eval.scoreboard import ModelRow, Scoreboard


def plot_scoreboard(board: Scoreboard, out_dir: Path) -> list[Path]:
    """accuracy_by_task.png, accuracy_vs_active_params.png, quality_per_dollar.png (those with data to show)."""
    written = []
    tasks = [t for t in board.tasks if not t.startswith("bpb:")]
    if tasks and board.rows:
        written.append(_bars(board, tasks, out_dir / "accuracy_by_task.png"))
    scored = [r for r in board.rows if r.mean is not None]
    if scored:
        written.append(_scatter([r for r in scored if r.active_params], lambda r: float(r.active_params or 0),
                                "active parameters", "mean accuracy vs active parameters",
                                out_dir / "accuracy_vs_active_params.png", scored))
        written.append(_scatter([r for r in scored if r.cost], lambda r: float(r.cost or 0),
                                "training cost", "quality per dollar: mean accuracy vs training cost",
                                out_dir / "quality_per_dollar.png", scored))
    return written


def _bars(board: Scoreboard, tasks: list[str], path: Path) -> Path:
    width = 0.8 / max(1, len(board.rows))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(tasks) * max(1, len(board.rows)) / 2 + 3), 4))
    for i, row in enumerate(board.rows):
        values = [primary_metric(row.scores[t])[1] if t in row.scores else 0.0 for t in tasks]
        xs = [j + (i - (len(board.rows) - 1) / 2) * width for j in range(len(tasks))]
        ax.bar(xs, [v or 0.0 for v in values], width, label=row.name)
    ax.set_xticks(range(len(tasks)), tasks, rotation=20, ha="right")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title("accuracy per task")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return save_png(fig, path)


def _scatter(rows: list[ModelRow], x_of, xlabel: str, title: str, path: Path, all_rows: list[ModelRow]) -> Path:
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in rows:
        ax.scatter([x_of(r)], [r.mean], s=40)
        ax.annotate(r.name, (x_of(r), r.mean), textcoords="offset points", xytext=(5, 4), fontsize=8)
    if rows:
        ax.set_xscale("log")
    missing = [r.name for r in all_rows if r not in rows]
    ax.set_xlabel(xlabel + (f"\n(not known for: {', '.join(missing)})" if missing else ""))
    ax.set_ylabel("mean accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if not rows:
        ax.text(0.5, 0.5, f"no {xlabel} known for any model", ha="center", va="center", transform=ax.transAxes)
    return save_png(fig, path)
