"""`fronde generate MODEL_DIR "prompt"`: complete a prompt with the inference engine, streaming the text."""

from __future__ import annotations

from pathlib import Path

import typer

from fronde.cli.console import CliConsole
from fronde.cli.errors import print_error
from fronde.cli.local_model import (DEVICE_HELP, METHOD_HELP, SPECULATIVE_HELP, Method, load_local, local_engine,
                                    speculation, stream_tokens)

console = CliConsole()


def generate_command(
    model_dir: Path = typer.Argument(..., help="a fronde / HF DeepseekV3 model directory with its tokenizer"),
    prompt: str = typer.Argument(..., help="text to continue"),
    max_tokens: int = typer.Option(64, min=1),
    temperature: float = typer.Option(0.8, min=0.0, max=2.0, help="0 = greedy"),
    top_p: float = typer.Option(0.95, min=0.0, max=1.0),
    top_k: int = typer.Option(0, min=0),
    seed: int | None = typer.Option(None, help="fixed seed: the same output every time"),
    speculative_tokens: int = typer.Option(0, min=0, max=16, help=SPECULATIVE_HELP),
    speculative_method: Method = typer.Option(Method.ngram, help=METHOD_HELP),
    device: str | None = typer.Option(None, help=DEVICE_HELP),
) -> None:
    """Continue PROMPT with the model; tokens are printed as they are generated."""
    from fronde.infer.sampling import SamplingParams

    tok, model = load_local(model_dir, device, console)
    params = SamplingParams(max_tokens=max_tokens, temperature=temperature, top_p=top_p, top_k=top_k, seed=seed)
    ids = tok.encode(prompt, bos=True)
    k, method = speculation(speculative_tokens, speculative_method.value)
    engine = local_engine(model, console, max_batch=1,
                          max_model_len=min(model.config.max_position_embeddings, len(ids) + max_tokens),
                          speculative_tokens=k, speculative_method=method)
    try:
        engine.add_request(ids, params)
    except ValueError as e:
        print_error(console, e)
        raise typer.Exit(2) from None
    console.print(prompt, end="", style="bold", markup=False, highlight=False)
    stream_tokens(engine, tok, console)
