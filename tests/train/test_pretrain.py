"""The real training loop on a tiny model and a real corpus: falling loss, exact resume after SIGKILL,
fallback past a corrupt checkpoint, the cost ledger, and 2-process DDP matching 1 process."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer, DeepseekV3ForCausalLM

from fronde.train.checkpoint import load_latest
from fronde.train.metrics import read_metrics

FRONDE = [sys.executable, "-m", "fronde.cli.main"]
ENV = os.environ | {"OMP_NUM_THREADS": "2", "COLUMNS": "200"}


def _run(args: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(FRONDE + args, env=ENV, capture_output=True, text=True, timeout=300, **kw)


def _losses(run_dir: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in read_metrics(run_dir / "pretrain" / "metrics.jsonl")}


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, data_dir):
    """One uninterrupted 12-step run, shared by the tests that compare against it."""
    from tests.train.conftest import RECIPE

    tmp = tmp_path_factory.mktemp("ref")
    recipe = tmp / "ref.toml"
    recipe.write_text(RECIPE.format(name="ref", out=tmp / "runs", data=data_dir))
    res = _run(["pretrain", str(recipe)])
    assert res.returncode == 0, res.stdout + res.stderr
    return tmp / "runs" / "ref", res.stdout


def test_run_trains_writes_hf_model_metrics_and_ledger(reference_run):
    run_dir, out = reference_run
    records = read_metrics(run_dir / "pretrain" / "metrics.jsonl")
    assert [r["step"] for r in records] == list(range(1, 13))
    assert records[-1]["loss"] < records[0]["loss"] - 0.5  # it learns
    assert {"val_loss", "mtp_loss", "balance_loss", "expert_load_imbalance", "mfu", "tokens_per_s"} <= set(
        k for r in records for k in r)
    model_dir = run_dir / "pretrain" / "model"
    hf = DeepseekV3ForCausalLM.from_pretrained(model_dir)  # any checkpoint is a transformers checkpoint
    tok = AutoTokenizer.from_pretrained(model_dir)
    assert hf.config.vocab_size == len(tok)
    # transformers' generate() and vLLM stop a chat reply at the template's end of turn, as fronde's engine does
    assert hf.generation_config.eos_token_id == [tok.eos_token_id, tok.convert_tokens_to_ids("<|end|>")]
    assert tok.model_max_length == hf.config.max_position_embeddings  # truncation=True cuts to the context
    reply = tok.encode("<|think|>6 x 7<|/think|><|answer|>42<|/answer|><|end|>", add_special_tokens=False)
    assert tok.parse_response(reply, prefix="") == {"role": "assistant", "thinking": "6 x 7", "content": "42"}
    ledger = json.loads((run_dir / "ledger.json").read_text())
    stage = ledger["stages"][0]
    assert stage["stage"] == "pretrain" and stage["tokens"] == 12 * 512 and stage["wall_seconds"] > 0
    assert "cost ledger" in out
    plots = {p.name for p in (run_dir / "pretrain" / "plots").glob("*.png")}
    assert plots == {"loss.png", "lr.png", "throughput.png", "expert_load.png"}


def test_sigkill_at_an_arbitrary_step_then_resume_gives_the_same_losses(tmp_path, data_dir, reference_run):
    from tests.train.conftest import RECIPE

    ref_dir, _ = reference_run
    recipe = tmp_path / "killed.toml"
    recipe.write_text(RECIPE.format(name="ref", out=tmp_path / "runs", data=data_dir))
    run_dir = tmp_path / "runs" / "ref"
    proc = subprocess.Popen(FRONDE + ["pretrain", str(recipe)], env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and max(_losses(run_dir), default=0) < 7:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = max(_losses(run_dir))
    assert 7 <= killed_at < 12, "the run should die mid-way, after the step-4 checkpoint"
    res = _run(["pretrain", str(recipe), "--resume"])
    assert res.returncode == 0, res.stdout + res.stderr
    assert "resuming from" in res.stdout
    assert _losses(run_dir) == _losses(ref_dir)  # bit-identical per-step losses
    trained = {r["step"]: r["tokens"] for r in read_metrics(run_dir / "pretrain" / "metrics.jsonl")}
    assert trained == {step: step * 512 for step in range(1, 13)}  # the steps redone are charged, not trained twice
    ref_w = load_file(ref_dir / "pretrain" / "model" / "model.safetensors")
    new_w = load_file(run_dir / "pretrain" / "model" / "model.safetensors")
    assert all(torch.equal(ref_w[k], new_w[k]) for k in ref_w)
    ledger = json.loads((run_dir / "ledger.json").read_text())["stages"][0]
    assert ledger["resumes"] == 1 and ledger["tokens"] >= 12 * 512


def test_corrupt_latest_checkpoint_falls_back_to_the_previous(reference_run):
    run_dir, _ = reference_run
    root = run_dir / "pretrain" / "checkpoints"
    latest = root / (root / "latest").read_text().strip()
    trainer = latest / "trainer.pt"
    data = trainer.read_bytes()
    trainer.write_bytes(data[: len(data) // 2])
    messages: list[str] = []
    try:
        resumed = load_latest(root, torch.device("cpu"), warn=messages.append)
        assert resumed is not None and resumed.path.name == "step-000008"
        assert "does not match its recorded size/sha256" in messages[0] and latest.name in messages[0]
    finally:
        trainer.write_bytes(data)


def _torchrun(args: list[str]) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "fronde.cli.main", *args]
    res = subprocess.run(cmd, env=ENV | {"OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res


def _rewind(run_dir: Path, step: int) -> None:
    """Make a finished run look killed right after its step-`step` checkpoint."""
    root = run_dir / "pretrain" / "checkpoints"
    for ckpt in root.glob("step-*"):
        if int(ckpt.name.split("-")[1]) > step:
            shutil.rmtree(ckpt)
    (root / "latest").write_text(f"step-{step:06d}")
    shutil.rmtree(run_dir / "pretrain" / "model")


def _assert_same_curve(run_dir: Path, ref_dir: Path) -> None:
    got, single = _losses(run_dir), _losses(ref_dir)
    assert got.keys() == single.keys()
    for step in single:
        assert got[step] == pytest.approx(single[step], rel=2e-4), step


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_processes_match_one_process_and_resume_on_one(tmp_path, data_dir, reference_run, strategy):
    from tests.train.conftest import RECIPE

    ref_dir, _ = reference_run
    recipe = tmp_path / "ddp.toml"
    recipe.write_text(RECIPE.format(name="ddp", out=tmp_path / "runs", data=data_dir))
    res = _torchrun(["pretrain", str(recipe), "--set", f"distributed.strategy={strategy}"])
    assert res.stdout.count("cost ledger") == 1  # only rank 0 reports
    run_dir = tmp_path / "runs" / "ddp"
    _assert_same_curve(run_dir, ref_dir)
    # The capacity went away: the 2-process run's step-4 checkpoint goes on in one process, on the same curve.
    _rewind(run_dir, 4)
    res = _run(["pretrain", str(recipe), "--resume", "--set", f"distributed.strategy={strategy}"])
    assert res.returncode == 0, res.stdout + res.stderr
    assert "written by 2 process(es) and resumes on 1" in res.stdout
    _assert_same_curve(run_dir, ref_dir)


def test_a_one_process_checkpoint_resumes_on_two(tmp_path, reference_run):
    ref_dir, _ = reference_run
    run_dir = tmp_path / "ref"
    shutil.copytree(ref_dir, run_dir)
    _rewind(run_dir, 8)
    recipe = tmp_path / "more.toml"  # the reference's recipe, pointed at the copy
    recipe.write_text((ref_dir.parent.parent / "ref.toml").read_text().replace(str(ref_dir.parent), str(tmp_path)))
    res = _torchrun(["pretrain", str(recipe), "--resume"])
    assert "resuming from" in res.stdout and "written by 1 process(es) and resumes on 2" in res.stdout
    _assert_same_curve(run_dir, ref_dir)
    assert (run_dir / "pretrain" / "model" / "config.json").is_file()


def _stopped_by(sig: int, tmp_path: Path, data_dir: Path, name: str) -> tuple[Path, Path]:
    """Start a pretraining, send `sig` after its second step, check it checkpointed that step and exited 0."""
    from tests.train.conftest import RECIPE

    recipe = tmp_path / f"{name}.toml"
    recipe.write_text(RECIPE.format(name=name, out=tmp_path / "runs", data=data_dir))
    run_dir = tmp_path / "runs" / name
    proc = subprocess.Popen(FRONDE + ["pretrain", str(recipe), "--set", "checkpoint.every_steps=0"], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 240
    while time.time() < deadline and max(_losses(run_dir), default=0) < 2:
        time.sleep(0.05)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0 and "stopped by signal after step" in out, out
    stopped = max(_losses(run_dir))
    assert (run_dir / "pretrain" / "checkpoints" / "latest").read_text().strip() == f"step-{stopped:06d}"
    assert not (run_dir / "pretrain" / "model").exists()  # not finished: no final model yet
    return recipe, run_dir


def test_sigterm_checkpoints_the_current_step_and_exits_cleanly(tmp_path, data_dir):
    recipe, run_dir = _stopped_by(signal.SIGTERM, tmp_path, data_dir, "term")
    res = _run(["pretrain", str(recipe), "--resume"])
    assert res.returncode == 0 and (run_dir / "pretrain" / "model" / "config.json").is_file()
    again = _run(["pretrain", str(recipe), "--resume"])  # a finished run resumes to "done", not to a crash
    assert again.returncode == 0, again.stdout + again.stderr


def test_a_closed_terminal_checkpoints_and_stops_as_sigterm_does(tmp_path, data_dir):
    """SIGHUP (an SSH session closed under a run started without tmux) used to kill the run with no checkpoint."""
    _stopped_by(signal.SIGHUP, tmp_path, data_dir, "hup")


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds torchrun's workers through /proc")
def test_a_signal_to_one_rank_stops_every_rank_after_the_same_step(tmp_path, data_dir):
    """SIGTERM reaching one worker only (a node's agent, a preempted GPU) must not leave the other rank stepping alone
    into a collective that never completes: the ranks agree to stop, checkpoint that step, and exit cleanly."""
    from tests.train.conftest import RECIPE, worker_pid

    recipe = tmp_path / "one.toml"
    recipe.write_text(RECIPE.format(name="one", out=tmp_path / "runs", data=data_dir))
    run_dir = tmp_path / "runs" / "one"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "fronde.cli.main", "pretrain", str(recipe), "--set", "checkpoint.every_steps=0",
           "--set", "schedule.max_steps=400", "--set", "distributed.timeout_minutes=1"]
    proc = subprocess.Popen(cmd, env=ENV | {"OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 240
    while time.time() < deadline and max(_losses(run_dir), default=0) < 2:
        time.sleep(0.02)
    rank1 = worker_pid(proc.pid, 1)
    assert rank1 is not None
    os.kill(rank1, signal.SIGTERM)
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out[-3000:]
    stopped = max(_losses(run_dir))
    assert stopped < 400 and f"stopped by signal after step {stopped}" in out
    root = run_dir / "pretrain" / "checkpoints"
    assert (root / "latest").read_text().strip() == f"step-{stopped:06d}"
    assert not (run_dir / "pretrain" / "model").exists()


LONGER = ["--set", "schedule.max_steps=40", "--set", "eval.every_steps=20"]


@pytest.fixture(scope="module")
def straight_two_process_run(tmp_path_factory, data_dir) -> tuple[Path, Path]:
    """(recipe, run dir) of a 40-step 2-process run never killed."""
    from tests.train.conftest import RECIPE

    tmp = tmp_path_factory.mktemp("straight")
    recipe = tmp / "r.toml"
    recipe.write_text(RECIPE.format(name="straight", out=tmp / "runs", data=data_dir))
    _torchrun(["pretrain", str(recipe), *LONGER])
    return recipe, tmp / "runs" / "straight"


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds torchrun's workers through /proc")
@pytest.mark.parametrize("nodes", [1, 2])
def test_torchrun_max_restarts_brings_a_killed_worker_back_on_the_same_curve(tmp_path, straight_two_process_run,
                                                                              nodes):
    """`torchrun --max-restarts 1 ... --resume`: a worker killed outright (OOM killer, a lost GPU) restarts the
    group, which resumes from the last checkpoint and trains the same per-step losses as a run never killed. Before
    fronde gave each attempt a store of its own (fronde.train.distributed.attempt_store), the restarted workers read
    the dead ones' addresses from torchrun's shared store and failed (`Gloo connectFullMesh failed`). With 2 "nodes"
    (two torchrun agents, c10d rendezvous) the agents' restart counts differ (the killed worker's agent counts a
    restart, the other one restarts for the membership change), which a prefix per restart count would hang on."""
    recipe, straight = straight_two_process_run
    run_dir = tmp_path / "runs" / "restarted"
    from tests.train.conftest import two_node_torchrun, worker_pid

    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"] \
        if nodes == 1 else two_node_torchrun()
    cmd = [*launcher, "--max-restarts", "1", "-m", "fronde.cli.main",
           "pretrain", str(recipe), "--resume", "--set", "run.name=restarted",
           "--set", f"run.out_dir={tmp_path / 'runs'}", *LONGER]
    agents = [subprocess.Popen(cmd, env=ENV | {"OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True) for _ in range(nodes)]
    deadline = time.time() + 240
    while time.time() < deadline and max(_losses(run_dir), default=0) < 14:
        time.sleep(0.02)
    victim = worker_pid(agents[-1].pid, 2 - nodes)  # local rank 1 of the one node, or node B's only worker
    assert victim is not None
    os.kill(victim, signal.SIGKILL)
    killed_at = max(_losses(run_dir))
    outs = [agent.communicate(timeout=240)[0] for agent in agents]
    assert [agent.returncode for agent in agents] == [0] * nodes, outs[0][-3000:] + outs[-1][-3000:]
    assert killed_at < 40 and any("resuming from" in out for out in outs)
    assert not any("socket has timed out" in out for out in outs)  # the dead attempt's store is skipped quietly
    assert _losses(run_dir) == _losses(straight)


def test_the_run_says_how_many_epochs_it_reads_and_warns_before_memorising(reference_run):
    from fronde.train.pretrain import data_plan
    from fronde.train.recipe import PretrainRecipe

    _, out = reference_run
    assert "training tokens; 12 steps x 512 tokens =" in out and "warning" not in out
    recipe = PretrainRecipe.model_validate({"schedule": {"max_steps": 1000}, "batch": {"global_batch_tokens": 2048}})
    line, warnings = data_plan(1_024_000, True, recipe)
    assert line.endswith("= 2.00 epochs") and warnings == []
    line, warnings = data_plan(102_400, True, recipe)
    assert line.endswith("= 20.00 epochs")
    assert len(warnings) == 1 and "lower schedule.max_steps (to about 200)" in warnings[0]
    _, warnings = data_plan(400, False, recipe)  # 4 epochs in less than a step: fewer steps cannot help
    assert "add data (one step alone" in warnings[0] and "no val split" in warnings[1]


def test_out_of_memory_retries_the_step_in_smaller_forwards_and_resumes_so(tmp_path, data_dir, reference_run,
                                                                           monkeypatch):
    """A GPU smaller than the recipe assumed: forwards of more than 2 rows raise torch.OutOfMemoryError (as CUDA's
    allocator would). The step is retried with each micro-batch of 4 rows in 2 forwards: same rows, same losses as
    the uninterrupted run; the checkpoint carries the split to a resumed run, which does not run out again."""
    from tests.train.conftest import RECIPE

    from fronde.train import loop
    from fronde.train.pretrain import pretrain
    from fronde.train.recipe import load_recipe

    real_loss, rows_seen = loop.lm_loss, []

    def small_gpu(recipe):
        fn = real_loss(recipe)

        def guarded(forward, x, y):
            rows_seen.append(x.shape[0])
            if x.shape[0] > 2:
                forward(x, y)  # the memory of a real forward, then the failure
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB.")
            return fn(forward, x, y)

        return guarded

    monkeypatch.setattr(loop, "lm_loss", small_gpu)
    path = tmp_path / "oom.toml"
    path.write_text(RECIPE.format(name="oom", out=tmp_path / "runs", data=data_dir))
    said: list[str] = []
    recipe = load_recipe(str(path), ["schedule.max_steps=12"])
    stop_after = 4

    class Stop:  # SIGTERM after step 4's checkpoint: the run stops there, as a killed one would resume
        def add_task(self, *a, **k):
            return 0

        def update(self, task, completed=None, **k):
            if completed == stop_after:
                os.kill(os.getpid(), signal.SIGTERM)

    result = pretrain(recipe, say=said.append, progress=Stop())
    assert result.stopped_early and result.last_step == 4
    retries = [line for line in said if "out of memory in step 1" in line]
    assert len(retries) == 1 and "in 2 forwards of 2 rows" in retries[0], said
    assert "batch.micro_batch_size=2" in retries[0]
    assert rows_seen[0] == 4 and set(rows_seen[1:]) == {2}
    rows_seen.clear()
    said.clear()
    stop_after = None
    result = pretrain(recipe, resume=True, say=said.append, progress=Stop())
    assert result.last_step == 12 and set(rows_seen) == {2}
    assert any("each micro-batch in 2 forwards of 2 rows" in line for line in said), said
    expected, got = _losses(reference_run[0]), _losses(tmp_path / "runs" / "oom")
    assert sorted(got) == sorted(expected)
    # The same sums in another order: 2.5e-5 at most on 2026-12-06; 1.6e-4 at step 10 once the MTP layer read the
    # normed hidden state (2026-12-08), at that step only (6.7e-6 the next): a near tie in one forward (most likely an
    # expert choice) going the other way, not a drift
    for step in expected:
        assert got[step] == pytest.approx(expected[step], abs=1e-3), step


def test_out_of_memory_under_torchrun_names_the_micro_batch_to_set():
    from fronde.train.oom import next_split, shrink
    from fronde.train.recipe import RecipeError

    assert [next_split(12, s) for s in (1, 2, 3, 4, 6, 12)] == [2, 3, 4, 6, 12, None]
    err = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB.")
    with pytest.raises(RecipeError, match=r"batch.micro_batch_size=8 .*torchrun"):
        shrink(err, 0, 16, 1, 2048, True, torch.device("cpu"))
    with pytest.raises(RecipeError, match="one row does not fit.*Tried to allocate"):
        shrink(err, 0, 1, 1, 2048, False, torch.device("cpu"))


def test_rows_longer_than_the_context_stop_before_any_data_is_prepared(tmp_path):
    from fronde.train.pretrain import pretrain
    from fronde.train.recipe import RecipeError, load_recipe

    recipe = load_recipe("tiny-cpu", [f"run.out_dir={tmp_path}", "batch.seq_len=4096",
                                      "batch.global_batch_tokens=8192", "batch.micro_batch_size=2"])
    with pytest.raises(RecipeError, match=r"batch.seq_len=4096 .*\(max_position_embeddings=2048\): set "
                                          r"model.overrides.max_position_embeddings=4096"):
        pretrain(recipe, say=lambda _: None)
    assert not any(tmp_path.iterdir())  # nothing prepared


def test_continued_pretraining_starts_from_a_model_with_its_tokenizer(tmp_path, reference_run, data_dir):
    """init.model: the run starts from that model's weights, architecture and tokenizer (data prepared by the run
    reuse it; data tokenized otherwise is refused), and its lineage names the model as its parent."""
    from fronde.data.manifest import read_manifest
    from fronde.data.tokenizer import Tokenizer
    from fronde.train.lineage import read_lineage
    from fronde.train.pretrain import pretrain
    from fronde.train.recipe import RecipeError, load_recipe

    base = reference_run[0] / "pretrain" / "model"
    common = [f"run.out_dir={tmp_path}", f"init.model={base}", "schedule.max_steps=3", "schedule.warmup_steps=0",
              "batch.seq_len=64", "batch.micro_batch_size=4", "batch.global_batch_tokens=512", "eval.batches=1"]
    said: list[str] = []
    result = pretrain(load_recipe("tiny-cpu", common + ["run.name=c", "data.sources=[{path='python-stdlib', "
                                                         "max_documents=40}]"]), say=said.append)
    assert any("continuing the pretraining of" in line for line in said), said
    manifest = read_manifest(tmp_path / "c" / "data")
    assert manifest["tokenizer"]["sha256"] == Tokenizer.load(base).sha256  # the run prepared data with it
    first = read_metrics(tmp_path / "c" / "pretrain" / "metrics.jsonl")[0]["loss"]
    reference = _losses(reference_run[0])
    assert first < reference[1] - 0.5  # it starts where the base model ended, not from scratch
    lineage = read_lineage(result.model_dir)
    assert lineage["parent"]["path"] == str(base) and lineage["parent"]["lineage"]["run"]["name"] == "ref"
    card = (result.model_dir / "MODEL_CARD.md").read_text()  # tiny-cpu's data guards the evaluations' test sets
    assert "Decontaminated against the test sets of `humaneval`, `gsm-symbolic:eng`, `gsm-symbolic:fra`" in card
    assert "Not decontaminated" in card  # the base model's own data (the reference run's) was not

    with pytest.raises(RecipeError, match="keeps its architecture"):
        pretrain(load_recipe("tiny-cpu", common + ["run.name=o", "model.overrides={hidden_size=32}"]))
    other = tmp_path / "other"
    from fronde.data.config import DataConfig, SourceConfig
    from fronde.data.pipeline import prepare

    prepare(DataConfig(sources=[SourceConfig(path="python-stdlib", max_documents=20)], vocab_size=512,
                       near_dedup=False), other)
    with pytest.raises(RecipeError, match=r"another tokenizer than init.model's .*--tokenizer"):
        pretrain(load_recipe("tiny-cpu", common + ["run.name=t", f"data.dir={other}"]))


def test_charge_work_prices_as_the_last_stage_on_the_same_device(tmp_path):
    """Preparing data and evaluating keep the run's devices busy or waiting: their wall time is charged, never FLOPs."""
    from fronde.train.ledger import Ledger, charge_work
    from fronde.train.recipe import CostSection

    path = tmp_path / "ledger.json"
    data = charge_work(path, "data", torch.device("cpu"), 1, 12.0, tokens=1000,
                       cost=CostSection(price_per_hour=3.6, watts=100))
    assert data.cost == pytest.approx(0.012) and data.mfu is None
    ledger = Ledger.load(path)
    ledger.stage("pretrain", device=data.device, n_devices=1, peak_flops_per_device=1e12,
                 price_per_device_hour=7.2, watts_per_device=200).wall_seconds = 100.0
    ledger.save(path)
    charge_work(path, "eval", torch.device("cpu"), 1, 30.0, tokens=50)
    charge_work(path, "eval", torch.device("cpu"), 1, 10.0, tokens=5)  # a second evaluation adds to the first
    stages = {s.stage: s for s in Ledger.load(path).stages}
    assert list(stages) == ["data", "pretrain", "eval"]
    assert stages["eval"].wall_seconds == 40.0 and stages["eval"].tokens == 55
    assert stages["eval"].price_per_device_hour == 7.2 and stages["eval"].cost == pytest.approx(0.08)
