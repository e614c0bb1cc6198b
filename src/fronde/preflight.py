"""Before a speedrun spends its first GPU minute: can every stage of it run on this machine?

A speedrun that pretrains for 20 minutes and then stops at SFT because the GSM-Symbolic wheel is missing, or a chat
file was misspelt, wastes a rented GPU. `preflight` looks at every stage's recipe as the speedrun will build it and
checks, in seconds, what would otherwise fail late: each recipe validates; the data sources exist (built-in corpora
installed); every task named (SFT, distillation, GRPO, evaluation, decontamination) loads; chat, prompt and task
files exist; a local teacher resolves; the tools exist. It reports every problem at once, each with what to do.
It runs nothing and touches no network (a teacher URL is only checked when distillation starts).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fronde.data import builtin
from fronde.data.errors import DataError
from fronde.data.sources import expand_source
from fronde.speedrun import SpeedrunRecipe, stage_recipe
from fronde.tasks import get_task
from fronde.train.recipe import RecipeError


def _source_problem(spec: str) -> str | None:
    """What `fronde data prepare` would say of a source it cannot read (files are listed, not hashed)."""
    try:
        builtin.resolve(spec) if builtin.is_builtin(spec) else expand_source(spec)
    except DataError as e:
        return str(e)
    return None


def _tasks(stage: str, recipe: Any) -> list[tuple[str, dict[str, Any], str]]:
    """(spec, options, where) of every task a stage recipe names."""
    out = []
    if stage == "pretrain":
        out += [(spec, {}, "data.decontaminate") for spec in recipe.data.decontaminate]
    if stage in ("sft", "distill"):
        out += [(t.name, t.options, "sft.tasks") for t in recipe.sft.tasks]
        out += [(spec, {}, "sft.decontaminate") for spec in recipe.sft.decontaminate or []]
    if stage == "distill":
        out += [(t.name, t.options, "distill.prompt_tasks") for t in recipe.distill.prompt_tasks]
    if stage == "rl":
        out += [(t.name, t.options, "rl.tasks") for t in recipe.rl.tasks]
    return out


def _files(stage: str, recipe: Any) -> list[tuple[str, str]]:
    out = []
    if stage in ("sft", "distill"):
        out += [(f, "sft.chat_files") for f in recipe.sft.chat_files]
    if stage == "distill":
        out += [(f, "distill.prompt_files") for f in recipe.distill.prompt_files]
    return out


def _tools(stage: str, recipe: Any) -> list[str]:
    if stage in ("sft", "distill"):
        return [tool for t in recipe.sft.tasks for tool in t.tools]
    if stage == "rl":
        return [tool for t in recipe.rl.tasks for tool in t.tools]
    return []


def preflight(sr: SpeedrunRecipe) -> list[str]:
    """Every problem that would stop the speedrun before its end, each naming the stage and what to do; empty when
    every stage can run."""
    from fronde.tools import load_tools
    from fronde.train.teacher import TeacherError, resolve_teacher
    from fronde.train.teacher_endpoint import is_endpoint

    problems: list[str] = []
    seen: set[str] = set()  # tasks already checked
    tools: dict[str, str] = {}
    parent: Path | None = None
    for stage, step in sr.steps():
        try:
            recipe = stage_recipe(sr, stage, step, parent)
        except RecipeError as e:
            problems.append(f"{stage}: {e}")
            parent = sr.run_dir / stage / "model"
            continue
        if stage == "pretrain":
            if recipe.data.dir:
                if not (Path(recipe.data.dir) / "manifest.json").is_file():
                    problems.append(f"pretrain: data.dir={recipe.data.dir} has no manifest.json; run `fronde data "
                                    "prepare` first")
            else:
                problems += [f"pretrain: data {p}" for s in recipe.data.sources if (p := _source_problem(s.path))]
            if recipe.init.model and not (Path(recipe.init.model) / "config.json").is_file():
                problems.append(f"pretrain: init.model={recipe.init.model} is not a model dir (no config.json)")
        for spec, options, where in _tasks(stage, recipe):
            problems += _task_problem(spec, options, f"{stage}: {where}", seen)
        problems += [f"{stage}: {where}: {f} is not a file" for f, where in _files(stage, recipe)
                     if not Path(f).is_file()]
        for tool in _tools(stage, recipe):
            tools.setdefault(tool, stage)
        if stage == "distill" and not is_endpoint(recipe.distill.teacher):
            try:
                resolve_teacher(recipe.distill.teacher)
            except TeacherError as e:
                problems.append(f"distill: {e}")
        parent = recipe.run_dir / stage / "model"
    for spec in sr.eval.tasks:
        problems += _task_problem(spec, {}, "eval: eval.tasks", seen)
    for tool in [*tools, *sr.eval.tools]:
        try:
            load_tools([tool], root=Path("."))  # the name only: search_files gets its folder when the stage runs
        except (DataError, ValueError) as e:
            problems.append(f"{tools.get(tool, 'eval')}: {e}")
    return problems


def _task_problem(spec: str, options: dict[str, Any], where: str, seen: set[str]) -> list[str]:
    """[what is wrong with the task] or [], each task checked once (loading GSM-Symbolic's templates takes ~0.3 s)."""
    key = f"{spec} {sorted(options.items())}"
    if key in seen:
        return []
    seen.add(key)
    try:
        get_task(spec, **options)
    except (DataError, ValueError) as e:
        return [f"{where}: {e}"]
    return []
