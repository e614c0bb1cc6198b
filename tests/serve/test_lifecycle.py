"""`fronde serve` stopped before its model has loaded (Ctrl-C, or a port already in use): the process leaves with
uvicorn's status at once. An ordinary exit tore the interpreter down under the loading thread and C++ aborted it
("terminate called without an active exception", status 134), seen with a 350M-parameter model."""

from __future__ import annotations

import threading

import pytest
from typer.testing import CliRunner

from fronde.cli.main import app as cli
from tests.serve.test_server import model_dir  # noqa: F401  (a tiny real model with a real tokenizer)
from tests.servers import free_port


class Left(Exception):
    pass


@pytest.mark.parametrize("stop, status", [(SystemExit(3), 3), (None, 0), (RuntimeError("a bug"), 1)])
def test_stopped_while_the_model_loads_leaves_at_once_with_uvicorns_status(model_dir, monkeypatch, stop,  # noqa: F811
                                                                          status):
    loading, release = threading.Event(), threading.Event()
    left = []

    def slow_load(self):
        loading.set()
        release.wait(30)

    def run_server(app, host, port, tls, on_start=None):
        assert loading.wait(10)
        if stop is not None:
            raise stop  # uvicorn could not bind (or a bug); None: Ctrl-C, after which uvicorn returns

    def os_exit(code):
        left.append(code)
        raise Left

    monkeypatch.setattr("fronde.serve.app.Server.load", slow_load)
    monkeypatch.setattr("fronde.serve.listen.run_server", run_server)
    monkeypatch.setattr("os._exit", os_exit)
    try:
        res = CliRunner().invoke(cli, ["serve", str(model_dir), "--port", "8999"])
    finally:
        release.set()
    assert left == [status] and isinstance(res.exception, Left)


def test_a_model_that_fails_to_load_stops_the_server_with_the_reason(model_dir, tmp_path):  # noqa: F811
    """Damaged weights load in the background: the server used to stay up, answer every request "the model is still
    loading" and say nothing on its console. Now it prints why and stops with status 1, as vLLM does; a missing
    tokenizer or config is said (status 2) before the port is taken."""
    import os
    import shutil
    import subprocess
    import sys

    from safetensors.torch import load_file, save_file

    damaged = tmp_path / "damaged"
    shutil.copytree(model_dir, damaged)
    weights = load_file(damaged / "model.safetensors")
    del weights[sorted(weights)[0]]  # a tensor lost: the file reads, the model does not load
    save_file(weights, damaged / "model.safetensors")
    serve = [sys.executable, "-m", "fronde.cli.main", "serve", "--port", str(free_port())]
    res = subprocess.run([*serve, str(damaged)], capture_output=True, text=True, timeout=120,
                         env=os.environ | {"COLUMNS": "300"})
    assert res.returncode == 1, res.stdout + res.stderr
    assert f"{damaged}: the model could not be loaded: ValueError: {damaged}: weights do not match config.json" \
        in res.stdout, res.stdout + res.stderr
    (damaged / "tokenizer.json").unlink()
    res = subprocess.run([*serve, str(damaged)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "no tokenizer at" in res.stdout and "Uvicorn running" not in res.stderr


def test_requests_to_a_server_whose_model_failed_say_so(model_dir, tmp_path):  # noqa: F811
    import shutil

    from fastapi.testclient import TestClient

    from fronde.serve.app import ServerConfig, create_app

    damaged = tmp_path / "damaged"
    shutil.copytree(model_dir, damaged)
    (damaged / "model.safetensors").write_bytes(b"not safetensors")
    client = TestClient(create_app(ServerConfig(damaged), load_in_background=False))
    res = client.get("/v1/models")
    assert res.status_code == 503 and res.json()["error"]["message"].startswith("the model failed to load: ")
    assert client.get("/health").json()["status"] == "failed"
