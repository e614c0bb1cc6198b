"""The distill stage end to end: SmolLM2-135M-Instruct (the real GGUF, offline) answers arithmetic problems, its
verified answers fine-tune a tiny fronde model; and logit distillation from a teacher identical to the student
starts at zero loss."""

from __future__ import annotations

import json

import pytest

from fronde.model.checkpoint import load_config
from fronde.model.info import model_info
from fronde.train.distill import DistillRecipe, distill
from fronde.train.ledger import Ledger
from fronde.train.metrics import read_metrics
from tests.train.test_sft import base_dir  # noqa: F401  (a tiny model dir with a real tokenizer)

COMMON = {"optim": {"lr": 3e-3, "weight_decay": 0.0}, "schedule": {"max_steps": 4, "warmup_steps": 1},
          "batch": {"seq_len": 64, "micro_batch_size": 2, "global_batch_tokens": 128},
          "checkpoint": {"every_steps": 0}, "eval": {"every_steps": 0}, "log": {"every_steps": 1},
          "sft": {"val_fraction": 0.0}}


@pytest.mark.slow
def test_sequence_distillation_from_smollm2_runs_end_to_end(tmp_path, smollm2, base_dir):  # noqa: F811
    recipe = DistillRecipe.model_validate(COMMON | {
        "run": {"name": "d", "out_dir": str(tmp_path / "runs")}, "init": {"model": str(base_dir)},
        "distill": {"teacher": "smollm2-135m-instruct", "prompt_tasks": [{"name": "arithmetic:1", "n": 6}],
                    "max_new_tokens": 24, "batch_size": 6, "filter_with_verifier": False}})
    result = distill(recipe, say=lambda _: None, teacher=smollm2)
    stage = tmp_path / "runs" / "d" / "distill"
    rows = [json.loads(line) for line in (stage / "teacher_samples.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and all(r["completion"] for r in rows)
    sft_rows = [json.loads(line) for line in (stage / "teacher_sft.jsonl").read_text().splitlines()]
    assert sft_rows[0]["messages"][-1] == {"role": "assistant", "content": rows[0]["completion"]}
    assert result.model_dir is not None and (result.model_dir / "model.safetensors").is_file()
    assert [r["step"] for r in read_metrics(stage / "metrics.jsonl")] == [1, 2, 3, 4]
    # rerun: every teacher answer comes from the cache (the stage's final model already exists)
    again = distill(recipe, say=lambda _: None, teacher=smollm2, resume=True)
    assert again.last_step == 4


def test_logit_distillation_from_an_identical_teacher_starts_at_zero(tmp_path, base_dir):  # noqa: F811
    chats = tmp_path / "chats.jsonl"
    chats.write_text("\n".join(json.dumps({"messages": [{"role": "user", "content": f"{i} plus {i}?"},
                                                        {"role": "assistant", "content": f"{2 * i}."}]})
                               for i in range(12)) + "\n")
    recipe = DistillRecipe.model_validate(COMMON | {
        "run": {"name": "l", "out_dir": str(tmp_path / "runs")}, "init": {"model": str(base_dir)},
        "sft": {"chat_files": [str(chats)], "val_fraction": 0.0},
        "distill": {"teacher": str(base_dir), "mode": "logit", "kind": "jsd", "beta": 0.5, "ce_weight": 0.5}})
    distill(recipe, say=lambda _: None)
    records = read_metrics(tmp_path / "runs" / "l" / "distill" / "metrics.jsonl")
    assert records[0]["distill_loss"] == pytest.approx(0.0, abs=1e-6)  # student == teacher at step 1
    # each token went through the student's training step and the (identical) teacher's forward, a third of it
    entry = Ledger.load(tmp_path / "runs" / "l" / "ledger.json").stages[-1]
    student = model_info(load_config(base_dir), seq_len=64).train_flops_per_token
    assert entry.flops == pytest.approx(entry.tokens * student * 4 / 3)
    assert records[-1]["distill_loss"] > 0  # the CE term moved the student away from the teacher
    assert "ce_loss" in records[0]


def test_on_policy_distillation_samples_from_the_student(tmp_path, base_dir):  # noqa: F811
    """GKD with lambda = 1: every micro-batch is the student's own completions, graded by the (identical) teacher."""
    from fronde.infer.rollout import EngineRollouts

    chats = tmp_path / "chats.jsonl"
    chats.write_text("\n".join(json.dumps({"messages": [{"role": "user", "content": f"{i} plus {i}?"},
                                                        {"role": "assistant", "content": f"{2 * i}."}]})
                               for i in range(12)) + "\n")
    recipe = DistillRecipe.model_validate(COMMON | {
        "run": {"name": "o", "out_dir": str(tmp_path / "runs")}, "init": {"model": str(base_dir)},
        "sft": {"chat_files": [str(chats)], "val_fraction": 0.0},
        "distill": {"teacher": str(base_dir), "mode": "logit", "on_policy_fraction": 1.0,
                    "on_policy_max_new_tokens": 6}})
    distill(recipe, say=lambda _: None, rollouts=EngineRollouts())
    records = read_metrics(tmp_path / "runs" / "o" / "distill" / "metrics.jsonl")
    assert all(r["on_policy"] == 1.0 for r in records)
    assert records[0]["distill_loss"] == pytest.approx(0.0, abs=1e-6)
    # the ledger pays for sampling the student's answers (a forward per token) on top of training and grading
    entry = Ledger.load(tmp_path / "runs" / "o" / "ledger.json").stages[-1]
    student = model_info(load_config(base_dir), seq_len=64).train_flops_per_token
    sampled = sum(r["sampled_tokens"] for r in records)  # one micro-batch a step
    assert sampled > 0
    assert entry.flops == pytest.approx(entry.tokens * student * 4 / 3 + sampled * student / 3)
    with pytest.raises(Exception, match="needs a sampler"):
        distill(recipe.model_copy(update={"run": recipe.run.model_copy(update={"name": "o2"})}), say=lambda _: None)


def test_sequence_distillation_under_torchrun_splits_the_teacher_work(tmp_path, base_dir):  # noqa: F811
    """2 gloo processes: each answers half the prompts into its own file, the SFT reads the union, rank 0 speaks."""
    import os
    import subprocess
    import sys

    recipe = tmp_path / "d.toml"
    recipe.write_text(f"""
[run]
name = "dd"
out_dir = "{tmp_path / 'runs'}"
[init]
model = "{base_dir}"
[distill]
teacher = "{base_dir}"
prompt_tasks = [{{ name = "arithmetic:1", n = 8 }}]
max_new_tokens = 6
batch_size = 4
filter_with_verifier = false
[optim]
lr = 3e-3
weight_decay = 0.0
[schedule]
max_steps = 2
warmup_steps = 1
[batch]
seq_len = 64
micro_batch_size = 2
global_batch_tokens = 256
[checkpoint]
every_steps = 0
[eval]
every_steps = 0
[sft]
val_fraction = 0.0
""")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "fronde.cli.main", "distill", str(recipe)]
    res = subprocess.run(cmd, env=os.environ | {"OMP_NUM_THREADS": "1", "COLUMNS": "200"}, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert res.stdout.count("8 generated now on 2 processes") == 1, res.stdout
    stage = tmp_path / "runs" / "dd" / "distill"
    for name in ("teacher_samples.jsonl", "teacher_samples.rank1.jsonl"):
        assert len((stage / name).read_text().splitlines()) == 4, name
    assert len((stage / "teacher_sft.jsonl").read_text().splitlines()) == 8
    assert (stage / "model" / "model.safetensors").is_file()


def test_sequence_distillation_from_a_teacher_behind_an_openai_compatible_server(tmp_path, base_dir):  # noqa: F811
    """distill.teacher = a server's URL (here fronde serve on 127.0.0.1; vLLM or SGLang in practice): the answers
    come through chat completions into the same cache and SFT; fronde.json records the endpoint; logit mode, which
    needs logits, is refused."""
    from fronde.serve.app import ServerConfig
    from fronde.train.lineage import read_lineage
    from fronde.train.recipe import RecipeError
    from fronde.train.teacher_endpoint import EndpointTeacher
    from tests.serve.test_server import _start

    url, _, srv, thread = _start(ServerConfig(base_dir, served_name="big-teacher", max_batch=8))
    try:
        teacher = EndpointTeacher(url + "/v1", concurrency=4)
        assert teacher.model == "big-teacher"  # the only model the server has
        answers = teacher.generate([[{"role": "user", "content": f"What is {i} + {i}?"}] for i in range(6)],
                                   max_new_tokens=8)
        assert len(answers) == 6 and all(isinstance(a, str) for a in answers)
        recipe = DistillRecipe.model_validate(COMMON | {
            "run": {"name": "e", "out_dir": str(tmp_path / "runs")}, "init": {"model": str(base_dir)},
            "distill": {"teacher": url + "/v1", "prompt_tasks": [{"name": "arithmetic:1", "n": 6}],
                        "max_new_tokens": 8, "batch_size": 6, "filter_with_verifier": False}})
        said: list[str] = []
        result = distill(recipe, say=said.append)
        assert f"teacher: big-teacher at {url}/v1" in said
        stage = tmp_path / "runs" / "e" / "distill"
        assert len((stage / "teacher_samples.jsonl").read_text().splitlines()) == 6
        teacher_record = read_lineage(result.model_dir)["inputs"]["teacher"]
        assert teacher_record == {"spec": url + "/v1", "kind": "endpoint", "model": "big-teacher", "licence": None}
        assert f"distill teacher {url}/v1" in (result.model_dir / "MODEL_CARD.md").read_text()
        logit = DistillRecipe.model_validate(recipe.model_dump() | {"distill": recipe.distill.model_dump() |
                                                                    {"mode": "logit"}})
        with pytest.raises(RecipeError, match="needs the teacher's logits"):
            distill(logit, say=lambda _: None)
    finally:
        srv.should_exit = True
        thread.join(timeout=10)


def test_the_distill_stage_pays_for_its_teachers_answers(tmp_path, base_dir):  # noqa: F811
    """A teacher takes its time (a bigger model, an endpoint), and the run's devices wait for it, paid for: the
    ledger's distill entry counts the answers as well as the training, in wall time and, for a local teacher, in
    FLOPs (each prompt and reply token through its forward)."""
    import re
    import time

    from fronde.train.teacher import Teacher, load_teacher

    class Slow(Teacher):
        def generate(self, *args, **kwargs):
            time.sleep(3)
            return super().generate(*args, **kwargs)

    real = load_teacher(str(base_dir))
    teacher = Slow(real.spec, real.model, real.tokenizer, real.stop_ids)
    recipe = DistillRecipe.model_validate(COMMON | {
        "run": {"name": "p", "out_dir": str(tmp_path / "runs")}, "init": {"model": str(base_dir)},
        "distill": {"teacher": str(base_dir), "prompt_tasks": [{"name": "arithmetic:1", "n": 4}],
                    "max_new_tokens": 4, "batch_size": 4, "filter_with_verifier": False}})
    said: list[str] = []
    distill(recipe, say=said.append, teacher=teacher)
    line = re.compile(r"4 generated now in (\d+) s \(charged to the distill stage\)")
    seconds = [int(m[1]) for m in map(line.search, said) if m]
    assert len(seconds) == 1 and seconds[0] >= 3, said
    entry = next(s for s in Ledger.load(tmp_path / "runs" / "p" / "ledger.json").stages if s.stage == "distill")
    assert entry.wall_seconds >= 3
    processed = teacher.processed_tokens  # 4 prompts of ~10 tokens, replies of at most 4
    assert 4 * 5 < processed <= 4 * 40
    answers = processed * teacher.forward_flops_per_token(round(processed / 4))
    student = model_info(load_config(base_dir), seq_len=64).train_flops_per_token
    assert entry.flops == pytest.approx(entry.tokens * student + answers)
