"""`fronde agent MODEL_DIR|URL "task"`: a model that calls tools until it answers, its transcript streamed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from fronde.cli.console import CliConsole
from fronde.cli.errors import print_error
from fronde.cli.local_model import DEVICE_HELP, METHOD_HELP, SPECULATIVE_HELP, Method, pick_device, speculation
from fronde.data.errors import DataError
from fronde.data.io import atomic_write_text

if TYPE_CHECKING:
    from fronde.agent import AgentEvent

console = CliConsole()
err_console = CliConsole(stderr=True)


class Transcript:
    """Prints events as they come: reasoning dimmed, calls and results marked, each step headed."""

    def __init__(self, quiet: bool) -> None:
        self.quiet, self.last = quiet, ""

    def __call__(self, ev: AgentEvent) -> None:
        if self.quiet:
            return
        if ev.kind == "content" and self.last == "reasoning":
            console.print()  # the answer on its own line after the reasoning
        self.last = ev.kind
        if ev.kind == "step":
            console.print(f"\n[bold]step {ev.text}[/bold]")
        elif ev.kind == "reasoning":
            console.print(ev.text, end="", style="dim", markup=False, highlight=False)
        elif ev.kind == "content":
            console.print(ev.text, end="", markup=False, highlight=False)
        elif ev.kind == "tool_call":
            console.print(f"\n[yellow]→ {escape(ev.name)}[/yellow]", end="")  # a name the model wrote
            console.print(f"({ev.text})", markup=False, highlight=False)
        elif ev.kind == "tool_result":
            console.print("[cyan]←[/cyan] " if ev.ok else "[red]←[/red] ", end="")
            console.print(ev.text, markup=False, highlight=False)


def agent_command(
    target: str = typer.Argument(..., help="A fronde model dir, or an OpenAI-compatible URL "
                                 "(http://127.0.0.1:8000 or .../v1: fronde serve, vLLM, Ollama...)."),
    task: str = typer.Argument(..., help="What the agent should do."),
    tool: list[str] = typer.Option(None, "--tool", help="calculator, python, search_files, or module:function / "
                                   "file.py:function. Repeatable. Default: calculator."),
    root: Path = typer.Option(None, "--root", help="The folder search_files may read (nothing outside it)."),
    max_steps: int = typer.Option(8, "--max-steps", min=1, help="Model turns before the loop gives up."),
    system: str = typer.Option(None, "--system", help="System prompt."),
    max_tokens: int = typer.Option(256, "--max-tokens", min=1, help="Per model turn."),
    temperature: float = typer.Option(0.0, "--temperature", min=0.0, max=2.0),
    top_p: float = typer.Option(1.0, "--top-p", min=0.0, max=1.0),
    seed: int = typer.Option(0, "--seed"),
    model: str = typer.Option(None, "--model", help="Model id at the endpoint (default: the first it lists)."),
    api_key: str = typer.Option(None, "--api-key", envvar="FRONDE_AGENT_API_KEY", help="Endpoint key "
                                "(or FRONDE_AGENT_API_KEY)."),
    device: str | None = typer.Option(None, "--device", help=f"For a local model dir: {DEVICE_HELP}."),
    transcript: Path = typer.Option(None, "--transcript", help="Write the whole conversation (OpenAI messages) "
                                    "as JSON here."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the final answer."),
    speculative_tokens: int = typer.Option(0, "--speculative-tokens", min=0, max=16, help=SPECULATIVE_HELP),
    speculative_method: Method = typer.Option(Method.ngram, "--speculative-method", help=METHOD_HELP),
) -> None:
    """Run a tool-calling loop: the model calls tools, reads their results, and answers."""
    from fronde.agent import open_backend, run_agent
    from fronde.tools import Toolbox, load_tools

    k, method = speculation(speculative_tokens, speculative_method.value)
    try:
        toolbox = Toolbox(load_tools(list(tool or ["calculator"]), root=root))
        with console.status("loading the model"):
            backend = open_backend(target, model=model, api_key=api_key, device=pick_device(device),
                                   max_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed,
                                   speculative_tokens=k, speculative_method=method)
        if not quiet:
            console.print(f"[bold]{escape(backend.name)}[/bold] with tools: {escape(', '.join(toolbox.names))}",
                          highlight=False)
        result = run_agent(backend, task, toolbox, max_steps=max_steps, system=system, on_event=Transcript(quiet))
    except DataError as e:
        print_error(err_console, e)
        raise typer.Exit(2) from None
    if transcript is not None:
        atomic_write_text(transcript, json.dumps(result.messages, indent=1, ensure_ascii=False) + "\n")
    summary = (f"{result.steps} step(s), {result.tool_calls} tool call(s)"
               + (f", {result.tool_errors} failed" if result.tool_errors else ""))
    if result.stop == "max_steps":
        err_console.print(f"\n[red]no answer:[/red] the step limit ({max_steps}) ended the loop; {summary}")
        raise typer.Exit(1)
    if not quiet:
        console.print(f"\n[bold]answer[/bold] ({summary}{', cut by --max-tokens' if result.stop == 'length' else ''}):")
    console.print(result.answer or "", markup=False, highlight=False)
