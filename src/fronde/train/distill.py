"""`fronde distill RECIPE`: teach the small model from a bigger teacher, two ways.

- `mode = "sequence"` (any teacher, any tokenizer; how DeepSeek-R1's 800k samples were made): the teacher answers
  the recipe's prompts (batched, cached on disk in runs/<name>/distill/teacher_samples.jsonl, resumable), answers
  are optionally filtered by the task's verifier (rejection sampling), and the student is fine-tuned on the kept
  answers with the SFT machinery.
- `mode = "logit"` (teacher with the student's tokenizer, e.g. a bigger fronde model): on the SFT data, the loss is
  a divergence between the teacher's and the student's next-token distributions on the assistant tokens (forward
  KL, reverse KL or generalised JSD with beta, at a temperature), optionally mixed with the usual cross-entropy.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field, field_validator
from torch import nn

from fronde.data.chat import map_message_text, render_chat
from fronde.data.chat_formats import iter_rows, row_chat
from fronde.data.columnar import datasets_files
from fronde.data.errors import DataError
from fronde.data.pii import scrub_pii
from fronde.data.tokenizer import Tokenizer
from fronde.model.checkpoint import load_config
from fronde.model.info import model_info
from fronde.tasks import get_task
from fronde.train import distributed
from fronde.train.agree import check_shared, together
from fronde.train.distributed import DistContext, gather_objects
from fronde.train.distill_loss import distill_loss, vocab_compatible
from fronde.train.lineage import file_entry, task_entry, teacher_identity
from fronde.train.loop import StageResult, StepLoss, run_stage
from fronde.train.recipe import RecipeError, _Section
from fronde.train.rollouts import Rollouts
from fronde.train.seq_distill import PromptItem, build_distill_set, export_sft
from fronde.train.sft import SFTRecipe, TaskMix, chat_stage, pii_line, pii_record, without_test_problems
from fronde.train.sft_data import Conversation, read_chat_file
from fronde.train.teacher import TeacherError, load_teacher
from fronde.train.teacher_endpoint import EndpointTeacher, is_endpoint

STAGE = "distill"


class DistillSection(_Section):
    teacher: str = Field(..., description="fronde dir, transformers dir, .gguf file, smollm2-135m-instruct, or an "
                         "OpenAI-compatible server's URL (http://host:8000/v1; sequence mode)")
    teacher_model: str | None = Field(None, description="the model a teacher URL serves (default: its only one)")
    teacher_api_key_env: str = Field("OPENAI_API_KEY", description="environment variable holding a teacher URL's "
                                     "API key (a key never goes in a recipe, which fronde.json records)")
    teacher_concurrency: int = Field(16, gt=0, description="requests in flight to a teacher URL")
    teacher_licence: str | None = Field(None, description="a teacher URL's model licence (SPDX id or name), for the "
                                        "model card: some licences restrict training on their outputs")
    mode: Literal["sequence", "logit"] = "sequence"
    # sequence-level
    prompt_tasks: list[TaskMix] = Field(default_factory=list, description="task problems the teacher answers")
    prompt_files: list[str] = Field(default_factory=list, description="chat files (as sft.chat_files; the answer may "
                                    "be left out): the teacher answers the last user turn of each")
    max_new_tokens: int = Field(256, gt=0)
    temperature: float = Field(0.0, ge=0, le=2)
    samples_per_prompt: int = Field(1, gt=0)
    batch_size: int = Field(8, gt=0)
    filter_with_verifier: bool = Field(True, description="keep only answers the task's verifier accepts")
    min_reward: float = Field(1.0, ge=0, le=1)
    # logit-level
    kind: Literal["forward_kl", "reverse_kl", "jsd"] = "forward_kl"
    beta: float = Field(0.5, ge=0, le=1, description="jsd: 0 = forward KL, 1 = reverse KL")
    loss_temperature: float = Field(1.0, gt=0)
    ce_weight: float = Field(0.0, ge=0, description="weight of the plain cross-entropy mixed into the loss")
    on_policy_fraction: float = Field(0.0, ge=0, le=1, description="GKD's lambda: share of micro-batches made of "
                                      "the student's own samples (scored by the teacher)")
    on_policy_max_new_tokens: int = Field(128, gt=0)
    on_policy_temperature: float = Field(1.0, gt=0, le=2)

    @field_validator("prompt_files")
    @classmethod
    def _datasets_folders(cls, files: list[str]) -> list[str]:
        """A datasets save_to_disk folder stands for its .arrow files, as sft.chat_files."""
        return datasets_files(files)


class DistillRecipe(SFTRecipe):
    distill: DistillSection


def teacher_prompts(recipe: DistillRecipe, say: Callable[[str], None] = print, pii: Counter[str] | None = None
                    ) -> tuple[list[PromptItem], dict[str, Any]]:
    """The prompts and, for task prompts, the task that can verify each answer. A generated task draws with
    replacement (a few percent of 2,048 arithmetic:1 draws are repeats): the teacher answers each problem once, and
    the repeats are counted and said."""
    items, verifiers = [], {}
    for mix in recipe.distill.prompt_tasks:
        task = get_task(mix.name, **mix.options)
        repeats = 0
        for ex in task.train(mix.n, recipe.run.seed):
            if ex.id in verifiers:
                repeats += 1
                continue
            items.append(PromptItem(ex.id, task.messages(ex, recipe.sft.system), {"task": mix.name}))
            verifiers[ex.id] = (task, ex)
        if repeats:
            say(f"distill: {mix.name}: {repeats} of {mix.n} draws repeat a problem already drawn; the teacher "
                f"answers each once ({mix.n - repeats} prompts)")
    prompts = [item for f in recipe.distill.prompt_files for item in read_prompts(Path(f), pii)]
    contaminated: Counter[str] = Counter()
    items.extend(without_test_problems(prompts, lambda item: item.messages, recipe.test_sets() if prompts else [],
                                       contaminated))
    if contaminated:
        say(f"distill: {contaminated.total():,} prompts dropped, sharing a 13-word passage with an evaluation's test "
            "problems (" + ", ".join(f"{k} {v:,}" for k, v in contaminated.items()) + ")")
    if not items:
        raise RecipeError("distill: sequence mode needs prompts: distill.prompt_tasks and/or distill.prompt_files")
    return items, verifiers


def read_prompts(path: Path, pii: Counter[str] | None = None) -> list[PromptItem]:
    """A chat file's rows (any format fronde.data.chat_formats reads; the answer may be left out); the teacher
    answers each conversation up to its last user turn. With `pii` (a Counter) the prompts are PII-scrubbed before
    the teacher sees them, as SFT's chat files are."""
    out = []
    for loc, row in iter_rows(path):
        try:
            msgs, _, _ = row_chat(row, answered=False)
        except ValueError as e:
            raise DataError(f"{path.parent / loc}: {e}") from None
        users = [i for i, m in enumerate(msgs) if m["role"] == "user"]
        if not users:
            raise DataError(f"{path.parent / loc}: no user message for the teacher to answer")
        if pii is not None:
            map_message_text(msgs, lambda text: scrub_pii(text, pii))
        out.append(PromptItem(loc, msgs[: users[-1] + 1]))
    return out


class OnPolicy:
    """GKD's on-policy half: the student answers the training prompts itself and the teacher grades every token."""

    def __init__(self, tok: Tokenizer, convs: list[Conversation], rollouts: Rollouts, sec: DistillSection,
                 seq_len: int, flops_per_token: float) -> None:
        """`flops_per_token`: the student's forward, what sampling one token costs (as GRPO counts it)."""
        self.tok, self.rollouts, self.sec, self.seq_len = tok, rollouts, sec, seq_len
        self.flops_per_token = flops_per_token
        self.prompts = []
        for c in convs:
            last = max(i for i, m in enumerate(c.messages) if m["role"] == "assistant")
            ids, _ = render_chat(tok, c.messages[:last], tools=c.tools, add_generation_prompt=True)
            if len(ids) < seq_len:
                self.prompts.append(ids)
        if not self.prompts:
            raise RecipeError(f"distill.on_policy_fraction: no training prompt is shorter than batch.seq_len={seq_len}")

    def batch(self, model: nn.Module, n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, int]:
        """(inputs, mask, tokens sampled): n prompts with the student's completions; mask marks positions
        predicting them. The draws come from the global torch RNG, which checkpoints carry, so a resumed run samples
        the same."""
        picks = torch.randint(len(self.prompts), (n,)).tolist()
        seed = int(torch.randint(2**31 - 1, ()))
        prompts = [self.prompts[i] for i in picks]
        groups = self.rollouts.sample(model, prompts, 1, self.sec.on_policy_max_new_tokens,
                                      self.sec.on_policy_temperature, 1.0, seed,
                                      [self.tok.special.end, self.tok.special.eos])
        seqs = [(p + g[0].ids)[: self.seq_len] for p, g in zip(prompts, groups)]
        width = max(len(s) for s in seqs)
        x = torch.full((n, width), self.tok.special.pad, dtype=torch.long)
        mask = torch.zeros(n, width, dtype=torch.bool)
        for i, (p, s) in enumerate(zip(prompts, seqs)):
            x[i, : len(s)] = torch.tensor(s)
            mask[i, len(p) - 1 : len(s) - 1] = True
        return x.to(device), mask.to(device), sum(len(g[0].ids) for g in groups)


def _unwrap(forward: nn.Module) -> nn.Module:
    """The plain model under torch.compile / DDP wrappers (generation needs its cache path)."""
    model = getattr(forward, "_orig_mod", forward)
    return getattr(model, "module", model)


def logit_loss(teacher: Any, sec: DistillSection, on_policy: OnPolicy | None = None
               ) -> Callable[[nn.Module, torch.Tensor, torch.Tensor], StepLoss]:
    def fn(forward: nn.Module, x: torch.Tensor, y: torch.Tensor) -> StepLoss:
        sampled = on_policy is not None and float(torch.rand(())) < sec.on_policy_fraction
        generated = 0
        if sampled:
            x, mask, generated = on_policy.batch(_unwrap(forward), x.shape[0], x.device)
        else:
            mask = y != -100
        out = forward(x)  # logits only
        with torch.no_grad():
            t_logits = teacher.logits(x.to(teacher.device)).to(out.logits.device)
        kd = distill_loss(out.logits, t_logits[..., : out.logits.shape[-1]], mask, sec.kind, sec.beta,
                          sec.loss_temperature)
        total, logs = kd, {"distill_loss": kd.detach().float(), "on_policy": torch.tensor(float(sampled))}
        if on_policy is not None:
            logs["sampled_tokens"] = torch.tensor(float(generated))
        if sec.ce_weight and not sampled:  # the student's own samples have no reference tokens
            ce = torch.nn.functional.cross_entropy(out.logits.flatten(0, 1).float(), y.flatten(), ignore_index=-100)
            total = total + sec.ce_weight * ce
            logs["ce_loss"] = ce.detach().float()
        logs["loss"] = total.detach().float()
        return StepLoss(total, logs, generated * on_policy.flops_per_token if generated else 0.0)

    return fn


def distill(recipe: DistillRecipe, resume: bool = False, say: Callable[[str], None] = print,
            progress: Any = None, teacher: Any = None, rollouts: Rollouts | None = None) -> StageResult:
    """`teacher`: an already loaded Teacher (loading a GGUF teacher takes half a minute); else distill.teacher.
    `rollouts`: the student's sampler for on-policy distillation (the CLI passes fronde's engine)."""
    ctx = distributed.setup(recipe.distributed.backend, recipe.distributed.timeout_minutes)
    try:
        say = say if ctx.is_main else (lambda _: None)
        sec = recipe.distill
        check_shared(ctx, recipe.run_dir)
        charged_from = time.perf_counter()  # the stage pays for its teacher: loading it, and its answers
        with together(ctx, f"loading the teacher {sec.teacher}"):
            init_dir = recipe.init_dir("pretrain")
            stage_dir = recipe.run_dir / STAGE
            if teacher is None and is_endpoint(sec.teacher):
                if sec.mode == "logit":
                    raise RecipeError(f"distill.mode=logit needs the teacher's logits; the endpoint {sec.teacher} "
                                      "gives text. Use mode='sequence' for it.")
                teacher = EndpointTeacher(sec.teacher, sec.teacher_model, sec.teacher_api_key_env,
                                          sec.teacher_concurrency)
                say(f"teacher: {teacher.model} at {sec.teacher}")
            elif teacher is None:
                say(f"loading teacher {sec.teacher}")
                teacher = load_teacher(sec.teacher, device=ctx.device)
        prompt_pii: Counter[str] | None = Counter() if recipe.sft.pii else None
        if sec.mode == "sequence":
            extra, teacher_flops = _sequence_data(recipe, teacher, stage_dir, ctx, say, prompt_pii)
            with together(ctx, "building the distillation data"):
                stage = chat_stage(STAGE, recipe, init_dir, ctx.world_size, say, extra=extra)
            stage.charged_flops = teacher_flops
        else:
            with together(ctx, "reading the student's tokenizer and the chats"):
                student_tok = Tokenizer.load(init_dir)
                if not vocab_compatible(student_tok.hf.get_vocab(), teacher.vocab()):
                    raise RecipeError(f"distill.mode=logit needs the teacher to share the student's tokenizer; "
                                      f"{sec.teacher} does not. Use mode='sequence' for this teacher.")
                if sec.on_policy_fraction > 0 and rollouts is None:
                    raise RecipeError("distill.on_policy_fraction > 0 needs a sampler for the student (fronde distill "
                                      "passes the inference engine)")
                if sec.on_policy_fraction > 0 and recipe.distributed.strategy == "fsdp" and ctx.enabled:
                    raise RecipeError("on-policy distillation samples with the whole model: use "
                                      "distributed.strategy=ddp")

                seq = recipe.batch.seq_len

                def make_loss(train: list[Conversation]) -> Any:
                    sampling = model_info(load_config(init_dir), seq_len=seq).train_flops_per_token / 3
                    on_policy = OnPolicy(student_tok, train, rollouts, sec, seq, sampling) \
                        if sec.on_policy_fraction > 0 else None
                    return logit_loss(teacher, sec, on_policy)

                stage = chat_stage(STAGE, recipe, init_dir, ctx.world_size, say, loss=make_loss)
                stage.step_flops = sec.on_policy_fraction > 0  # the student's own answers: sampled, and paid for
                # off-policy, the loss is a mean over the chats' assistant tokens, weighted as SFT's is; a micro-batch
                # of the student's own samples has other tokens, so with on-policy sampling each counts as a whole
                stage.token_mean_loss = sec.on_policy_fraction == 0
                # every step runs the teacher's forward too: counted, or a big teacher's stage shows a tiny MFU
                stage.flops_per_token = (model_info(stage.config, seq_len=seq).train_flops_per_token
                                         + teacher.forward_flops_per_token(seq))
        stage.provenance.inputs |= distill_inputs(recipe, stage_dir, prompt_pii)
        if isinstance(teacher, EndpointTeacher):  # the model it answered with, found on the server if not named
            stage.provenance.inputs["teacher"]["model"] = teacher.model
        stage.charged_from = charged_from
        return run_stage(recipe, stage, ctx, resume, say, progress)
    except (DataError, TeacherError) as e:  # a teacher that cannot load or answer: one error line, not a traceback
        raise RecipeError(str(e)) from None
    finally:
        distributed.teardown(ctx)


def distill_inputs(recipe: DistillRecipe, stage_dir: Path, prompt_pii: Counter[str] | None = None
                   ) -> dict[str, Any]:
    """What fronde.json records of a distillation beyond its SFT data: the teacher by content, its prompts (and what
    their PII scrub replaced) and, in sequence mode, the verified answers the student trained on."""
    sec = recipe.distill
    teacher = {"spec": sec.teacher, "kind": "endpoint", "model": sec.teacher_model, "licence": sec.teacher_licence} \
        if is_endpoint(sec.teacher) else teacher_identity(sec.teacher)
    out: dict[str, Any] = {"teacher": teacher, "mode": sec.mode,
                           "prompt_tasks": [task_entry(t.name, t.options, n=t.n) for t in sec.prompt_tasks],
                           "prompt_files": [file_entry(f) for f in sec.prompt_files]}
    if sec.prompt_files and sec.mode == "sequence":
        out["prompt_pii"] = pii_record(recipe.sft.pii, prompt_pii)
    if sec.mode == "sequence":
        out["teacher_samples"] = file_entry(stage_dir / "teacher_sft.jsonl")
    return out


def _sequence_data(recipe: DistillRecipe, teacher: Any, stage_dir: Path, ctx: DistContext,
                   say: Callable[[str], None], pii: Counter[str] | None = None) -> tuple[list[Conversation], float]:
    """The teacher's answers as SFT chats, and the FLOPs a local teacher spent on them now (an endpoint's are not
    this run's devices'). Under torchrun every rank answers its share of what the cache lacks
    (fronde.train.seq_distill), so N GPUs generate N times faster and none waits on a barrier for the others' share."""
    sec = recipe.distill
    with together(ctx, "reading the distillation prompts"):
        prompts, verifiers = teacher_prompts(recipe, say if ctx.is_main else lambda _: None, pii)
    if sec.prompt_files:
        say("distill prompt files: " + (f"PII-scrubbed before the teacher sees them, {pii_line(pii)}"
                                        if pii is not None else "NOT PII-scrubbed (sft.pii = false)"))
    cache, sft_file = stage_dir / "teacher_samples.jsonl", stage_dir / "teacher_sft.jsonl"

    def verify(text: str, item: PromptItem) -> float:
        task, ex = verifiers[item.id]
        return task.verify(text, ex)

    use_verifier = sec.filter_with_verifier and bool(verifiers)
    stage_dir.mkdir(parents=True, exist_ok=True)
    t0, counted = time.perf_counter(), getattr(teacher, "processed_tokens", None)
    stats = build_distill_set(teacher, prompts, cache, batch_size=sec.batch_size,
                              max_new_tokens=sec.max_new_tokens, temperature=sec.temperature,
                              samples_per_prompt=sec.samples_per_prompt,
                              verifier=(lambda t, it: verify(t, it) if it.id in verifiers else 1.0)
                              if use_verifier else None, min_reward=sec.min_reward, seed=recipe.run.seed,
                              shard=(ctx.rank, ctx.world_size), ready=distributed.barrier)
    mine = teacher.processed_tokens - counted if counted is not None else 0
    every = gather_objects((stats, mine), ctx)  # also waits for every rank's share
    generated, processed = sum(s.generated for s, _ in every), sum(n for _, n in every)
    # a token's forward at the answers' mean length (prompt and reply) as the attention context
    flops = processed * teacher.forward_flops_per_token(round(processed / generated)) if processed else 0.0
    if ctx.is_main:
        kept = export_sft(cache, sft_file)
        rows = stats.resumed_from + generated  # the ranks wrote disjoint rows: no second read of the cache
        say(f"teacher samples: {generated} generated now"
            f"{f' on {ctx.world_size} processes' if ctx.enabled else ''} in {time.perf_counter() - t0:,.0f} s "
            f"(charged to the distill stage), {stats.resumed_from} reused from the "
            f"cache, {kept} kept, {rows - kept} rejected by the verifier, "
            f"{sum(s.skipped_corrupt_lines for s, _ in every)} torn lines dropped ({cache})")
    distributed.barrier()
    convs = read_chat_file(sft_file)
    if not convs:  # on every rank: one raising alone would leave the others waiting
        raise RecipeError("distill: the verifier rejected every teacher answer; lower distill.min_reward, "
                          "set distill.filter_with_verifier=false, or give easier prompts")
    return convs, flops
