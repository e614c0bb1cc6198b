"""The tool-calling model the serve tests share: a tiny model really trained to call get_weather."""

from __future__ import annotations

import json
from pathlib import Path


from fronde.data.tokenizer import Tokenizer, train_tokenizer
from fronde.model.checkpoint import save_pretrained
from tests.model.helpers import memorise_chats

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                           "parameters": {"type": "object",
                                                          "properties": {"city": {"type": "string"}}}}}]
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
CALL = {"role": "assistant", "content": "", "tool_calls": [
    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]}
RESULT = {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 24C"}
ANSWER = {"role": "assistant", "content": "It is sunny in Paris."}


def train_tool_model(model_dir: Path) -> Tokenizer:
    """Memorise the two turns (call, then answer after the result) in 150 steps: ~40 s on 2 cores."""
    texts = [json.dumps(TOOLS), "What is the weather in Paris? It is sunny in Paris. sunny, 24C", "get_weather city"]
    tok = train_tokenizer(texts * 200, vocab_size=600)
    tok.save(model_dir)
    save_pretrained(memorise_chats(tok, [ASK + [CALL], ASK + [CALL, RESULT, ANSWER]], tools=TOOLS), model_dir)
    return tok
