"""`fronde speedrun`: data -> tokenizer -> pretrain -> SFT -> (distill) -> GRPO -> eval -> report card, resumable."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from fronde.cli.console import CliConsole
from fronde.cli.errors import print_error, say_to
from fronde.cli.local_model import DEVICE_HELP, pick_device
from fronde.cli.train_cmd import _Fields, console, print_ledger, progress_bar
from fronde.data.errors import DataError
from fronde.data.io import writing
from fronde.data.progress import RichReporter
from fronde.eval.errors import EvalError
from fronde.eval.results import read_results
from fronde.train.ledger import Ledger
from fronde.train.recipe import RecipeError


def speedrun_command(
    recipe: str = typer.Option("tiny-cpu", "--recipe", "-r", help="a shipped speedrun (tiny-cpu, small-gpu, "
                               "fr-littre) or a speedrun TOML path"),
    out: Path = typer.Option(None, "--out", help="the run dir, runs/NAME (default runs/<recipe's run.name>)"),
    set_: list[str] = typer.Option([], "--set", help="override a speedrun value, e.g. eval.n=32 or "
                                   "'rl.set=[\"schedule.max_steps=50\"]' (repeatable)"),
    device: str | None = typer.Option(None, "--device", help=f"evaluation device: {DEVICE_HELP}"),
    minutes: float = typer.Option(None, "--minutes", min=0.01, help="fit the run into about this many minutes: "
                                  "each training stage gets its [budget] share, planned from its measured pace "
                                  "(never more steps than the recipe's)"),
    check: bool = typer.Option(False, "--check", help="only check that every stage can run here (recipes, data "
                               "sources, tasks, files, teacher, tools), then exit"),
) -> None:
    """The whole path in one command, on the machine you have; run it again to continue after a kill. Under
    torchrun (`torchrun --nproc_per_node 8 -m fronde.cli.main speedrun ...`) the training stages run on every
    process, every process evaluates a share of each evaluation, and rank 0 writes the results and the report."""
    from fronde.eval.report import write_report
    from fronde.preflight import preflight
    from fronde.speedrun import evaluate, load_speedrun, train_stages
    from fronde.train import distributed
    from fronde.train.agree import check_shared

    t0 = time.perf_counter()
    if device:
        pick_device(device)  # a device this machine lacks stops now, not at the evaluation after the training
    ctx = None
    try:
        sr = load_speedrun(recipe, out, list(set_) + ([f"run.minutes={minutes}"] if minutes is not None else []))
        read_results(sr.eval.against)  # a wrong reference stops now, not after an hour of training
        problems = preflight(sr)  # so does a missing wheel, file, task or tool any later stage needs
        if problems:
            print_error(console, f"speedrun {recipe} cannot run to its end here ({len(problems)} "
                        f"problem{'s' * (len(problems) > 1)}); fix, then run again:\n- " + "\n- ".join(problems))
            raise typer.Exit(2)
        if check:
            console.print(f"speedrun {recipe}: every stage can run here ({', '.join(s for s, _ in sr.steps())}, "
                          "eval)", highlight=False)
            return
        # one process group for all the stages (torch cannot create it again in a process that destroyed one)
        ctx = distributed.setup(sr.distributed.backend, sr.distributed.timeout_minutes)
        check_shared(ctx, sr.run_dir)  # every rank decides from the run dir which stages are done: one view of it
        say = say_to(console) if ctx.is_main else (lambda *_: None)
        say(Text.assemble((f"speedrun {recipe}", "bold"), f" -> {sr.run_dir}"
                          + (f": {sr.description}" if sr.description else "")
                          + (f" on {ctx.world_size} processes" if ctx.enabled else "")))
        if sr.run.minutes is not None:
            shares = ", ".join(f"{stage} {sr.stage_minutes(stage):g} min" for stage, _ in sr.steps())
            say(f"time budget {sr.run.minutes:g} min: {shares}; the rest for data and evaluation")
        with _Fields(*progress_bar().columns, console=console, disable=not ctx.is_main) as bar, \
                writing(sr.run_dir):  # a full disk names the run it filled
            outcomes, finished = train_stages(sr, say, bar if ctx.is_main else None)
        if not finished:
            say("stopped before the end; run the same command again to continue from the checkpoint")
            raise typer.Exit(130)
        final = outcomes[-1].model_dir
        assert final is not None
        with RichReporter(console if ctx.is_main else CliConsole(quiet=True)) as reporter, writing(sr.run_dir):
            t_eval = time.perf_counter()
            evaluated = evaluate(sr, final, device or str(ctx.device), say, reporter, ctx)
            eval_seconds = time.perf_counter() - t_eval
        if not ctx.is_main:  # every process evaluated its share; rank 0 reports
            return
        report = write_report(sr.run_dir, [Path(a) for a in sr.eval.against])
    except (RecipeError, DataError, EvalError, FileNotFoundError) as e:
        print_error(console, e)
        raise typer.Exit(2) from None
    finally:
        if ctx is not None:
            distributed.teardown(ctx)
    print_ledger(Ledger.load(sr.run_dir / "ledger.json"))
    t = Table(title="speedrun stages (this invocation)")
    for col in ("stage", "model", "wall time"):
        t.add_column(col)
    for o in outcomes:
        t.add_row(o.stage, escape(str(o.model_dir)), "skipped (done)" if o.skipped else f"{o.seconds:,.0f} s")
    t.add_row("eval", escape(str(sr.run_dir / "eval")),
              "skipped (done)" if evaluated is None else f"{eval_seconds:,.0f} s")
    t.add_row("total", "", f"{time.perf_counter() - t0:,.0f} s")
    console.print(t)
    console.print(f"report card: {report}", highlight=False)
    console.print(f"serve it:    fronde serve {final}", highlight=False)
