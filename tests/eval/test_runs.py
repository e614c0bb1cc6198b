"""Run summaries and `fronde runs`: each status from what a run dir holds (lock, metrics, published model), best
scores per task in the right direction, the ledger's cost, and the table and JSON the command prints."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from fronde.cli.main import app
from fronde.eval.runs import LIVE_SECONDS, best_scores, list_runs, summarize_run
from fronde.train.ledger import Ledger
from fronde.train.lineage import FORMAT, LINEAGE
from fronde.train.stage_lock import LOCK


def stage(run: Path, name: str, steps: list[int], *, model_step: int | None = None, age: float = 3600.0,
          loss: float = 2.0, lock: dict | None = None) -> Path:
    """A stage dir: metrics for `steps` last written `age` seconds ago, optionally a published model and a lock."""
    d = run / name
    d.mkdir(parents=True)
    metrics = d / "metrics.jsonl"
    metrics.write_text("".join(json.dumps({"step": s, "loss": loss if s == steps[-1] else 3.0}) + "\n" for s in steps))
    then = time.time() - age
    if model_step is not None:
        (d / "model").mkdir()
        (d / "model" / "config.json").write_text("{}")
        (d / "model" / LINEAGE).write_text(json.dumps({"format": FORMAT, "stage": name, "step": model_step}))
        for f in (d / "model" / "config.json", d / "model" / LINEAGE):
            os.utime(f, (then, then))
    if lock is not None:
        (d / LOCK).write_text(json.dumps({"stage": name, "host": socket.gethostname(), "started": "t"} | lock))
        os.utime(d / LOCK, (then, then))
    os.utime(metrics, (then, then))
    return d


def ledger(run: Path, *stages: tuple[str, int, float]) -> None:
    led = Ledger()
    for name, tokens, seconds in stages:
        s = led.stage(name, device="cpu", n_devices=1, peak_flops_per_device=1e11, price_per_device_hour=3.0)
        s.tokens, s.wall_seconds = tokens, seconds
    led.save(run / "ledger.json")


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def status(run: Path) -> tuple[str, str | None]:
    s = summarize_run(run)
    return s.status, s.stage


def test_each_status_from_what_the_run_dir_holds(tmp_path):
    finished = tmp_path / "finished"
    stage(finished, "pretrain", [1, 2, 3], model_step=3)
    assert status(finished) == ("finished", "pretrain")

    resumed = tmp_path / "resumed"  # a finished stage resumed for more steps, then interrupted
    stage(resumed, "pretrain", [1, 2, 3, 4, 5], model_step=3)
    assert status(resumed) == ("stopped", "pretrain")

    live = tmp_path / "live"  # no lock (an older fronde, or another rank), but metrics written just now
    stage(live, "sft", [1, 2], age=1.0)
    assert status(live) == ("running", "sft")
    assert summarize_run(live, now=time.time() + LIVE_SECONDS + 5).status == "stopped"

    locked = tmp_path / "locked"  # this process holds the lock: running, however old the metrics
    stage(locked, "rl", [1], lock={"status": "running", "pid": os.getpid()})
    assert summarize_run(locked).status == "running"

    killed = tmp_path / "killed"  # the lock names a process that is gone: it died without finishing
    stage(killed, "rl", [1, 2], lock={"status": "running", "pid": dead_pid()})
    s = summarize_run(killed)
    assert s.status == "failed" and "ended without finishing" in s.reason

    raised = tmp_path / "raised"
    stage(raised, "sft", [1], lock={"status": "failed", "pid": os.getpid(), "error": "ValueError: bad row"})
    assert (summarize_run(raised).status, summarize_run(raised).reason) == ("failed", "ValueError: bad row")

    diverged = tmp_path / "diverged"
    stage(diverged, "pretrain", [1, 2], loss=float("nan"))
    s = summarize_run(diverged)
    assert s.status == "failed" and "nan" in s.reason

    later = tmp_path / "later"  # pretrain finished long ago, sft stopped since: the run shows its latest stage
    stage(later, "pretrain", [1, 2], model_step=2, age=7200)
    stage(later, "sft", [1], age=600)
    ledger(later, ("pretrain", 1000, 3600.0), ("sft", 200, 1800.0))
    s = summarize_run(later)
    assert (s.status, s.stage, [x.name for x in s.stages]) == ("stopped", "sft", ["pretrain", "sft"])
    assert s.tokens == 1200 and s.device_hours == 1.5 and s.cost == 4.5 and s.priced

    runs = list_runs(tmp_path)
    assert {r.name for r in runs} == {"finished", "resumed", "live", "locked", "killed", "raised", "diverged",
                                      "later"}
    assert [r.updated for r in runs] == sorted((r.updated for r in runs), reverse=True)  # newest first
    assert [r.name for r in list_runs(later)] == ["later"]  # a run dir itself lists as one run


def result(model: str, task: str, kind: str, metrics: dict) -> dict:
    return {"format": "fronde-eval/1", "model": {"name": model}, "task": task, "kind": kind, "metrics": metrics}


def test_best_scores_pick_the_right_direction():
    best = best_scores([
        result("r-sft", "arithmetic:1", "generative", {"accuracy": 30.0}),
        result("r-rl", "arithmetic:1", "generative", {"accuracy": 45.0}),
        result("r-pretrain", "bpb:val", "bpb", {"bpb": 1.9}),
        result("r-sft", "bpb:val", "bpb", {"bpb": 2.4}),
        result("r-rl", "countdown", "generative", {"accuracy": float("nan")}),
    ], "r")
    assert best == {"arithmetic:1": {"metric": "accuracy", "value": 45.0, "model": "r-rl", "stage": "rl"},
                    "bpb:val": {"metric": "bpb", "value": 1.9, "model": "r-pretrain", "stage": "pretrain"}}


def test_fronde_runs_prints_a_table_and_json(tmp_path):
    run = tmp_path / "runs" / "demo"
    stage(run, "pretrain", [1, 2], model_step=2)
    ledger(run, ("pretrain", 5000, 7200.0))
    (run / "eval" / "demo-pretrain").mkdir(parents=True)
    (run / "eval" / "demo-pretrain" / "arithmetic-1.json").write_text(
        json.dumps(result("demo-pretrain", "arithmetic:1", "generative", {"accuracy": 12.5})))
    broken = tmp_path / "runs" / "broken"
    stage(broken, "sft", [1], lock={"status": "failed", "pid": 1, "error": "RecipeError: no data"})

    cli = CliRunner()
    res = cli.invoke(app, ["runs", str(tmp_path / "runs")], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    for text in ("demo", "finished", "arithmetic:1 accuracy 12.5 (pretrain)", "5,000", "120.0 min", "6.00",
                 "broken", "failed", "RecipeError: no data"):
        assert text in res.output, text
    res = cli.invoke(app, ["runs", str(tmp_path / "runs"), "--json"])
    listed = {r["name"]: r for r in json.loads(res.output)["runs"]}
    assert listed["demo"]["status"] == "finished" and listed["demo"]["cost"] == 6.0
    assert listed["demo"]["best"]["arithmetic:1"]["value"] == 12.5
    assert listed["broken"]["status"] == "failed" and listed["broken"]["stages"][0]["name"] == "sft"
    res = cli.invoke(app, ["runs", str(tmp_path / "nowhere")])
    assert res.exit_code == 2 and "no such runs directory" in res.output


def test_the_ledgers_data_and_eval_entries_are_cost_not_stages(tmp_path):
    """A speedrun charges preparing data and evaluating to the ledger: in the totals, never listed as a stage."""
    from fronde.eval.report import write_report

    run = tmp_path / "sr"
    stage(run, "pretrain", [1, 2], model_step=2, age=600)
    (run / "data").mkdir()
    (run / "eval").mkdir()
    (run / "eval" / "speedrun.json").write_text("{}")
    ledger(run, ("data", 1000, 30.0), ("pretrain", 5000, 300.0), ("eval", 50, 60.0))
    s = summarize_run(run)
    assert [st.name for st in s.stages] == ["pretrain"] and s.stage == "pretrain" and s.status == "finished"
    assert s.wall_seconds == 390.0 and abs(s.cost - 390.0 / 3600 * 3.0) < 1e-9
    report = (write_report(run)).read_text()
    assert "| data |" in report and "| eval |" in report  # the ledger table
    assert "### pretrain" in report and "### data" not in report and "### eval" not in report
