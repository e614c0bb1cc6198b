"""Result files and `fronde eval` end to end: reruns with the same seed give identical numbers, the files say how
they were made, and bad input stops with a message that names it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from fronde import __version__
from fronde.cli.main import app
from fronde.eval import (
    EvalPlan,
    GenerationSettings,
    load_eval_model,
    read_results,
    run_plan,
)
from fronde.eval.results import stable_view

FRONDE = [sys.executable, "-m", "fronde.cli.main"]
ENV = os.environ | {"OMP_NUM_THREADS": "1", "COLUMNS": "200", "HF_HUB_OFFLINE": "1"}


def test_sampled_reruns_with_the_same_seed_give_identical_results(tiny_dir, tmp_path):
    model = load_eval_model(str(tiny_dir))
    plan = EvalPlan(tasks=["arithmetic:1", "countdown"],
                    generation=GenerationSettings(n=4, samples=3, ks=[1, 2], temperature=1.0, seed=7, shots=1,
                                                  max_new_tokens=10))
    first = run_plan(model, plan, tmp_path / "a")
    again = run_plan(load_eval_model(str(tiny_dir)), plan, tmp_path / "b")
    assert [stable_view(r) for r in first] == [stable_view(r) for r in again]
    outputs = [o for r in first for row in r["examples"] for o in row["outputs"]]
    assert len(set(outputs)) > 1  # sampled, not one greedy reply repeated
    plan.generation.seed = 8
    other = run_plan(model, plan, tmp_path / "c")
    assert [row["outputs"] for row in other[0]["examples"]] != [row["outputs"] for row in first[0]["examples"]]
    r = first[0]
    assert r["format"] == "fronde-eval/1" and r["fronde_version"] == __version__
    assert r["settings"]["seed"] == 7 and r["settings"]["samples"] == 3 and r["settings"]["temperature"] == 1.0
    assert r["dataset"]["hash"].startswith("sha256:") and "shots_hash" in r["dataset"]
    assert r["model"]["kind"] == "fronde" and r["model"]["active_params"] < r["model"]["total_params"]
    assert (tmp_path / "a" / "tiny-eval" / "arithmetic-1.json").is_file()
    assert len(read_results([tmp_path / "a"])) == 2


def test_fronde_eval_cli_writes_results_and_a_summary(tiny_dir, tmp_path):
    mc = tmp_path / "mc.jsonl"
    mc.write_text('{"question": "2 + 2 =", "choices": ["3", "4"], "answer": "4"}\n')
    text = tmp_path / "held_out.txt"
    text.write_text("def f(x):\n    return x + 1\n")
    cmd = FRONDE + ["eval", str(tiny_dir), "--task", "arithmetic:1", "--n", "3", "--mc", str(mc), "--bpb", str(text),
                    "--max-new-tokens", "6", "--temperature", "0.9", "--threads", "1", "--out"]
    runs = [subprocess.run(cmd + [str(tmp_path / out)], check=False, capture_output=True, text=True, env=ENV,
                           timeout=300) for out in ("res", "again")]
    assert all(r.returncode == 0 for r in runs), runs[0].stderr + runs[1].stderr
    assert [stable_view(r) for r in read_results([tmp_path / "res"])] == \
        [stable_view(r) for r in read_results([tmp_path / "again"])]
    assert "arithmetic:1" in runs[0].stdout and "bpb:held_out" in runs[0].stdout and "acc_norm" in runs[0].stdout
    files = sorted(p.name for p in (tmp_path / "res" / "tiny-eval").iterdir())
    assert files == ["arithmetic-1.json", "bpb-held_out.json", "mc-mc.json"]
    data = json.loads((tmp_path / "res" / "tiny-eval" / "bpb-held_out.json").read_text())
    assert data["kind"] == "bpb" and data["metrics"]["bpb"] > 0

    runner = CliRunner()
    bad = runner.invoke(app, ["eval", str(tiny_dir), "--task", "arithmetic:9"])
    assert bad.exit_code == 2 and "arithmetic level '9'" in bad.output and "Traceback" not in bad.output
    none = runner.invoke(app, ["eval", str(tiny_dir)])
    assert none.exit_code == 2 and "nothing to evaluate" in none.output


def test_fronde_eval_under_torchrun_gives_the_one_process_results(tiny_dir, data_dir, tmp_path):
    """Two processes share each evaluation (sampled generation, multiple choice, bits per byte) and rank 0 writes
    files equal to one process's: same replies, same scores; speed says how many processes shared the seconds."""
    mc = tmp_path / "mc.jsonl"
    mc.write_text("".join(json.dumps({"question": f"{i} + 1 =", "choices": [str(i + 1), str(i + 2)], "answer": 0})
                          + "\n" for i in range(5)))
    args = ["eval", str(tiny_dir), "-t", "arithmetic:1", "--limit", "7", "--samples", "3", "--k", "1,3",
            "--temperature", "0.9", "--max-new-tokens", "8", "--mc", str(mc), "--bpb", str(data_dir),
            "--threads", "1", "--out"]
    one = subprocess.run(FRONDE + args + [str(tmp_path / "one")], capture_output=True, text=True, env=ENV,
                         timeout=300)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "fronde.cli.main", *args, str(tmp_path / "two")], capture_output=True, text=True,
                         env=ENV, timeout=300)
    assert two.returncode == 0, two.stdout[-3000:] + two.stderr[-3000:]
    assert two.stdout.count("wrote ") == 3 and "2 processes share each evaluation" in two.stdout  # rank 0 only
    single, shared = read_results([tmp_path / "one"]), read_results([tmp_path / "two"])
    assert [stable_view(r) for r in shared] == [stable_view(r) for r in single]
    gen = next(r for r in shared if r["task"] == "arithmetic:1")
    assert len(gen["examples"]) == 7 and all(len(row["outputs"]) == 3 for row in gen["examples"])
    assert gen["speed"]["processes"] == 2 and gen["speed"]["requests"] == 21


def test_a_jsonl_file_with_no_test_rows_says_how_to_mark_them(tiny_dir, tmp_path):
    rows = tmp_path / "mine.jsonl"
    rows.write_text("".join(json.dumps({"prompt": f"What is {i} + 1?", "answer": str(i + 1)}) + "\n"
                            for i in range(3)))
    res = CliRunner().invoke(app, ["eval", str(tiny_dir), "--task", str(rows), "--out", str(tmp_path / "r")])
    assert res.exit_code == 2 and 'add "split": "test" to every row' in " ".join(res.output.split())


def test_evaluating_a_runs_model_is_charged_to_its_ledger(run_dir, tmp_path):
    """`fronde eval runs/NAME/STAGE/model` adds its wall time and generated tokens to the run's ledger (the run's
    cost includes evaluating what it made), priced as the stage before it on the same device; `--no-ledger` leaves
    the ledger alone, and so does a run whose stage is training now (that process would write over the entry)."""
    import shutil
    import socket

    import torch

    from fronde.train.hardware import peak_flops
    from fronde.train.ledger import Ledger

    run = tmp_path / "demo"
    shutil.copytree(run_dir, run)
    ledger = Ledger.load(run / "ledger.json")
    ledger.stages[0].device = peak_flops(torch.device("cpu"), None)[0]  # trained on this machine's CPU
    ledger.save(run / "ledger.json")
    args = ["eval", str(run / "pretrain" / "model"), "--task", "arithmetic:1", "--n", "3", "--max-new-tokens", "6",
            "--device", "cpu", "--out", str(tmp_path / "results")]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    entry = next(s for s in Ledger.load(run / "ledger.json").stages if s.stage == "eval")
    result = read_results([tmp_path / "results"])[0]
    assert entry.tokens == result["speed"]["generated_tokens"] > 0 and entry.wall_seconds > 0
    assert entry.price_per_device_hour == 4.0 and entry.flops == 0  # priced as pretrain; no FLOPs claimed
    assert f"to {run / 'ledger.json'}" in " ".join(res.output.split())
    first = entry.wall_seconds
    assert CliRunner().invoke(app, args + ["--no-ledger"]).exit_code == 0
    assert next(s for s in Ledger.load(run / "ledger.json").stages if s.stage == "eval").wall_seconds == first
    (run / "rl").mkdir()
    (run / "rl" / "lock.json").write_text(json.dumps({"stage": "rl", "status": "running", "pid": os.getpid(),
                                                      "host": socket.gethostname()}))
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0 and "its rl stage is training" in " ".join(res.output.split()), res.output
    assert next(s for s in Ledger.load(run / "ledger.json").stages if s.stage == "eval").wall_seconds == first
    (run / "rl" / "lock.json").unlink()
    assert CliRunner().invoke(app, args).exit_code == 0  # a second evaluation adds to the first
    assert next(s for s in Ledger.load(run / "ledger.json").stages if s.stage == "eval").wall_seconds > first
    # a later stage's training cost on the scoreboard leaves out the evaluations charged before it
    from fronde.eval.scoreboard import ledger_cost

    ledger = Ledger.load(run / "ledger.json")
    sft = ledger.stage("sft", device=ledger.stages[0].device, n_devices=1, peak_flops_per_device=1e11,
                       price_per_device_hour=4.0)
    sft.wall_seconds = 900.0
    ledger.save(run / "ledger.json")
    assert ledger_cost(str(run), str(run / "sft" / "model")) == pytest.approx((3.0, 0.75))  # 1800 s + 900 s at 4/h
