"""`fronde rl RECIPE`: GRPO with verifiable rewards, as DeepSeek-R1 trained reasoning (DAPO / Dr. GRPO variants).

Each step draws prompts from the recipe's tasks, samples G completions per prompt with fronde's inference engine
(batched, latent KV cache; the engine is passed in as a `Rollouts` so this layer does not import fronde.infer),
scores them with weighted reward functions (the task's verifier, the think/answer format), turns rewards into
group-relative advantages and takes `iterations` clipped policy-gradient steps on them (train/grpo_loss.py).
A task with `tools` rolls out multi-turn episodes instead (fronde.tools.episode): the environment runs the model's
tool calls between turns, their results are masked from the loss, and the reward reads the final turn.
Checkpoints, exact resume, the ledger, metrics.jsonl and plots work as in every stage; rl runs on one device.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field

from fronde.data.chat import render_chat
from fronde.data.errors import DataError
from fronde.data.tokenizer import Tokenizer
from fronde.model.checkpoint import from_pretrained, load_config
from fronde.model.info import model_info
from fronde.model.model import CausalLM
from fronde.tasks import Example, Task, format_reward, get_task
from fronde.tools import Toolbox, load_tools
from fronde.tools.episode import Episode, final_text, run_episodes
from fronde.train.budget import StepPlan
from fronde.train.checkpoint import (
    CheckpointWriter,
    candidates,
    load_latest,
    rng_state,
    set_rng_state,
)
from fronde.train.grpo_loss import (
    combine_rewards,
    group_advantages,
    grpo_loss,
    token_entropy,
    truncation_mask,
    truncation_penalty,
    zero_std_fraction,
)
from fronde.train.hardware import peak_flops
from fronde.train.ledger import Ledger
from fronde.train.lineage import LINEAGE, Lineage, Provenance, task_entry
from fronde.train.loop import StageResult, StopFlag, autocast, publish_final
from fronde.train.metrics import MetricsLog
from fronde.train.optim import Optimizers
from fronde.train.plots import plot_metrics
from fronde.train.pretrain import tokenizer_files
from fronde.train.recipe import RecipeError, StageRecipe, _Section
from fronde.train.rollouts import Rollouts
from fronde.train.sft import InitSection
from fronde.train.stage_lock import StageLock

STAGE = "rl"


class RLTask(_Section):
    name: str = Field(..., description="task spec: arithmetic:1, countdown, gsm-symbolic:eng, a .jsonl ...")
    weight: float = Field(1.0, gt=0, description="share of prompts drawn from this task")
    options: dict[str, Any] = Field(default_factory=dict, description="the task's options, e.g. {exactly_once = true} "
                                    "for countdown")
    tools: list[str] = Field(default_factory=list, description="tools the model may call on this task, e.g. "
                             "[\"calculator\"]; rollouts are then multi-turn (fronde.tools.episode)")


class RLSection(_Section):
    tasks: list[RLTask] = Field(default_factory=lambda: [RLTask(name="arithmetic:1")])
    train_pool: int = Field(2000, gt=0, description="training problems drawn per task (the prompt pool)")
    system: str | None = None
    prompts_per_step: int = Field(8, gt=0)
    group_size: int = Field(8, gt=1, description="G completions per prompt")
    max_new_tokens: int = Field(64, gt=0, description="per model turn")
    max_turns: int = Field(4, gt=0, description="model turns per episode when a task has tools")
    tools_root: str = Field("", description="the folder search_files may read (only with that tool)")
    temperature: float = Field(1.0, gt=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    rewards: dict[str, float] = Field(default_factory=lambda: {"correct": 1.0, "format": 0.1},
                                      description="reward function -> weight; functions: correct, format")
    scale_rewards: Literal["group", "batch", "none"] = Field("group", description="none = Dr. GRPO")
    loss_type: Literal["grpo", "dr_grpo", "dapo"] = "dapo"
    eps_low: float = Field(0.2, gt=0)
    eps_high: float = Field(0.28, gt=0, description="DAPO's clip-higher")
    beta: float = Field(0.0, ge=0, description="KL to the frozen initial model (k3); 0 skips the reference")
    iterations: int = Field(1, gt=0, description="optimisation passes over each batch of rollouts")
    truncated: Literal["mask", "penalize", "keep"] = Field("mask", description="completions cut at max length")
    truncation_penalty: float = -1.0
    test_every: int = Field(20, ge=0, description="greedy test accuracy every N steps (0: only before and after)")
    test_n: int = Field(100, gt=0, description="test problems per task")


class RLRecipe(StageRecipe):
    init: InitSection = Field(default_factory=InitSection)
    rl: RLSection = Field(default_factory=RLSection)


REWARD_FUNCTIONS = ("correct", "format")


def reward_table(tasks: list[Task], examples: list[Example], texts: list[str], names: list[str]
                 ) -> dict[str, torch.Tensor]:
    by_name = {t.name: t for t in tasks}
    out = {}
    for name in names:
        if name == "correct":
            vals = [by_name[ex.task].verify(text, ex) for ex, text in zip(examples, texts)]
        elif name == "format":
            vals = [format_reward(text) for text in texts]
        else:
            raise RecipeError(f"rl.rewards: unknown reward function {name!r} (known: {', '.join(REWARD_FUNCTIONS)})")
        out[name] = torch.tensor(vals, dtype=torch.float32)
    return out


def sequence_logprobs(model: CausalLM, seqs: torch.Tensor, temperature: float = 1.0, want_entropy: bool = False
                      ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-token log-probabilities of seqs[:, 1:] (and entropies) under the model sampled at `temperature`:
    (N, T-1). The policy being optimised is the one that sampled, softmax(logits / T), as TRL's."""
    logits = model(seqs[:, :-1]).logits.float() / temperature
    logp = torch.log_softmax(logits, -1).gather(-1, seqs[:, 1:, None]).squeeze(-1)
    ent = token_entropy(logits.detach()) if want_entropy else None
    return logp, ent


class PromptSampler:
    """Prompts for step s: a seeded walk through the pool, weighted by task, a function of (seed, s) only, so a
    resumed run draws exactly what an uninterrupted one would."""

    def __init__(self, pools: list[list[Example]], weights: list[float], seed: int) -> None:
        self.pools, self.weights, self.seed = pools, weights, seed

    def draw(self, step: int, n: int) -> list[Example]:
        rng = random.Random(self.seed * 1_000_003 + step)
        out = []
        for _ in range(n):
            pool = rng.choices(self.pools, weights=self.weights)[0]
            out.append(pool[rng.randrange(len(pool))])
        return out


def stop_ids(tok: Tokenizer) -> list[int]:
    return [tok.special.end, tok.special.eos]


def prompt_ids(tok: Tokenizer, task: Task, ex: Example, system: str | None, toolbox: Toolbox | None = None
               ) -> list[int]:
    ids, _ = render_chat(tok, task.messages(ex, system), tools=toolbox.schemas() if toolbox and toolbox.names else None,
                         add_generation_prompt=True)
    return ids


def sample_episodes(model: CausalLM, rollouts: Rollouts, tok: Tokenizer, prompts: list[list[int]],
                    boxes: list[Toolbox], sec: RLSection, group_size: int, temperature: float, seed: int
                    ) -> list[Episode]:
    """`group_size` episodes per prompt, prompt-major. Without tools, one turn each with the group's prompt prefilled
    once; with tools, multi-turn: the tools run between turns and their results are masked from the loss."""
    stops = stop_ids(tok)
    if not any(b.names for b in boxes):
        groups = rollouts.sample(model, prompts, group_size, sec.max_new_tokens, temperature, sec.top_p, seed, stops)
        return [Episode(p, c.ids, [1] * len(c.ids), c.ids, "answer" if c.finished else "length", 1)
                for p, g in zip(prompts, groups) for c in g]

    def generate(contexts: list[list[int]], max_new: int, turn_seed: int) -> list[tuple[list[int], bool]]:
        groups = rollouts.sample(model, contexts, 1, max_new, temperature, sec.top_p, turn_seed, stops)
        return [(g[0].ids, g[0].finished) for g in groups]

    return run_episodes(generate, tok, [p for p in prompts for _ in range(group_size)],
                        [b for b in boxes for _ in range(group_size)], sec.max_turns, sec.max_new_tokens,
                        model.config.max_position_embeddings, seed)


def test_accuracy(model: CausalLM, rollouts: Rollouts, tok: Tokenizer, tasks: list[Task], boxes: list[Toolbox],
                  sec: RLSection) -> dict[str, float]:
    """Greedy accuracy on each task's fixed test split (the first test_n problems), with the task's tools."""
    out = {}
    for task, box in zip(tasks, boxes):
        exs = task.test(sec.test_n)
        if not exs:  # a user task without a test split: nothing to measure (said in docs/post-training.md)
            continue
        prompts = [prompt_ids(tok, task, ex, sec.system, box) for ex in exs]
        eps = sample_episodes(model, rollouts, tok, prompts, [box] * len(exs), sec, 1, 0.0, 0)
        texts = [final_text(tok, ep, stop_ids(tok)) for ep in eps]
        out[task.name] = sum(task.verify(t, ex) for t, ex in zip(texts, exs)) / max(len(exs), 1)
    return out


def toolboxes(sec: RLSection) -> list[Toolbox]:
    """Each task's tools (an empty toolbox for a task without), checked before any model is loaded."""
    root = Path(sec.tools_root) if sec.tools_root else None
    try:
        return [Toolbox(load_tools(t.tools, root=root)) for t in sec.tasks]
    except DataError as e:
        raise RecipeError(f"rl.tasks.tools: {e}") from None


def grpo(recipe: RLRecipe, rollouts: Rollouts, resume: bool = False, say: Callable[[str], None] = print,
         progress: Any = None, device: str | None = None) -> StageResult:
    """GRPO under the stage's lock (fronde.train.stage_lock), as every stage trains."""
    with StageLock(recipe.run_dir / STAGE, STAGE):
        return _grpo(recipe, rollouts, resume, say, progress, device)


def _grpo(recipe: RLRecipe, rollouts: Rollouts, resume: bool, say: Callable[[str], None], progress: Any,
          device: str | None) -> StageResult:
    started = time.perf_counter()  # the time budget counts from here
    sec = recipe.rl
    run_dir, stage_dir = recipe.run_dir, recipe.run_dir / STAGE
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    init_dir = Path(recipe.init.model) if recipe.init.model else run_dir / "sft" / "model"
    if not (init_dir / "config.json").is_file():
        raise RecipeError(f"init.model: {init_dir} is not a model dir; run `fronde sft` first or set init.model=PATH")
    for name in sec.rewards:
        if name not in REWARD_FUNCTIONS:
            raise RecipeError(f"rl.rewards: unknown reward function {name!r} (known: {', '.join(REWARD_FUNCTIONS)})")
    boxes = toolboxes(sec)
    tok = Tokenizer.load(init_dir)
    config = load_config(init_dir)
    tasks = [get_task(t.name, **t.options) for t in sec.tasks]
    sampler = PromptSampler([t.train(sec.train_pool, recipe.run.seed) for t in tasks],
                            [t.weight for t in sec.tasks], recipe.run.seed)
    ckpt_root = stage_dir / "checkpoints"
    resumed = load_latest(ckpt_root, dev, warn=say) if resume else None
    if resumed is not None:
        model, start_step = resumed.model.to(dev), int(resumed.state["step"])
        say(f"resuming from {resumed.path} (step {start_step})")
    else:
        torch.manual_seed(recipe.run.seed)
        model, start_step = from_pretrained(init_dir).to(dev), 0
    ref = from_pretrained(init_dir).to(dev).eval().requires_grad_(False) if sec.beta > 0 else None
    opt = Optimizers(model, recipe.optim, dev)
    if resumed is not None:
        opt.load_state_dict(resumed.trainer["optim"])
        set_rng_state(resumed.trainer["rng"][0])
    ledger = Ledger.load(run_dir / "ledger.json")
    label, peak = peak_flops(dev)
    cost = ledger.stage(STAGE, device=label, n_devices=1, peak_flops_per_device=peak,
                        price_per_device_hour=recipe.cost.price_per_hour, watts_per_device=recipe.cost.watts)
    metrics = MetricsLog(stage_dir / "metrics.jsonl", recipe.log.tensorboard,
                         resume_from_step=start_step if resumed is not None else None)
    plan = StepPlan.create(recipe.schedule, resumed.state.get("plan") if resumed is not None else None)
    if plan.budget_s is not None:
        say(f"{STAGE}: time budget {plan.describe()}")
    train_flops = model_info(config, seq_len=sec.max_new_tokens).train_flops_per_token
    files = tokenizer_files(init_dir)
    mark = time.perf_counter()

    def charge() -> None:
        nonlocal mark
        now = time.perf_counter()
        cost.wall_seconds += now - mark
        mark = now

    writer = CheckpointWriter(ckpt_root, recipe.checkpoint.keep_last, recipe.checkpoint.background)

    def checkpoint(at: int, extra: dict[str, Any]) -> None:
        charge()
        writer.save(at, model.config, model.state_dict(), next(model.parameters()).dtype,
                    {"optim": opt.state_dict(), "rng": [rng_state()]},
                    {"loader": {}, "ledger": ledger.to_json(), "recipe_digest": recipe.digest(),
                     "plan": plan.state(time.perf_counter() - started), **extra}, extra_files=files)
        ledger.save(run_dir / "ledger.json")

    first_acc = resumed.state.get("test_accuracy_before") if resumed is not None else None
    if first_acc is None:
        first_acc = test_accuracy(model, rollouts, tok, tasks, boxes, sec)
        say("test accuracy before RL: " + ", ".join(f"{k} {v:.1%}" for k, v in first_acc.items()))
        metrics.write({"step": start_step, **{f"test_accuracy/{k}": v for k, v in first_acc.items()}})
    last_acc = first_acc
    done = start_step
    with StopFlag() as stop, writer:
        task_bar = progress.add_task(STAGE, total=plan.planned, completed=start_step) if progress else None
        while not plan.finished(done):
            step, t0 = done, time.perf_counter()
            opt.set_lr(plan.lr(step, recipe.optim.min_lr_ratio))
            record = rl_step(model, ref, opt, rollouts, tok, tasks, boxes, sampler, recipe, step, dev)
            dt = time.perf_counter() - t0
            cost.tokens += record.pop("_train_tokens")
            cost.flops += record.pop("_flops_tokens") * train_flops
            done = step + 1
            if plan.observe(done, time.perf_counter() - started) and progress is not None:
                progress.update(task_bar, total=plan.planned)
            last = plan.finished(done)
            if (sec.test_every and done % sec.test_every == 0) or last:
                last_acc = test_accuracy(model, rollouts, tok, tasks, boxes, sec)
                record |= {f"test_accuracy/{k}": v for k, v in last_acc.items()}
            charge()
            record |= {"step": done, "lr": opt.optimizers[0].param_groups[0]["lr"], "seconds": cost.wall_seconds,
                       "step_seconds": dt}
            if plan.budget_s is not None:
                record["planned_steps"] = plan.planned
            metrics.write(record)
            if progress is not None:
                progress.update(task_bar, completed=done, loss=record["loss"], tps=record["tokens_per_s"], mfu=0.0,
                                val=record["reward/total"])
            if stop.requested or last or (recipe.checkpoint.every_steps and done % recipe.checkpoint.every_steps == 0):
                checkpoint(done, {"test_accuracy_before": first_acc})
            if stop.requested:
                say(f"stopped by signal after step {done}; resume with --resume")
                break
    charge()  # the wait for the last checkpoint's write
    ledger.save(run_dir / "ledger.json")
    metrics.close()
    plot_metrics(metrics.path, stage_dir / "plots", title=f"{recipe.run.name} {STAGE}")
    say("test accuracy after RL: " + ", ".join(f"{k} {v:.1%} (before {first_acc.get(k, math.nan):.1%})"
                                               for k, v in last_acc.items()))
    final_dir = None
    if plan.finished(done) and not stop.requested:
        final_dir = stage_dir / "model"
        if not (start_step == done and (final_dir / LINEAGE).is_file()):
            inputs = {"tasks": [task_entry(t.name, t.options, weight=t.weight, train_pool=sec.train_pool,
                                           **({"tools": t.tools} if t.tools else {})) for t in sec.tasks],
                      "rewards": sec.rewards}
            publish_final(candidates(ckpt_root)[0] / "model", final_dir,
                          Lineage(STAGE, recipe, done, cost, Provenance(parent=init_dir, inputs=inputs)))
    return StageResult(run_dir, final_dir, done, None, stop.requested, ledger)


def tool_metrics(episodes: list[Episode]) -> dict[str, float]:
    n = max(len(episodes), 1)
    return {"tools/calls": sum(e.tool_calls for e in episodes) / n, "tools/errors": sum(e.tool_errors for e in episodes) / n,
            "tools/turns": sum(e.turns for e in episodes) / n,
            "tools/max_turns_fraction": sum(e.stop == "max_turns" for e in episodes) / n}


def rl_step(model: CausalLM, ref: CausalLM | None, opt: Optimizers, rollouts: Rollouts, tok: Tokenizer,
            tasks: list[Task], boxes: list[Toolbox], sampler: PromptSampler, recipe: RLRecipe, step: int,
            dev: torch.device) -> dict[str, Any]:
    """One GRPO step: rollouts, rewards, advantages, `iterations` optimizer steps. Returns the metrics record."""
    sec = recipe.rl
    by_name = {t.name: (t, b) for t, b in zip(tasks, boxes)}
    examples = sampler.draw(step, sec.prompts_per_step)
    prompts = [prompt_ids(tok, by_name[ex.task][0], ex, sec.system, by_name[ex.task][1]) for ex in examples]
    t_gen = time.perf_counter()
    flat = sample_episodes(model, rollouts, tok, prompts, [by_name[ex.task][1] for ex in examples], sec,
                           sec.group_size, sec.temperature, recipe.run.seed * 1_000_003 + step)
    gen_seconds = time.perf_counter() - t_gen
    model.train()
    flat_examples = [ex for ex in examples for _ in range(sec.group_size)]
    texts = [final_text(tok, ep, stop_ids(tok)) for ep in flat]
    table = reward_table(tasks, flat_examples, texts, list(sec.rewards))
    finished = torch.tensor([ep.finished for ep in flat])
    rewards = combine_rewards(table, sec.rewards) + truncation_penalty(finished, sec.truncated, sec.truncation_penalty)
    adv = group_advantages(rewards, sec.group_size, sec.scale_rewards)

    # (N, L) sequences: prompt + episode, right-padded; mask marks the tokens the model wrote (tool results: 0)
    lengths = [len(ep.prompt) + len(ep.ids) for ep in flat]
    L = max(lengths)
    seqs = torch.full((len(flat), L), tok.special.pad, dtype=torch.long)
    mask = torch.zeros(len(flat), L - 1)
    for i, ep in enumerate(flat):
        seqs[i, :lengths[i]] = torch.tensor(ep.prompt + ep.ids)
        mask[i, len(ep.prompt) - 1:lengths[i] - 1] = torch.tensor(ep.mask, dtype=torch.float32)
    mask = truncation_mask(mask, finished, sec.truncated)
    seqs, mask, adv = seqs.to(dev), mask.to(dev), adv.to(dev)
    micro = recipe.batch.micro_batch_size
    n = len(flat)
    chunks = [slice(i, min(i + micro, n)) for i in range(0, n, micro)]
    total_tokens = float(mask.sum().clamp(min=1))
    with torch.no_grad(), autocast(recipe, dev):
        old = torch.cat([sequence_logprobs(model, seqs[c], sec.temperature)[0] for c in chunks]) if sec.iterations > 1 \
            else None
        ref_lp = torch.cat([sequence_logprobs(ref, seqs[c], sec.temperature)[0] for c in chunks]) if ref is not None \
            else None
    stats_sum: dict[str, float] = {}
    losses, entropies = [], []
    for it in range(sec.iterations):
        for c in chunks:
            with autocast(recipe, dev):
                logp, ent = sequence_logprobs(model, seqs[c], sec.temperature, want_entropy=it == 0)
            old_c = old[c] if old is not None else logp.detach()
            loss, stats = grpo_loss(logp, old_c, adv[c], mask[c], ref_logp=ref_lp[c] if ref_lp is not None else None,
                                    beta=sec.beta, eps_low=sec.eps_low, eps_high=sec.eps_high,
                                    loss_type=sec.loss_type, max_completion_length=max(sec.max_new_tokens, L - 1),
                                    num_tokens=total_tokens)
            share = (c.stop - c.start) / n
            scaled = loss if sec.loss_type == "dapo" else loss * share
            scaled.backward()
            losses.append(float(scaled.detach()))
            for k, v in stats.items():
                stats_sum[k] = stats_sum.get(k, 0.0) + v * share / sec.iterations
            if ent is not None:
                entropies.append(float((ent * mask[c]).sum()))
        torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.optim.grad_clip or math.inf)
        opt.step()
        opt.zero_grad()
    comp_len = torch.tensor([sum(ep.mask) for ep in flat], dtype=torch.float32)
    generated = int(comp_len.sum())
    record: dict[str, Any] = {
        "loss": sum(losses) / sec.iterations,
        "reward/total": float(rewards.mean()), "reward/total_std": float(rewards.std()),
        **{f"reward/{k}": float(v.mean()) for k, v in table.items()},
        **{f"reward/{k}_std": float(v.std()) for k, v in table.items()},
        "zero_std_groups": zero_std_fraction(rewards, sec.group_size),
        "completion_length": float(comp_len.mean()), "truncated_fraction": float((~finished).float().mean()),
        **(tool_metrics(flat) if any(b.names for b in boxes) else {}),
        "entropy": sum(entropies) / total_tokens, **stats_sum,
        "tokens_per_s": generated / max(gen_seconds, 1e-9), "generation_seconds": gen_seconds,
        "_train_tokens": int(sum(lengths)) * sec.iterations,
        "_flops_tokens": int(sum(lengths)) * sec.iterations + generated / 3,  # a generated token ~ 1/3 of a train one
    }
    return record
