"""`fronde dashboard RUNS_DIR`: the web UI's runs dashboard alone, with no model to load (the same page and
/api/runs that `fronde serve --runs` adds beside the chat playground)."""

from __future__ import annotations

from pathlib import Path

import typer

from fronde.cli.serve_cmd import (
    API_KEY,
    API_KEY_FILE,
    SSL_CA_CERTS,
    SSL_CERT_REQS,
    SSL_CERTFILE,
    SSL_KEYFILE,
    SSL_KEYFILE_PASSWORD,
    announce,
    load_runs,
    read_keys,
    read_tls,
)


def dashboard_command(
    runs_dir: Path = typer.Argument(Path("runs"), help="the directory holding the runs (runs/<name>/...)"),
    host: str = typer.Option("127.0.0.1", help="address to bind; 0.0.0.0 exposes the dashboard to the network"),
    port: int = typer.Option(8001, min=1, max=65535),
    api_key: list[str] = API_KEY,
    api_key_file: Path | None = API_KEY_FILE,
    against: list[Path] = typer.Option([], "--against", help="reference models' eval results for the scoreboard "
                                       "(files or dirs, repeatable), e.g. smollm2-135m-instruct (shipped)"),
    reference: Path | None = typer.Option(None, "--reference", help="TOML/JSON with reference models' params and "
                                          "training cost (see docs/evaluation.md)"),
    ssl_certfile: Path | None = SSL_CERTFILE,
    ssl_keyfile: Path | None = SSL_KEYFILE,
    ssl_keyfile_password: str | None = SSL_KEYFILE_PASSWORD,
    ssl_ca_certs: Path | None = SSL_CA_CERTS,
    ssl_cert_reqs: int = SSL_CERT_REQS,
) -> None:
    """Show training runs in the browser: stage, status, cost, live curves, expert load, ledger, evals, scoreboard."""
    from fronde.serve.listen import run_server
    from fronde.serve.ui import create_dashboard_app

    keys = read_keys(api_key, api_key_file)
    tls = read_tls(ssl_certfile, ssl_keyfile, ssl_keyfile_password, ssl_ca_certs, ssl_cert_reqs)
    runs = load_runs(runs_dir, against, reference)
    announce(host, port, keys, https=tls is not None)
    run_server(create_dashboard_app(runs, keys), host, port, tls)
