"""What `fronde eval` does: every requested evaluation of one model, each written as a result file as it finishes.

Task names in result files: the task spec (`arithmetic:3`, `countdown`, `gsm-symbolic:fra`, a .jsonl task's name),
`gsm-symbolic:<lang>:originals` for the 100 originals (added to every gsm-symbolic task by `gsm_originals`,
or asked for alone with that spec), `mc:<file stem>` and `bpb:<data dir or file name>`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from fronde.data.progress import NullReporter, Reporter
from fronde.eval import shards
from fronde.eval.bpb import evaluate_bpb, read_documents
from fronde.eval.errors import EvalError
from fronde.eval.generative import CHUNK, GenerationSettings, evaluate_generative
from fronde.eval.gsm_originals import originals_label, split_metrics
from fronde.eval.models import EvalModel
from fronde.eval.multiple_choice import PROMPT, evaluate_mc, read_questions
from fronde.eval.partial import PartialReplies, model_fingerprint, partial_path
from fronde.eval.results import dataset_hash, make_result, write_result
from fronde.tasks import Example, GSMSymbolicTask, Task, get_task
from fronde.train.distributed import DistContext
from fronde.train.ledger import charge_work
from fronde.train.stage_lock import training_now

ORIGINALS = ":originals"


@dataclass
class EvalPlan:
    """Everything one `fronde eval` run measures."""

    tasks: list[str] = field(default_factory=list)
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    mc_files: list[Path] = field(default_factory=list)
    bpb_sources: list[Path] = field(default_factory=list)
    gsm_originals: str | None = None  # clean | seen: also score the 100 originals (fronde.eval.gsm_originals)

    def check(self) -> list[tuple[Task, bool]]:
        """Every option and input checked (before a model is loaded); the tasks with their originals-only flag."""
        self.generation.check()
        if self.gsm_originals not in (None, "clean", "seen"):
            raise EvalError(f"--gsm-originals {self.gsm_originals!r}: choose clean (the model never trained on "
                            "gsm-symbolic) or seen")
        for path in self.mc_files:
            if not Path(path).is_file():
                raise EvalError(f"--mc {path}: no such file")
        for source in self.bpb_sources:
            if not Path(source).exists():
                raise EvalError(f"--bpb {source}: no such file or directory")
        return [_task(spec, self) for spec in self.tasks]


def run_plan(model: EvalModel, plan: EvalPlan, out_dir: Path, progress: Reporter | None = None,
             on_result: Callable[[Path, dict[str, Any]], None] | None = None,
             ctx: DistContext | None = None) -> list[dict[str, Any]]:
    """Run each evaluation, write its result file under out_dir, and return the results in order. Under torchrun
    (`ctx`) every process evaluates its share of each, all return the whole results, and rank 0 writes them."""
    progress = progress or NullReporter()
    done: list[dict[str, Any]] = []

    def keep(result: dict[str, Any]) -> None:
        if shards.shared(ctx) and result.get("speed"):  # seconds summed over the processes: tokens/s per device
            result["speed"]["processes"] = ctx.world_size
        done.append(result)
        if not shards.writes(ctx):
            return
        path = write_result(out_dir, result)
        if on_result is not None:
            on_result(path, result)

    settings = plan.generation
    tasks = plan.check()  # everything checked before the first long evaluation
    originals_note = originals_label(plan.gsm_originals, model.info) if plan.gsm_originals else None
    caches: list[PartialReplies] = []

    def cache(name: str, task: Task) -> Callable[[list[Example], list[Example]], PartialReplies]:
        """The replies a stopped run of this evaluation kept (fronde.eval.partial), removed when all are written."""
        def open_cache(examples: list[Example], shots: list[Example]) -> PartialReplies:
            rank = ctx.rank if shards.shared(ctx) else None
            key = {"model": model_fingerprint(model.info), "evaluation": name, "task": task.name,
                   "settings": settings.as_dict(), "chunk": CHUNK,
                   "share": [rank, ctx.world_size] if rank is not None and ctx is not None else None,
                   "examples": dataset_hash([ex.id, ex.prompt, ex.answer] for ex in examples),
                   "shots": dataset_hash([ex.id, ex.prompt, ex.answer] for ex in shots)}
            caches.append(PartialReplies(partial_path(out_dir, model.name, name, rank), key))
            return caches[-1]
        return open_cache

    for task, only_originals in tasks:
        if not only_originals:
            name = settings.label(task.name)
            keep(_generative(model, name, task, settings, None, progress, ctx, cache(name, task)))
        if originals_note is not None and isinstance(task, GSMSymbolicTask):
            examples = task.originals()[:settings.n] if settings.n is not None else task.originals()
            name = settings.label(task.name + ORIGINALS)
            result = _generative(model, name, task, settings, examples, progress, ctx, cache(name, task),
                                 label=originals_note)
            result["metrics"] |= split_metrics(examples, [row["rewards"] for row in result["examples"]])
            result["settings"]["declared"] = plan.gsm_originals
            result["dataset"]["split"] = "originals"
            keep(result)
    for path in plan.mc_files:
        questions = read_questions(path, settings.n)
        metrics, dataset, rows = evaluate_mc(model, questions, progress, title=f"mc:{Path(path).stem}",
                                             ctx=ctx)
        keep(make_result(model.info, f"mc:{Path(path).stem}", "multiple_choice",
                         {"n": settings.n, "file": str(path), "prompt": PROMPT}, dataset, metrics, examples=rows))
    for source in plan.bpb_sources:
        docs = read_documents(source, settings.n)
        name = f"bpb:{Path(source).resolve().name if Path(source).is_dir() else Path(source).stem}"
        metrics, dataset, rows = evaluate_bpb(model, docs, progress, title=name, ctx=ctx)
        keep(make_result(model.info, name, "bpb", {"n": settings.n, "source": str(source)}, dataset, metrics,
                         examples=rows))
    for kept in caches:  # every result is written: nothing left to resume
        kept.remove()
    return done


def _task(spec: str, plan: EvalPlan) -> tuple[Task, bool]:
    """(task, originals only) for a spec; `gsm-symbolic:<lang>:originals` asks for the 100 originals alone."""
    if not spec.endswith(ORIGINALS):
        return get_task(spec), False
    task = get_task(spec[:-len(ORIGINALS)])
    if not isinstance(task, GSMSymbolicTask):
        raise EvalError(f"--task {spec}: only gsm-symbolic tasks have originals")
    if not plan.gsm_originals:
        raise EvalError(f"--task {spec}: also pass --gsm-originals clean (the model never trained on "
                        "gsm-symbolic) or seen (the result is labelled seen-template)")
    return task, True


def _generative(model: EvalModel, name: str, task: Task, settings: GenerationSettings,
                examples: list[Example] | None, progress: Reporter, ctx: DistContext | None,
                open_cache: Callable[[list[Example], list[Example]], PartialReplies], label: str | None = None,
                ) -> dict[str, Any]:
    score = evaluate_generative(model, task, settings, examples, progress, title=name, ctx=ctx,
                                open_cache=open_cache)
    return make_result(model.info, name, "generative", settings.as_dict() | {"task": task.name}, score.dataset,
                       score.metrics, label=label, speed=score.speed.summary() if score.speed else None,
                       examples=score.examples)


def charge_evaluation(run_dir: Path, results: list[dict[str, Any]], device: str, n_devices: int,
                      seconds: float) -> str:
    """Charge an evaluation of a run's model to the run's ledger (its wall time on the run's devices, its generated
    tokens; no FLOPs claimed), and say so. Not while a stage of the run is training: that process holds the ledger
    in memory and would write over the entry at its next checkpoint."""
    ledger = run_dir / "ledger.json"
    busy = training_now(run_dir)
    if busy is not None:
        return f"not charged to {ledger}: its {busy} stage is training and owns the ledger until it ends"
    generated = sum((r.get("speed") or {}).get("generated_tokens", 0) for r in results)
    entry = charge_work(ledger, "eval", torch.device(device), n_devices, seconds, generated)
    return (f"charged {seconds:,.0f} s ({generated:,} generated tokens) to {ledger}: its eval entry is now "
            f"{entry.wall_seconds:,.0f} s")
