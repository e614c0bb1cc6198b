"""`fronde speedrun`: the whole path in one command, as nanochat's speedrun.sh but resumable.

data + tokenizer + pretrain -> SFT -> (distillation, when the recipe names a teacher) -> GRPO -> eval -> report
card. Each training stage is the very function its own command runs (`fronde pretrain|sft|distill|rl`), given the
shipped stage recipe the speedrun recipe names with the run's name, out dir and the previous stage's model set on
it, so every stage charges the one `runs/<name>/ledger.json`. A stage whose final model exists (published
atomically at its end) is skipped; an unfinished one resumes from its newest checkpoint. So the same command
continues a speedrun killed at any point.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, ValidationError, model_validator
from rich.text import Text

from fronde.data.errors import validation_message
from fronde.data.io import atomic_write_json
from fronde.train.lineage import read_lineage
from fronde.train.loop import StageResult
from fronde.train.recipe import (
    DistributedSection,
    RecipeError,
    StageRecipe,
    _Section,
    apply_overrides,
    load_recipe,
    read_recipe_toml,
    recipe_names,
)

if TYPE_CHECKING:
    from fronde.train.distributed import DistContext

SPEEDRUNS_PACKAGE = "fronde.recipes.speedrun"
EVAL_STAMP = "speedrun.json"  # in runs/<name>/eval: the eval plan that finished, so a rerun can skip it
STAGES = ("pretrain", "sft", "distill", "rl")


class RunSection(_Section):
    name: str = Field(..., description="runs/<name> holds everything the speedrun writes")
    out_dir: str = Field("runs", description="parent directory of run directories")
    minutes: float | None = Field(None, gt=0, description="fit the whole speedrun into about this many minutes: each "
                                  "training stage gets its [budget] share as schedule.max_minutes")


class BudgetSection(_Section):
    """Each training stage's share of run.minutes; what the shares leave is for data, tokenizer, teacher answers,
    compilation and the final evaluation, which are not fitted."""

    pretrain: float = Field(0.3, gt=0, lt=1)
    sft: float = Field(0.25, gt=0, lt=1)
    distill: float = Field(0.1, gt=0, lt=1)
    rl: float = Field(0.25, gt=0, lt=1)


class StageStep(_Section):
    recipe: str = Field(..., description="a shipped stage recipe name or a TOML path")
    set: list[str] = Field(default_factory=list, description="overrides, as `--set` takes them")


class EvalStep(_Section):
    tasks: list[str] = Field(default_factory=lambda: ["arithmetic:1"], description="task specs, as `fronde eval -t`")
    n: int = Field(64, gt=0, description="first N test problems of each task (64: SmolLM2's reference results)")
    max_new_tokens: int = Field(128, gt=0)
    system: str | None = None
    bpb: bool = Field(True, description="also validation bits per byte on the run's data")
    gsm_originals: str | None = Field(None, description="clean | seen, as `fronde eval --gsm-originals`")
    against: list[str] = Field(default_factory=lambda: ["smollm2-135m-instruct"],
                               description="reference results for the scoreboard: shipped names or result dirs")
    batch_size: int = Field(32, gt=0)
    tools: list[str] = Field(default_factory=list, description="also score the tasks with these tools (results "
                             "TASK+TOOL), as `fronde eval --tool`: the same model with its tools against without")
    max_turns: int = Field(4, gt=0, description="model turns per problem with tools")


class SpeedrunRecipe(_Section):
    description: str = ""
    run: RunSection
    pretrain: StageStep
    sft: StageStep | None = None
    distill: StageStep | None = None
    rl: StageStep | None = None
    eval: EvalStep = Field(default_factory=EvalStep)
    budget: BudgetSection = Field(default_factory=BudgetSection)
    distributed: DistributedSection = Field(
        default_factory=DistributedSection, description="under torchrun: the backend and timeout of the one process "
        "group every stage shares (each stage's strategy, ddp or fsdp, is its own: e.g. pretrain.set)")

    @model_validator(mode="after")
    def _shares_fit(self) -> SpeedrunRecipe:
        total = sum(getattr(self.budget, stage) for stage, _ in self.steps())
        if total >= 1:
            raise ValueError(f"the shares of the stages it runs sum to {total:g}; they must leave time for data and "
                             "evaluation (sum < 1)")
        return self

    def stage_minutes(self, stage: str) -> float | None:
        """The stage's time budget, or None without run.minutes."""
        return None if self.run.minutes is None else round(self.run.minutes * getattr(self.budget, stage), 4)

    @property
    def run_dir(self) -> Path:
        return Path(self.run.out_dir) / self.run.name

    def steps(self) -> list[tuple[str, StageStep]]:
        return [(s, getattr(self, s)) for s in STAGES if getattr(self, s) is not None]


def speedrun_names() -> list[str]:
    return recipe_names(SPEEDRUNS_PACKAGE)


def load_speedrun(spec: str, out: Path | None = None, sets: list[str] | None = None) -> SpeedrunRecipe:
    """A shipped speedrun name or a TOML path; `out` (runs/NAME) overrides run.out_dir and run.name."""
    data, where = read_recipe_toml(spec, SPEEDRUNS_PACKAGE, "speedrun recipe")
    data = apply_overrides(data, sets or [])
    if out is not None:
        data.setdefault("run", {}).update(name=Path(out).name, out_dir=str(Path(out).parent))
    try:
        return SpeedrunRecipe.model_validate(data)
    except ValidationError as e:
        raise RecipeError(f"{where}: {validation_message(e, model=SpeedrunRecipe)}") from None


def _stage_kind(stage: str) -> type[StageRecipe]:
    from fronde.train.distill import DistillRecipe
    from fronde.train.grpo import RLRecipe
    from fronde.train.recipe import PretrainRecipe
    from fronde.train.sft import SFTRecipe

    return {"pretrain": PretrainRecipe, "sft": SFTRecipe, "distill": DistillRecipe, "rl": RLRecipe}[stage]


def stage_recipe(sr: SpeedrunRecipe, stage: str, step: StageStep, parent: Path | None) -> StageRecipe:
    """The stage's own recipe with the speedrun's run name and out dir, starting from the previous stage's model."""
    sets = [*step.set, f"run.name={sr.run.name}", f"run.out_dir={sr.run.out_dir}"]
    minutes = sr.stage_minutes(stage)
    if minutes is not None:
        sets.append(f"schedule.max_minutes={minutes}")
    if parent is not None:
        sets.append(f"init.model={parent}")
    return load_recipe(step.recipe, sets, _stage_kind(stage))


def run_stage(stage: str, recipe: StageRecipe, say: Callable[[str], None], progress: Any) -> StageResult:
    """The function `fronde <stage>` runs, always with resume (a stage with no checkpoint starts from scratch)."""
    if stage == "pretrain":
        from fronde.train.pretrain import pretrain

        return pretrain(recipe, resume=True, say=say, progress=progress)  # type: ignore[arg-type]
    if stage == "sft":
        from fronde.train.sft import sft

        return sft(recipe, resume=True, say=say, progress=progress)  # type: ignore[arg-type]
    from fronde.infer.rollout import EngineRollouts, rollout_dtype

    rollouts = EngineRollouts(dtype=rollout_dtype())
    if stage == "distill":
        from fronde.train.distill import distill

        return distill(recipe, resume=True, say=say, progress=progress, rollouts=rollouts)  # type: ignore[arg-type]
    from fronde.train.grpo import grpo

    return grpo(recipe, rollouts, resume=True, say=say, progress=progress)  # type: ignore[arg-type]


def finished_model(recipe: StageRecipe, stage: str) -> Path | None:
    """The stage's published model when it was trained from this very recipe; a different recipe is an error
    (the run dir holds another experiment: use another --out, or delete the stage dir to retrain it)."""
    model_dir = recipe.run_dir / stage / "model"
    if not (model_dir / "config.json").is_file():
        return None
    record = read_lineage(model_dir) or {}
    digest = (record.get("recipe") or {}).get("digest")
    if digest is not None and digest != recipe.digest():
        raise RecipeError(f"{model_dir} was trained from another {stage} recipe (digest {digest}, this one "
                          f"{recipe.digest()}); to continue that run, give the same --set and --minutes as before; else "
                          f"use another --out, or delete {model_dir.parent} to retrain that stage")
    return model_dir


@dataclass
class StageOutcome:
    stage: str
    model_dir: Path | None
    seconds: float
    skipped: bool


def heading(stage: str, line: str) -> Text:
    """A stage's first line, its name in bold; the rest is text, never markup (paths may hold brackets)."""
    return Text.assemble((stage, "bold"), f": {line}")


def train_stages(sr: SpeedrunRecipe, say: Callable[[str | Text], None], progress: Any
                 ) -> tuple[list[StageOutcome], bool]:
    """Run (or skip) each training stage in order. Returns the outcomes and whether every stage finished."""
    outcomes: list[StageOutcome] = []
    parent: Path | None = None
    for stage, step in sr.steps():
        recipe = stage_recipe(sr, stage, step, parent)
        t0 = time.perf_counter()
        done = finished_model(recipe, stage)
        if done is not None:
            say(heading(stage, f"done already ({done}), skipped"))
            outcomes.append(StageOutcome(stage, done, 0.0, True))
            parent = done
            continue
        say(heading(stage, f"recipe {step.recipe}" + (f" from {parent}" if parent else "")))
        result = run_stage(stage, recipe, say, progress)
        outcomes.append(StageOutcome(stage, result.model_dir, time.perf_counter() - t0, False))
        if result.model_dir is None:  # stopped by a signal: the checkpoint is saved, the same command resumes
            return outcomes, False
        parent = result.model_dir
    return outcomes, True


def eval_plan_digest(sr: SpeedrunRecipe, model_dir: Path) -> str:
    from fronde.train.lineage import lineage_id

    record = read_lineage(model_dir) or {}
    payload = {"eval": sr.eval.model_dump(mode="json"), "model": record.get("id") or lineage_id(record)}
    return json.dumps(payload, sort_keys=True)


def evaluate(sr: SpeedrunRecipe, model_dir: Path, device: str, say: Callable[[str | Text], None], reporter: Any,
             ctx: DistContext | None = None) -> list[dict[str, Any]] | None:
    """`fronde eval` on the final model, into runs/<name>/eval; None when the same plan already ran on it. Under
    torchrun (`ctx`) every process evaluates its share and rank 0 writes."""
    from fronde.eval.generative import GenerationSettings
    from fronde.eval.models import load_eval_model
    from fronde.eval.run import EvalPlan, charge_evaluation, run_plan
    from fronde.eval.shards import writes
    from fronde.train.model_card import update_model_card

    stamp = sr.run_dir / "eval" / EVAL_STAMP
    digest = eval_plan_digest(sr, model_dir)
    if stamp.is_file() and json.loads(stamp.read_text(encoding="utf-8")).get("plan") == digest:
        say(heading("eval", f"done already ({stamp.parent}), skipped"))
        return None
    ev = sr.eval
    data_dir = sr.run_dir / "data"
    plan = EvalPlan(tasks=list(ev.tasks), generation=GenerationSettings(
        n=ev.n, max_new_tokens=ev.max_new_tokens, system=ev.system), gsm_originals=ev.gsm_originals,
        bpb_sources=[data_dir] if ev.bpb and (data_dir / "manifest.json").is_file() else [])
    plan.check()
    started = time.perf_counter()
    model = load_eval_model(str(model_dir), device=device, batch_size=ev.batch_size)
    say(heading("eval", f"{model.name} on {', '.join(plan.tasks + [str(p) for p in plan.bpb_sources])}"))
    results = run_plan(model, plan, sr.run_dir / "eval", reporter, ctx=ctx)
    if ev.tools:
        with_tools = EvalPlan(tasks=list(ev.tasks), generation=GenerationSettings(
            n=ev.n, max_new_tokens=ev.max_new_tokens, system=ev.system, tools=list(ev.tools),
            max_turns=ev.max_turns), gsm_originals=ev.gsm_originals)
        say(heading("eval", f"again with {', '.join(ev.tools)}"))
        results += run_plan(model, with_tools, sr.run_dir / "eval", reporter, ctx=ctx)
    if writes(ctx):
        # the evaluation's wall time on the run's devices, priced as the training before it: the report's total
        charge_evaluation(sr.run_dir, results, device, ctx.world_size if ctx else 1, time.perf_counter() - started)
        update_model_card(model_dir, results)
        atomic_write_json(stamp, {"plan": digest, "results": [r["task"] for r in results]})
    return results
