"""What `fronde generate` and `fronde chat` share: loading a model directory and printing tokens as they come."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from fronde.cli.errors import print_error

if TYPE_CHECKING:  # (imported where used: the CLI starts without torch; see test_cli_start)
    from fronde.data.tokenizer import Tokenizer
    from fronde.infer.engine import Engine
    from fronde.model.model import CausalLM

DEVICE_HELP = "cuda, cpu, cuda:1...; default: cuda when a GPU is visible, else cpu"


def pick_device(device: str | None) -> str:
    """The --device given, checked against what this machine has (a traceback from deep in torch otherwise), or the
    GPU when one is visible."""
    import torch

    if not device:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise typer.BadParameter(f"{device!r} is not a device; use cpu, cuda or cuda:N",
                                 param_hint="--device") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            build = (f"; torch {torch.__version__} is a CPU-only build" if torch.version.cuda is None
                     and not torch.version.hip else " (check the driver: nvidia-smi)")
            raise typer.BadParameter(f"{device}: no CUDA GPU is visible to torch here{build}; use --device cpu",
                                     param_hint="--device")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise typer.BadParameter(f"{device}: this machine has {torch.cuda.device_count()} visible GPU(s), "
                                     f"cuda:0 to cuda:{torch.cuda.device_count() - 1} (CUDA_VISIBLE_DEVICES "
                                     "renumbers them)", param_hint="--device")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise typer.BadParameter(f"{device}: no Apple GPU (MPS) here; use --device cpu", param_hint="--device")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise typer.BadParameter(f"{device}: fronde runs on cpu and cuda devices", param_hint="--device")
    return device


SPECULATIVE_HELP = ("guess up to this many tokens a step by copying what followed the same words earlier in the "
                    "context (prompt lookup) and check them in one forward: the same output, fewer forwards when "
                    "the model repeats its context (tool calls, quotes, code edits); 0 = off "
                    "(see --speculative-method)")


class Method(str, Enum):
    ngram = "ngram"
    mtp = "mtp"


METHOD_HELP = ("where the guesses come from: 'ngram' (prompt lookup, any model) or 'mtp' (the model's own MTP "
               "layer, one token a step, for models trained with num_nextn_predict_layers=1)")


def speculation(tokens: int, method: str) -> tuple[int, str]:
    """--speculative-method mtp alone turns MTP drafting on (its one token a step)."""
    return (1 if method == "mtp" and not tokens else tokens), method


def local_engine(model: CausalLM, console: Console, **engine_args: Any) -> Engine:
    """An engine over a loaded model; a setting the model cannot take (MTP drafting without an MTP layer) is a
    clear message and exit 2."""
    from fronde.infer.engine import Engine

    try:
        return Engine(model, **engine_args)
    except ValueError as e:
        print_error(console, e)
        raise typer.Exit(2) from None


def load_local(model_dir: Path, device: str | None, console: Console) -> tuple[Tokenizer, CausalLM]:
    """Tokenizer and model of a directory (bf16 on GPU, fp32 on CPU); a clear message and exit 2 otherwise."""
    from fronde.infer.loading import LOAD_ERRORS, load_for_inference

    try:
        return load_for_inference(model_dir, pick_device(device))
    except LOAD_ERRORS as e:
        print_error(console, e)
        raise typer.Exit(2) from None


def stream_tokens(engine: Engine, tok: Tokenizer, console: Console) -> list[int]:
    """Step the engine until it is idle, printing the decoded text as it grows; the generated ids."""
    out: list[int] = []
    shown = ""
    while engine.has_work():
        for event in engine.step():
            out.append(event.token)
            text = tok.decode(out, skip_special_tokens=True)
            console.print(text[len(shown):], end="", markup=False, highlight=False)
            shown = text
    console.print()
    return out
