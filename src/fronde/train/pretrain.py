"""`fronde pretrain`: the training run a user leaves overnight, on the shared stage loop (fronde.train.loop).

Pretraining adds to the loop only what is its own: the data (prepared from the recipe's [data] section when
missing), a freshly initialised model of the recipe's preset, and validation batches from the val split.
Everything lands in runs/<name>/: data/, pretrain/{checkpoints,metrics.jsonl,plots,model}, ledger.json.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from fronde.data.io import sha256_file
from fronde.data.loader import ShardLoader
from fronde.data.manifest import MANIFEST
from fronde.data.pipeline import TOKENIZER_DIR, prepare
from fronde.data.shards import shard_name
from fronde.data.tokenizer import Tokenizer
from fronde.model.checkpoint import from_pretrained, load_config
from fronde.model.config import ModelConfig, load_preset
from fronde.model.model import CausalLM
from fronde.tasks import decontamination_guard
from fronde.train import distributed
from fronde.train.agree import check_shared, rank0_alone, same_everywhere, together
from fronde.train.distributed import DistContext
from fronde.train.ledger import charge_work
from fronde.train.lineage import Provenance
from fronde.train.loop import Stage, StageResult, check_context, run_stage
from fronde.train.model_card import USEFUL_EPOCHS
from fronde.train.recipe import PretrainRecipe, RecipeError

STAGE = "pretrain"
PretrainResult = StageResult


def ensure_data(recipe: PretrainRecipe, ctx: DistContext, say: Callable[[str], None], base: Path | None = None
                ) -> Path:
    """The prepared data directory; prepared from the recipe's [data] section on rank 0 when missing, with the
    tokenizer of `base` (the model a continued pretraining starts from) when there is one."""
    data_dir = recipe.data_dir
    with rank0_alone(ctx, f"preparing the data in {data_dir}"):  # the others wait, however long, and stop if it fails
        if ctx.is_main and not (data_dir / MANIFEST).is_file():
            if recipe.data.dir:
                raise RecipeError(f"data.dir={recipe.data.dir}: no {MANIFEST} there; run `fronde data prepare` "
                                  "first")
            say(f"preparing data into {data_dir} (sources: {', '.join(s.path for s in recipe.data.sources)})")
            started = time.perf_counter()
            prepare(recipe.data.model_copy(update={"tokenizer": str(base)}) if base else recipe.data, data_dir,
                    guard=decontamination_guard(recipe.data.decontaminate))
            # the run's devices wait, paid for, while rank 0 prepares: the ledger says so (no tokens went through a
            # model)
            charge_work(recipe.run_dir / "ledger.json", "data", ctx.device, ctx.world_size,
                        time.perf_counter() - started, cost=recipe.cost)
    return data_dir


def continued_from(recipe: PretrainRecipe) -> Path | None:
    """The model a continued pretraining starts from (init.model), checked before any data is prepared."""
    if not recipe.init.model:
        return None
    base = Path(recipe.init.model)
    if not (base / "config.json").is_file():
        raise RecipeError(f"init.model: {base} is not a model dir (no config.json)")
    if recipe.model.overrides:
        raise RecipeError(f"model.overrides: a run continuing init.model={base} keeps its architecture; drop the "
                          "overrides, or leave init.model empty to pretrain a new model")
    return base


def build_config(recipe: PretrainRecipe, tok: Tokenizer) -> ModelConfig:
    special = {"vocab_size": tok.vocab_size, "bos_token_id": tok.special.bos, "eos_token_id": tok.special.eos,
               "pad_token_id": tok.special.pad}
    try:
        return load_preset(recipe.model.preset, **(special | recipe.model.overrides))
    except ValueError as e:
        raise RecipeError(f"model: {e}") from None


def has_val_split(data_dir: Path) -> bool:
    return (data_dir / shard_name("val", 0)).is_file()


def data_plan(train_tokens: int, has_val: bool, recipe: PretrainRecipe) -> tuple[str, list[str]]:
    """What the run will read of its data, and warnings a user should see before paying for the run: too many
    epochs over a small corpus, or validation measured on training data."""
    steps, per_step = recipe.schedule.max_steps, recipe.batch.global_batch_tokens
    epochs = steps * per_step / max(train_tokens, 1)
    bound = "up to " if recipe.schedule.max_minutes else ""
    line = (f"data: {train_tokens:,} training tokens; {bound}{steps:,} steps x {per_step:,} tokens = "
            f"{epochs:,.2f} epochs")
    warnings = []
    if epochs > USEFUL_EPOCHS:
        fitting = int(USEFUL_EPOCHS * train_tokens / per_step)
        fix = (f"add data or lower schedule.max_steps (to about {fitting:,})" if fitting else
               "add data (one step alone reads it more than that)")
        warnings.append(f"the run reads its {train_tokens:,} training tokens {epochs:,.1f} times: past ~"
                        f"{USEFUL_EPOCHS:g} epochs repeated data adds little and the model memorises it; {fix}")
    if not has_val:
        warnings.append("the data has no val split (prepared with --val-fraction 0, or too few documents for its "
                        "fraction to hold one out): the validation loss is measured on training data and cannot show "
                        "overfitting")
    return line, warnings


def val_batches(data_dir: Path, recipe: PretrainRecipe) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The same `eval.batches` validation batches every time (fixed seed, fresh loader)."""
    split = "val" if has_val_split(data_dir) else "train"  # a corpus too small for a val split
    loader = ShardLoader(data_dir, split, recipe.batch.seq_len, recipe.batch.micro_batch_size, seed=0)
    for _ in range(recipe.eval.batches):
        yield loader.next_batch()


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja")


def tokenizer_files(directory: Path) -> dict[str, Path]:
    """The tokenizer's files in a tokenizer or model dir: what every checkpoint's model dir carries."""
    return {name: directory / name for name in TOKENIZER_FILES if (directory / name).is_file()}


def pretrain(recipe: PretrainRecipe, resume: bool = False, say: Callable[[str], None] = print,
             progress: Any = None) -> StageResult:
    ctx = distributed.setup(recipe.distributed.backend, recipe.distributed.timeout_minutes)
    try:
        say = say if ctx.is_main else (lambda _: None)
        check_shared(ctx, recipe.run_dir)
        with together(ctx, "reading the recipe's starting point"):
            base = continued_from(recipe)
            try:  # checked before preparing data, which can take minutes (the vocabulary does not change context)
                early = load_config(base) if base else load_preset(recipe.model.preset, **recipe.model.overrides)
            except ValueError:
                early = None  # build_config says what is wrong
            if early is not None:
                check_context(recipe.batch.seq_len, early, STAGE)
        if base:
            say(f"continuing the pretraining of {base} (its architecture and tokenizer; [model] is not used)")
        data_dir = ensure_data(recipe, ctx, say, base)
        charged_from = time.perf_counter()  # preparing the data has its own ledger entry
        with together(ctx, f"reading the data in {data_dir}"):
            tok = Tokenizer.load(data_dir / TOKENIZER_DIR)
            if base and tok.sha256 != Tokenizer.load(base).sha256:
                raise RecipeError(f"{data_dir} was tokenized with another tokenizer than init.model's ({base}): "
                                  f"prepare it with `fronde data prepare --tokenizer {base}`, or leave data.dir "
                                  "unset (and the run's data/ absent) for the run to prepare it so")
            config = load_config(base) if base else build_config(recipe, tok)
            micro = recipe.batch.micro_batch_size
            train_data = ShardLoader(data_dir, "train", recipe.batch.seq_len, micro * ctx.world_size,
                                     seed=recipe.run.seed)
            manifest = sha256_file(data_dir / MANIFEST)
        same_everywhere(ctx, f"the prepared data in {data_dir} (its {MANIFEST}'s sha256)", manifest[:12],
                        "give every node the same prepared data (copy the whole dir, or use a shared filesystem)")
        line, warnings = data_plan(train_data.tokens_per_epoch, has_val_split(data_dir), recipe)
        say(line)
        for w in warnings:
            say(f"warning: {w}")
        stage = Stage(
            name=STAGE, config=config,
            fresh_model=(lambda: from_pretrained(base, dtype=None)) if base else
            (lambda: CausalLM(config).init_weights(recipe.run.seed)),
            train_data=train_data,
            eval_batches=lambda: val_batches(data_dir, recipe),
            token_mean_loss=False,  # every target of a pretraining row is trained: token weights would all be 1
            files=tokenizer_files(base or data_dir / TOKENIZER_DIR),
            provenance=Provenance(parent=base, data_dirs=[data_dir]), charged_from=charged_from,
        )
        return run_stage(recipe, stage, ctx, resume, say, progress)
    finally:
        distributed.teardown(ctx)
