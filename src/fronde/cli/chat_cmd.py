"""`fronde chat MODEL_DIR`: a terminal conversation through the chat template, tokens streamed as they come."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from fronde.cli.console import CliConsole
from fronde.cli.local_model import (DEVICE_HELP, METHOD_HELP, SPECULATIVE_HELP, Method, load_local,
                                    local_engine, speculation, stream_tokens)
from fronde.data.chat import render_chat

console = CliConsole()


def chat_command(
    model_dir: Path = typer.Argument(..., help="a fronde / HF DeepseekV3 model directory with its tokenizer"),
    system: str | None = typer.Option(None, help="system prompt"),
    max_tokens: int = typer.Option(256, min=1),
    temperature: float = typer.Option(0.7, min=0.0, max=2.0),
    top_p: float = typer.Option(0.95, min=0.0, max=1.0),
    seed: int | None = typer.Option(None),
    speculative_tokens: int = typer.Option(0, min=0, max=16, help=SPECULATIVE_HELP),
    speculative_method: Method = typer.Option(Method.ngram, help=METHOD_HELP),
    device: str | None = typer.Option(None, help=DEVICE_HELP),
) -> None:
    """Chat with a model in the terminal. Empty line or Ctrl-D ends; /reset starts over."""
    from fronde.infer.sampling import SamplingParams
    from fronde.serve.tools import parse_assistant

    tok, model = load_local(model_dir, device, console)
    k, method = speculation(speculative_tokens, speculative_method.value)
    engine = local_engine(model, console, max_batch=1, speculative_tokens=k, speculative_method=method)
    history: list[dict] = [{"role": "system", "content": system}] if system else []
    params = SamplingParams(max_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed,
                            stop_token_ids=[tok.special.end])
    while True:
        try:
            line = console.input("[bold green]you>[/bold green] ").strip()
        except (EOFError, KeyboardInterrupt):
            break
        if not line:
            break
        if line == "/reset":
            history = history[:1] if system else []
            continue
        history.append({"role": "user", "content": line})
        ids, _ = render_chat(tok, history, add_generation_prompt=True)
        try:
            engine.add_request(ids, params)
        except ValueError as e:  # the conversation outgrew the context
            console.print(f"[red]{escape(str(e))}[/red] (use /reset)")
            history.pop()
            continue
        console.print("[bold blue]model>[/bold blue] ", end="")
        out = stream_tokens(engine, tok, console)
        turn = parse_assistant(tok, out)
        history.append({"role": "assistant", "content": turn.content or ""} |
                       ({"tool_calls": turn.tool_calls} if turn.tool_calls else {}))
