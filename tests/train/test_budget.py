"""A stage fitted into wall-clock minutes: the plan follows the measured pace, freezes before any used learning rate
could change, survives a resume, and a real run under a budget, stopped and resumed, stops early with its decay and
final model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from fronde.train.budget import StepPlan
from fronde.train.checkpoint import candidates
from fronde.train.metrics import read_metrics


def _sched(kind="wsd", max_steps=1000, warmup=5, minutes=100 / 60, decay=0.2):
    return SimpleNamespace(kind=kind, max_steps=max_steps, warmup_steps=warmup, decay_fraction=decay,
                           max_minutes=minutes)


def _drive(plan: StepPlan, compile_s=10.0, pace=1.0, min_ratio=0.1):
    """Steps at `pace` seconds after a first step of `compile_s`; the lr used at each step."""
    lrs, done, seconds = [], 0, 0.0
    while not plan.finished(done):
        lrs.append(plan.lr(done, min_ratio))
        seconds += compile_s if done == 0 else pace
        done += 1
        plan.observe(done, seconds)
    return lrs, done, seconds


def test_wsd_plan_fits_the_budget_and_decays_at_its_end():
    plan = StepPlan.create(_sched())
    lrs, done, seconds = _drive(plan)
    # 100 s: 10 s of compile, then 1 s a step -> 91 steps, ending on the budget
    assert done == 91 and seconds == pytest.approx(100.0)
    assert plan.frozen and plan.planned == 91
    decay_start = 91 - round(0.2 * 91)
    assert lrs[5:decay_start] == [1.0] * (decay_start - 5)  # stable: nothing used depended on the plan
    assert all(a > b for a, b in zip(lrs[decay_start:], lrs[decay_start + 1:]))
    assert lrs[-1] == pytest.approx(0.1 + 0.9 / 18, rel=1e-6)  # the last step of the linear decay to min_ratio


def test_a_frozen_plan_ignores_later_pace_and_resumes_as_saved():
    plan = StepPlan.create(_sched())
    done, seconds = 0, 0.0
    while not plan.frozen:
        seconds += 10.0 if done == 0 else 1.0
        done += 1
        plan.observe(done, seconds)
    frozen_at = plan.planned
    assert not plan.observe(done + 1, seconds + 500.0)  # a slow step after the decay began changes nothing
    assert plan.planned == frozen_at
    saved = json.loads(json.dumps(plan.state(seconds)))
    again = StepPlan.create(_sched(), saved)
    assert (again.planned, again.frozen, again.spent_s) == (frozen_at, True, seconds)
    other = StepPlan.create(_sched(minutes=5), saved)  # another budget: planned anew, the time spent still counts
    assert not other.frozen and other.spent_s == seconds and other.planned == 1000


def test_resumed_open_plan_counts_the_seconds_already_spent():
    plan = StepPlan.create(_sched(), {"planned": 1000, "frozen": False, "spent_s": 60.0, "budget_s": 100.0})
    _, done, seconds = _drive(plan, compile_s=5.0, pace=1.0)
    assert seconds + 60.0 == pytest.approx(100.0) and done == 36


def test_cosine_freezes_at_the_end_of_warmup_and_constant_never():
    cos = StepPlan.create(_sched(kind="cosine", warmup=10))
    lrs, done, _ = _drive(cos)
    assert done == 91 and cos.frozen
    assert lrs[-1] == pytest.approx(0.1, abs=0.01) and max(lrs) == 1.0
    const = StepPlan.create(_sched(kind="constant", warmup=0))
    _, done, seconds = _drive(const, pace=2.0)
    assert not const.frozen and done == 46 and seconds == pytest.approx(100.0)  # 10 + 45 x 2


def test_budget_never_lengthens_a_run_and_no_budget_is_max_steps():
    plan = StepPlan.create(_sched(max_steps=40, minutes=60))
    _, done, _ = _drive(plan)
    assert done == 40
    plain = StepPlan.create(_sched(max_steps=40, minutes=None))
    assert plain.frozen and plain.planned == 40 and not plain.observe(3, 1e9)


def _rank_clock(rank: int, init: str, out: str) -> None:
    import torch
    import torch.distributed as dist

    from fronde.train.distributed import rank0_value

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    plan = StepPlan.create(_sched())
    seconds = 0.0
    for done in range(1, 80):  # rank 1's clock runs 30% slower: without agreement the ranks would plan apart
        seconds += (10.0 if done == 1 else 1.0) * (1.3 if rank else 1.0)
        plan.observe(done, rank0_value(seconds, torch.device("cpu")))
    Path(out, f"rank{rank}").write_text(json.dumps([plan.planned, plan.frozen]))
    dist.destroy_process_group()


def test_ranks_plan_from_rank_zeros_clock(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_rank_clock, args=(f"file://{tmp_path / 'store'}", str(tmp_path)), nprocs=2)
    assert json.loads((tmp_path / "rank0").read_text()) == json.loads((tmp_path / "rank1").read_text()) == [91, True]


def test_a_slow_start_ages_out_of_the_pace():
    plan = StepPlan.create(_sched())
    done, seconds = 0, 0.0
    while not plan.finished(done):
        seconds += 10.0 if done == 0 else (3.0 if done < 10 else 1.0)  # steps 2-10 slow, e.g. a busy machine
        done += 1
        plan.observe(done, seconds)
    # 10 + 9 x 3 = 37 s for the first 10 steps, then 1 s a step: 63 more steps fill the 100 s
    assert done == 73 and seconds == pytest.approx(100.0)


@pytest.mark.timing  # a test beside it on the other core slows its steps after the plan is made
def test_a_budgeted_run_stopped_by_sigterm_resumes_with_what_is_left(tmp_path, recipe_file):
    """A real run under a budget, stopped half-way and resumed: it plans from what is left and still stops early,
    on time, with its decay run to the end and its final model."""
    import signal
    import time

    recipe = recipe_file("resumed")
    args = [sys.executable, "-m", "fronde.cli.main", "pretrain", str(recipe), "--minutes", "0.2",
            "--set", "schedule.max_steps=100000", "--set", "schedule.kind=wsd", "--set", "checkpoint.every_steps=0",
            "--set", "eval.every_steps=0"]
    env = os.environ | {"COLUMNS": "200", "OMP_NUM_THREADS": "2"}
    metrics = tmp_path / "runs" / "resumed" / "pretrain" / "metrics.jsonl"
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and (not metrics.is_file() or len(metrics.read_text().splitlines()) < 20):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)  # checkpoints after the current step, with its plan and the seconds spent
    assert proc.wait(timeout=120) == 0
    stage = tmp_path / "runs" / "resumed" / "pretrain"
    saved = json.loads((candidates(stage / "checkpoints")[0] / "state.json").read_text())["plan"]
    assert 0 < saved["spent_s"] < 12 and saved["budget_s"] == pytest.approx(12.0)
    assert not (stage / "model").exists()
    res = subprocess.run(args + ["--resume"], env=env, check=False, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "time budget" in res.stdout
    final = json.loads((candidates(stage / "checkpoints")[0] / "state.json").read_text())["plan"]
    last = read_metrics(stage / "metrics.jsonl")[-1]
    assert final["frozen"] and 10 < last["step"] == final["planned"] == last["planned_steps"] < 100000
    assert final["spent_s"] == pytest.approx(12.0, abs=4.0)  # the two parts together used the budget
    assert last["lr"] < 3e-3 * 0.2  # the decay ran to its end (min_lr_ratio 0.1 of 3e-3)
    assert (stage / "model" / "config.json").is_file()
    ledger = json.loads((tmp_path / "runs" / "resumed" / "ledger.json").read_text())
    # both parts' wall time, each with its start, stop checkpoint or final model: the budget and a little more
    assert [s["stage"] for s in ledger["stages"]] == ["pretrain"] and ledger["stages"][0]["wall_seconds"] < 12 + 10
