"""`fronde serve MODEL_DIR`: the private OpenAI-compatible server (binds 127.0.0.1 unless told otherwise)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

console = Console()


def serve_command(
    model_dir: Path = typer.Argument(..., help="a fronde / HF DeepseekV3 model directory with its tokenizer"),
    host: str = typer.Option("127.0.0.1", help="address to bind; 0.0.0.0 exposes the server to the network"),
    port: int = typer.Option(8000),
    api_key: list[str] = typer.Option([], "--api-key", help="accepted Bearer key (repeatable)"),
    api_key_file: Path | None = typer.Option(None, help="file with one accepted key per line"),
    served_name: str | None = typer.Option(None, help="model id clients use (default: the directory name)"),
    max_batch: int = typer.Option(32, min=1, help="sequences decoded together"),
    max_model_len: int | None = typer.Option(None, help="context limit (default: the model's)"),
    max_queue: int = typer.Option(64, min=0, help="requests allowed to wait; beyond, HTTP 429 + Retry-After"),
    max_body_bytes: int = typer.Option(4 * 1024 * 1024, min=1024, help="larger request bodies get HTTP 413"),
    audit_log: Path | None = typer.Option(None, help="append one JSON line per request (no key, no text)"),
    log_content: bool = typer.Option(False, help="also put prompts and outputs in the audit log"),
) -> None:
    """Serve MODEL_DIR with OpenAI's API: /v1/models, /v1/completions, /v1/chat/completions, /health, /metrics."""
    import uvicorn

    from fronde.serve.app import ServerConfig, create_app

    if not model_dir.is_dir():
        console.print(f"[red]error:[/red] {model_dir}: no such model directory")
        raise typer.Exit(2)
    keys = list(api_key)
    if api_key_file is not None:
        if not api_key_file.is_file():
            console.print(f"[red]error:[/red] {api_key_file}: no such key file")
            raise typer.Exit(2)
        keys += [line.strip() for line in api_key_file.read_text().splitlines() if line.strip()]
    cfg = ServerConfig(model_dir, served_name=served_name, api_keys=tuple(keys), max_batch=max_batch,
                       max_model_len=max_model_len, max_queue=max_queue, max_body_bytes=max_body_bytes,
                       audit_log=audit_log, log_content=log_content)
    if not keys and host not in ("127.0.0.1", "localhost", "::1"):
        console.print("[yellow]warning:[/yellow] serving beyond this machine without --api-key")
    uvicorn.run(create_app(cfg), host=host, port=port, log_level="info")
