"""Fixtures the serve tests share across modules (session scope: built once per test run)."""

from __future__ import annotations

import pytest

from tests.serve.tool_model import train_tool_model


@pytest.fixture(scope="session")
def tool_model(tmp_path_factory):
    """(model dir, tokenizer) of the tiny model trained to call get_weather; each module serves it itself."""
    model_dir = tmp_path_factory.mktemp("tools") / "tool-model"
    return model_dir, train_tool_model(model_dir)
