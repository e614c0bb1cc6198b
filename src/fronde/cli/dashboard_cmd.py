"""`fronde dashboard RUNS_DIR`: the web UI's runs dashboard alone, with no model to load (the same page and
/api/runs that `fronde serve --runs` adds beside the chat playground)."""

from __future__ import annotations

from pathlib import Path

import typer

from fronde.cli.serve_cmd import announce, load_runs, read_keys


def dashboard_command(
    runs_dir: Path = typer.Argument(Path("runs"), help="the directory holding the runs (runs/<name>/...)"),
    host: str = typer.Option("127.0.0.1", help="address to bind; 0.0.0.0 exposes the dashboard to the network"),
    port: int = typer.Option(8001),
    api_key: list[str] = typer.Option([], "--api-key", help="accepted Bearer key (repeatable)"),
    api_key_file: Path | None = typer.Option(None, help="file with one accepted key per line"),
    against: list[Path] = typer.Option([], "--against", help="reference models' eval results for the scoreboard "
                                       "(files or dirs, repeatable), e.g. smollm2-135m-instruct (shipped)"),
    reference: Path | None = typer.Option(None, "--reference", help="TOML/JSON with reference models' params and "
                                          "training cost (see docs/evaluation.md)"),
) -> None:
    """Show training runs in the browser: stage, status, cost, live curves, expert load, ledger, evals, scoreboard."""
    import uvicorn

    from fronde.serve.ui import create_dashboard_app

    keys = read_keys(api_key, api_key_file)
    runs = load_runs(runs_dir, against, reference)
    announce(host, port, keys)
    uvicorn.run(create_dashboard_app(runs, keys), host=host, port=port, log_level="info")
