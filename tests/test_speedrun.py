"""`fronde speedrun` end to end on tiny settings: killed with SIGKILL in the middle of SFT, run again, it skips the
finished pretraining, resumes SFT from its checkpoint, runs GRPO, eval and the report; a third run does nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fronde.eval.results import read_results
from fronde.speedrun import load_speedrun, speedrun_names, stage_recipe
from fronde.train.ledger import Ledger
from fronde.train.metrics import read_metrics
from fronde.train.recipe import RecipeError

FRONDE = [sys.executable, "-m", "fronde.cli.main"]
ENV = os.environ | {"OMP_NUM_THREADS": "2", "COLUMNS": "200"}
REFERENCE = "smollm2-135m-instruct"  # shipped reference results, by name

SPEEDRUN = """
description = "tiny test speedrun"

[run]
name = "sr"

[pretrain]
recipe = "tiny-cpu"
set = ['data.sources=[{{path="python-stdlib", max_documents=120}}]', "data.vocab_size=512",
       "model.overrides={{num_hidden_layers=2, hidden_size=64}}", "schedule.max_steps=8", "schedule.warmup_steps=1",
       "batch.seq_len=64", "batch.micro_batch_size=4", "batch.global_batch_tokens=512", "checkpoint.every_steps=4",
       "eval.every_steps=4", "eval.batches=2"]

[sft]
recipe = "sft-tiny-cpu"
set = ['sft.tasks=[{{name="arithmetic:1", n=300}}]', "schedule.max_steps=120", "schedule.warmup_steps=1",
       "batch.seq_len=128", "batch.micro_batch_size=4", "batch.global_batch_tokens=512", "checkpoint.every_steps=2",
       "checkpoint.keep_last=2", "eval.every_steps=60", "eval.batches=1"]

[rl]
recipe = "rl-tiny-cpu"
set = ["rl.prompts_per_step=2", "rl.group_size=2", "rl.max_new_tokens=8", "rl.test_n=4", "rl.test_every=0",
       "rl.train_pool=20", "schedule.max_steps=2", "schedule.warmup_steps=1", "checkpoint.every_steps=1"]

[eval]
tasks = ["arithmetic:1"]
n = 4
max_new_tokens = 8
batch_size = 4
against = ["{reference}"]
tools = ["calculator"]       # the same model scored again with the calculator: results arithmetic:1+calculator
"""


def _speedrun(tmp_path: Path) -> list[str]:
    recipe = tmp_path / "speedrun.toml"
    recipe.write_text(SPEEDRUN.format(reference=REFERENCE))
    return FRONDE + ["speedrun", "--recipe", str(recipe), "--out", str(tmp_path / "runs" / "sr")]


def test_speedrun_killed_mid_sft_resumes_and_finishes(tmp_path):
    cmd, run = _speedrun(tmp_path), tmp_path / "runs" / "sr"
    proc = subprocess.Popen(cmd, env=ENV, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.monotonic() + 240
    while not list((run / "sft" / "checkpoints").glob("step-*")) and proc.poll() is None:
        assert time.monotonic() < deadline, "no SFT checkpoint within 4 minutes"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (run / "sft" / "model").exists(), "SFT finished before the kill: make it longer"
    assert (run / "pretrain" / "model" / "config.json").is_file()

    res = subprocess.run(cmd, env=ENV, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.stdout
    assert "pretrain: done already" in out and "resuming from" in out, out
    sft_steps = [r["step"] for r in read_metrics(run / "sft" / "metrics.jsonl") if "loss" in r]
    assert sft_steps == sorted(set(sft_steps)) and sft_steps[-1] == 120  # resumed: no step logged twice
    ledger = Ledger.load(run / "ledger.json")
    # the data the pretraining prepared and the evaluation are charged too: the devices wait, paid for
    assert [s.stage for s in ledger.stages] == ["data", "pretrain", "sft", "rl", "eval"]
    assert all(s.wall_seconds > 0 for s in ledger.stages)
    assert ledger.stages[0].tokens == 0 and ledger.stages[-1].tokens > 0 and ledger.stages[-1].mfu is None
    stamp = json.loads((run / "eval" / "speedrun.json").read_text())
    assert stamp["results"] == ["arithmetic:1", "bpb:data", "arithmetic:1+calculator"]
    report = (run / "report.md").read_text()
    assert "## Scoreboard" in report and "smollm2-135m-instruct" in report
    assert "Test accuracy during the stage" in report  # GRPO's before -> after
    assert f"fronde serve {run / 'rl' / 'model'}" in out

    again = subprocess.run(cmd, env=ENV, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    for stage in ("pretrain", "sft", "rl", "eval"):
        assert f"{stage}: done already" in again.stdout, again.stdout


def test_shipped_speedruns_load_and_chain_their_stages():
    assert {"tiny-cpu", "small-gpu", "fr-littre", "tools-tiny-cpu", "tools-small-gpu"} <= set(speedrun_names())
    for name in speedrun_names():
        sr = load_speedrun(name, out=Path("elsewhere/x"))
        assert sr.run_dir == Path("elsewhere/x")
        parent = None
        for stage, step in sr.steps():
            rec = stage_recipe(sr, stage, step, parent)
            assert rec.run_dir == Path("elsewhere/x")
            parent = rec.run_dir / stage / "model"


def test_bad_speedrun_recipes_name_what_is_wrong(tmp_path):
    with pytest.raises(RecipeError, match="speedrun recipe 'nope' is neither a file nor a shipped"):
        load_speedrun("nope")
    bad = tmp_path / "bad.toml"
    bad.write_text('[run]\nname = "x"\n[pretrain]\nrecipe = "tiny-cpu"\nsteps = 3\n')
    with pytest.raises(RecipeError, match="pretrain.steps"):
        load_speedrun(str(bad))


def test_minutes_give_each_stage_its_share_as_a_time_budget(tmp_path):
    sr = load_speedrun("tiny-cpu", sets=["run.minutes=10"])
    budgets = {stage: stage_recipe(sr, stage, step, None).schedule.max_minutes for stage, step in sr.steps()}
    assert budgets == pytest.approx({"pretrain": 10 * sr.budget.pretrain, "sft": 10 * sr.budget.sft,
                                     "rl": 10 * sr.budget.rl})
    assert sum(budgets.values()) < 10  # the rest is left for data and evaluation
    plain = load_speedrun("tiny-cpu")
    assert all(stage_recipe(plain, s, st, None).schedule.max_minutes is None for s, st in plain.steps())
    greedy = tmp_path / "greedy.toml"
    greedy.write_text('[run]\nname = "x"\n[pretrain]\nrecipe = "tiny-cpu"\n[sft]\nrecipe = "sft-tiny-cpu"\n'
                      "[budget]\npretrain = 0.6\nsft = 0.5\n")
    with pytest.raises(RecipeError, match="shares of the stages it runs sum to 1.1"):
        load_speedrun(str(greedy))


def test_speedrun_under_torchrun_trains_every_stage_on_two_processes(tmp_path):
    """One process group for all the stages (torch cannot create it again in a process that destroyed one); each
    stage waits for the last one's model before reading it; both processes evaluate, rank 0 alone writes, reports
    and prints."""
    recipe = tmp_path / "speedrun.toml"
    text = SPEEDRUN.format(reference=REFERENCE).replace('"schedule.max_steps=120"', '"schedule.max_steps=6"')
    text = text.replace('"batch.seq_len=128", "batch.micro_batch_size=4"', '"batch.seq_len=128", '
                        '"batch.micro_batch_size=2"').replace("tools = [\"calculator\"]", "tools = []")
    recipe.write_text(text)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
           "fronde.cli.main", "speedrun", "--recipe", str(recipe), "--out", str(tmp_path / "runs" / "sr")]
    res = subprocess.run(cmd, env=ENV | {"OMP_NUM_THREADS": "1"}, cwd=tmp_path, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert res.stdout.count("on 2 processes") == 1 and res.stdout.count("report card:") == 1, res.stdout
    run = tmp_path / "runs" / "sr"
    stages = Ledger.load(run / "ledger.json").stages
    assert [(s.stage, s.n_devices) for s in stages] == [("data", 2), ("pretrain", 2), ("sft", 2), ("rl", 2),
                                                         ("eval", 2)]  # both processes wait or evaluate
    assert (run / "report.md").is_file() and (run / "rl" / "model" / "config.json").is_file()
    generative = [r for r in read_results([run / "eval"]) if r["kind"] == "generative"]
    assert generative and all(r["speed"]["processes"] == 2 for r in generative)  # the evaluation was shared


def test_the_rehearsal_of_each_gpu_speedrun_loads_at_toy_size(tmp_path):
    """scripts/rehearse_speedrun.py keeps every stage's own overrides and appends the toy sizes after them."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("rehearse", Path(__file__).parents[1] / "scripts" /
                                                  "rehearse_speedrun.py")
    rehearse = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rehearse)
    for name in ("small-gpu", "tools-small-gpu", "fr-littre-gpu"):
        path = tmp_path / f"{name}.toml"
        path.write_text(rehearse.rehearsal(name))
        sr = load_speedrun(str(path), out=tmp_path / "runs" / name)
        parent = None
        for stage, step in sr.steps():
            rec = stage_recipe(sr, stage, step, parent)
            assert rec.schedule.max_steps <= 4 and rec.precision.compile is False, (name, stage)
            parent = rec.run_dir / stage / "model"
        assert sr.eval.n == 4 and sr.eval.tasks == load_speedrun(name).eval.tasks


def test_preflight_lists_every_problem_before_any_stage_runs(tmp_path):
    """A missing data source, a bad task, a missing chat file, an unknown tool and an unknown eval task are all said
    at once, before pretraining starts (nothing is written); the shipped speedruns pass, and --check stops there."""
    from fronde.preflight import preflight

    bad = tmp_path / "bad.toml"
    bad.write_text(f"""
[run]
name = "bad"
out_dir = "{tmp_path / 'runs'}"
[pretrain]
recipe = "tiny-cpu"
set = ["data.sources=[{{path=\\"{tmp_path / 'nowhere'}\\"}}, {{path=\\"littre\\"}}]"]
[sft]
recipe = "sft-tiny-cpu"
set = ["sft.chat_files=[\\"{tmp_path / 'chats.jsonl'}\\"]", "sft.tasks=[{{name=\\"arithmetic:9\\", n=10}}]"]
[rl]
recipe = "rl-tiny-cpu"
set = ["rl.tasks=[{{name=\\"arithmetic:1\\", tools=[\\"calculatr\\"]}}]"]
[eval]
tasks = ["gsm-symbolic:xx"]
""")
    env = ENV | {"FRONDE_STARDICT_DIR": str(tmp_path / "no-littre")}  # as on a machine without the Debian package
    res = subprocess.run(FRONDE + ["speedrun", "--recipe", str(bad)], env=env, capture_output=True, text=True,
                         timeout=120)
    out = " ".join(res.stdout.split())
    assert res.returncode == 2 and "cannot run to its end here (6 problems)" in out, res.stdout + res.stderr
    for said in ("pretrain: data source", "does not exist", "stardict-xmlittre", "sft: sft.tasks: arithmetic level "
                 "'9'", "chats.jsonl is not a file", "rl: unknown tool 'calculatr'", "eval: eval.tasks: gsm-symbolic "
                 "has no language 'xx'"):
        assert said in out, said
    assert not (tmp_path / "runs").exists()
    for name in speedrun_names():  # a machine whose apt could not install the dictionaries lacks only those
        problems = preflight(load_speedrun(name))
        assert all("apt-get install" in p for p in problems) and (problems == [] or name != "tiny-cpu"), problems
    res = subprocess.run(FRONDE + ["speedrun", "--check", "--out", str(tmp_path / "runs" / "c")], env=ENV,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "every stage can run here" in res.stdout, res.stdout + res.stderr
    assert not (tmp_path / "runs").exists()
