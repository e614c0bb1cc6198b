"""`fronde pretrain|sft|distill|rl RECIPE`: train from a recipe, with a live progress bar and the cost at the end."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from fronde.cli.console import CliConsole
from fronde.cli.errors import print_error, say_to
from fronde.data.errors import DataError
from fronde.data.io import writing
from fronde.train.ledger import Ledger
from fronde.train.recipe import RecipeError, load_recipe, recipe_names

console = CliConsole()


def progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.3f}"), TextColumn("val {task.fields[val]}"),
        TextColumn("{task.fields[tps]:,.0f} tok/s"), TextColumn("MFU {task.fields[mfu]}"),
        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console,
    )


class _Fields(Progress):
    """Progress whose tasks start with the fields the columns read."""

    def add_task(self, *args, **kwargs):  # type: ignore[override]
        kwargs = {"loss": float("nan"), "val": "-", "tps": 0.0, "mfu": "-"} | kwargs
        return super().add_task(*args, **kwargs)

    def update(self, task_id, **kwargs):  # type: ignore[override]
        if kwargs.get("val") is None:
            kwargs.pop("val", None)
        else:
            kwargs["val"] = f"{kwargs['val']:.3f}"
        if "mfu" in kwargs:  # None: the device's peak is not known (or the stage is mostly generation: GRPO)
            kwargs["mfu"] = "-" if kwargs["mfu"] is None else f"{kwargs['mfu']:.1%}"
        super().update(task_id, **kwargs)


def print_ledger(ledger: Ledger) -> None:
    """One column per stage plus the total: reads at 80 columns however many stages a run has."""
    t = Table(title="cost ledger", show_header=True)
    t.add_column("")
    for s in ledger.stages:
        t.add_column(s.stage, justify="right")
    totals = ledger.totals()
    if len(ledger.stages) > 1:
        t.add_column("total", justify="right")
    rows = [
        ("device", [s.device if s.n_devices == 1 else f"{s.n_devices} x {s.device}" for s in ledger.stages], ""),
        ("tokens", [f"{s.tokens:,}" for s in ledger.stages], f"{totals['tokens']:,}"),
        ("FLOPs", [f"{s.flops:.3g}" for s in ledger.stages], f"{totals['flops']:.3g}"),
        ("wall time", [f"{s.wall_seconds:,.0f} s" for s in ledger.stages], f"{totals['wall_seconds']:,.0f} s"),
        ("device-hours", [f"{s.device_hours:.4f}" for s in ledger.stages], f"{totals['device_hours']:.4f}"),
        ("MFU", [s.mfu_text for s in ledger.stages], ""),
        ("cost", [f"{s.cost:.2f}" for s in ledger.stages], f"{totals['cost']:.2f}"),
        ("energy", [f"{s.energy_kwh:.3f} kWh" for s in ledger.stages], f"{totals['energy_kwh']:.3f} kWh"),
    ]
    for name, values, total in rows:
        t.add_row(name, *values, *([total] if len(ledger.stages) > 1 else []))
    console.print(t)


def run_stage_command(stage: str, fn: Callable[..., Any], kind: type, recipe: str, sets: list[str], resume: bool,
                      price_per_hour: float | None, watts: float | None, minutes: float | None = None,
                      restart: bool = False) -> Any:
    """Load a recipe, run a training stage under a live progress bar, print the ledger and where the model is."""
    from fronde.train import distributed
    from fronde.train.agree import together
    from fronde.train.restart import check_fresh_start

    sets = list(sets)
    if minutes is not None:
        sets.append(f"schedule.max_minutes={minutes}")
    if price_per_hour is not None:
        sets.append(f"cost.price_per_hour={price_per_hour}")
    if watts is not None:
        sets.append(f"cost.watts={watts}")
    main_process = int(os.environ.get("RANK", "0")) == 0  # under torchrun only rank 0 draws and prints
    ctx = None
    try:
        rec = load_recipe(recipe, sets, kind)
        # the process group the stage joins: an earlier run refused on rank 0 stops every node's ranks, not rank 0's
        ctx = distributed.setup(rec.distributed.backend, rec.distributed.timeout_minutes)
        with together(ctx, f"checking {rec.run_dir / stage} for an earlier run"):
            if main_process:  # the other ranks neither read nor clear an earlier run when starting fresh
                check_fresh_start(rec.run_dir / stage, stage, resume, restart)
        with _Fields(*progress_bar().columns, console=console, disable=not main_process) as bar, \
                writing(rec.run_dir):  # a full disk names the run it filled
            result = fn(rec, resume=resume, say=say_to(console), progress=bar if main_process else None)
    except (RecipeError, DataError, FileNotFoundError) as e:
        print_error(console, e)
        raise typer.Exit(2) from None
    finally:
        if ctx is not None:
            distributed.teardown(ctx)
    if not main_process:
        return result
    print_ledger(result.ledger)
    if result.model_dir:
        tail = f"  (final val loss {result.val_loss:.4f})" if result.val_loss is not None else ""
        console.print(f"{stage} model: {escape(str(result.model_dir))}{tail}")
    return result


RECIPE_ARG = typer.Argument(..., help=f"recipe TOML path or shipped name ({', '.join(recipe_names())})")
SET_OPT = typer.Option([], "--set", help="override a recipe value: section.key=value (repeatable)")
RESUME_OPT = typer.Option(False, "--resume", help="continue from the newest valid checkpoint")
RESTART_OPT = typer.Option(False, "--restart", help="train the stage again from step 0 over an earlier run of it "
                           "(its checkpoints, metrics, plots and model are replaced)")
PRICE_OPT = typer.Option(None, help="price of one device-hour (cost.price_per_hour)")
WATTS_OPT = typer.Option(None, help="power per device in watts (cost.watts)")
MINUTES_OPT = typer.Option(None, "--minutes", min=0.01, help="fit the stage into this many minutes of wall clock "
                           "(schedule.max_minutes: steps planned from the measured pace, never more than max_steps)")


def pretrain_command(recipe: str = RECIPE_ARG, set_: list[str] = SET_OPT, resume: bool = RESUME_OPT,
                     restart: bool = RESTART_OPT, price_per_hour: float | None = PRICE_OPT,
                     watts: float | None = WATTS_OPT, minutes: float | None = MINUTES_OPT) -> None:
    """Pretrain a fronde model (prepares the recipe's data first when needed). Launch with torchrun for many GPUs."""
    from fronde.train.pretrain import pretrain
    from fronde.train.recipe import PretrainRecipe

    run_stage_command("pretrain", pretrain, PretrainRecipe, recipe, set_, resume, price_per_hour, watts, minutes,
                      restart)


def sft_command(recipe: str = RECIPE_ARG, set_: list[str] = SET_OPT, resume: bool = RESUME_OPT,
                restart: bool = RESTART_OPT, price_per_hour: float | None = PRICE_OPT, watts: float | None = WATTS_OPT,
                minutes: float | None = MINUTES_OPT) -> None:
    """Supervised fine-tuning on chats (JSONL and built-in tasks), loss on the assistant's tokens only."""
    from fronde.train.sft import SFTRecipe, sft

    run_stage_command("sft", sft, SFTRecipe, recipe, set_, resume, price_per_hour, watts, minutes, restart)


def distill_command(recipe: str = RECIPE_ARG, set_: list[str] = SET_OPT, resume: bool = RESUME_OPT,
                    restart: bool = RESTART_OPT, price_per_hour: float | None = PRICE_OPT,
                    watts: float | None = WATTS_OPT, minutes: float | None = MINUTES_OPT) -> None:
    """Distil a bigger teacher into the model: sequence-level (teacher answers, verified, then SFT) or logit-level."""
    from fronde.infer.rollout import EngineRollouts, rollout_dtype
    from fronde.train.distill import DistillRecipe, distill

    def run(rec: DistillRecipe, **kw: Any) -> Any:
        return distill(rec, rollouts=EngineRollouts(dtype=rollout_dtype()), **kw)

    run_stage_command("distill", run, DistillRecipe, recipe, set_, resume, price_per_hour, watts, minutes, restart)


def rl_command(recipe: str = RECIPE_ARG, set_: list[str] = SET_OPT, resume: bool = RESUME_OPT,
               restart: bool = RESTART_OPT, price_per_hour: float | None = PRICE_OPT, watts: float | None = WATTS_OPT,
               minutes: float | None = MINUTES_OPT) -> None:
    """GRPO with verifiable rewards on the recipe's tasks; rollouts on fronde's batched inference engine."""
    from fronde.infer.rollout import EngineRollouts, rollout_dtype
    from fronde.train.grpo import RLRecipe, grpo

    def run(rec: RLRecipe, **kw: Any) -> Any:
        return grpo(rec, EngineRollouts(dtype=rollout_dtype()), **kw)

    run_stage_command("rl", run, RLRecipe, recipe, set_, resume, price_per_hour, watts, minutes, restart)
