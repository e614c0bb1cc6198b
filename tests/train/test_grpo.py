"""GRPO on a tiny real model: a step moves probability toward the rewarded completion, and `fronde rl` runs end to
end on the real engine (metrics, plots, ledger, checkpoints, exact resume)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from fronde.data.tokenizer import Tokenizer, train_tokenizer
from fronde.model.checkpoint import save_pretrained
from fronde.tasks import Example, Task
from fronde.tools import Toolbox
from fronde.train.grpo import (
    PromptSampler,
    RLRecipe,
    prompt_ids,
    rl_step,
    sequence_logprobs,
)
from fronde.train.metrics import read_metrics
from fronde.train.optim import Optimizers
from fronde.train.rollouts import Completion
from tests.model.helpers import tiny_model
from tests.train.conftest import run_fronde, worker_pid

FRONDE = [sys.executable, "-m", "fronde.cli.main"]
ENV = os.environ | {"OMP_NUM_THREADS": "2", "COLUMNS": "200"}


class YesTask(Task):
    """Reward 1 when the reply says yes."""

    name = "yes"

    def train(self, n: int, seed: int) -> list[Example]:
        return [Example(f"yes/{i}", "yes", f"Question {i}?", "yes") for i in range(n)]

    def test(self, n: int | None = None) -> list[Example]:
        return self.train(n or 4, 0)

    def verify(self, completion: str, example: Example) -> float:
        return float("yes" in completion)


class Scripted:
    """Rollouts that always return the same two answers per prompt (half rewarded), to isolate the update."""

    def __init__(self, tok: Tokenizer) -> None:
        self.yes = tok.encode("yes") + [tok.special.end]
        self.no = tok.encode("no") + [tok.special.end]

    def sample(self, model, prompts, group_size, max_new_tokens, temperature, top_p, seed, stop_ids, first=0):
        return [[Completion(self.yes if i % 2 == 0 else self.no, True) for i in range(group_size)] for _ in prompts]


def log_odds(model, prompt: list[int], a: list[int], b: list[int]) -> float:
    """log p(a | prompt) - log p(b | prompt) for two continuations of equal length."""
    with torch.no_grad():
        logp, _ = sequence_logprobs(model, torch.tensor([prompt + a, prompt + b]))
    n = len(prompt) - 1
    return float(logp[0, n:].sum() - logp[1, n:].sum())


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("rlbase") / "model"
    tok = train_tokenizer(["yes no Question 1? 2 + 3 = 5. What is 4 + 4? 8"] * 50, vocab_size=300)
    tok.save(d)
    torch.manual_seed(0)
    save_pretrained(tiny_model(vocab_size=tok.vocab_size, eos_token_id=tok.special.eos), d)
    return d


@pytest.mark.parametrize("loss_type", ["grpo", "dr_grpo", "dapo"])
def test_a_grpo_step_moves_probability_toward_the_rewarded_completion(base_dir, loss_type):
    from fronde.model.checkpoint import from_pretrained

    tok = Tokenizer.load(base_dir)
    model = from_pretrained(base_dir)
    recipe = RLRecipe.model_validate({"rl": {"prompts_per_step": 2, "group_size": 4, "rewards": {"correct": 1.0},
                                             "loss_type": loss_type, "iterations": 2},
                                      "optim": {"lr": 1e-3, "weight_decay": 0.0},
                                      "schedule": {"max_steps": 10, "warmup_steps": 0}})
    task = YesTask()
    sampler = PromptSampler([task.train(4, 0)], [1.0], seed=0)
    rollouts = Scripted(tok)
    ex = task.train(1, 0)[0]
    prompt = prompt_ids(tok, task, ex, None)

    def margin() -> float:
        return log_odds(model, prompt, rollouts.yes, rollouts.no)

    opt = Optimizers(model, recipe.optim, torch.device("cpu"))
    before = margin()
    for step in range(3):
        record = rl_step(model, None, opt, rollouts, tok, [task], [Toolbox([])], sampler, recipe, step,
                         torch.device("cpu"))
    assert margin() > before + 0.5
    assert record["reward/correct"] == 0.5 and record["zero_std_groups"] == 0.0
    # FLOPs, in trained tokens: 2 passes, the old policy's scores (a forward: a third), each generated token a third
    scored, generated = record["_train_tokens"] / 2, 4 * (len(rollouts.yes) + len(rollouts.no))
    assert record["_flops_tokens"] == pytest.approx(scored * (2 + 1 / 3) + generated / 3)


def test_out_of_memory_retries_the_update_in_smaller_forwards(base_dir, monkeypatch):
    """Forwards of more than 2 sequences raise torch.OutOfMemoryError (as on a GPU too small for the recipe): the
    scoring passes and the update retry with 2 sequences a forward, and the step is the one micro_batch_size=2 makes."""
    from fronde.model.checkpoint import from_pretrained
    from fronde.train import grpo
    from fronde.train.oom import MicroSplit

    tok, task = Tokenizer.load(base_dir), YesTask()
    real = grpo.sequence_logprobs

    def small_gpu(model, seqs, *args, **kwargs):
        if seqs.shape[0] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB.")
        return real(model, seqs, *args, **kwargs)

    def run(micro: int, split: MicroSplit | None) -> tuple[torch.nn.Module, list[dict], list[str]]:
        model, ref = from_pretrained(base_dir), from_pretrained(base_dir).requires_grad_(False)
        recipe = RLRecipe.model_validate({"rl": {"prompts_per_step": 2, "group_size": 4, "iterations": 2,
                                                 "beta": 0.1, "rewards": {"correct": 1.0}},
                                          "batch": {"micro_batch_size": micro},
                                          "optim": {"lr": 1e-3, "weight_decay": 0.0},
                                          "schedule": {"max_steps": 10, "warmup_steps": 0}})
        opt = Optimizers(model, recipe.optim, torch.device("cpu"))
        sampler, said = PromptSampler([task.train(4, 0)], [1.0], seed=0), []
        records = [rl_step(model, ref, opt, Scripted(tok), tok, [task], [Toolbox([])], sampler, recipe, step,
                           torch.device("cpu"), None, split, said.append) for step in range(2)]
        return model, records, said

    want_model, want, _ = run(2, None)
    monkeypatch.setattr(grpo, "sequence_logprobs", small_gpu)
    split = MicroSplit(4)
    got_model, got, said = run(4, split)
    assert split.parts == 2 and len(said) == 1 and "out of memory in step 1" in said[0], said
    for a, b in zip(got, want):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-6) and a["kl"] == pytest.approx(b["kl"], abs=1e-6)
    for (name, p), q in zip(got_model.named_parameters(), want_model.parameters()):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=1e-5, msg=name)


def test_log_probs_are_those_of_the_sampling_temperature(base_dir):
    """Samples drawn at T come from softmax(logits / T): the policy-gradient log-probs must be that policy's."""
    from fronde.model.checkpoint import from_pretrained

    model = from_pretrained(base_dir).eval()
    seqs = torch.tensor([[1, 5, 9, 7, 3, 2]])
    with torch.no_grad():
        logits = model(seqs[:, :-1]).logits.float()
        for t in (1.0, 0.7):
            want = torch.log_softmax(logits / t, -1).gather(-1, seqs[:, 1:, None]).squeeze(-1)
            got, _ = sequence_logprobs(model, seqs, t)
            torch.testing.assert_close(got, want)
        assert not torch.allclose(sequence_logprobs(model, seqs, 0.7)[0], sequence_logprobs(model, seqs, 1.0)[0])


RECIPE = """
[run]
name = "{name}"
out_dir = "{out}"
seed = 0

[init]
model = "{init}"

[rl]
tasks = [{{ name = "{task}" }}]
train_pool = 20
prompts_per_step = 2
group_size = 4
max_new_tokens = 6
test_every = 2
test_n = 3
beta = 0.04

[optim]
lr = 1e-3
min_lr_ratio = 1.0   # a constant rate after warmup, so a 3-step run extended to 5 equals a 5-step run

[schedule]
max_steps = {steps}
warmup_steps = 1

[batch]
micro_batch_size = 4

[checkpoint]
every_steps = 2
"""


def _sums_recipe(tmp_path: Path, base_dir: Path, steps: int) -> tuple[Path, Path]:
    """An RL recipe on a JSONL task of 30 sums (5 held out for the test split), and the task file."""
    task = tmp_path / "sums.jsonl"
    task.write_text("\n".join(json.dumps({"prompt": f"What is {i} + {i}?", "answer": str(2 * i),
                                          "verifier": "numeric", "split": "test" if i < 5 else "train"})
                              for i in range(30)) + "\n")
    recipe = tmp_path / "rl.toml"
    recipe.write_text(RECIPE.format(name="r", out=tmp_path / "runs", init=base_dir, task=task, steps=steps))
    return recipe, task


def test_fronde_rl_end_to_end_and_resume(tmp_path, base_dir, monkeypatch, capsys):
    recipe, task = _sums_recipe(tmp_path, base_dir, steps=3)
    res = subprocess.run(FRONDE + ["rl", str(recipe)], env=ENV, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    run = tmp_path / "runs" / "r"
    records = read_metrics(run / "rl" / "metrics.jsonl")
    steps = [r for r in records if "loss" in r]
    assert [r["step"] for r in steps] == [1, 2, 3]
    for key in ("reward/correct", "reward/format", "zero_std_groups", "completion_length", "clip_ratio/region",
                "kl", "entropy"):
        assert key in steps[0], key
    assert any(k.startswith("test_accuracy/") for k in records[0])  # measured before the first step
    assert (run / "rl" / "model" / "model.safetensors").is_file()
    plots = {p.name for p in (run / "rl" / "plots").glob("*.png")}
    assert {"rewards.png", "test_accuracy.png", "grpo_fractions.png", "kl_entropy.png"} <= plots
    assert "test accuracy after RL" in res.stdout
    # resume: two more steps continue from the final checkpoint at step 3
    recipe.write_text(RECIPE.format(name="r", out=tmp_path / "runs", init=base_dir, task=task, steps=5))
    res = subprocess.run(FRONDE + ["rl", str(recipe), "--resume"], env=ENV, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    resumed = {r["step"]: r["loss"] for r in read_metrics(run / "rl" / "metrics.jsonl") if "loss" in r}
    assert sorted(resumed) == [1, 2, 3, 4, 5]
    straight = tmp_path / "straight.toml"
    straight.write_text(RECIPE.format(name="s", out=tmp_path / "runs", init=base_dir, task=task, steps=5))
    res = subprocess.run(FRONDE + ["rl", str(straight)], env=ENV, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    uninterrupted = {r["step"]: r["loss"] for r in read_metrics(tmp_path / "runs" / "s" / "rl" / "metrics.jsonl")
                     if "loss" in r}
    for step in (4, 5):  # same prompts, same seeded rollouts, same optimizer state: the same update
        assert resumed[step] == pytest.approx(uninterrupted[step], abs=1e-5)
    ledger = json.loads((run / "ledger.json").read_text())
    assert [s["stage"] for s in ledger["stages"]] == ["rl"] and ledger["stages"][0]["tokens"] > 0
    # FLOPs: each trained token (one pass), plus a third of one for the reference's forward over it (beta > 0) and
    # for each of the 2 x 4 completions' generated tokens
    from fronde.model.checkpoint import load_config
    from fronde.model.info import model_info

    generated = sum(r["completion_length"] * 8 for r in read_metrics(run / "rl" / "metrics.jsonl") if "loss" in r)
    trained = ledger["stages"][0]["tokens"]
    assert ledger["stages"][0]["flops"] == pytest.approx(
        model_info(load_config(base_dir), seq_len=6).train_flops_per_token * (trained * 4 / 3 + generated / 3))
    # a task's options reach the task: a misspelt one stops the run, naming it
    monkeypatch.setenv("COLUMNS", "200")
    capsys.readouterr()
    assert run_fronde(monkeypatch, "rl", str(straight), "--set", "run.name=o", "--set",
                      'rl.tasks=[{name="arithmetic:1", options={colums=1.0}}]') == 2
    assert "colums" in capsys.readouterr().out


def test_rewards_read_the_reply_without_its_stop_token(base_dir):
    """The format reward sees <|think|>..<|/think|><|answer|>..<|/answer|>, not the <|end|> that closes the turn."""
    from fronde.tasks import format_reward
    from fronde.tools.episode import Episode, final_text

    tok = Tokenizer.load(base_dir)
    sp = tok.special
    ids = [sp.think] + tok.encode("2 + 3 = 5") + [sp.think_end, sp.answer] + tok.encode("5") + [sp.answer_end, sp.end]
    stops = [sp.end, sp.eos]
    assert format_reward(final_text(tok, Episode([], ids, [1] * len(ids), ids, "answer"), stops)) == 1.0
    cut = ids[:4]
    assert final_text(tok, Episode([], cut, [1] * 4, cut, "length"), stops).startswith("<|think|>")


class CalcTask(Task):
    """Reward 1 for the answer 5 in an answer block."""

    name = "calc"

    def train(self, n: int, seed: int) -> list[Example]:
        return [Example(f"calc/{i}", "calc", "What is 2 + 3?", "5") for i in range(n)]

    def test(self, n: int | None = None) -> list[Example]:
        return self.train(n or 2, 0)

    def verify(self, completion: str, example: Example) -> float:
        return float(completion.endswith("<|answer|>5<|/answer|>"))


class ToolScripted:
    """Multi-turn rollouts: even episodes call the calculator then answer from its result, odd ones answer 4."""

    def __init__(self, tok: Tokenizer) -> None:
        sp = tok.special
        self.tok = tok
        self.call = [sp.tool_call] + tok.encode('{"name": "calculator", "arguments": {"expression": "2 + 3"}}') + [
            sp.tool_call_end, sp.end]
        self.answer = [sp.answer] + tok.encode("5") + [sp.answer_end, sp.end]
        self.wrong = [sp.answer] + tok.encode("4") + [sp.answer_end, sp.end]

    def sample(self, model, prompts, group_size, max_new_tokens, temperature, top_p, seed, stop_ids, first=0):
        sp = self.tok.special
        assert group_size == 1  # later turns continue each episode on its own
        out = []
        for k, p in enumerate(prompts):
            if p[-2] == sp.tool_result_end:  # the result is in: answer from it
                assert self.tok.decode(p).endswith("<|tool_result|>5<|/tool_result|><|assistant|>")
                out.append([Completion(self.answer, True)])
            else:
                out.append([Completion(self.call if k % 2 == 0 else self.wrong, True)])
        return out


def test_multi_turn_grpo_rewards_the_final_answer_and_learns_to_call(base_dir):
    from fronde.model.checkpoint import from_pretrained
    from fronde.tools import load_tools

    tok = Tokenizer.load(base_dir)
    model = from_pretrained(base_dir)
    recipe = RLRecipe.model_validate({"rl": {"prompts_per_step": 2, "group_size": 4, "rewards": {"correct": 1.0},
                                             "tasks": [{"name": "arithmetic:1", "tools": ["calculator"]}]},
                                      "optim": {"lr": 1e-3, "weight_decay": 0.0},
                                      "schedule": {"max_steps": 10, "warmup_steps": 0}})
    task, box = CalcTask(), Toolbox(load_tools(["calculator"]))
    sampler = PromptSampler([task.train(4, 0)], [1.0], seed=0)
    rollouts = ToolScripted(tok)
    prompt = prompt_ids(tok, task, task.train(1, 0)[0], None, box)
    assert tok.decode(prompt).count('"name": "calculator"') == 1  # the tool's schema is in the prompt

    def margin() -> float:
        return log_odds(model, prompt, rollouts.call[:4], rollouts.wrong[:4])

    opt = Optimizers(model, recipe.optim, torch.device("cpu"))
    before = margin()
    for step in range(3):
        record = rl_step(model, None, opt, rollouts, tok, [task], [box], sampler, recipe, step, torch.device("cpu"))
    assert record["reward/correct"] == 0.5 and record["tools/calls"] == 0.5 and record["tools/errors"] == 0.0
    assert record["tools/turns"] == 1.5
    assert margin() > before + 0.5  # calling the calculator became more likely than answering 4


@pytest.mark.parametrize("dynamic", [False, True])
def test_two_processes_take_the_same_grpo_steps_as_one(tmp_path, base_dir, dynamic):
    """torchrun: each rank samples its share of the prompts (rows seeded by their place in the whole batch), the
    rewards are gathered for advantages and metrics, normalisers are global and gradients summed, so 2 processes
    log the steps 1 process takes. gloo on CPU. With dynamic sampling, the kept groups are exchanged between ranks
    so that each trains on its share of the same batch. Without it, the 2-process run is started with `torchrun
    --max-restarts 1 ... --resume` and a worker is killed outright after step 3: torchrun restarts both, they resume
    from the last checkpoint (prompt stream, sampling seeds, optimizer) and log the same steps all the same."""
    task = tmp_path / "digit.jsonl"  # rewarded when the reply holds a digit: the untrained model does, sometimes
    task.write_text("\n".join(json.dumps({"prompt": f"What is {i} + {i}?", "answer": r"(?s).*\d.*",
                                          "verifier": "regex", "split": "test" if i < 5 else "train"})
                              for i in range(30)) + "\n")
    runs = {}
    for name, launcher in (("one", FRONDE), ("two", [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                                     "--nproc_per_node", "2", "-m", "fronde.cli.main"])):
        recipe = tmp_path / f"{name}.toml"
        recipe.write_text(RECIPE.format(name=name, out=tmp_path / "runs", init=base_dir, task=task, steps=6))
        dyn = ["--set", "rl.dynamic_sampling=true", "--set", "rl.sampling_rounds=3"] if dynamic else []
        kill = name == "two" and not dynamic
        if kill:
            launcher = [*launcher[:-2], "--max-restarts", "1", *launcher[-2:]]
        proc = subprocess.Popen(launcher + ["rl", str(recipe), "--set", "rl.loss_type=grpo", "--set",
                                            "rl.truncated=keep", "--set", "rl.prompts_per_step=4", *dyn,
                                            *(["--resume"] if kill else [])],
                                env=ENV | {"OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
        metrics = tmp_path / "runs" / name / "rl" / "metrics.jsonl"
        if kill:
            deadline = time.monotonic() + 240
            while not any(r.get("step", 0) >= 3 and "loss" in r for r in read_metrics(metrics)):
                assert time.monotonic() < deadline and proc.poll() is None, "no step 3 to kill the run after"
                time.sleep(0.01)
            os.kill(worker_pid(proc.pid, 1), signal.SIGKILL)
        out = proc.communicate(timeout=300)[0]
        assert proc.returncode == 0, out[-3000:]
        assert out.count("test accuracy after RL") == 1  # only rank 0 speaks
        assert ("resuming from" in out) == kill, out[-3000:]  # (from step 2, or 4 if the kill came late)
        runs[name] = {r["step"]: r for r in read_metrics(metrics)}
    assert runs["one"].keys() == runs["two"].keys()
    for step, one in runs["one"].items():
        two = runs["two"][step]
        for key in ("loss", "reward/total", "reward/total_std", "completion_length", "kl", "ratio", "entropy",
                    f"test_accuracy/{task}"):
            if key in one:
                assert two[key] == pytest.approx(one[key], rel=1e-4, abs=1e-7), (step, key)
    steps = [r for r in runs["one"].values() if "loss" in r]
    assert any(r["loss"] != 0 and r["reward/total_std"] > 0 for r in steps)  # the comparison has something in it
    if dynamic:  # groups were left out and others sampled in their place, the same on both
        assert any(r["sampling_rounds"] > 1 for r in steps)
        rounds = {name: [r["sampling_rounds"] for r in run.values() if "loss" in r] for name, run in runs.items()}
        assert rounds["one"] == rounds["two"]
    assert steps[0]["kl"] == pytest.approx(0, abs=1e-6) and steps[0]["ratio"] == pytest.approx(1)  # policy = ref
    assert steps[-1]["kl"] > 0  # then the weights moved, the same way in both
    ledger = json.loads((tmp_path / "runs" / "two" / "ledger.json").read_text())
    assert ledger["stages"][0]["n_devices"] == 2
    assert (tmp_path / "runs" / "two" / "rl" / "model" / "model.safetensors").is_file()


def test_select_groups_keeps_informative_groups_in_sampled_order_then_fills():
    from fronde.train.group_filter import informative_count, select_groups

    same, mixed = [1.0, 1.0], [1.0, 0.0]
    rounds = [torch.tensor(same + mixed + same + mixed), torch.tensor(mixed + same + mixed + mixed)]
    assert informative_count(rounds, 2) == 5
    assert select_groups(rounds, 2, 4) == [(0, 1), (0, 3), (1, 0), (1, 2)]
    assert select_groups(rounds[:1], 2, 4) == [(0, 1), (0, 3), (0, 0), (0, 2)]  # short: the first round fills


class OddPromptsAllWrong(Scripted):
    """Half yes / half no on even questions; all "no" on odd ones (a group that teaches nothing)."""

    def __init__(self, tok: Tokenizer) -> None:
        super().__init__(tok)
        self.tok, self.prompts_seen = tok, 0

    def sample(self, model, prompts, group_size, max_new_tokens, temperature, top_p, seed, stop_ids, first=0):
        self.prompts_seen += len(prompts)
        out = []
        for p in prompts:
            odd = int(self.tok.decode(p).rsplit("Question ", 1)[1].split("?")[0]) % 2
            out.append([Completion(self.no if odd or i % 2 else self.yes, True) for i in range(group_size)])
        return out


def test_dynamic_sampling_trains_on_groups_whose_rewards_differ(base_dir):
    from fronde.model.checkpoint import from_pretrained

    tok = Tokenizer.load(base_dir)
    task = YesTask()
    records = {}
    for dynamic in (False, True):
        model = from_pretrained(base_dir)
        recipe = RLRecipe.model_validate({"rl": {"prompts_per_step": 4, "group_size": 2, "rewards": {"correct": 1.0},
                                                 "dynamic_sampling": dynamic, "sampling_rounds": 4},
                                          "schedule": {"max_steps": 10, "warmup_steps": 0}})
        rollouts = OddPromptsAllWrong(tok)
        record = rl_step(model, None, Optimizers(model, recipe.optim, torch.device("cpu")), rollouts, tok, [task],
                         [Toolbox([])], PromptSampler([task.train(40, 0)], [1.0], seed=0), recipe, 0,
                         torch.device("cpu"))
        records[dynamic] = (record, rollouts.prompts_seen)
    plain, dyn = records[False][0], records[True][0]
    assert plain["zero_std_groups"] > 0 and "sampling_rounds" not in plain and records[False][1] == 4
    assert dyn["zero_std_groups"] == 0.0 and dyn["reward/correct"] == 0.5  # every kept group: one yes, one no
    assert dyn["sampled_zero_std_groups"] > 0 and dyn["sampling_rounds"] == records[True][1] // 4 >= 2


def test_rl_without_room_for_its_checkpoints_stops_after_its_first_step(tmp_path, base_dir, monkeypatch, capsys):
    """GRPO checks the disk as pretraining does (fronde.train.disk), once its optimizer has a state to size."""
    import fronde.train.disk as disk
    recipe, _ = _sums_recipe(tmp_path, base_dir, steps=3)
    monkeypatch.setattr(disk, "free_bytes", lambda path: 100_000)
    assert run_fronde(monkeypatch, "rl", str(recipe)) == 2
    err = " ".join(capsys.readouterr().err.split())
    stage = tmp_path / "runs" / "r" / "rl"
    assert err.startswith(f"error: {stage / 'checkpoints'}: the disk has 0.1 MB free and this run needs"), err
    assert not (stage / "checkpoints").exists() and not (stage / "model").exists()


def test_a_grpo_update_with_nan_gradients_is_skipped(tmp_path, base_dir, monkeypatch, capsys):
    """fronde.train.nonfinite guards GRPO's updates as it guards pretraining's steps."""
    real_clip = torch.nn.utils.clip_grad_norm_
    calls = []

    def clip(params, max_norm, *args, **kwargs):
        params = list(params)
        calls.append(1)
        if len(calls) == 2:
            for p in params:
                if p.grad is not None:
                    p.grad.fill_(float("nan"))
        return real_clip(params, max_norm, *args, **kwargs)

    recipe, _ = _sums_recipe(tmp_path, base_dir, steps=3)
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", clip)
    assert run_fronde(monkeypatch, "rl", str(recipe)) == 0
    assert "rl step 2: gradient norm nan; update skipped" in " ".join(capsys.readouterr().out.split())
    records = [r for r in read_metrics(tmp_path / "runs" / "r" / "rl" / "metrics.jsonl") if "loss" in r]
    assert [r.get("skipped_steps", 0) for r in records] == [0, 1, 1]
    weights = load_file(tmp_path / "runs" / "r" / "rl" / "model" / "model.safetensors")
    assert all(torch.isfinite(t).all() for t in weights.values())
