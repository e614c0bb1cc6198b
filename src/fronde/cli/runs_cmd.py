"""`fronde runs [DIR]`: every run under a runs dir with its status, latest stage, best scores and cost."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fronde.cli.console import CliConsole
from fronde.cli.errors import print_error
from fronde.data.errors import DataError
from fronde.eval.runs import RunSummary, list_runs
from fronde.train.trained_on import as_json as trained_on_json
from fronde.train.trained_on import published_models
from fronde.train.trained_on import trained_on as find_uses

STYLE = {"running": "bold green", "finished": "cyan", "stopped": "yellow", "failed": "bold red", "empty": "dim"}


def _ago(t: float | None, now: float) -> str:
    if not t:
        return "—"
    s = max(0.0, now - t)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            return f"{s / size:.0f} {unit} ago"
    return f"{s:.0f} s ago"


def _best(run: RunSummary) -> str:
    return "\n".join(f"{task} {b['metric']} {b['value']:.3g} ({b['stage']})" for task, b in run.best.items()) or "—"


def _status(run: RunSummary) -> str:
    text = f"[{STYLE.get(run.status, '')}]{run.status}[/]"
    return text + (f"\n[dim]{run.reason}[/dim]" if run.reason and run.status != "running" else "")


def runs_table(runs: list[RunSummary], title: str) -> Table:
    now = time.time()
    t = Table(title=title)
    for col, justify in (("run", "left"), ("status", "left"), ("stage", "left"), ("step", "right"),
                         ("best scores", "left"), ("tokens", "right"), ("wall time", "right"),
                         ("device-hours", "right"), ("cost", "right"), ("updated", "right")):
        t.add_column(col, justify=justify)
    for r in runs:
        stage = next((s for s in r.stages if s.name == r.stage), None)
        t.add_row(escape(r.name), _status(r), r.stage or "—",
                  f"{stage.last_step:,}" if stage and stage.last_step else "—",
                  _best(r), f"{r.tokens:,}" if r.tokens is not None else "—",
                  f"{r.wall_seconds / 60:,.1f} min" if r.wall_seconds is not None else "—",
                  f"{r.device_hours:.4f}" if r.device_hours is not None else "—",
                  (f"{r.cost:.2f}" if r.priced else "not priced") if r.cost is not None else "—",
                  _ago(r.updated, now))
    return t


def runs_command(
    runs_dir: Path = typer.Argument(Path("runs"), help="The directory holding the runs (runs/<name>/...), or one "
                                    "run dir."),
    as_json: bool = typer.Option(False, "--json", help="Print the summaries as JSON (for scripts)."),
    trained_on: list[Path] = typer.Option([], "--trained-on", help="Instead, list the published models trained on "
                                          "this file (matched by content; repeatable): for erasure requests."),
) -> None:
    """List training runs: status (running, finished, stopped, failed), latest stage, best eval scores, cost."""
    console = CliConsole()
    if not runs_dir.is_dir():
        print_error(console, f"{runs_dir}: no such runs directory")
        raise typer.Exit(2)
    if trained_on:
        _trained_on(console, runs_dir, trained_on, as_json)
        return
    runs = list_runs(runs_dir)
    if as_json:
        typer.echo(json.dumps({"runs_dir": str(runs_dir), "runs": [r.as_dict() for r in runs]}, indent=2))
        return
    if not runs:
        console.print(f"no runs under {runs_dir} (training writes them as {runs_dir}/<name>/)", highlight=False)
        return
    console.print(runs_table(runs, escape(f"runs in {runs_dir}")))
    for r in runs:
        for error in r.errors:
            console.print(f"[yellow]warning:[/yellow] {escape(str(error))}", highlight=False)


def _trained_on(console: Console, runs_dir: Path, files: list[Path], as_json: bool) -> None:
    for f in files:
        if not f.is_file():
            print_error(console, f"--trained-on {f}: no such file")
            raise typer.Exit(2)
    models = published_models(runs_dir)
    try:
        digests, uses, unknown = find_uses(files, models)
    except DataError as e:  # an archive asked about that cannot be read
        print_error(console, e)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps({"runs_dir": str(runs_dir), "models_checked": len(models),
                               **trained_on_json(digests, uses, unknown)}, indent=2))
        return
    asked = {str(f) for f in files}
    for digest, path in digests.items():
        if path in asked:
            console.print(f"{path}: sha256 {digest[:16]}…", markup=False, highlight=False)
    if n_members := sum(path not in asked for path in digests.values()):
        console.print(f"and {n_members} archive members, each matched by its own sha256", highlight=False)
    affected = sorted({u.model for u in uses})
    it = "it" if len(digests) == 1 else "them"
    if uses:
        t = Table(title=f"{len(affected)} of {len(models)} published models trained on {it}")
        for col in ("model", "through", "file (as read then)", "how"):
            t.add_column(col, overflow="fold")
        for u in uses:
            t.add_row(*(escape(str(v)) for v in (u.model, u.by, u.file, u.how)))
        console.print(t)
        console.print("Their stages' checkpoints/ hold earlier weights from the same data; an erasure removes them "
                      "too (and any copy exported from these models).", highlight=False)
    else:
        console.print(f"none of the {len(models)} published models under {runs_dir} was trained on {it}",
                      markup=False, highlight=False)
    for u in unknown:
        console.print(f"[yellow]cannot tell:[/yellow] {escape(f'{u.model}: {u.reason}')}", highlight=False)
