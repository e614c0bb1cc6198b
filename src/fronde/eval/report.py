"""`runs/<name>/report.md`: the report card of one run, built only from what the run wrote.

Sections: the data manifest's summary; each stage model's configuration and size (fronde.model.info); the cost
ledger per stage with each stage's final logged losses and its existing plots (linked, not copied); every eval
result found under the run dir; and the scoreboard of the run's models against the reference results given
(`--against`), whose PNGs go to runs/<name>/report/.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fronde import __version__
from fronde.data.errors import DataError
from fronde.data.io import atomic_write_text
from fronde.data.manifest import read_manifest, summary_rows
from fronde.eval.errors import EvalError
from fronde.eval.results import primary_metric, read_results
from fronde.eval.scoreboard import Scoreboard, format_params
from fronde.model.checkpoint import load_config
from fronde.model.info import model_info
from fronde.train.ledger import Ledger
from fronde.train.metrics import read_metrics

REPORT = "report.md"
ASSETS = "report"  # the scoreboard's PNGs, beside report.md


def _table(head: list[str], rows: list[list[str]]) -> str:
    return "\n".join(["| " + " | ".join(head) + " |", "| " + " | ".join("---" for _ in head) + " |",
                      *("| " + " | ".join(r) + " |" for r in rows)]) + "\n"


def _stages(run_dir: Path, ledger: Ledger) -> list[str]:
    """Training stage dirs (a model or metrics in them) in ledger order, then any other. The ledger's `data` and
    `eval` entries are work, not stages: their cost is in the ledger's table only."""
    def trained(d: Path) -> bool:
        return d.is_dir() and ((d / "model" / "config.json").is_file() or (d / "metrics.jsonl").is_file())

    names = [s.stage for s in ledger.stages]
    extra = sorted(p.name for p in run_dir.iterdir() if p.name not in names and trained(p))
    return [n for n in names if trained(run_dir / n)] + extra


def data_section(run_dir: Path, data_dir: Path | None) -> str:
    d = data_dir or run_dir / "data"
    try:
        manifest = read_manifest(d)
    except DataError:
        return (f"No data manifest at `{d}` (the run read its data from elsewhere); pass `--data DIR` to include "
                "it.\n")
    return f"From `{d / 'manifest.json'}`:\n\n" + _table(["", ""], [[k, v] for k, v in summary_rows(manifest)])


def model_section(run_dir: Path, stages: list[str]) -> str:
    rows = []
    for stage in stages:
        model_dir = run_dir / stage / "model"
        if not (model_dir / "config.json").is_file():
            continue
        try:
            c = load_config(model_dir)
        except (FileNotFoundError, ValueError) as e:
            rows.append([stage, f"unreadable config: {e}"] + [""] * 5)
            continue
        mi = model_info(c)
        rows.append([f"`{stage}/model`", format_params(mi.total_params), format_params(mi.active_params),
                     f"{c.num_hidden_layers} x {c.hidden_size}",
                     f"{c.n_routed_experts} routed (top-{c.num_experts_per_tok}) + {c.n_shared_experts} shared",
                     f"{c.vocab_size:,}", f"{c.max_position_embeddings:,}"])
    if not rows:
        return "No stage has written a final model yet.\n"
    return _table(["model", "total params", "active params", "layers x width", "experts", "vocab", "context"], rows)


def stages_section(run_dir: Path, ledger: Ledger, stages: list[str]) -> str:
    out = ""
    if ledger.stages:
        t = ledger.totals()
        rows = [[s.stage, s.device if s.n_devices == 1 else f"{s.n_devices} x {s.device}", f"{s.tokens:,}",
                 f"{s.flops:.3g}", f"{s.wall_seconds:,.0f} s", f"{s.device_hours:.4f}", s.mfu_text,
                 f"{s.cost:.2f}", f"{s.energy_kwh:.3f} kWh"] for s in ledger.stages]
        rows.append(["**total**", "", f"{t['tokens']:,}", f"{t['flops']:.3g}", f"{t['wall_seconds']:,.0f} s",
                     f"{t['device_hours']:.4f}", "", f"{t['cost']:.2f}", f"{t['energy_kwh']:.3f} kWh"])
        out += "From `ledger.json`:\n\n" + _table(
            ["stage", "device", "tokens", "FLOPs", "wall time", "device-hours", "MFU", "cost", "energy"], rows)
    else:
        out += "No `ledger.json` in the run dir.\n"
    for stage in stages:
        out += f"\n### {stage}\n\n"
        last = _last_values(read_metrics(run_dir / stage / "metrics.jsonl"))
        if last:
            out += ", ".join(f"{k} {v:.4g}" for k, v in last.items()) + " (last logged values)\n\n"
        change = accuracy_change(read_metrics(run_dir / stage / "metrics.jsonl"))
        if change:
            out += "Test accuracy during the stage (greedy, the task's fixed test split): " + "; ".join(
                f"`{task}` {a:.1%} -> {b:.1%} ({(b - a) * 100:+.1f} points)" for task, (a, b) in change.items()
            ) + "\n\n"
        plots = sorted((run_dir / stage / "plots").glob("*.png"))
        out += "".join(f"![{stage} {p.stem}]({stage}/plots/{p.name})\n" for p in plots) or "No plots.\n"
    return out


def _last_values(records: list[dict[str, Any]]) -> dict[str, float]:
    keys = ("step", "loss", "val_loss", "reward/total_mean")
    out: dict[str, float] = {}
    for r in records:
        for k in list(keys) + [k for k in r if k.startswith("test_accuracy/")]:
            if isinstance(r.get(k), (int, float)):
                out[k] = r[k]
    return out


def accuracy_change(records: list[dict[str, Any]]) -> dict[str, tuple[float, float]]:
    """task -> (first, last) logged test accuracy: what an RL stage gained (its step-0 record is the start)."""
    out: dict[str, tuple[float, float]] = {}
    for r in records:
        for k, v in r.items():
            if k.startswith("test_accuracy/") and isinstance(v, (int, float)):
                task = k.removeprefix("test_accuracy/")
                out[task] = (out[task][0] if task in out else float(v), float(v))
    return out


def results_section(results: list[dict[str, Any]]) -> str:
    if not results:
        return "No evaluation results under the run dir yet: `fronde eval runs/<name>/<stage>/model --task ...`.\n"
    rows = []
    for r in sorted(results, key=lambda r: (r["model"]["name"], r["task"])):
        key, value = primary_metric(r)
        s = r["settings"]
        how = ", ".join(f"{k} {s[k]}" for k in ("shots", "samples", "temperature", "seed") if k in s)
        if s.get("tools"):
            m = r["metrics"]
            how += f", tools {'+'.join(s['tools'])} ({m.get('tool_calls_per_problem', 0):.2f} calls/problem)"
        speed = r.get("speed") or {}
        rows.append([r["model"]["name"], f"`{r['task']}`", f"{key} {value:.3g}" if value is not None else key,
                     str(r["dataset"]["examples"]), how,
                     f"{speed['tokens_per_s']:,.0f}" if speed.get("tokens_per_s") else "—",
                     f"{speed['ttft_s_p50']:.3f} s" if speed.get("ttft_s_p50") is not None else "—"])
    return _table(["model", "task", "score", "n", "settings", "tokens/s", "TTFT p50"], rows)


def write_report(run_dir: Path, against: list[Path] | None = None,
                 references: dict[str, dict[str, Any]] | None = None, data_dir: Path | None = None) -> Path:
    """Write run_dir/report.md (and run_dir/report/*.png) and return its path."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise EvalError(f"{run_dir}: no such run directory (fronde writes them under runs/<name>)")
    ledger = Ledger.load(run_dir / "ledger.json")
    stages = _stages(run_dir, ledger)
    damaged: list[str] = []
    own = read_results([run_dir], damaged)
    if not (stages or own or (run_dir / "ledger.json").is_file() or (run_dir / "data").is_dir()):
        raise EvalError(f"{run_dir}: not a run directory (no ledger.json, stage, data or evaluation in it); "
                        "pass a run dir such as runs/tiny-cpu")
    others = read_results(against or [])
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    parts = [f"# {run_dir.name}: report card\n\nGenerated {when} by fronde {__version__} from `{run_dir}`.\n",
             "## Data\n\n" + data_section(run_dir, data_dir),
             "## Model\n\n" + model_section(run_dir, stages),
             "## Training stages\n\n" + stages_section(run_dir, ledger, stages),
             "## Evaluation\n\n" + results_section(own) + "".join(f"\nSkipped: {line}\n" for line in damaged)]
    if own or others:
        board = Scoreboard.from_results(own + others, references)
        pngs = board.write(run_dir / ASSETS, title=f"{run_dir.name} scoreboard")[2:]
        parts.append("## Scoreboard\n\n" + board.markdown() + "".join(f"\n![{p.stem}]({ASSETS}/{p.name})\n"
                                                                      for p in pngs))
    path = run_dir / REPORT
    atomic_write_text(path, "\n".join(parts))
    return path
