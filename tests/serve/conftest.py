"""Fixtures the serve tests share across modules (session scope: built once per test run)."""

from __future__ import annotations

import time

import pytest

from tests.serve.tool_model import train_tool_model


@pytest.fixture(scope="session")
def tool_model(tmp_path_factory):
    """(model dir, tokenizer) of the tiny model trained to call get_weather; each module serves it itself."""
    model_dir = tmp_path_factory.mktemp("tools") / "tool-model"
    return model_dir, train_tool_model(model_dir)


def recording_run_server(started: dict):
    """A stand-in for fronde.serve.listen.run_server that records its arguments and returns once the model has
    loaded (`fronde serve` leaves at once, by os._exit, when stopped while its model loads)."""
    def run_server(app, host, port, tls, on_start=None):
        started.update(app=app, host=host, port=port, tls=tls)
        loader = getattr(app.state, "loader", None)
        while loader is not None and loader.is_alive():
            time.sleep(0.05)

    return run_server
