"""The training loop every gradient stage shares (pretrain, SFT, logit distillation).

A stage supplies what differs: the model it starts from, its batches, its evaluation batches and (optionally) its
loss. The loop owns what must never differ: fused AdamW/Muon, the schedule, bf16 autocast, gradient accumulation,
DDP/FSDP2, the auxiliary-loss-free expert-bias update, verified atomic checkpoints that resume exactly (weights,
optimizer, RNG, data position, ledger), SIGTERM/SIGINT handling, metrics.jsonl, PNG plots, and the cost ledger.
Everything a stage writes lands in runs/<name>/<stage>/{checkpoints,metrics.jsonl,plots,model}.
"""

from __future__ import annotations

import math
import shutil
import signal
import time
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from fronde.data.errors import DataError
from fronde.model.config import ModelConfig
from fronde.model.info import model_info
from fronde.model.loss import IGNORE_INDEX
from fronde.model.model import CausalLM
from fronde.model.moe import load_imbalance, update_expert_bias
from fronde.model.precision import bf16_native
from fronde.train import distributed
from fronde.train.budget import StepPlan
from fronde.train.checkpoint import (
    CheckpointWriter,
    candidates,
    load_latest,
    restore_rng,
    rng_state,
)
from fronde.train.disk import check_room, save_steps
from fronde.train.distributed import DistContext
from fronde.train.ledger import Ledger, open_stage
from fronde.train.lineage import (
    LINEAGE,
    Lineage,
    Provenance,
    build_lineage,
    write_lineage,
)
from fronde.train.metrics import MetricsLog
from fronde.train.model_card import write_model_card
from fronde.train.nonfinite import NonFiniteSteps
from fronde.train.oom import MicroSplit
from fronde.train.optim import Optimizers
from fronde.train.plots import plot_metrics
from fronde.train.recipe import RecipeError, StageRecipe
from fronde.train.stage_lock import StageLock


class BatchSource(Protocol):
    """(inputs, targets) of micro_batch x world_size rows per call, resumable exactly."""

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass
class StepLoss:
    total: torch.Tensor  # what backward sees
    logs: dict[str, torch.Tensor]  # detached scalars, averaged over micro-steps and ranks into metrics.jsonl
    flops: float = 0.0  # this rank's work beyond the per-token count (sampling the student's own answers)


LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], StepLoss]


@dataclass
class Stage:
    name: str  # "pretrain", "sft", "distill": the subdirectory of the run and the ledger's stage
    config: ModelConfig
    fresh_model: Callable[[], CausalLM]  # what a new (not resumed) run starts from
    train_data: BatchSource
    eval_batches: Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]] | None  # the same batches every call
    files: dict[str, Path]  # copied into every checkpoint's model dir (the tokenizer)
    loss: LossFn | None = None  # default: the LM loss (+ MTP + sequence balance loss as the recipe weighs them)
    token_mean_loss: bool | None = None  # weight micro-batches by trained tokens (token_weights); None: for the
    # default loss. False where every target is trained (pretraining): the weights would all be 1
    tokens_per_step: int | None = None  # default: batch.global_batch_tokens
    flops_per_token: float | None = None  # default: the model's training FLOPs per token
    extra_state: dict[str, Any] = field(default_factory=dict)  # stored in state.json (e.g. the data's digest)
    provenance: Provenance = field(default_factory=Provenance)  # what fronde.json says the model is made from
    charged_from: float | None = None  # time.perf_counter() when the stage's work began (loading a teacher,
    # its answers, packing chats): the ledger pays from there; None: from the start of run_stage
    charged_flops: float = 0.0  # work done before the first step (a local teacher's answers), charged once
    step_flops: bool = False  # the loss reports StepLoss.flops: summed over the ranks after every step


@dataclass
class StageResult:
    run_dir: Path
    model_dir: Path | None  # final model (HF layout + tokenizer) when the run reached max_steps
    last_step: int
    val_loss: float | None
    stopped_early: bool
    ledger: Ledger


class StopFlag:
    """SIGTERM/SIGINT ask the loop to checkpoint after the current step and return (a second signal kills). So does
    SIGHUP: the SSH session a run was started from without tmux or nohup closed, which killed it on the spot."""

    SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGHUP") if hasattr(signal, name))

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopFlag:
        for sig in self.SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)
        self.requested = True

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def autocast(recipe: StageRecipe, device: torch.device):
    dtype = recipe.precision.dtype
    if dtype == "auto":
        dtype = "bf16" if bf16_native(device) else "fp32"
    if dtype == "fp32":
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def precision_note(recipe: StageRecipe, device: torch.device) -> str | None:
    if recipe.precision.dtype == "auto" and device.type == "cuda" and not bf16_native(device):
        return ("precision: fp32, this GPU has no native bf16 (precision.dtype=bf16 would be emulated, slowly); "
                "a GPU from NVIDIA's Ampere generation on trains in bf16")
    return None


def check_context(seq_len: int, config: ModelConfig, stage: str) -> None:
    """Rows longer than the model's context would train (RoPE runs on), but the checkpoint would then claim a
    shorter context than it was trained on, and every server would cut prompts to it."""
    if seq_len > config.max_position_embeddings:
        fix = (f"set model.overrides.max_position_embeddings={seq_len} or" if stage == "pretrain"
               else "the model was built for that context;")
        raise RecipeError(f"batch.seq_len={seq_len} is longer than the model's context (max_position_embeddings="
                          f"{config.max_position_embeddings}): {fix} use a batch.seq_len of at most "
                          f"{config.max_position_embeddings}")


def lm_loss(recipe: StageRecipe) -> LossFn:
    """Next-token loss over the targets that are not IGNORE_INDEX, plus the weighted MTP and balance losses."""
    mtp_w, alpha = recipe.moe.mtp_loss_weight, recipe.moe.balance_loss_alpha

    def fn(forward: nn.Module, x: torch.Tensor, y: torch.Tensor) -> StepLoss:
        out = forward(x, y, with_balance_loss=alpha > 0)
        total, logs = out.loss, {"loss": out.loss.detach().float()}
        if out.mtp_loss is not None:
            logs["mtp_loss"] = out.mtp_loss.detach().float()
            if mtp_w:
                total = total + mtp_w * out.mtp_loss
        if out.balance_loss is not None:
            logs["balance_loss"] = out.balance_loss.detach().float()
            total = total + alpha * out.balance_loss
        return StepLoss(total, logs)

    return fn


def token_weights(targets: list[torch.Tensor], ctx: DistContext) -> list[torch.Tensor]:
    """Per micro-batch, its share of the step's trained tokens (those not IGNORE_INDEX, on every rank) x the number
    of micro-batches averaged: weighted so, the per-micro-batch mean losses that gradient accumulation and DDP average
    give the mean over every trained token of the step, as one big batch would. Unweighted, a micro-batch with few
    assistant tokens (SFT) would count as much as a full one, and the result would depend on how the global batch
    is cut into micro-batches and ranks. Pretraining's rows are all trained tokens: the weights are exactly 1."""
    counts = torch.tensor([int((y != IGNORE_INDEX).sum()) for y in targets], dtype=torch.int64).to(ctx.device)
    total = distributed.all_reduce(counts.sum())  # stays on the device: no host sync in the step
    weights = (counts.double() * (len(targets) * ctx.world_size) / total.double().clamp(min=1)).float()
    return list(weights.unbind())


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], recipe: StageRecipe,
             ctx: DistContext) -> float:
    """Mean loss over the stage's fixed evaluation batches, dealt round-robin to the ranks, so the figure does not
    depend on the number of processes."""
    was_training = model.training
    model.eval()
    total, count = torch.zeros((), device=ctx.device), 0
    for i, (x, y) in enumerate(batches):
        count += 1
        if i % ctx.world_size != ctx.rank:
            continue
        with autocast(recipe, ctx.device):
            total += model(x.to(ctx.device), y.to(ctx.device)).loss.float()
    model.train(was_training)
    return (distributed.all_reduce_mean(total) * ctx.world_size / max(count, 1)).item()


def run_stage(recipe: StageRecipe, stage: Stage, ctx: DistContext, resume: bool, say: Callable[[str], None],
              progress: Any) -> StageResult:
    """Train the stage under its lock (fronde.train.stage_lock), so `fronde runs` can tell running from failed."""
    with StageLock(recipe.run_dir / stage.name, stage.name, enabled=ctx.is_main):
        return _run_stage(recipe, stage, ctx, resume, say, progress)


def _run_stage(recipe: StageRecipe, stage: Stage, ctx: DistContext, resume: bool, say: Callable[[str], None],
               progress: Any) -> StageResult:
    # the time budget counts everything from here: loading, compiling, evaluating; the ledger too, or from the start
    # of the stage's own setup (a restarted worker's reload of its checkpoint is paid for as well)
    started = time.perf_counter()
    run_dir, stage_dir = recipe.run_dir, recipe.run_dir / stage.name
    config = stage.config
    accum = recipe.batch.grad_accum(ctx.world_size)
    check_context(recipe.batch.seq_len, config, stage.name)
    ckpt_root = stage_dir / "checkpoints"

    resumed = load_latest(ckpt_root, ctx.device, warn=say, ctx=ctx) if resume else None
    if resume and resumed is None:
        say(f"no usable checkpoint under {ckpt_root}: starting from step 0")
    if resumed is not None:
        model = resumed.model.to(ctx.device)
        if model.config.model_dump(exclude={"torch_dtype"}) != config.model_dump(exclude={"torch_dtype"}):
            raise RecipeError(f"{resumed.path}: its model config differs from this recipe's; resume with the "
                              "recipe the run started with, or start a new run name")
        start_step = int(resumed.state["step"])
        say(f"resuming from {resumed.path} (step {start_step})")
    else:
        torch.manual_seed(recipe.run.seed)
        model = stage.fresh_model().to(ctx.device)
        start_step = 0
    model.train()
    wrapped = distributed.wrap(model, ctx, recipe.distributed.strategy)
    forward = torch.compile(wrapped) if recipe.precision.compile else wrapped
    loss_fn = stage.loss or lm_loss(recipe)
    token_mean = stage.loss is None if stage.token_mean_loss is None else stage.token_mean_loss
    opt = Optimizers(model, recipe.optim, ctx.device)
    # One logical stream of rows for the whole job: micro-step m of rank r takes rows [(m*W + r)*b, ...+b) of the
    # step's global batch, so a run's data (and loss curve) does not depend on how many processes share it.
    micro = recipe.batch.micro_batch_size
    loader = stage.train_data
    rows = slice(ctx.rank * micro, (ctx.rank + 1) * micro)
    ledger = Ledger.load(run_dir / "ledger.json")
    cost = open_stage(ledger, stage.name, ctx.device, ctx.world_size, recipe.cost, say)
    cost.flops += stage.charged_flops
    for note in (precision_note(recipe, ctx.device), distributed.idle_gpus_note(ctx, stage.name)):
        if note:
            say(note)
    if resumed is not None:
        if ctx.enabled and recipe.distributed.strategy == "fsdp":
            _load_fsdp_optim(model, opt, resumed.trainer["optim"])
        else:
            opt.load_state_dict(resumed.trainer["optim"])
        restore_rng(resumed.trainer["rng"], ctx.rank, ctx.world_size, recipe.run.seed, say)
        try:
            loader.load_state_dict(resumed.state["loader"])
        except DataError as e:  # e.g. batch.seq_len changed: the position in the stream means nothing now
            raise RecipeError(f"{resumed.path}: cannot continue its data stream ({e}); resume with the recipe and "
                              "data the run started with, or train anew with --restart") from None
    metrics = MetricsLog(stage_dir / "metrics.jsonl", recipe.log.tensorboard,
                         resume_from_step=start_step if resumed is not None else None) if ctx.is_main else None

    tokens_per_step = stage.tokens_per_step or recipe.batch.global_batch_tokens
    flops_per_token = stage.flops_per_token or model_info(config, seq_len=recipe.batch.seq_len).train_flops_per_token
    plan = StepPlan.create(recipe.schedule, resumed.state.get("plan") if resumed is not None else None)
    if plan.budget_s is not None:
        say(f"{stage.name}: time budget {plan.describe()}")
    if plan.finished(start_step) and start_step > 0:
        say(f"{stage.name}: the checkpoint is at step {start_step}, schedule.max_steps={recipe.schedule.max_steps}: "
            "nothing to train (raise schedule.max_steps to train on)")
    val_loss: float | None = None  # measured this step, not yet logged
    last_val: float | None = None
    done = start_step  # steps completed

    writer = CheckpointWriter(ckpt_root, recipe.checkpoint.keep_last, recipe.checkpoint.background)
    if ctx.is_main:
        writer.clear_unfinished(say)

    def checkpoint(at_step: int) -> None:
        model_state, optim_state, owned = _state_dicts(model, opt, ctx, recipe.distributed.strategy)
        rngs = distributed.gather_objects(rng_state(), ctx)
        ledger_json = ledger.to_json()
        if ctx.is_main:
            writer.save(at_step, config, model_state, next(model.parameters()).dtype,
                        {"optim": optim_state, "rng": rngs},
                        {"loader": loader.state_dict(), "ledger": ledger_json, "recipe_digest": recipe.digest(),
                         "plan": plan.state(time.perf_counter() - started), "micro_split": split.parts,
                         **stage.extra_state},
                        extra_files=stage.files, owned=owned)
            ledger.save(run_dir / "ledger.json")
        distributed.barrier()

    mark = started if stage.charged_from is None else stage.charged_from

    def charge() -> None:
        """The ledger pays for all the loop's time (steps, evaluations, logging, checkpoints), not just steps."""
        nonlocal mark
        now = time.perf_counter()
        cost.wall_seconds += now - mark
        mark = now

    split = MicroSplit(micro, distributed=ctx.enabled)
    if resumed is not None:
        split.resumed(int(resumed.state.get("micro_split", 1)), say)

    def accumulate(batches: list[tuple[torch.Tensor, ...]], split: int) -> tuple[dict[str, torch.Tensor], int]:
        """Forward and backward over the step's micro-batches, each cut into `split` equal parts: gradients
        accumulated, loss terms summed. Returns the sums and the number of forwards they add up."""
        parts = [p for x, y in batches for p in zip(x.chunk(split), y.chunk(split))]
        weights = token_weights([y for _, y in parts], ctx) if token_mean else [None] * len(parts)
        nonlocal extra_flops
        sums: dict[str, torch.Tensor] = {}
        for m, ((x, y), weight) in enumerate(zip(parts, weights)):
            x, y = x.to(ctx.device, non_blocking=True), y.to(ctx.device, non_blocking=True)
            sync = wrapped.no_sync() if ctx.enabled and m < len(parts) - 1 and hasattr(wrapped, "no_sync") \
                else nullcontext()
            with sync, autocast(recipe, ctx.device):
                step_loss = loss_fn(forward, x, y)
            total, logs = step_loss.total, step_loss.logs
            extra_flops += step_loss.flops  # done, even by a try the GPU's memory cut short
            if weight is not None:
                total, logs = total * weight, {k: v * weight for k, v in logs.items()}
            (total / len(parts)).backward()
            for k, v in logs.items():
                sums[k] = sums.get(k, 0) + v
        return sums, len(parts)

    stopping = False
    nonfinite = NonFiniteSteps(stage.name, recipe.optim.max_nonfinite_steps, recipe.optim.lr, say)
    with StopFlag() as stop, writer:
        task = progress.add_task(stage.name, total=plan.planned, completed=start_step) if progress else None
        while not plan.finished(done):
            step, t0 = done, time.perf_counter()
            opt.set_lr(plan.lr(step, recipe.optim.min_lr_ratio))
            batches = [tuple(t[rows] for t in loader.next_batch()) for _ in range(accum)]
            extra_flops = 0.0
            # once, unless the GPU runs out of memory: then the same rows in smaller forwards (fronde.train.oom)
            sums, parts = split.run(lambda: accumulate(batches, split.parts), step, recipe.batch.seq_len, ctx.device,
                                    opt.zero_grad, say)
            clip = recipe.optim.grad_clip or math.inf
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            stepped = nonfinite.ok(grad_norm, step + 1)
            if stepped:
                opt.step()
            opt.zero_grad()
            # a skipped step's routing counts are reset without moving the biases
            loads = update_expert_bias(model, recipe.moe.bias_update_gamma if stepped else 0.0)
            if ctx.device.type == "cuda":
                torch.cuda.synchronize()
            dt = time.perf_counter() - t0  # the step itself: what tokens/s and MFU report
            cost.tokens += tokens_per_step
            cost.flops += flops_per_token * tokens_per_step
            if stage.step_flops:
                cost.flops += float(distributed.all_reduce(torch.tensor([extra_flops], dtype=torch.float64,
                                                                        device=ctx.device)))
            done = step + 1
            if done == start_step + 1:  # the optimizer's state exists now: room for what the run keeps?
                room = check_room(ckpt_root, recipe.checkpoint.keep_last,
                                  save_steps(start_step, plan.planned, recipe.checkpoint), model,
                                  {"optim": opt.state_dict()}, stage.files, ctx)
                if ctx.is_main:
                    writer.fit_in_memory(room.checkpoint, say)
            if plan.open:  # rank 0's clock, broadcast only while the plan can still move
                if plan.observe(done, distributed.rank0_value(time.perf_counter() - started, ctx.device)) \
                        and progress is not None:
                    progress.update(task, total=plan.planned)
            last = plan.finished(done)
            if recipe.eval.every_steps and stage.eval_batches and (done % recipe.eval.every_steps == 0 or last):
                val_loss = evaluate(model, stage.eval_batches(), recipe, ctx)
            if done % recipe.log.every_steps == 0 or last or done == start_step + 1 or val_loss is not None:
                charge()
                names = sorted(sums)
                means = distributed.all_reduce_mean(torch.stack([sums[k] for k in names]) / parts).tolist()
                logged = dict(zip(names, means))
                record = {
                    "step": done, **logged, "lr": opt.optimizers[0].param_groups[0]["lr"],
                    "grad_norm": float(grad_norm), "tokens": done * tokens_per_step,  # trained, not charged
                    "tokens_per_s": tokens_per_step / dt,
                    "mfu": flops_per_token * tokens_per_step / dt / (cost.peak_flops_per_device * ctx.world_size)
                    if cost.peak_flops_per_device else None,
                    "seconds": cost.wall_seconds,
                }
                if plan.budget_s is not None:
                    record["planned_steps"] = plan.planned
                if nonfinite.skipped:
                    record["skipped_steps"] = nonfinite.skipped
                if loads.numel():
                    record["expert_load_imbalance"] = load_imbalance(loads)
                    record["expert_load"] = (loads / loads.sum(-1, keepdim=True).clamp_min(1)).tolist()
                if val_loss is not None:
                    record["val_loss"] = val_loss
                if metrics is not None:
                    metrics.write(record)
                if progress is not None:
                    progress.update(task, completed=done, loss=logged.get("loss", float("nan")),
                                    tps=record["tokens_per_s"], mfu=record["mfu"], val=val_loss)
                if val_loss is not None:
                    last_val, val_loss = val_loss, None
                if ctx.is_main:
                    ledger.save(run_dir / "ledger.json")
            elif progress is not None:
                progress.update(task, completed=done)
            stopping = distributed.any_rank(stop.requested, ctx.device)  # every rank stops after the same step
            if stopping or last or writer.due(done, recipe.checkpoint, ctx.device):
                charge()
                checkpoint(done)
            charge()
            if stopping:
                say(f"stopped by signal after step {done}; resume with --resume")
                break
    charge()  # the wait for the last checkpoint's write
    if ctx.is_main:
        ledger.save(run_dir / "ledger.json")
    if metrics is not None:
        metrics.close()
        plot_metrics(metrics.path, stage_dir / "plots", title=f"{recipe.run.name} {stage.name}")
    final_dir = None
    if plan.finished(done) and not stopping:
        final_dir = stage_dir / "model"
        if ctx.is_main and not (start_step == done and (final_dir / LINEAGE).is_file()):
            publish_final(candidates(ckpt_root)[0] / "model", final_dir,
                          Lineage(stage.name, recipe, done, cost, stage.provenance))
    distributed.barrier()  # no rank goes on (to a next stage reading this model) before it is published
    return StageResult(run_dir, final_dir, done, last_val, stopping, ledger)


def _state_dicts(model: CausalLM, opt: Optimizers, ctx: DistContext, strategy: str) -> tuple[dict, Any, bool]:
    """Full (unsharded) model and optimizer state for rank 0 to write, and whether they are already a private host
    copy: FSDP's cpu_offload copies every tensor off an accelerator, but on CPU it hands back plain tensors (buffers,
    optimizer steps) as the live ones, and DDP or one process always does."""
    if ctx.enabled and strategy == "fsdp":
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            get_model_state_dict,
            get_optimizer_state_dict,
        )

        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        model_state = get_model_state_dict(model, options=options)
        optim_state = [get_optimizer_state_dict(model, o, options=options) for o in opt.optimizers]
        return model_state, optim_state, ctx.device.type != "cpu"
    return model.state_dict(), opt.state_dict(), False


def _load_fsdp_optim(model: CausalLM, opt: Optimizers, states: list[dict]) -> None:
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        set_optimizer_state_dict,
    )

    for o, st in zip(opt.optimizers, states):
        set_optimizer_state_dict(model, o, st, options=StateDictOptions(full_state_dict=True))


def publish_final(src: Path, final_dir: Path, lineage: Lineage | None = None) -> None:
    """Copy a checkpoint's model dir (HF layout + tokenizer) to <stage>/model, atomically; with `lineage`, its
    fronde.json and MODEL_CARD.md are written inside before the rename, so a published model always has them."""
    tmp = final_dir.with_name(final_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        shutil.copytree(src, tmp)
        if lineage is not None:
            write_lineage(build_lineage(lineage, tmp), tmp)
            write_model_card(tmp, shown_as=final_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # a full disk: the checkpoint it copies is whole, publish again later
        raise
    if final_dir.exists():
        shutil.rmtree(final_dir)
    tmp.rename(final_dir)
