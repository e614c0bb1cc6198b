"""`transformers serve` on a fronde model dir, driven by the official `openai` client: the reply comes back parsed,
reasoning apart from the answer, as fronde serve returns it. transformers finds how to read the reply in the dir's
`response_template`; without it the special think/answer markers are decoded away and the two run together."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from fronde.data.tokenizer import train_tokenizer
from fronde.model.checkpoint import save_pretrained
from fronde.train.upgrade import upgrade_model_dir
from tests.model.helpers import memorise_chats
from tests.servers import free_port, running

CHAT = [{"role": "user", "content": "6 x 7?"},
        {"role": "assistant", "reasoning_content": "6 x 7 = 42", "content": "42"}]


@pytest.fixture(scope="module")
def reasoning_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model that has memorised one reply with reasoning, saved as training saves a model dir."""
    d = tmp_path_factory.mktemp("serve") / "model"
    tok = train_tokenizer(["6 x 7? 6 x 7 = 42"] * 100, vocab_size=300)
    tok.save(d)
    torch.manual_seed(0)
    save_pretrained(memorise_chats(tok, [CHAT]), d)
    upgrade_model_dir(d)  # the stop ids and tokenizer config a training stage writes
    return d


def test_transformers_serve_returns_the_reasoning_apart(reasoning_model: Path, tmp_path: Path) -> None:
    import openai

    port = free_port()
    cmd = [sys.executable, "-m", "transformers.cli.transformers", "serve", str(reasoning_model), "--host",
           "127.0.0.1", "--port", str(port)]
    with running(cmd, f"http://127.0.0.1:{port}/health", tmp_path / "serve.log", env={"HF_HUB_OFFLINE": "1"}):
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused")
        ask = {"model": str(reasoning_model), "messages": CHAT[:1], "max_tokens": 20}
        reply = client.chat.completions.create(**ask).choices[0].message
        assert (reply.content, (reply.model_extra or {}).get("reasoning_content")) == ("42", "6 x 7 = 42"), reply
        reasoning = content = ""
        for chunk in client.chat.completions.create(**ask, stream=True):
            if chunk.choices:
                reasoning += (chunk.choices[0].delta.model_extra or {}).get("reasoning_content") or ""
                content += chunk.choices[0].delta.content or ""
        assert (content, reasoning) == ("42", "6 x 7 = 42")


def test_the_model_dir_names_its_reasoning_field_as_every_runtime_reads_it(reasoning_model: Path) -> None:
    fields = json.loads((reasoning_model / "tokenizer_config.json").read_text())["response_template"]["fields"]
    assert "thinking" in fields and "reasoning_content" not in fields
