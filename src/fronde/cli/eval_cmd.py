"""`fronde eval`, `fronde scoreboard`, `fronde report`: measure any model the same way, put models side by side with
what they cost, and write a run's report card."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from fronde.cli.console import CliConsole
from fronde.cli.errors import print_error
from fronde.cli.local_model import DEVICE_HELP, pick_device
from fronde.data.errors import DataError
from fronde.data.io import writing
from fronde.data.progress import RichReporter
from fronde.eval.models import load_eval_model, run_dir_of
from fronde.eval.references import load_references
from fronde.eval.results import read_results
from fronde.eval.scoreboard import Scoreboard
from fronde.train.recipe import RecipeError

console = CliConsole()
err_console = CliConsole(stderr=True)


def _fail(e: Exception) -> typer.Exit:
    print_error(err_console, e)
    return typer.Exit(2)


def _ks(text: str) -> list[int]:
    try:
        return sorted({int(k) for k in text.split(",") if k.strip()})
    except ValueError:
        raise DataError(f"--k {text!r}: give comma-separated integers, e.g. 1,5,10") from None


def _default_out(model: str | None) -> Path:
    """runs/<name>/eval for a model inside a run dir (so `fronde report` finds it), else ./results."""
    run = run_dir_of(Path(model)) if model and Path(model).is_dir() else None
    return run / "eval" if run is not None else Path("results")


def eval_command(
    model: str = typer.Argument(None, help="fronde or transformers model dir, .gguf file, smollm2-135m-instruct, "
                                "or an OpenAI-compatible server's URL (same as --endpoint)."),
    task: list[str] = typer.Option(None, "--task", "-t", help="arithmetic[:1-5][:fra], countdown, "
                                   "gsm-symbolic:eng|fra, humaneval, or a tasks .jsonl. Repeatable."),
    n: int = typer.Option(100, "--n", "--limit", help="First N problems (questions, documents) of each evaluation; "
                          "0 = all. Under torchrun spell it --limit (torchrun reads --n as one of its options)."),
    samples: int = typer.Option(1, "--samples", help="Samples per problem (pass@k; needs --temperature > 0)."),
    k: str = typer.Option("1", "--k", help="pass@k values, comma-separated, each <= --samples."),
    shots: int = typer.Option(0, "--shots", help="Worked examples from the task's train split before each problem."),
    temperature: float = typer.Option(0.0, "--temperature", help="0 = greedy."),
    seed: int = typer.Option(0, "--seed", help="Seeds sampling and the choice of shots."),
    max_new_tokens: int = typer.Option(256, "--max-new-tokens", help="Reply length limit."),
    system: str = typer.Option(None, "--system", help="System prompt, or 'think-answer' (fronde's think/answer "
                               "instruction). Default: none."),
    out: Path = typer.Option(None, "--out", help="Results dir (default runs/<name>/eval for a run's model, else "
                             "results/); files are OUT/<model>/<task>.json."),
    endpoint: str = typer.Option(None, "--endpoint", help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1"),
    served_model: str = typer.Option(None, "--model", help="The model id the endpoint serves (with --endpoint; "
                                      "not needed when it serves one model)."),
    api_key: str = typer.Option(None, "--api-key", envvar="FRONDE_EVAL_API_KEY", help="Endpoint key "
                                "(or FRONDE_EVAL_API_KEY)."),
    mc: list[Path] = typer.Option(None, "--mc", help="Multiple-choice JSONL or Parquet {question, choices, "
                                  "answer} (MMLU's and ARC's Hub shapes too). Repeatable."),
    bpb: list[Path] = typer.Option(None, "--bpb", help="Loss and bits per byte on a prepared data dir's val split or "
                                   "a .txt/.jsonl/.parquet file. Repeatable."),
    gsm_originals: str = typer.Option(None, "--gsm-originals", help="Also score gsm-symbolic's 100 originals: "
                                      "'clean' (the model never trained on gsm-symbolic) or 'seen' (labelled "
                                      "seen-template)."),
    name: str = typer.Option(None, "--name", help="Model name in results (default from the dir or --model)."),
    batch_size: int = typer.Option(16, "--batch-size", help="Engine batch / generate batch / concurrent requests."),
    device: str | None = typer.Option(None, "--device", help=DEVICE_HELP),
    threads: int = typer.Option(None, "--threads", help="CPU threads for torch (default: torch's choice; on a "
                                "shared machine, 1 or OMP_WAIT_POLICY=PASSIVE can be several times faster)."),
    no_outputs: bool = typer.Option(False, "--no-outputs", help="Leave the replies out of the result files."),
    no_ledger: bool = typer.Option(False, "--no-ledger", help="Do not charge the evaluation of a run's model "
                                   "(runs/NAME/STAGE/model) to runs/NAME/ledger.json."),
    tool: list[str] = typer.Option(None, "--tool", help="A tool the model may call while solving tasks: calculator, "
                                   "python, search_files, or module:function / file.py:function. Repeatable; "
                                   "results are named TASK+TOOL."),
    max_turns: int = typer.Option(4, "--max-turns", help="Model turns per problem when it has tools."),
    tools_root: Path = typer.Option(None, "--root", help="The folder search_files may read."),
) -> None:
    """Evaluate one model on tasks, multiple choice and bits per byte; one result JSON per evaluation.

    Under torchrun (`torchrun --nproc_per_node 8 -m fronde.cli.main eval ...`) every process loads the model on its
    own GPU and evaluates a share of each evaluation; rank 0 prints and writes the results."""
    import torch

    from fronde.eval.generative import GenerationSettings
    from fronde.eval.run import EvalPlan, charge_evaluation, run_plan
    from fronde.train import distributed
    from fronde.train.agree import PeerError, together
    from fronde.train.model_card import update_model_card

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is ever downloaded
    device = pick_device(device)
    if threads:
        torch.set_num_threads(threads)
    started = time.perf_counter()
    try:
        ctx = distributed.setup()
    except RecipeError as e:  # e.g. more processes than GPUs on the node
        raise _fail(e) from None
    say = console if ctx.is_main else CliConsole(quiet=True)
    if ctx.enabled and device == "cuda":
        device = str(ctx.device)  # one GPU per process
    try:
        settings = GenerationSettings(n=n or None, samples=samples, ks=_ks(k), shots=shots, temperature=temperature,
                                      seed=seed, max_new_tokens=max_new_tokens, system=system,
                                      save_outputs=not no_outputs, tools=list(tool or []), max_turns=max_turns,
                                      tools_root=str(tools_root) if tools_root else None)
        plan = EvalPlan(tasks=list(task or []), generation=settings, mc_files=list(mc or []),
                        bpb_sources=list(bpb or []), gsm_originals=gsm_originals)
        if not (plan.tasks or plan.mc_files or plan.bpb_sources):
            raise DataError("nothing to evaluate: pass --task, --mc or --bpb")
        out_dir = out or _default_out(model)
        # on every rank: one node missing the model or a file stops them all with its reason (not a hang)
        with say.status("loading the model"), together(ctx, "loading the model and the evaluation files"):
            plan.check()
            m = load_eval_model(model, endpoint=endpoint, model=served_model, api_key=api_key, name=name,
                                device=device, batch_size=batch_size)
        say.print(f"[bold]{escape(m.name)}[/bold] ({m.info.kind}); results in {escape(str(out_dir))}"
                  + (f"; {ctx.world_size} processes share each evaluation" if ctx.enabled else ""))
        with RichReporter(say) as progress, writing(out_dir):  # a full disk names the results dir it filled
            results = run_plan(m, plan, out_dir, progress, ctx=ctx,
                               on_result=lambda path, r: say.print(f"  wrote {path}", markup=False, highlight=False))
    except (DataError, PeerError) as e:
        raise _fail(e) from None
    finally:
        distributed.teardown(ctx)
    if not ctx.is_main:
        return
    seconds = time.perf_counter() - started
    _summary(m.name, results)
    run = run_dir_of(Path(model)) if model and not endpoint and Path(model).is_dir() else None
    if run is not None and not no_ledger:  # what a run cost includes evaluating what it made
        try:
            console.print(charge_evaluation(run, results, device, ctx.world_size, seconds), highlight=False)
        except OSError as e:  # the results are written; a run dir this user may not write only misses the charge
            said = escape(f"could not charge {run}/ledger.json: {e}")
            err_console.print(f"[yellow]warning:[/yellow] {said}", highlight=False)
    try:
        card = update_model_card(Path(model), results) if model and Path(model).is_dir() else None
    except OSError as e:  # the results are written; a read-only model dir only misses its card update
        said = escape(f"could not update {model}'s model card: {e}")
        err_console.print(f"[yellow]warning:[/yellow] {said}", highlight=False)
    else:
        if card is not None:
            console.print(f"updated {card}", markup=False, highlight=False)


def _summary(model: str, results: list[dict[str, Any]]) -> None:
    t = Table(title=escape(model))
    for col in ("task", "n", "score", "tokens/s", "TTFT p50"):
        t.add_column(col, justify="left" if col == "task" else "right")
    for r in results:
        m = r["metrics"]
        score = ", ".join(f"{key} {value:.4g}" for key, value in m.items()  # the split details stay in the file
                          if isinstance(value, float) and not key.startswith("accuracy_"))
        speed = r.get("speed") or {}
        t.add_row(r["task"] + (" †" if (r.get("label") or "").startswith("seen-template") else ""),
                  str(r["dataset"]["examples"]), score,
                  f"{speed['tokens_per_s']:,.1f}" if speed.get("tokens_per_s") else "—",
                  f"{speed['ttft_s_p50']:.3f} s" if speed.get("ttft_s_p50") is not None else "—")
    console.print(t)


def scoreboard_command(
    results: list[Path] = typer.Argument(..., help="Result files or dirs (searched recursively)."),
    reference: Path = typer.Option(None, "--reference", help="TOML/JSON with params and training cost of models "
                                   "fronde did not train (see docs/evaluation.md)."),
    out: Path = typer.Option(Path("scoreboard"), "--out", help="Where scoreboard.md, scoreboard.json and PNGs go."),
) -> None:
    """Models side by side: accuracy per task, parameters, training cost, tokens/s, quality per dollar."""
    damaged: list[str] = []
    try:
        found = read_results(results, damaged)
        for line in damaged:
            err_console.print(f"[yellow]warning:[/yellow] skipped {escape(line)}", highlight=False)
        if not found:
            raise DataError(f"no fronde eval result files in {', '.join(map(str, results))}")
        board = Scoreboard.from_results(found, load_references(reference))
        paths = board.write(out)
    except (DataError, ValueError) as e:
        raise _fail(e) from None
    typer.echo(board.markdown())
    console.print(f"wrote {', '.join(str(p) for p in paths)}", markup=False, highlight=False)


def report_command(
    run_dir: Path = typer.Argument(..., help="A run dir, e.g. runs/tiny-cpu."),
    against: list[Path] = typer.Option(None, "--against", help="Reference models' result files or dirs for the "
                                       "scoreboard. Repeatable."),
    reference: Path = typer.Option(None, "--reference", help="TOML/JSON with params and cost of reference models."),
    data: Path = typer.Option(None, "--data", help="The run's data dir when it is not runs/<name>/data."),
) -> None:
    """Write RUN_DIR/report.md: data, model, each stage's ledger and curves, evaluations, scoreboard."""
    from fronde.eval.report import write_report

    try:
        path = write_report(run_dir, list(against or []), load_references(reference), data)
    except (DataError, ValueError) as e:
        raise _fail(e) from None
    console.print(f"wrote {path}", markup=False, highlight=False)
