"""`fronde rl RECIPE`: GRPO with verifiable rewards, as DeepSeek-R1 trained reasoning (DAPO / Dr. GRPO variants).

Each step draws prompts from the recipe's tasks, samples G completions per prompt with fronde's inference engine
(batched, latent KV cache; the engine is passed in as a `Rollouts` so this layer does not import fronde.infer),
scores them with weighted reward functions (the task's verifier, the think/answer format), turns rewards into
group-relative advantages and takes `iterations` clipped policy-gradient steps on them (train/grpo_loss.py).
A task with `tools` rolls out multi-turn episodes instead (fronde.tools.episode): the environment runs the model's
tool calls between turns, their results are masked from the loss, and the reward reads the final turn.
Checkpoints, exact resume, the ledger, metrics.jsonl and plots work as in every stage; under torchrun each rank
samples its share of every step's prompts and the gradients are summed (rl_step says how it stays exact).
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
from fronde.train import distributed
from fronde.train.agree import check_shared, together
from fronde.train.budget import StepPlan
from fronde.train.checkpoint import (
    CheckpointWriter,
    candidates,
    load_latest,
    restore_rng,
    rng_state,
)
from fronde.train.disk import check_room, save_steps
from fronde.train.distributed import DistContext, gather_objects
from fronde.train.group_filter import informative_count, select_groups
from fronde.train.grpo_loss import (
    combine_rewards,
    group_advantages,
    grpo_loss,
    token_entropy,
    truncation_mask,
    truncation_penalty,
    zero_std_fraction,
)
from fronde.train.ledger import Ledger, open_stage
from fronde.train.lineage import LINEAGE, Lineage, Provenance, task_entry
from fronde.train.loop import StageResult, StopFlag, autocast, precision_note, publish_final
from fronde.train.metrics import MetricsLog
from fronde.train.nonfinite import NonFiniteSteps
from fronde.train.oom import MicroSplit
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
    dynamic_sampling: bool = Field(False, description="DAPO's: train only on groups whose rewards differ, sampling "
                                   "more prompts for them (fronde.train.group_filter)")
    sampling_rounds: int = Field(3, ge=1, description="with dynamic_sampling: at most this many rounds of "
                                 "prompts_per_step prompts a step")
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

    def draw(self, step: int, n: int, round: int = 0) -> list[Example]:
        """round > 0: further prompts for the same step (dynamic sampling), other than the first round's."""
        rng = random.Random(self.seed * 1_000_003 + step if round == 0 else f"{self.seed}:{step}:{round}")
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
                    boxes: list[Toolbox], sec: RLSection, group_size: int, temperature: float, seed: int,
                    first: int = 0) -> list[Episode]:
    """`group_size` episodes per prompt, prompt-major. Without tools, one turn each with the group's prompt prefilled
    once; with tools, multi-turn: the tools run between turns and their results are masked from the loss. first: the
    index of prompts[0] in the whole step's batch (a rank's share starts there), which seeds each row."""
    stops = stop_ids(tok)
    if not any(b.names for b in boxes):
        groups = rollouts.sample(model, prompts, group_size, sec.max_new_tokens, temperature, sec.top_p, seed, stops,
                                 first=first)
        return [Episode(p, c.ids, [1] * len(c.ids), c.ids, "answer" if c.finished else "length", 1)
                for p, g in zip(prompts, groups) for c in g]

    def generate(contexts: list[list[int]], max_new: int, turn_seed: int) -> list[tuple[list[int], bool]]:
        groups = rollouts.sample(model, contexts, 1, max_new, temperature, sec.top_p, turn_seed, stops,
                                 first=first * group_size)  # distinct rows per rank (a turn's rows are the live ones)
        return [(g[0].ids, g[0].finished) for g in groups]

    return run_episodes(generate, tok, [p for p in prompts for _ in range(group_size)],
                        [b for b in boxes for _ in range(group_size)], sec.max_turns, sec.max_new_tokens,
                        model.config.max_position_embeddings, seed)


def test_accuracy(model: CausalLM, rollouts: Rollouts, tok: Tokenizer, tasks: list[Task], boxes: list[Toolbox],
                  sec: RLSection, ctx: DistContext | None = None) -> dict[str, float]:
    """Greedy accuracy on each task's fixed test split (the first test_n problems), with the task's tools; under
    torchrun each rank answers its contiguous share (as `fronde eval` does) and the counts are summed."""
    out = {}
    for task, box in zip(tasks, boxes):
        exs = task.test(sec.test_n)
        if not exs:  # a user task without a test split: nothing to measure (said in docs/post-training.md)
            continue
        mine = [exs[i] for i in distributed.span(len(exs), ctx)]
        right = 0.0
        if mine:
            prompts = [prompt_ids(tok, task, ex, sec.system, box) for ex in mine]
            eps = sample_episodes(model, rollouts, tok, prompts, [box] * len(mine), sec, 1, 0.0, 0)
            right = sum(task.verify(final_text(tok, ep, stop_ids(tok)), ex) for ep, ex in zip(eps, mine))
        dev = ctx.device if ctx is not None else torch.device("cpu")
        out[task.name] = float(distributed.all_reduce(torch.tensor([float(right)], device=dev))) / len(exs)
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
    """GRPO under the stage's lock (fronde.train.stage_lock), as every stage trains; under torchrun, one process per
    device, each sampling its share of every step's prompts (rank 0 writes metrics, checkpoints and the model)."""
    ctx = distributed.setup(recipe.distributed.backend, recipe.distributed.timeout_minutes)
    try:
        if not ctx.is_main:
            say, progress = (lambda _: None), None
        check_shared(ctx, recipe.run_dir)
        with StageLock(recipe.run_dir / STAGE, STAGE, enabled=ctx.is_main):
            return _grpo(recipe, rollouts, resume, say, progress, torch.device(device) if device else ctx.device, ctx)
    finally:
        distributed.teardown(ctx)


def _grpo(recipe: RLRecipe, rollouts: Rollouts, resume: bool, say: Callable[[str], None], progress: Any,
          dev: torch.device, ctx: DistContext) -> StageResult:
    started = time.perf_counter()  # the time budget and the ledger count from here: loading is paid for too
    sec = recipe.rl
    run_dir, stage_dir = recipe.run_dir, recipe.run_dir / STAGE
    with together(ctx, "reading the starting model and the tasks"):
        if sec.prompts_per_step % ctx.world_size:
            raise RecipeError(f"rl.prompts_per_step={sec.prompts_per_step} does not split evenly over "
                              f"{ctx.world_size} processes: make it a multiple of the process count")
        init_dir = Path(recipe.init.model) if recipe.init.model else run_dir / "sft" / "model"
        if not (init_dir / "config.json").is_file():
            raise RecipeError(f"init.model: {init_dir} is not a model dir; run `fronde sft` first or set "
                              "init.model=PATH")
        for name in sec.rewards:
            if name not in REWARD_FUNCTIONS:
                raise RecipeError(f"rl.rewards: unknown reward function {name!r} (known: "
                                  f"{', '.join(REWARD_FUNCTIONS)})")
        boxes = toolboxes(sec)
        tok = Tokenizer.load(init_dir)
        config = load_config(init_dir)
        tasks = [get_task(t.name, **t.options) for t in sec.tasks]
        sampler = PromptSampler([t.train(sec.train_pool, recipe.run.seed) for t in tasks],
                                [t.weight for t in sec.tasks], recipe.run.seed)
    ckpt_root = stage_dir / "checkpoints"
    resumed = load_latest(ckpt_root, dev, warn=say, ctx=ctx) if resume else None
    if resumed is not None:
        model, start_step = resumed.model.to(dev), int(resumed.state["step"])
        say(f"resuming from {resumed.path} (step {start_step})")
    else:
        torch.manual_seed(recipe.run.seed)
        model, start_step = from_pretrained(init_dir).to(dev), 0
    ref = from_pretrained(init_dir).to(dev).eval().requires_grad_(False) if sec.beta > 0 else None
    split = MicroSplit(recipe.batch.micro_batch_size, distributed=ctx.enabled)
    if resumed is not None:
        split.resumed(int(resumed.state.get("micro_split", 1)), say)
    opt = Optimizers(model, recipe.optim, dev)
    if resumed is not None:
        opt.load_state_dict(resumed.trainer["optim"])
        restore_rng(resumed.trainer["rng"], ctx.rank, ctx.world_size, recipe.run.seed, say)
    ledger = Ledger.load(run_dir / "ledger.json")
    cost = open_stage(ledger, STAGE, dev, ctx.world_size, recipe.cost, say)
    for note in (precision_note(recipe, dev), distributed.idle_gpus_note(ctx, "rl")):
        if note:
            say(note)
    metrics = MetricsLog(stage_dir / "metrics.jsonl", recipe.log.tensorboard,
                         resume_from_step=start_step if resumed is not None else None) if ctx.is_main else None
    plan = StepPlan.create(recipe.schedule, resumed.state.get("plan") if resumed is not None else None)
    if plan.budget_s is not None:
        say(f"{STAGE}: time budget {plan.describe()}")
    train_flops = model_info(config, seq_len=sec.max_new_tokens).train_flops_per_token
    files = tokenizer_files(init_dir)
    mark = started

    def charge() -> None:
        nonlocal mark
        now = time.perf_counter()
        cost.wall_seconds += now - mark
        mark = now

    writer = CheckpointWriter(ckpt_root, recipe.checkpoint.keep_last, recipe.checkpoint.background)
    if ctx.is_main:
        writer.clear_unfinished(say)

    def checkpoint(at: int, extra: dict[str, Any]) -> None:
        charge()
        rngs = gather_objects(rng_state(), ctx)
        if ctx.is_main:
            writer.save(at, model.config, model.state_dict(), next(model.parameters()).dtype,
                        {"optim": opt.state_dict(), "rng": rngs},
                        {"loader": {}, "ledger": ledger.to_json(), "recipe_digest": recipe.digest(),
                         "plan": plan.state(time.perf_counter() - started), **extra}, extra_files=files)
            ledger.save(run_dir / "ledger.json")
        distributed.barrier()

    first_acc = resumed.state.get("test_accuracy_before") if resumed is not None else None
    if first_acc is None:
        first_acc = test_accuracy(model, rollouts, tok, tasks, boxes, sec, ctx)
        say("test accuracy before RL: " + ", ".join(f"{k} {v:.1%}" for k, v in first_acc.items()))
        if metrics is not None:
            metrics.write({"step": start_step, **{f"test_accuracy/{k}": v for k, v in first_acc.items()}})
    last_acc = first_acc
    done = start_step
    stopping = False
    nonfinite = NonFiniteSteps(STAGE, recipe.optim.max_nonfinite_steps, recipe.optim.lr, say)
    with StopFlag() as stop, writer:
        task_bar = progress.add_task(STAGE, total=plan.planned, completed=start_step) if progress else None
        while not plan.finished(done):
            step, t0 = done, time.perf_counter()
            opt.set_lr(plan.lr(step, recipe.optim.min_lr_ratio))
            record = rl_step(model, ref, opt, rollouts, tok, tasks, boxes, sampler, recipe, step, dev, ctx, split, say,
                             nonfinite)
            dt = time.perf_counter() - t0
            cost.tokens += record.pop("_train_tokens")
            cost.flops += record.pop("_flops_tokens") * train_flops
            done = step + 1
            if done == start_step + 1:  # the optimizer's state exists now: room for what the run keeps?
                room = check_room(ckpt_root, recipe.checkpoint.keep_last,
                                  save_steps(start_step, plan.planned, recipe.checkpoint), model,
                                  {"optim": opt.state_dict()}, files, ctx)
                if ctx.is_main:
                    writer.fit_in_memory(room.checkpoint, say)
            if plan.open and plan.observe(done, distributed.rank0_value(time.perf_counter() - started, dev)) \
                    and progress is not None:
                progress.update(task_bar, total=plan.planned)
            last = plan.finished(done)
            if (sec.test_every and done % sec.test_every == 0) or last:
                last_acc = test_accuracy(model, rollouts, tok, tasks, boxes, sec, ctx)
                record |= {f"test_accuracy/{k}": v for k, v in last_acc.items()}
            charge()
            record |= {"step": done, "lr": opt.optimizers[0].param_groups[0]["lr"], "seconds": cost.wall_seconds,
                       "step_seconds": dt}
            if plan.budget_s is not None:
                record["planned_steps"] = plan.planned
            if nonfinite.skipped:
                record["skipped_steps"] = nonfinite.skipped
            if metrics is not None:
                metrics.write(record)
            if progress is not None:
                progress.update(task_bar, completed=done, loss=record["loss"], tps=record["tokens_per_s"], mfu=None,
                                val=record["reward/total"])
            stopping = distributed.any_rank(stop.requested, dev)  # every rank stops after the same step
            if stopping or last or writer.due(done, recipe.checkpoint, dev):
                checkpoint(done, {"test_accuracy_before": first_acc, "micro_split": split.parts})
            if stopping:
                say(f"stopped by signal after step {done}; resume with --resume")
                break
    charge()  # the wait for the last checkpoint's write
    if metrics is not None:
        ledger.save(run_dir / "ledger.json")
        metrics.close()
        plot_metrics(metrics.path, stage_dir / "plots", title=f"{recipe.run.name} {STAGE}")
    say("test accuracy after RL: " + ", ".join(f"{k} {v:.1%} (before {first_acc.get(k, math.nan):.1%})"
                                               for k, v in last_acc.items()))
    final_dir = None
    if plan.finished(done) and not stopping:
        final_dir = stage_dir / "model"
        if ctx.is_main and not (start_step == done and (final_dir / LINEAGE).is_file()):
            inputs = {"tasks": [task_entry(t.name, t.options, weight=t.weight, train_pool=sec.train_pool,
                                           **({"tools": t.tools} if t.tools else {})) for t in sec.tasks],
                      "rewards": sec.rewards}
            publish_final(candidates(ckpt_root)[0] / "model", final_dir,
                          Lineage(STAGE, recipe, done, cost, Provenance(parent=init_dir, inputs=inputs)))
    distributed.barrier()  # the other ranks return once the model is published
    return StageResult(run_dir, final_dir, done, None, stopping, ledger)


def tool_metrics(columns: dict[str, torch.Tensor]) -> dict[str, float]:
    return {f"tools/{k}": float(columns[k].mean()) for k in ("calls", "errors", "turns", "max_turns_fraction")}


def collect_groups(model: CausalLM, rollouts: Rollouts, tok: Tokenizer, tasks: list[Task], boxes: list[Toolbox],
                   sampler: PromptSampler, recipe: RLRecipe, step: int, dev: torch.device,
                   ctx: DistContext | None) -> tuple[list[Episode], dict[str, torch.Tensor], dict[str, Any]]:
    """The step's groups: this rank's episodes, the per-episode columns of the whole batch (rewards per function,
    finished, lengths, tool counts; on every rank), and sampling metrics. Each rank samples its contiguous share of
    a round's prompts; with dynamic sampling, rounds go on until `prompts_per_step` groups have rewards that differ
    (or `sampling_rounds` ran), those are kept in the order sampled, and every rank takes its equal share of them
    (episodes sampled on another rank are exchanged), so the batch does not depend on the number of ranks."""
    sec = recipe.rl
    rank, world = distributed.place(ctx)
    by_name = {t.name: (t, b) for t, b in zip(tasks, boxes)}
    share_n, G = sec.prompts_per_step // world, sec.group_size
    first = rank * share_n
    rounds: list[tuple[list[Episode], dict[str, torch.Tensor]]] = []
    gen_seconds, generated = 0.0, 0.0
    for r in range(sec.sampling_rounds if sec.dynamic_sampling else 1):
        examples = sampler.draw(step, sec.prompts_per_step, r)[first:first + share_n]
        prompts = [prompt_ids(tok, by_name[ex.task][0], ex, sec.system, by_name[ex.task][1]) for ex in examples]
        t_gen = time.perf_counter()
        flat = sample_episodes(model, rollouts, tok, prompts, [by_name[ex.task][1] for ex in examples], sec, G,
                               sec.temperature, recipe.run.seed * 1_000_003 + step + r * 1_000_000_007, first=first)
        gen_seconds += time.perf_counter() - t_gen
        texts = [final_text(tok, ep, stop_ids(tok)) for ep in flat]
        table = reward_table(tasks, [ex for ex in examples for _ in range(G)], texts, list(sec.rewards))
        local = {**{f"reward/{k}": v.float() for k, v in table.items()},
                 "finished": torch.tensor([float(ep.finished) for ep in flat]),
                 "completion": torch.tensor([float(sum(ep.mask)) for ep in flat]),
                 "length": torch.tensor([float(len(ep.prompt) + len(ep.ids)) for ep in flat]),
                 "calls": torch.tensor([float(e.tool_calls) for e in flat]),
                 "errors": torch.tensor([float(e.tool_errors) for e in flat]),
                 "turns": torch.tensor([float(e.turns) for e in flat]),
                 "max_turns_fraction": torch.tensor([float(e.stop == "max_turns") for e in flat])}
        names = list(local)
        gathered = distributed.gather_rows(torch.stack([local[k] for k in names], 1), dev)
        rounds.append((flat, dict(zip(names, gathered.unbind(1)))))
        generated += float(rounds[-1][1]["completion"].sum())
        if not sec.dynamic_sampling or informative_count(_round_rewards(rounds, sec), G) >= sec.prompts_per_step:
            break
    metrics: dict[str, Any] = {"generation_seconds": gen_seconds, "generated": generated}
    if not sec.dynamic_sampling:
        return rounds[0][0], rounds[0][1], metrics
    rewards = _round_rewards(rounds, sec)
    chosen = select_groups(rewards, G, sec.prompts_per_step)
    metrics |= {"sampling_rounds": len(rounds), "sampled_zero_std_groups": zero_std_fraction(torch.cat(rewards), G)}
    if chosen == [(0, g) for g in range(sec.prompts_per_step)]:  # the first round as it is: nothing to move
        return rounds[0][0], rounds[0][1], metrics
    columns = {k: torch.cat([rounds[r][1][k][g * G:(g + 1) * G] for r, g in chosen]) for k in rounds[0][1]}
    # every rank's episodes of every round, when the kept groups are not all where they were sampled
    everyone = gather_objects([flat for flat, _ in rounds], ctx) if world > 1 else [[flat for flat, _ in rounds]]
    mine = []
    for r, g in chosen[first:first + share_n]:
        owner, at = divmod(g, share_n)
        mine += everyone[owner][r][at * G:(at + 1) * G]
    return mine, columns, metrics


def _round_rewards(rounds: list[tuple[list[Episode], dict[str, torch.Tensor]]], sec: RLSection
                   ) -> list[torch.Tensor]:
    """Each round's combined rewards, as the advantages will see them (truncation penalty included)."""
    return [combine_rewards({k: cols[f"reward/{k}"] for k in sec.rewards}, sec.rewards)
            + truncation_penalty(cols["finished"].bool(), sec.truncated, sec.truncation_penalty)
            for _, cols in rounds]


def rl_step(model: CausalLM, ref: CausalLM | None, opt: Optimizers, rollouts: Rollouts, tok: Tokenizer,
            tasks: list[Task], boxes: list[Toolbox], sampler: PromptSampler, recipe: RLRecipe, step: int,
            dev: torch.device, ctx: DistContext | None = None, split: MicroSplit | None = None,
            say: Callable[[str], None] = print, nonfinite: NonFiniteSteps | None = None) -> dict[str, Any]:
    """One GRPO step: rollouts, rewards, advantages, `iterations` optimizer steps. Returns the metrics record.

    Under torchrun each rank samples its contiguous share of the step's prompts (each row seeded by its index in the
    whole batch, so the samples do not depend on the rank count), the rewards are gathered so advantages and metrics
    are those of the whole batch, every loss normaliser (sequences, tokens, longest completion) is global, and the
    gradients are summed: a single-turn step on N ranks is the step on one, up to float summation order."""
    sec = recipe.rl
    rank, world = distributed.place(ctx)
    flat, columns, sampling = collect_groups(model, rollouts, tok, tasks, boxes, sampler, recipe, step, dev, ctx)
    gen_seconds = sampling.pop("generation_seconds")
    model.train()
    finished = torch.tensor([ep.finished for ep in flat])
    lengths = [len(ep.prompt) + len(ep.ids) for ep in flat]
    all_table = {k: columns[f"reward/{k}"] for k in sec.rewards}
    all_finished = columns["finished"].bool()
    all_rewards = combine_rewards(all_table, sec.rewards) + truncation_penalty(all_finished, sec.truncated,
                                                                               sec.truncation_penalty)
    mine = slice(rank * len(flat), (rank + 1) * len(flat))
    adv = group_advantages(all_rewards, sec.group_size, sec.scale_rewards)[mine]

    # (N, L) sequences: prompt + episode, right-padded; mask marks the tokens the model wrote (tool results: 0)
    L = max(lengths)
    seqs = torch.full((len(flat), L), tok.special.pad, dtype=torch.long)
    mask = torch.zeros(len(flat), L - 1)
    for i, ep in enumerate(flat):
        seqs[i, :lengths[i]] = torch.tensor(ep.prompt + ep.ids)
        mask[i, len(ep.prompt) - 1:lengths[i] - 1] = torch.tensor(ep.mask, dtype=torch.float32)
    mask = truncation_mask(mask, finished, sec.truncated)
    seqs, mask, adv = seqs.to(dev), mask.to(dev), adv.to(dev)
    split = split or MicroSplit(recipe.batch.micro_batch_size, distributed=world > 1)
    n, n_all = len(flat), len(all_rewards)
    total_tokens = float(distributed.all_reduce(mask.sum()).clamp(min=1))
    longest = int(columns["length"].max()) - 1

    def chunks() -> list[slice]:  # split.rows sequences a forward: fewer after an out-of-memory (fronde.train.oom)
        return [slice(i, min(i + split.rows, n)) for i in range(0, n, split.rows)]

    def scores(m: CausalLM) -> torch.Tensor:
        with torch.no_grad(), autocast(recipe, dev):
            return torch.cat([sequence_logprobs(m, seqs[c], sec.temperature)[0] for c in chunks()])

    def iteration(it: int) -> tuple[float, float, dict[str, float]]:
        """Forward and backward over every chunk: gradients accumulated; (loss, entropy sum, stats) of the pass."""
        loss_sum, entropy_sum, stats_sum = 0.0, 0.0, {}
        for c in chunks():
            with autocast(recipe, dev):
                logp, ent = sequence_logprobs(model, seqs[c], sec.temperature, want_entropy=it == 0)
            old_c = old[c] if old is not None else logp.detach()
            loss, stats = grpo_loss(logp, old_c, adv[c], mask[c], ref_logp=ref_lp[c] if ref_lp is not None else None,
                                    beta=sec.beta, eps_low=sec.eps_low, eps_high=sec.eps_high,
                                    loss_type=sec.loss_type, max_completion_length=max(sec.max_new_tokens, longest),
                                    num_tokens=total_tokens)
            share = (c.stop - c.start) / n_all
            scaled = loss if sec.loss_type == "dapo" else loss * share
            scaled.backward()
            loss_sum += float(scaled.detach())
            for k, v in stats.items():
                stats_sum[k] = stats_sum.get(k, 0.0) + v * share / sec.iterations
            if ent is not None:
                entropy_sum += float((ent * mask[c]).sum())
        return loss_sum, entropy_sum, stats_sum

    def attempt(fn: Callable[[], Any], reset: Callable[[], None] = lambda: None) -> Any:
        return split.run(fn, step, seqs.shape[1], dev, reset, say)

    old = attempt(lambda: scores(model)) if sec.iterations > 1 else None
    ref_lp = attempt(lambda: scores(ref)) if ref is not None else None
    stats_sum: dict[str, float] = {}
    loss_sum, entropy_sum = 0.0, 0.0
    params = [p for p in model.parameters() if p.requires_grad]
    for it in range(sec.iterations):
        pass_loss, pass_entropy, pass_stats = attempt(lambda: iteration(it), opt.zero_grad)
        loss_sum, entropy_sum = loss_sum + pass_loss, entropy_sum + pass_entropy
        for k, v in pass_stats.items():
            stats_sum[k] = stats_sum.get(k, 0.0) + v
        distributed.all_reduce_grads(params)
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.optim.grad_clip or math.inf)
        if nonfinite is None or nonfinite.ok(norm, step + 1):  # a NaN update would poison every weight
            opt.step()
        opt.zero_grad()
    keys = sorted(stats_sum)
    sums = distributed.all_reduce(torch.tensor([loss_sum, entropy_sum] + [stats_sum[k] for k in keys],
                                               dtype=torch.float64, device=dev)).tolist()
    gen_seconds = float(distributed.all_reduce(torch.tensor([gen_seconds], device=dev), "max"))
    comp_len, generated = columns["completion"], int(sampling.pop("generated"))
    scored = int(columns["length"].sum())  # the tokens each pass trains on
    forwards = (old is not None) + (ref_lp is not None)  # no-grad passes over them: the old policy's, the reference's
    record: dict[str, Any] = {
        "loss": sums[0] / sec.iterations,
        "reward/total": float(all_rewards.mean()), "reward/total_std": float(all_rewards.std()),
        **{f"reward/{k}": float(v.mean()) for k, v in all_table.items()},
        **{f"reward/{k}_std": float(v.std()) for k, v in all_table.items()},
        "zero_std_groups": zero_std_fraction(all_rewards, sec.group_size), **sampling,
        "completion_length": float(comp_len.mean()), "truncated_fraction": float((~all_finished).float().mean()),
        **(tool_metrics(columns) if any(b.names for b in boxes) else {}),
        "entropy": sums[1] / total_tokens, **dict(zip(keys, sums[2:])),
        "tokens_per_s": generated / max(gen_seconds, 1e-9), "generation_seconds": gen_seconds,
        "_train_tokens": scored * sec.iterations,
        # in units of a trained token's FLOPs (6N): a forward, scoring or generating a token, is a third (2N)
        "_flops_tokens": scored * (sec.iterations + forwards / 3) + generated / 3,
    }
    return record
