"""`fronde serve MODEL_DIR`: the private OpenAI-compatible server and its web UI (binds 127.0.0.1 unless told
otherwise)."""

from __future__ import annotations

import json
import os
import sys
import threading
import traceback
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from fronde.cli.console import CliConsole
from fronde.cli.errors import print_error
from fronde.cli.local_model import METHOD_HELP, Method, speculation
from fronde.serve.tls import TLS, TLSError

console = CliConsole()


def read_keys(api_key: list[str], api_key_file: Path | None) -> tuple[str, ...]:
    """The accepted keys: --api-key values plus one per line of --api-key-file."""
    keys = list(api_key)
    if api_key_file is not None:
        if not api_key_file.is_file():
            print_error(console, f"{api_key_file}: no such key file")
            raise typer.Exit(2)
        keys += [line.strip() for line in api_key_file.read_text().splitlines() if line.strip()]
        if api_key_file.stat().st_mode & 0o077:
            console.print(f"[yellow]warning:[/yellow] {escape(str(api_key_file))} can be read by other users of this "
                          f"machine: chmod 600 {escape(str(api_key_file))}", highlight=False)
    return tuple(keys)


# keys and HTTPS (vLLM's option names); shared with `fronde dashboard`
API_KEY = typer.Option([], "--api-key", envvar="FRONDE_API_KEY", show_envvar=True, help="accepted Bearer key "
                       "(repeatable; in the variable, keys separated by spaces, which keeps them out of ps)")
API_KEY_FILE = typer.Option(None, "--api-key-file", help="file with one accepted key per line")
SSL_CERTFILE = typer.Option(None, "--ssl-certfile", help="serve HTTPS with this PEM certificate (chain); clients "
                            "trust a private CA's through SSL_CERT_FILE=CA.pem")
SSL_KEYFILE = typer.Option(None, "--ssl-keyfile", help="its PEM private key (default: in --ssl-certfile)")
SSL_KEYFILE_PASSWORD = typer.Option(None, "--ssl-keyfile-password", envvar="FRONDE_SSL_KEYFILE_PASSWORD",
                                    show_envvar=True, help="pass phrase of an encrypted key (the variable keeps "
                                    "it out of ps)")
SSL_CA_CERTS = typer.Option(None, "--ssl-ca-certs", help="CA certificates that sign clients' certificates (with "
                            "--ssl-cert-reqs)")
SSL_CERT_REQS = typer.Option(0, "--ssl-cert-reqs", help="clients' certificates: 0 not asked, 1 checked when sent, "
                             "2 required (mutual TLS)")


def read_tls(certfile: Path | None, keyfile: Path | None, password: str | None, ca_certs: Path | None,
             cert_reqs: int) -> TLS | None:
    """The HTTPS settings, checked before anything loads, or exit 2 naming the option or file at fault."""
    try:
        return TLS.from_options(certfile, keyfile, password, ca_certs, cert_reqs)
    except TLSError as e:
        print_error(console, e)
        raise typer.Exit(2) from None


def load_runs(runs: Path, against: list[Path], reference: Path | None):
    """The dashboard's RunsConfig, or exit 2 naming what is wrong with the paths."""
    from fronde.eval.errors import EvalError
    from fronde.serve.runs import RunsConfig

    try:
        return RunsConfig.load(runs, list(against), reference)
    except EvalError as e:
        print_error(console, e)
        raise typer.Exit(2) from None


def _check_model_files(model_dir: Path) -> None:
    """What a model dir must hold, checked before the port is taken (the weights load in the background)."""
    from fronde.data.errors import DataError
    from fronde.data.tokenizer import Tokenizer
    from fronde.model.checkpoint import load_config

    try:
        load_config(model_dir)
        Tokenizer.load(model_dir)
    except (DataError, FileNotFoundError, ValueError) as e:
        print_error(console, e)
        raise typer.Exit(2) from None


def _stop_if_loading_fails(app: Any, server: Any) -> None:
    """A model that fails to load in the background (damaged weights, out of memory) stops the server with the
    reason, as vLLM does: left up, it answered every request with 503 and said nothing on its console."""
    def watch() -> None:
        app.state.loader.join()
        if error := app.state.server.load_error:
            print_error(console, f"{app.state.server.cfg.model_dir}: the model could not be loaded: {error}")
            server.should_exit = True

    threading.Thread(target=watch, name="fronde-load-watch", daemon=True).start()


def _has_no_mtp(model_dir: Path) -> bool:
    """Checked before the server starts: the engine would refuse the model only once loaded, behind /health."""
    try:
        return not json.loads((model_dir / "config.json").read_text()).get("num_nextn_predict_layers")
    except (OSError, ValueError, AttributeError):
        return False  # a missing or broken config.json: loading says what is wrong with it


def announce(host: str, port: int, keys: tuple[str, ...], https: bool = False) -> None:
    if host not in ("127.0.0.1", "localhost", "::1"):
        if not keys:
            console.print("[yellow]warning:[/yellow] serving beyond this machine without --api-key")
        if not https:
            console.print("[yellow]warning:[/yellow] serving beyond this machine over plain HTTP: keys, prompts "
                          "and replies cross the network unencrypted (--ssl-certfile/--ssl-keyfile, "
                          "docs/serving.md)")
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else f"[{host}]" if ":" in host else host
    console.print(f"web UI: {'https' if https else 'http'}://{shown}:{port}/", highlight=False)


def serve_command(
    model_dir: Path = typer.Argument(..., help="a fronde / HF DeepseekV3 model directory with its tokenizer"),
    host: str = typer.Option("127.0.0.1", help="address to bind; 0.0.0.0 exposes the server to the network"),
    port: int = typer.Option(8000, min=1, max=65535),
    api_key: list[str] = API_KEY,
    api_key_file: Path | None = API_KEY_FILE,
    served_name: str | None = typer.Option(None, help="model id clients use (default: the directory name)"),
    max_batch: int = typer.Option(32, min=1, help="sequences decoded together"),
    max_model_len: int | None = typer.Option(None, help="context limit (default: the model's)"),
    enforce_eager: bool = typer.Option(False, help="decode without CUDA graphs (on by default for bf16 on a GPU)"),
    prefill_chunk: int | None = typer.Option(None, min=1, help="prompt tokens prefilled per engine step; more "
                                             "starts new requests sooner, fewer keeps running streams smoother "
                                             "(default 2048 on a GPU, 256 on a CPU)"),
    speculative_tokens: int = typer.Option(0, min=0, max=16, help="guess up to this many tokens a step by "
                                           "prompt lookup (copying what followed the same words earlier in the "
                                           "conversation) and check them in one forward: the same output, fewer "
                                           "forwards when replies repeat their context; best for few concurrent "
                                           "users (on a GPU the checking step runs without CUDA graphs); 0 = off"),
    speculative_method: Method = typer.Option(Method.ngram, help=METHOD_HELP),
    prefix_caching: bool = typer.Option(True, "--prefix-caching/--no-prefix-caching",
                                        help="reuse the cache of prompt starts seen before (a chat's or an "
                                        "agent's earlier turns, a shared system prompt); off for tenants who "
                                        "must not learn from response times what others asked"),
    max_queue: int = typer.Option(64, min=0, help="requests allowed to wait; beyond, HTTP 429 + Retry-After"),
    max_body_bytes: int = typer.Option(4 * 1024 * 1024, min=1024, help="larger request bodies get HTTP 413"),
    audit_log: Path | None = typer.Option(None, help="append one JSON line per request (no key, no text)"),
    log_content: bool = typer.Option(False, help="also put prompts and outputs in the audit log"),
    runs: Path | None = typer.Option(None, "--runs", help="runs dir for the web UI's dashboard, e.g. runs"),
    against: list[Path] = typer.Option([], "--against", help="reference models' eval results for the dashboard's "
                                       "scoreboard (files or dirs, repeatable), e.g. smollm2-135m-instruct (shipped)"),
    reference: Path | None = typer.Option(None, "--reference", help="TOML/JSON with reference models' params and "
                                          "training cost (see docs/evaluation.md)"),
    ssl_certfile: Path | None = SSL_CERTFILE,
    ssl_keyfile: Path | None = SSL_KEYFILE,
    ssl_keyfile_password: str | None = SSL_KEYFILE_PASSWORD,
    ssl_ca_certs: Path | None = SSL_CA_CERTS,
    ssl_cert_reqs: int = SSL_CERT_REQS,
) -> None:
    """Serve MODEL_DIR with OpenAI's API (/v1/models, /v1/completions, /v1/chat/completions, /health, /metrics)
    and the web UI at / (chat playground; the runs dashboard too with --runs)."""
    from fronde.serve.app import ServerConfig, create_app
    from fronde.serve.listen import run_server

    if not model_dir.is_dir():
        print_error(console, f"{model_dir}: no such model directory")
        raise typer.Exit(2)
    _check_model_files(model_dir)
    keys = read_keys(api_key, api_key_file)
    tls = read_tls(ssl_certfile, ssl_keyfile, ssl_keyfile_password, ssl_ca_certs, ssl_cert_reqs)
    k, method = speculation(speculative_tokens, speculative_method.value)
    if method == "mtp" and k and _has_no_mtp(model_dir):
        print_error(console, f"{model_dir}: --speculative-method mtp needs a model with an MTP layer "
                    "(num_nextn_predict_layers = 1 in config.json); use --speculative-method ngram")
        raise typer.Exit(2)
    cfg = ServerConfig(model_dir, served_name=served_name, api_keys=keys, max_batch=max_batch,
                       max_model_len=max_model_len, enforce_eager=enforce_eager,
                       prefill_chunk=prefill_chunk, prefix_caching=prefix_caching,
                       speculative_tokens=k, speculative_method=method, max_queue=max_queue,
                       max_body_bytes=max_body_bytes, audit_log=audit_log, log_content=log_content,
                       runs=load_runs(runs, against, reference) if runs is not None else None)
    announce(host, port, keys, https=tls is not None)
    app = create_app(cfg)
    status = 0
    try:
        run_server(app, host, port, tls, on_start=lambda server: _stop_if_loading_fails(app, server))
        if app.state.server.load_error:
            raise typer.Exit(1)
    except BaseException as e:  # SystemExit: could not start, the port is taken, say (uvicorn said so)
        status = e.code if isinstance(e, SystemExit) and isinstance(e.code, int) else getattr(e, "exit_code", 1)
        if not isinstance(e, SystemExit) and app.state.loader.is_alive():
            traceback.print_exc()  # os._exit below leaves before Python would print it
        raise
    finally:
        if app.state.loader.is_alive():
            # stopped (Ctrl-C, or a port in use) while the model still loads: an ordinary exit tears the process
            # down under the loading thread, and C++ aborts it ("terminate called without an active exception")
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(status)
