"""`fronde sft RECIPE`: supervised fine-tuning on chats, loss on the assistant's tokens only.

The model starts from a fronde (or any HF DeepseekV3) model dir, by default this run's pretrained model; the data is
OpenAI-format chat JSONL plus built-in task problems with worked think/answer solutions; everything else
(checkpoints, exact resume, ledger, metrics, plots, torchrun) is the shared stage loop's.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from fronde.data.columnar import datasets_files
from fronde.data.errors import DataError
from fronde.data.io import atomic_write_json
from fronde.data.manifest import MANIFEST
from fronde.data.pii import describe, pii_summary
from fronde.data.tokenizer import Tokenizer
from fronde.model.checkpoint import from_pretrained, load_config
from fronde.tasks import Example, Task, decontamination_guard, get_task
from fronde.tasks.parallel import map_items
from fronde.tools import Toolbox, load_tools
from fronde.tools.worked import calculator_conversation
from fronde.train import distributed
from fronde.train.agree import check_shared, together
from fronde.train.lineage import (
    Provenance,
    data_entry,
    file_entry,
    pretraining_data_dir,
    pretraining_test_sets,
    task_entry,
)
from fronde.train.loop import LossFn, Stage, StageResult, run_stage
from fronde.train.pretrain import tokenizer_files
from fronde.train.recipe import InitSection, RecipeError, StageRecipe
from fronde.train.sft_data import (
    Conversation,
    PackedRows,
    RowLoader,
    fixed_batches,
    is_val,
    pack,
    read_chat_file,
    with_text,
)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TaskMix(_Section):
    name: str = Field(..., description="a task spec: arithmetic, arithmetic:3, countdown, gsm-symbolic:eng, a .jsonl")
    n: int = Field(1000, gt=0, description="training problems with worked solutions to draw")
    options: dict[str, Any] = Field(default_factory=dict, description="the task's options, e.g. {columns = 0.25} "
                                    "for arithmetic or {exactly_once = true} for countdown")
    tools: list[str] = Field(default_factory=list, description="tools offered in the prompt, e.g. [\"calculator\"]: "
                             "the worked solutions then compute with calculator calls (fronde.tools.worked)")


class SFTData(_Section):
    chat_files: list[str] = Field(default_factory=list, description="chat files: OpenAI messages, ShareGPT, "
                                  "prompt-completion or Alpaca rows in JSONL, JSON, Parquet or Arrow, or a "
                                  "datasets save_to_disk folder (fronde.data.chat_formats)")
    pii: bool = Field(True, description="PII-scrub the chat files (and distill.prompt_files) as `fronde data prepare` "
                      "scrubs user files: e-mail, phone, IBAN, card, national ID, IP -> placeholders, counted in "
                      "fronde.json and the model card; false keeps them verbatim (the card then says so)")
    tasks: list[TaskMix] = Field(default_factory=list, description="built-in task problems rendered as chats")
    system: str | None = Field(None, description="system prompt for task conversations")
    val_fraction: float = Field(0.05, ge=0, lt=1, description="conversations held out for the validation loss")
    text_fraction: float = Field(0.0, ge=0, lt=1, description="share of training rows that are plain text from "
                                 "prepared shards, loss on every token: replay that keeps SFT from erasing what "
                                 "pretraining learnt")
    text_data: str | None = Field(None, description="prepared data dir (fronde data prepare) the replayed text comes "
                                  "from; default: the data the starting model was pretrained on, else "
                                  "runs/<name>/data")
    decontaminate: list[str] | None = Field(None, description="evaluation test sets (task specs) no chat file "
                                            "conversation (nor distill.prompt_files prompt) may share a 13-word "
                                            "passage with; default: those the starting model's pretraining data was "
                                            "decontaminated against; [] for none")

    @field_validator("chat_files")
    @classmethod
    def _datasets_folders(cls, files: list[str]) -> list[str]:
        """A datasets save_to_disk folder stands for its .arrow files, each then hashed into the lineage."""
        return datasets_files(files)


class SFTRecipe(StageRecipe):
    init: InitSection = Field(default_factory=InitSection)
    sft: SFTData = Field(default_factory=SFTData)

    def init_dir(self, previous: str = "pretrain") -> Path:
        return Path(self.init.model) if self.init.model else self.run_dir / previous / "model"

    def test_sets(self) -> list[str]:
        """The test sets user chat and prompt files are checked against (sft.decontaminate, else the lineage's)."""
        if self.sft.decontaminate is not None:
            return self.sft.decontaminate
        return pretraining_test_sets(self.init_dir())

    @property
    def text_dir(self) -> Path:
        """sft.text_data, else the data the starting model was pretrained on (its fronde.json), else the run's."""
        if self.sft.text_data:
            return Path(self.sft.text_data)
        return pretraining_data_dir(self.init_dir()) or self.run_dir / "data"


def task_conversations(mix: list[TaskMix], system: str | None, seed: int) -> list[Conversation]:
    out = []
    for entry in mix:
        task = get_task(entry.name, **entry.options)
        if entry.tools:
            out.extend(tool_conversations(task, entry, system, seed))
            continue
        # worked solutions can be slow (Countdown's is a search): spread over processes when they are
        convs = map_items(partial(get_task, entry.name, **entry.options), partial(_conversation, system=system),
                          task.train(entry.n, seed), state=task)
        solved = [c for c in convs if c is not None]
        if not solved:
            raise RecipeError(f"sft.tasks: task {entry.name!r} has no worked solutions to train on")
        out.extend(Conversation(f"task:{entry.name}", c) for c in solved)
    return out


def tool_conversations(task: Task, entry: TaskMix, system: str | None, seed: int) -> list[Conversation]:
    """A task's worked solutions computed with calculator calls, the tools' schemas in the prompt. Problems are drawn
    with a different seed from the plain mix, so a recipe with both sees twice as many distinct problems."""
    if "calculator" not in entry.tools:
        raise RecipeError(f"sft.tasks: {entry.name!r} tools={entry.tools}: worked tool-use solutions are written with "
                          "the calculator; include \"calculator\" (other tools are then only offered)")
    try:
        schemas = Toolbox(load_tools(entry.tools, root=Path.cwd())).schemas()
    except DataError as e:
        raise RecipeError(f"sft.tasks: {entry.name!r}: {e}") from None
    out = []
    for solved in map_items(partial(get_task, entry.name, **entry.options),
                            partial(_calculator_conversation, system=system), task.train(entry.n, seed + 7919),
                            state=task):
        if solved is not None:
            out.append(Conversation(f"task:{entry.name}+tools", solved, tools=schemas))
    if not out:
        raise RecipeError(f"sft.tasks: task {entry.name!r} has no worked solutions to train on")
    return out


def _conversation(task: Task, example: Example, system: str | None) -> list[dict[str, Any]] | None:
    return task.conversation(example, system)


def _calculator_conversation(task: Task, example: Example, system: str | None) -> list[dict[str, Any]] | None:
    solved = calculator_conversation(task, example, system)
    return None if solved is None else solved[0]


T = TypeVar("T")


def message_text(messages: list[dict[str, Any]]) -> str:
    return "\n".join(str(m[k]) for m in messages for k in ("content", "reasoning_content") if m.get(k))


def without_test_problems(items: list[T], messages: Callable[[T], list[dict[str, Any]]], specs: list[str],
                          dropped: Counter[str]) -> list[T]:
    """The items (conversations, prompts) that share no 13-word passage with the test sets `specs` name; the others
    are counted into `dropped` by test set (fronde.data.decontam)."""
    guard = decontamination_guard(specs)
    if guard is None or not items:
        return items
    kept = []
    for item in items:
        hit = guard.match(message_text(messages(item)))
        if hit is None:
            kept.append(item)
        else:
            dropped[hit[0]] += 1
    return kept


def sft_conversations(recipe: SFTRecipe, extra: list[Conversation] | None = None, pii: Counter[str] | None = None,
                      formats: Counter[str] | None = None, contaminated: Counter[str] | None = None
                      ) -> tuple[list[Conversation], list[Conversation]]:
    """(train, val) conversations from the recipe's chat files and tasks (plus `extra`), split by a stable hash;
    the chat files PII-scrubbed when `pii` (a Counter of replacements) is given, their rows counted by format into
    `formats`, and those sharing a passage with an evaluation's test problems dropped (counted into
    `contaminated`)."""
    convs: list[Conversation] = list(extra or [])
    chats = [c for f in recipe.sft.chat_files for c in read_chat_file(Path(f), pii, formats)]
    convs.extend(without_test_problems(chats, lambda c: c.messages, recipe.test_sets() if chats else [],
                                       contaminated if contaminated is not None else Counter()))
    convs.extend(task_conversations(recipe.sft.tasks, recipe.sft.system, recipe.run.seed))
    if not convs:
        raise RecipeError("sft: no data; give sft.chat_files and/or sft.tasks")
    frac = recipe.sft.val_fraction
    val = [c for c in convs if frac and is_val(c, frac)]
    train = [c for c in convs if not (frac and is_val(c, frac))]
    return train, val


def sft_rows(recipe: SFTRecipe, tok: Tokenizer, train: list[Conversation], val: list[Conversation]
             ) -> tuple[PackedRows, PackedRows | None]:
    seq = recipe.batch.seq_len
    if recipe.sft.text_fraction > 0 and not (recipe.text_dir / MANIFEST).is_file():
        raise RecipeError(f"sft.text_fraction = {recipe.sft.text_fraction:g} replays pretraining text from "
                          f"{recipe.text_dir}, which holds no prepared data ({MANIFEST}); set sft.text_data to the "
                          "data dir the model was pretrained on (a model saved by another tool has no fronde.json "
                          "to name it), or sft.text_fraction = 0")
    rows = with_text(pack(tok, train, seq, recipe.run.seed), tok, recipe.text_dir, recipe.sft.text_fraction,
                     recipe.run.seed)
    return rows, (pack(tok, val, seq, 0) if val else None)


def chat_stage(name: str, recipe: SFTRecipe, init_dir: Path, world_size: int, say: Callable[[str], None],
               extra: list[Conversation] | None = None,
               loss: Callable[[list[Conversation]], LossFn] | None = None) -> Stage:
    """A stage that trains on packed chats: SFT itself, and logit distillation (`loss` builds its loss from the
    training conversations, which on-policy distillation samples prompts from)."""
    if not (init_dir / "config.json").is_file():
        raise RecipeError(f"init.model: {init_dir} is not a model dir (no config.json); pretrain first or set "
                          "init.model=PATH")
    tok = Tokenizer.load(init_dir)
    config = load_config(init_dir)
    pii: Counter[str] | None = Counter() if recipe.sft.pii else None
    formats: Counter[str] = Counter()
    contaminated: Counter[str] = Counter()
    train, val = sft_conversations(recipe, extra, pii, formats, contaminated)
    if recipe.sft.chat_files:
        read = ", ".join(f"{fmt} {n:,}" for fmt, n in formats.most_common())
        say(f"{name} chat files: {formats.total():,} conversations ({read}); "
            + (f"PII-scrubbed, {pii_line(pii)}" if pii is not None else "NOT PII-scrubbed (sft.pii = false)"))
        if contaminated:
            say(f"{name} chat files: {contaminated.total():,} conversations dropped, sharing a 13-word passage with "
                "an evaluation's test problems (" + ", ".join(f"{k} {v:,}" for k, v in contaminated.items()) + ")")
    train_rows, val_rows = sft_rows(recipe, tok, train, val)
    stats = train_rows.stats
    say(f"{name} data: {stats.conversations} conversations -> {stats.rows} rows of {recipe.batch.seq_len} tokens, "
        f"{stats.trained_tokens:,} assistant tokens; {stats.truncated} truncated to a row, "
        f"{stats.without_assistant_tokens} without assistant tokens skipped; "
        + (f"{stats.text_rows} rows of replayed text from {recipe.text_dir}; " if stats.text_rows else "") +
        f"{val_rows.stats.conversations if val_rows else 0} held out for validation")
    line, warning = sft_epochs(stats.rows, recipe)
    say(f"{name} {line}")
    if warning:
        say(f"warning: {warning}")
    stage_dir = recipe.run_dir / name
    stage_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(stage_dir / "data_stats.json",
                      {"train": stats.as_dict(), "val": val_rows.stats.as_dict() if val_rows else None})
    micro = recipe.batch.micro_batch_size
    evals = fixed_batches(val_rows, micro, recipe.eval.batches) if val_rows else None
    return Stage(
        name=name, config=config,
        fresh_model=lambda: from_pretrained(init_dir, dtype=None),
        train_data=RowLoader(train_rows, micro * world_size, recipe.run.seed),
        eval_batches=(lambda: evals) if evals else None,
        files=tokenizer_files(init_dir),
        loss=loss(train) if loss else None,
        provenance=Provenance(parent=init_dir, inputs=sft_inputs(recipe, pii)),
    )


# Fine-tuning makes several passes (TRL's default is 3); well past that, a model recites its training chats.
SFT_EPOCHS_WARN = 10.0


def sft_epochs(rows: int, recipe: SFTRecipe) -> tuple[str, str | None]:
    """How many times the planned steps read the packed rows, and a warning when that is many."""
    per_step = recipe.batch.global_batch_tokens // recipe.batch.seq_len
    epochs = recipe.schedule.max_steps * per_step / max(rows, 1)
    bound = "up to " if recipe.schedule.max_minutes else ""
    line = f"plan: {bound}{recipe.schedule.max_steps:,} steps x {per_step:,} rows = {epochs:,.1f} epochs of {rows:,} rows"
    if epochs <= SFT_EPOCHS_WARN:
        return line, None
    fitting = int(SFT_EPOCHS_WARN * rows / per_step)
    return line, (f"{epochs:,.0f} passes over the same {rows:,} rows: the model will recite its training chats; "
                  f"add conversations or lower schedule.max_steps (about {max(fitting, 1):,} steps make "
                  f"{SFT_EPOCHS_WARN:g} epochs), and watch the held-out loss")


def sft_inputs(recipe: SFTRecipe, pii: Counter[str] | None = None) -> dict[str, Any]:
    """What fronde.json records of the chats a stage trains on: files by content (and what their PII scrub
    replaced), tasks by spec and count, and the replayed text's data dir by its manifest."""
    out: dict[str, Any] = {"chat_files": [file_entry(f) for f in recipe.sft.chat_files],
           "tasks": [task_entry(t.name, t.options, n=t.n, **({"tools": t.tools} if t.tools else {}))
                     for t in recipe.sft.tasks], "system": recipe.sft.system}
    if recipe.sft.chat_files:
        out["chat_pii"] = pii_record(recipe.sft.pii, pii)
        out["chat_decontaminated_against"] = recipe.test_sets()
    if recipe.sft.text_fraction > 0:
        out["text"] = {"fraction": recipe.sft.text_fraction, "data": data_entry(recipe.text_dir)}
    return out


def pii_record(scrubbed: bool, counts: Counter[str] | None) -> dict[str, Any]:
    """fronde.json's account of a scrub of user chat files: whether it ran and, when counted, what it replaced."""
    return {"scrubbed": scrubbed, **(pii_summary(counts) if scrubbed and counts is not None else {})}


def pii_line(counts: Counter[str]) -> str:
    return f"replaced: {describe(pii_summary(counts))}"


def sft(recipe: SFTRecipe, resume: bool = False, say: Callable[[str], None] = print,
        progress: Any = None) -> StageResult:
    ctx = distributed.setup(recipe.distributed.backend, recipe.distributed.timeout_minutes)
    try:
        say = say if ctx.is_main else (lambda _: None)
        check_shared(ctx, recipe.run_dir)
        charged_from = time.perf_counter()  # reading and packing the chats is paid for too
        with together(ctx, "building the SFT data"):
            try:
                stage = chat_stage("sft", recipe, recipe.init_dir(), ctx.world_size, say)
            except DataError as e:
                raise RecipeError(str(e)) from None
        stage.charged_from = charged_from
        return run_stage(recipe, stage, ctx, resume, say, progress)
    finally:
        distributed.teardown(ctx)
