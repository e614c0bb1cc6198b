"""A stage started again over an earlier run of it: refused without --resume or --restart; --restart trains from
step 0 with the earlier checkpoints, metrics and model gone (a cache stays); a checkpoint just written is never the
one rotated out."""

from __future__ import annotations

import json

import pytest
import torch

from fronde.model.config import load_preset
from fronde.model.model import CausalLM
from fronde.train.checkpoint import candidates, write_checkpoint
from tests.train.conftest import run_fronde


def test_a_second_run_without_resume_or_restart_is_refused_and_restart_starts_over(recipe_file, monkeypatch,
                                                                                    capsys):
    recipe = recipe_file("again")
    stage = recipe.parent / "runs" / "again" / "pretrain"
    assert run_fronde(monkeypatch, "pretrain", str(recipe), "--set", "schedule.max_steps=8") == 0
    first = (stage / "model" / "model.safetensors").read_bytes()
    (stage / "teacher_samples.jsonl").write_text("{}\n")  # a stage's cache is not a training output
    capsys.readouterr()

    assert run_fronde(monkeypatch, "pretrain", str(recipe)) == 2
    err = " ".join(capsys.readouterr().out.split())
    assert f"error: {stage} holds an earlier pretrain run (checkpoints up to step 8, a published model)" in err
    assert "--resume" in err and "--restart" in err and "run.name=NEW" in err
    assert (stage / "model" / "model.safetensors").read_bytes() == first  # untouched

    assert run_fronde(monkeypatch, "pretrain", str(recipe), "--resume", "--restart") == 2
    assert "pass one of them" in capsys.readouterr().out

    assert run_fronde(monkeypatch, "pretrain", str(recipe), "--restart", "--set", "schedule.max_steps=12",
                   "--set", "run.seed=4") == 0
    steps = [json.loads(line)["step"] for line in (stage / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 13))  # one run's metrics, from step 1
    assert sorted(p.name for p in (stage / "checkpoints").glob("step-*")) == ["step-000004", "step-000008",
                                                                               "step-000012"]
    assert (stage / "model" / "model.safetensors").read_bytes() != first
    assert json.loads((stage / "model" / "fronde.json").read_text())["step"] == 12
    assert (stage / "teacher_samples.jsonl").read_text() == "{}\n"


def test_a_checkpoint_just_written_is_never_rotated_out(tmp_path):
    """Through the library (no CLI guard), a fresh run's step-000002 sorts before an earlier run's step-000900:
    keep_last drops the oldest of the others, and `latest` names a checkpoint that exists."""
    model = CausalLM(load_preset("tiny", num_hidden_layers=1, hidden_size=32)).init_weights(0)
    for step in (800, 900):
        write_checkpoint(tmp_path, step, model.config, model.state_dict(), torch.float32, {}, {}, keep_last=2)
    write_checkpoint(tmp_path, 2, model.config, model.state_dict(), torch.float32, {}, {}, keep_last=2)
    assert sorted(p.name for p in tmp_path.glob("step-*")) == ["step-000002", "step-000900"]
    assert candidates(tmp_path)[0].name == "step-000002"


def test_resume_with_a_recipe_that_cannot_continue_says_which_and_what_to_do(recipe_file, monkeypatch, capsys):
    recipe = recipe_file("changed")
    assert run_fronde(monkeypatch, "pretrain", str(recipe), "--set", "schedule.max_steps=8") == 0
    capsys.readouterr()
    assert run_fronde(monkeypatch, "pretrain", str(recipe), "--resume", "--set", "batch.seq_len=32") == 2
    err = " ".join(capsys.readouterr().out.split())
    assert "step-000008: cannot continue its data stream (the saved position is for seq_len=64, this stream has " \
           "32); resume with the recipe and data the run started with, or train anew with --restart" in err
    assert run_fronde(monkeypatch, "pretrain", str(recipe), "--resume", "--set", "schedule.max_steps=4") == 0
    assert "the checkpoint is at step 8, schedule.max_steps=4: nothing to train" in \
        " ".join(capsys.readouterr().out.split())


def test_restart_never_clears_a_stage_another_process_is_training(tmp_path):
    import os
    import socket

    from fronde.train.recipe import RecipeError
    from fronde.train.restart import check_fresh_start

    stage = tmp_path / "pretrain"
    (stage / "checkpoints" / "step-000004").mkdir(parents=True)
    (stage / "lock.json").write_text(json.dumps({"stage": "pretrain", "status": "running", "pid": os.getpid(),
                                                 "host": socket.gethostname()}))
    with pytest.raises(RecipeError, match=f"being trained by process {os.getpid()}; stop it before --restart"):
        check_fresh_start(stage, "pretrain", resume=False, restart=True)
    assert (stage / "checkpoints" / "step-000004").is_dir()


def test_under_torchrun_a_refused_start_stops_every_node(recipe_file):
    """Rank 0 alone reads the earlier run. Its refusal now reaches the other ranks: two torchrun "nodes" (c10d
    rendezvous on this machine) both stop at once, each printing the reason once. Before, node B's rank waited for
    rank 0 in the process group's setup until the timeout (30 minutes)."""
    import os
    import subprocess

    from tests.train.conftest import two_node_torchrun

    recipe = recipe_file("twice")
    stage = recipe.parent / "runs" / "twice" / "pretrain"
    (stage / "model").mkdir(parents=True)
    (stage / "model" / "config.json").write_text("{}")
    cmd = two_node_torchrun() + ["-m", "fronde.cli.main", "pretrain", str(recipe)]
    env = os.environ | {"OMP_NUM_THREADS": "1", "COLUMNS": "300"}
    nodes = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(2)]
    outs = [node.communicate(timeout=120)[0] for node in nodes]
    reason = f"{stage} holds an earlier pretrain run (a published model)"
    assert all(node.returncode != 0 for node in nodes)
    for out in outs:  # rank 0's own error on its node, the same reason from rank 1 on the other
        assert out.count(reason) == 1 and "╭" not in out, out[-3000:]
