"""`fronde serve` stopped before its model has loaded (Ctrl-C, or a port already in use): the process leaves with
uvicorn's status at once. An ordinary exit tore the interpreter down under the loading thread and C++ aborted it
("terminate called without an active exception", status 134), seen with a 350M-parameter model."""

from __future__ import annotations

import threading

import pytest
from typer.testing import CliRunner

from fronde.cli.main import app as cli
from tests.serve.test_server import model_dir  # noqa: F401  (a tiny real model with a real tokenizer)


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

    def run_server(app, host, port, tls):
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
