"""`fronde export ...`: a model directory as a GGUF file for llama.cpp, or an Ollama model folder."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from fronde.cli.console import CliConsole
from fronde.cli.errors import print_error

if TYPE_CHECKING:
    from fronde.export import GGUFSummary

app = typer.Typer(help="Export a model directory for llama.cpp (GGUF) or Ollama.", no_args_is_help=True)
console = CliConsole()

# fronde.export.gguf.DTYPES's names, here so that `fronde --help` starts without torch (a test keeps them equal)
DTYPE_NAMES = ("f32", "f16", "bf16", "q8_0")
_DTYPE_HELP = f"Weight type: {', '.join(DTYPE_NAMES)} (norms and the router stay f32)."


def _report(summary: GGUFSummary) -> None:
    console.print(f"wrote {summary.path} ({summary.bytes / 1e6:.1f} MB, {summary.n_tensors} tensors, "
                  f"{summary.dtype}, llama.cpp pre-tokenizer {summary.tokenizer_pre!r})", markup=False)
    if summary.fallback_f16:
        console.print(f"{len(summary.fallback_f16)} tensors have rows not divisible by 32 and are f16, "
                      f"e.g. {summary.fallback_f16[0]}")


@app.command("gguf")
def gguf_command(
    model_dir: Path = typer.Argument(..., help="A fronde model directory (config.json, weights, tokenizer)."),
    out: Path = typer.Argument(..., help="The .gguf file to write."),
    dtype: str = typer.Option("f16", "--dtype", help=_DTYPE_HELP),
    force: bool = typer.Option(False, "--force", help="Overwrite OUT if it exists."),
) -> None:
    """Write MODEL_DIR as one GGUF file (llama.cpp architecture deepseek2), e.g. for `llama-server -m OUT --jinja`."""
    from fronde.data.progress import RichReporter
    from fronde.export import ExportError, export_gguf

    try:
        with RichReporter(console) as progress:
            summary = export_gguf(model_dir, out, dtype=dtype, force=force, progress=progress)
    except ExportError as e:
        print_error(console, e)
        raise typer.Exit(2) from None
    _report(summary)
    # --jinja: llama-server then reads replies apart (reasoning, answer, tool calls) from the file's chat template
    console.print(f"next: llama-server -m {summary.path} --jinja   (OpenAI API; or llama-cli -m {summary.path})",
                  markup=False)


@app.command("ollama")
def ollama_command(
    model_dir: Path = typer.Argument(..., help="A fronde model directory (config.json, weights, tokenizer)."),
    outdir: Path = typer.Argument(..., help="Folder to write the GGUF and the Modelfile into."),
    dtype: str = typer.Option("f16", "--dtype", help=_DTYPE_HELP),
    force: bool = typer.Option(False, "--force", help="Overwrite the GGUF and Modelfile if they exist."),
) -> None:
    """Write OUTDIR/<name>.gguf and OUTDIR/Modelfile; then `ollama create NAME -f OUTDIR/Modelfile`."""
    from fronde.data.progress import RichReporter
    from fronde.export import ExportError, export_ollama

    try:
        with RichReporter(console) as progress:
            summary, modelfile = export_ollama(model_dir, outdir, dtype=dtype, force=force, progress=progress)
    except ExportError as e:
        print_error(console, e)
        raise typer.Exit(2) from None
    _report(summary)
    console.print(f"wrote {modelfile}; next: ollama create {model_dir.resolve().name} -f {modelfile}", markup=False)
