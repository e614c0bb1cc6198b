"""The David-vs-Goliath table: every model's scores side by side with what it costs.

One row per model, one column per task (accuracy in %, `acc_norm` for multiple choice, bits per byte for `bpb:`
columns, where lower is better), plus total and active parameters, training cost and generation tokens/s.

- Parameters: from the result files (fronde and transformers models know theirs), else from `--reference`.
- Training cost: for a fronde model inside a run dir (runs/<name>/<stage>/model), the ledger's cost of the stages up
  to and including that model's stage, in ledger order, with their device-hours; for other models the reference
  file's `training_cost`. A ledger priced at 0 shows its device-hours and "no price".
- mean: the mean accuracy over the generative tasks every model on the board was scored on (so the means compare);
  quality per dollar = mean / training cost.
- Results of one task scored on different example sets (another --n, shots, ...) are flagged under the table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fronde.data.io import atomic_write_text
from fronde.eval.results import primary_metric
from fronde.train.ledger import Ledger


@dataclass
class ModelRow:
    name: str
    kind: str
    total_params: int | None = None
    active_params: int | None = None
    cost: float | None = None
    device_hours: float | None = None
    cost_note: str = ""
    tokens_per_s: float | None = None
    scores: dict[str, dict[str, Any]] = field(default_factory=dict)  # task -> the result file
    mean: float | None = None

    @property
    def quality_per_dollar(self) -> float | None:
        return self.mean / self.cost if self.mean is not None and self.cost else None


def ledger_cost(run_dir: str | None, model_dir: str) -> tuple[float, float] | None:
    """(cost, device-hours) of the run's stages up to the model's stage, or None without a ledger."""
    if not run_dir or not (Path(run_dir) / "ledger.json").is_file():
        return None
    stages = Ledger.load(Path(run_dir) / "ledger.json").stages
    stage = Path(model_dir).resolve().parent.name
    names = [s.stage for s in stages]
    upto = stages[:names.index(stage) + 1] if stage in names else stages
    upto = [s for s in upto if s.stage != "eval"]  # evaluations of earlier stages' models trained nothing
    return sum(s.cost for s in upto), sum(s.device_hours for s in upto)


class Scoreboard:
    def __init__(self, rows: list[ModelRow], tasks: list[str], notes: list[str]) -> None:
        self.rows, self.tasks, self.notes = rows, tasks, notes

    @classmethod
    def from_results(cls, results: list[dict[str, Any]],
                     references: dict[str, dict[str, Any]] | None = None) -> Scoreboard:
        references = references or {}
        rows: dict[str, ModelRow] = {}
        tasks: list[str] = []
        hashes: dict[str, set[str]] = {}
        for r in sorted(results, key=lambda r: r.get("created", "")):  # a later result of a model x task wins
            m = r["model"]
            row = rows.setdefault(m["name"], ModelRow(m["name"], m.get("kind", "?"), m.get("total_params"),
                                                      m.get("active_params")))
            row.scores[r["task"]] = r
            if r["task"] not in tasks:
                tasks.append(r["task"])
            if row.cost is None and m.get("kind") == "fronde":
                found = ledger_cost(m.get("run_dir"), m.get("spec", ""))
                if found is not None:
                    row.cost, row.device_hours = found
                    row.cost_note = f"ledger {Path(m['run_dir']) / 'ledger.json'}"
        for row in rows.values():
            for t, r in row.scores.items():
                hashes.setdefault(t, set()).add(r["dataset"]["hash"])
            ref = references.get(row.name, {})
            row.total_params = ref.get("total_params", row.total_params)
            row.active_params = ref.get("active_params", row.active_params)
            if "training_cost" in ref:
                row.cost, row.cost_note = ref["training_cost"], ref.get("cost_note", "reference file")
            elif "cost_note" in ref:
                row.cost_note = ref["cost_note"]
            speeds = [r["speed"]["tokens_per_s"] for r in row.scores.values()
                      if r.get("speed") and r["speed"].get("tokens_per_s")]
            row.tokens_per_s = ref.get("tokens_per_s", sum(speeds) / len(speeds) if speeds else None)
        tasks.sort(key=_task_order)
        common = [t for t in tasks if _in_mean(t) and all(t in row.scores for row in rows.values())]
        for row in rows.values():
            values = [primary_metric(row.scores[t])[1] for t in common]
            row.mean = sum(values) / len(values) if values else None
        notes = [f"`{t}`: the models were scored on different example sets ({len(h)} dataset hashes); compare "
                 "with care" for t, h in hashes.items() if len(h) > 1]
        if common:
            notes.append(f"mean = mean accuracy over {', '.join(f'`{t}`' for t in common)}")
        return cls(list(rows.values()), tasks, notes)

    # -- rendering -----------------------------------------------------------------------------------------------
    def markdown(self) -> str:
        head = ["model", "total params", "active params", "training cost", "tokens/s", *self.tasks, "mean"]
        lines = ["| " + " | ".join(_header(h) for h in head) + " |",
                 "| --- | " + " | ".join("---:" for _ in head[1:]) + " |"]
        for row in self.rows:
            cells = [row.name, format_params(row.total_params), format_params(row.active_params), _cost(row),
                     f"{row.tokens_per_s:,.0f}" if row.tokens_per_s else "—",
                     *[_score(row.scores.get(t)) for t in self.tasks], _num(row.mean)]
            lines.append("| " + " | ".join(cells) + " |")
        out = "\n".join(lines) + "\n"
        quality = [r for r in self.rows if r.mean is not None]
        if quality:
            out += ("\n**Quality per dollar** (mean accuracy points per unit of training cost)\n\n"
                    "| model | mean | training cost | points per unit cost | active params |\n"
                    "| --- | ---: | ---: | ---: | ---: |\n")
            known = [r for r in quality if r.quality_per_dollar is not None]
            for r in sorted(known, key=lambda r: -(r.quality_per_dollar or 0)) + [r for r in quality if r not in known]:
                qpd = f"{r.quality_per_dollar:,.4g}" if r.quality_per_dollar is not None else "—"
                out += f"| {r.name} | {_num(r.mean)} | {_cost(r)} | {qpd} | {format_params(r.active_params)} |\n"
        labelled: dict[tuple[str, str], list[str]] = {}
        for row in self.rows:
            for t, r in row.scores.items():
                if r.get("label"):
                    labelled.setdefault((t, r["label"]), []).append(row.name)
        notes = list(self.notes) + [f"training cost of {r.name}: {r.cost_note}" for r in self.rows if r.cost_note]
        for (t, label), names in sorted(labelled.items()):
            mark = "† " if label.startswith("seen-template") else ""
            notes.append(f"{mark}`{t}` ({', '.join(names)}): {label}")
        if notes:
            out += "\n" + "\n".join(f"- {n}" for n in notes) + "\n"
        return out

    def as_json(self) -> dict[str, Any]:
        return {"tasks": self.tasks, "notes": self.notes,
                "models": [{"name": r.name, "kind": r.kind, "total_params": r.total_params,
                            "active_params": r.active_params, "training_cost": r.cost,
                            "device_hours": r.device_hours, "cost_note": r.cost_note, "tokens_per_s": r.tokens_per_s,
                            "mean": r.mean, "quality_per_dollar": r.quality_per_dollar,
                            "scores": {t: primary_metric(res)[1] for t, res in r.scores.items()}}
                           for r in self.rows]}

    def write(self, out_dir: Path, title: str = "Scoreboard") -> list[Path]:
        """scoreboard.md (linking the plots), scoreboard.json and the PNGs, in out_dir."""
        # matplotlib loads only when a board is written
        from fronde.eval.plots import plot_scoreboard

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        pngs = plot_scoreboard(self, out_dir)
        body = f"# {title}\n\n" + self.markdown() + "".join(f"\n![{p.stem}]({p.name})\n" for p in pngs)
        atomic_write_text(out_dir / "scoreboard.md", body)
        atomic_write_text(out_dir / "scoreboard.json", json.dumps(self.as_json(), indent=2) + "\n")
        return [out_dir / "scoreboard.md", out_dir / "scoreboard.json", *pngs]


def _in_mean(task: str) -> bool:
    return not task.startswith(("bpb:", "mc:")) and not task.endswith(":originals")


def _task_order(task: str) -> tuple[int, str]:
    return (0 if _in_mean(task) else 1 if task.endswith(":originals") else 2 if task.startswith("mc:") else 3, task)


def _header(name: str) -> str:
    return f"{name} (bpb ↓)" if name.startswith("bpb:") else name


def _num(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def format_params(n: int | None) -> str:
    if n is None:
        return "—"
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def _cost(row: ModelRow) -> str:
    if row.cost is None:
        return "—"
    hours = f" ({row.device_hours:.3g} device-h)" if row.device_hours is not None else ""
    return (f"{row.cost:,.2f}" if row.cost else "no price") + hours


def _score(result: dict[str, Any] | None) -> str:
    if result is None:
        return "—"
    key, value = primary_metric(result)
    text = _num(value, 3 if key == "bpb" else 1)
    ks = [k for k in result.get("metrics", {}) if k.startswith("pass@") and k != "pass@1"]
    if ks:
        text += " (" + ", ".join(f"{k} {result['metrics'][k]:.1f}" for k in ks) + ")"
    if (result.get("label") or "").startswith("seen-template"):
        text += " †"
    return text
