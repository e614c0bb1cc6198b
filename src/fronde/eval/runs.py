"""Run summaries: what `fronde runs` lists and a dashboard can show, read from what training and evaluation wrote.

    runs/<name>/ledger.json                  the cost ledger (tokens, wall time, device-hours, cost, energy)
    runs/<name>/<stage>/metrics.jsonl        one record per logged step
    runs/<name>/<stage>/lock.json            present while a stage trains, or left by one that failed
    runs/<name>/<stage>/model/fronde.json    the published model's lineage (its step)
    runs/<name>/eval/<model>/<task>.json     `fronde eval` results

A stage is `running` (its lock names a live process, or its metrics changed in the last LIVE_SECONDS), `failed` (its
lock says so, names a process that died, or its loss went non-finite), `finished` (a published model at least as new
as its last logged step) or `stopped` (anything else: interrupted, resumable). Files may be written while they are
read: a half-written last line is skipped, never an error. Only the standard library and fronde's lower layers are
used, so serve/ and cli/ can both build on it.
"""

from __future__ import annotations

import json
import math
import re
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fronde.eval.results import primary_metric, read_results
from fronde.train.lineage import LINEAGE, read_lineage
from fronde.train.metrics import read_metrics
from fronde.train.stage_lock import held_by_live_process, pid_alive, read_lock

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
NOT_STAGES = {"data", "eval", "report"}  # run subdirectories that are not training stages
LIVE_SECONDS = 120.0  # metrics changed this recently: the stage is taken to be training
TAIL_BYTES = 64 * 1024
LOWER_IS_BETTER = ("bpb", "loss")  # primary metrics where smaller wins
_CKPT_TMP = re.compile(r"^\.tmp-step-\d+-(\d+)$")  # a checkpoint being written by process N (train/checkpoint.py)


@dataclass
class StageSummary:
    name: str
    status: str  # running | failed | stopped | finished
    reason: str | None  # why, when the status is not self-evident
    last_step: int | None
    loss: float | None
    updated: float | None  # mtime of metrics.jsonl
    has_model: bool
    has_card: bool


@dataclass
class RunSummary:
    name: str
    path: str
    status: str  # running if any stage runs, else the most recently updated stage's status; "empty" with no stage
    reason: str | None
    stage: str | None  # the most recently updated stage
    stages: list[StageSummary]
    best: dict[str, dict[str, Any]]  # task -> {metric, value, model}: the best result under runs/<name>/eval
    tokens: int | None = None
    wall_seconds: float | None = None
    device_hours: float | None = None
    cost: float | None = None
    energy_kwh: float | None = None
    priced: bool = False  # a stage had a price per device-hour (else cost 0 means "not priced", not "free")
    updated: float | None = None
    errors: list[str] = field(default_factory=list)  # files that could not be read

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def last_record(path: Path) -> dict[str, Any] | None:
    """The last complete JSON record of a .jsonl file, reading only its tail (expert loads make lines long)."""
    try:
        with path.open("rb") as f:
            size = f.seek(0, 2)
            block = TAIL_BYTES
            while True:
                f.seek(max(0, size - block))
                lines = f.read().splitlines()
                for line in reversed(lines if block >= size else lines[1:]):  # the first may be cut
                    try:
                        record = json.loads(line)
                    except (json.JSONDecodeError, UnicodeDecodeError):
                        continue
                    if isinstance(record, dict):
                        return record
                if block >= size:
                    return None
                block *= 4
    except OSError:
        return None


def _last_loss(path: Path) -> tuple[int | None, float | None]:
    """(step, loss) of the last record that has a loss (GRPO also logs test-accuracy-only records)."""
    record = last_record(path)
    if record is not None and "loss" not in record:
        with_loss = [r for r in read_metrics(path)[-50:] if "loss" in r]
        record = with_loss[-1] if with_loss else record
    if record is None:
        return None, None
    loss = record.get("loss")
    return record.get("step"), float(loss) if isinstance(loss, (int, float)) else None


def stage_status(stage_dir: Path, now: float) -> tuple[str, str | None]:
    """(status, reason) of one stage dir; see the module docstring."""
    metrics = stage_dir / "metrics.jsonl"
    m_time = metrics.stat().st_mtime if metrics.is_file() else None
    live = m_time is not None and now - m_time < LIVE_SECONDS
    lock = read_lock(stage_dir)
    if lock is not None:
        status = lock.get("status")
        if status in ("failed", "stopped"):
            return status, lock.get("error")
        if held_by_live_process(lock):
            return "running", f"process {lock['pid']}"
        if lock.get("host") == socket.gethostname():
            return "failed", f"process {lock.get('pid')} ended without finishing (killed or crashed)"
        if live:
            return "running", f"on {lock.get('host')}"
        return "stopped", f"lock of process {lock.get('pid')} on {lock.get('host')}, no metrics for a while"
    step, loss = _last_loss(metrics)
    model = stage_dir / "model"
    if (model / "config.json").is_file():
        record = read_lineage(model)
        if record is not None and (step is None or step <= record.get("step", 0)):
            return "finished", None
        if record is None and not (live and m_time > (model / "config.json").stat().st_mtime + 1):
            return "finished", None  # published before lineage: the model is written after the last metrics line
    if live:
        return "running", None
    for tmp in (stage_dir / "checkpoints").glob(".tmp-step-*"):
        found = _CKPT_TMP.match(tmp.name)
        if found and pid_alive(int(found.group(1))):
            return "running", f"process {found.group(1)} is writing a checkpoint"
    if loss is not None and not math.isfinite(loss):
        return "failed", f"loss is {loss} at step {step}"
    return "stopped", None


def stage_summary(stage_dir: Path, now: float) -> StageSummary:
    metrics = stage_dir / "metrics.jsonl"
    status, reason = stage_status(stage_dir, now)
    step, loss = _last_loss(metrics)
    updated = max([p.stat().st_mtime for p in (metrics, stage_dir / "lock.json", stage_dir / "model" / LINEAGE)
                   if p.is_file()], default=None)
    return StageSummary(stage_dir.name, status, reason, step, loss, updated,
                        (stage_dir / "model" / "config.json").is_file(), (stage_dir / "model" / "MODEL_CARD.md").is_file())


def read_ledger(run_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((run_dir / "ledger.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def stage_dirs(run_dir: Path, ledger: dict[str, Any] | None) -> list[Path]:
    """Stage dirs in ledger order (the order they ran), then any other dir with metrics, a lock or a model."""
    names = [s.get("stage") for s in (ledger or {}).get("stages", []) if isinstance(s, dict)]
    out = [run_dir / n for n in names if isinstance(n, str) and NAME.fullmatch(n) and n not in NOT_STAGES
           and (run_dir / n).is_dir()]  # the ledger's data and eval entries are work, not stages
    for p in sorted(run_dir.iterdir()):
        if p.is_dir() and p not in out and p.name not in NOT_STAGES and NAME.fullmatch(p.name) and any(
                (p / f).is_file() for f in ("metrics.jsonl", "lock.json", "model/config.json")):
            out.append(p)
    return out


def best_scores(results: list[dict[str, Any]], run_name: str = "") -> dict[str, dict[str, Any]]:
    """Per task, the best primary score among the run's evaluated models (higher wins, except bpb and losses)."""
    best: dict[str, dict[str, Any]] = {}
    for r in results:
        metric, value = primary_metric(r)
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            continue
        lower = any(word in metric for word in LOWER_IS_BETTER)
        current = best.get(r["task"])
        if current is None or (value < current["value"] if lower else value > current["value"]):
            model = r["model"].get("name", "?")
            best[r["task"]] = {"metric": metric, "value": value, "model": model,
                               "stage": model.removeprefix(f"{run_name}-") if run_name else model}
    return dict(sorted(best.items()))


def summarize_run(run_dir: Path, now: float | None = None) -> RunSummary:
    """One row of the runs table: the latest stage and its status, the best scores, what the run cost so far."""
    now = time.time() if now is None else now
    run_dir = Path(run_dir)
    ledger = read_ledger(run_dir)
    errors = [f"{run_dir / 'ledger.json'}: unreadable"] if ledger is None and (run_dir / "ledger.json").is_file() \
        else []
    stages = [stage_summary(p, now) for p in stage_dirs(run_dir, ledger)]
    latest = max(stages, key=lambda s: s.updated or 0, default=None)
    running = [s for s in stages if s.status == "running"]
    shown = running[0] if running else latest
    try:
        results = read_results([run_dir / "eval"], errors) if (run_dir / "eval").is_dir() else []
    except (OSError, ValueError) as e:
        results, errors = [], errors + [str(e)]
    totals = (ledger or {}).get("totals", {})
    updated = [s.updated for s in stages if s.updated] + [(ledger or {}).get("updated") or 0]
    return RunSummary(
        name=run_dir.name, path=str(run_dir), status=shown.status if shown else "empty",
        reason=shown.reason if shown else None, stage=shown.name if shown else None, stages=stages,
        best=best_scores(results, run_dir.name), tokens=totals.get("tokens"), wall_seconds=totals.get("wall_seconds"),
        device_hours=totals.get("device_hours"), cost=totals.get("cost"), energy_kwh=totals.get("energy_kwh"),
        priced=any(s.get("price_per_device_hour") for s in (ledger or {}).get("stages", []) if isinstance(s, dict)),
        updated=max(updated) or None, errors=errors)


def is_run_dir(path: Path) -> bool:
    return path.is_dir() and ((path / "ledger.json").is_file() or bool(stage_dirs(path, None)))


def list_runs(runs_dir: Path) -> list[RunSummary]:
    """Every run under runs_dir (or runs_dir itself when it is one run), most recently updated first."""
    runs_dir = Path(runs_dir)
    if (runs_dir / "ledger.json").is_file():
        return [summarize_run(runs_dir)]
    now = time.time()
    runs = [summarize_run(p, now) for p in sorted(runs_dir.iterdir()) if NAME.fullmatch(p.name) and is_run_dir(p)]
    return sorted(runs, key=lambda r: -(r.updated or 0))
