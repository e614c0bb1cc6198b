"""`fronde chat MODEL_DIR`: a terminal conversation through the chat template, tokens streamed as they come."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from fronde.data.chat import render_chat
from fronde.data.errors import DataError
from fronde.data.tokenizer import Tokenizer
from fronde.infer.engine import Engine
from fronde.infer.sampling import SamplingParams
from fronde.model.checkpoint import from_pretrained
from fronde.serve.tools import parse_assistant

console = Console()


def chat_command(
    model_dir: Path = typer.Argument(..., help="a fronde / HF DeepseekV3 model directory with its tokenizer"),
    system: str | None = typer.Option(None, help="system prompt"),
    max_tokens: int = typer.Option(256, min=1),
    temperature: float = typer.Option(0.7, min=0.0, max=2.0),
    top_p: float = typer.Option(0.95, min=0.0, max=1.0),
    seed: int | None = typer.Option(None),
    device: str = typer.Option("cuda" if __import__("torch").cuda.is_available() else "cpu"),
) -> None:
    """Chat with a model in the terminal. Empty line or Ctrl-D ends; /reset starts over."""
    import torch

    try:
        tok = Tokenizer.load(model_dir)
        model = from_pretrained(model_dir, dtype=torch.bfloat16 if device.startswith("cuda") else torch.float32,
                                device=device)
    except (FileNotFoundError, ValueError, DataError) as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from None
    engine = Engine(model, max_batch=1)
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
            console.print(f"[red]{e}[/red] (use /reset)")
            history.pop()
            continue
        out: list[int] = []
        shown = ""
        console.print("[bold blue]model>[/bold blue] ", end="")
        while engine.has_work():
            for event in engine.step():
                out.append(event.token)
                text = tok.decode(out, skip_special_tokens=True)
                console.print(text[len(shown):], end="", markup=False, highlight=False)
                shown = text
        console.print()
        turn = parse_assistant(tok, out)
        history.append({"role": "assistant", "content": turn.content or ""} |
                       ({"tool_calls": turn.tool_calls} if turn.tool_calls else {}))
