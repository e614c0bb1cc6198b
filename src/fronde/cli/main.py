"""`fronde`: the entry point. Each stage registers its own typer sub-app here."""

from __future__ import annotations

import typer

from fronde import __version__
from fronde.cli.model_cmd import app as model_app

app = typer.Typer(
    name="fronde",
    help="Build a compact DeepSeek-style model (MoE + MLA) on your own machines, and measure what it costs.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(model_app, name="model")


@app.command()
def version() -> None:
    """Print fronde's version."""
    typer.echo(__version__)


if __name__ == "__main__":
    app()
