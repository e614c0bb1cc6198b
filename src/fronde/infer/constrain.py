"""Constrained decoding: a token mask per step from a grammar, so JSON mode and forced tool calls can only produce
valid JSON.

Built on llguidance (the grammar engine behind OpenAI-compatible structured output in vLLM/SGLang): a JSON schema
compiles to a grammar, a matcher per sequence walks it, and each step it gives the set of tokens that keep the
output a valid prefix. The mask is computed over the tokenizer's whole vocabulary, so multi-character tokens and
special tokens are handled exactly; when the grammar is complete, only the stop tokens remain allowed. A grammar can
name a special token by id (`<[id]>` in llguidance's Lark syntax), which is how a tool call's closing token is part of
its grammar while no JSON string can ever contain one.
"""

from __future__ import annotations

import json
from typing import Any

import llguidance
import torch

from fronde.data.tokenizer import Tokenizer

# Compact separators and no free whitespace: a small model cannot wander into endless blank space, and the output
# is what json.dumps(separators=(",", ":")) would write.
JSON_OPTIONS = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}
NO_PARAMETERS = {"type": "object", "properties": {}, "additionalProperties": False}  # OpenAI: omitted = none
_BITS = torch.arange(32, dtype=torch.int32)


class GrammarError(ValueError):
    """A schema or grammar llguidance cannot compile; the message says why."""


class Grammars:
    """Compiles grammars for one tokenizer and hands out a fresh matcher per sequence."""

    def __init__(self, tok: Tokenizer, stop_ids: list[int]) -> None:
        self.vocab_size = tok.vocab_size
        self.lltok = llguidance.LLTokenizer(tok.hf.to_str(), eos_token=sorted(set(stop_ids)))

    @staticmethod
    def json_schema(schema: dict[str, Any] | None) -> str:
        """The grammar for a JSON schema; None means any JSON object (OpenAI's json_object mode)."""
        try:
            return llguidance.LLMatcher.grammar_from_json_schema(schema or {"type": "object"},
                                                                 defaults=JSON_OPTIONS)  # type: ignore[arg-type]
        except ValueError as e:
            raise GrammarError(f"not a usable JSON schema: {e}") from None

    def validate(self, grammar: str) -> None:
        is_error, messages = llguidance.LLMatcher.validate_grammar_with_warnings(grammar, self.lltok)
        if is_error:
            raise GrammarError(messages[0].splitlines()[0] if messages else "invalid grammar")

    def matcher(self, grammar: str) -> Constraint:
        return Constraint(llguidance.LLMatcher(self.lltok, grammar, log_level=0), self.vocab_size)


class Constraint:
    """One sequence's position in its grammar."""

    def __init__(self, matcher: llguidance.LLMatcher, vocab_size: int) -> None:
        self.matcher, self.vocab_size = matcher, vocab_size

    def allowed(self, n_logits: int) -> torch.Tensor:
        """A bool mask over `n_logits` (the model's vocabulary may be padded past the tokenizer's)."""
        words = torch.frombuffer(bytearray(self.matcher.compute_bitmask()), dtype=torch.int32)
        bits = ((words.unsqueeze(1) >> _BITS) & 1).flatten().bool()
        mask = torch.zeros(n_logits, dtype=torch.bool)
        n = min(n_logits, bits.numel(), self.vocab_size)
        mask[:n] = bits[:n]
        return mask

    def consume(self, token: int) -> None:
        if not self.matcher.consume_token(token):
            raise GrammarError(f"token {token} left the grammar: {self.matcher.get_error()}")

    @property
    def error(self) -> str | None:
        return self.matcher.get_error() if self.matcher.is_error() else None


def response_format_grammar(response_format: dict[str, Any] | None) -> str | None:
    """OpenAI's response_format -> a grammar (None for plain text). Raises GrammarError naming the bad field."""
    if not response_format:
        return None
    kind = response_format.get("type")
    if kind in (None, "text"):
        return None
    if kind == "json_object":
        return Grammars.json_schema(None)
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema", {}), dict):
            raise GrammarError("response_format.json_schema must be an object with a 'schema' object")
        schema = spec.get("schema") or {}
        try:
            json.dumps(schema)
        except (TypeError, ValueError) as e:
            raise GrammarError(f"response_format.json_schema.schema is not JSON: {e}") from None
        return Grammars.json_schema(schema)
    raise GrammarError(f"response_format.type {kind!r} is not 'text', 'json_object' or 'json_schema'")


def tool_call_grammar(tools: list[dict[str, Any]], close_token: int) -> str:
    """A tool call's body after its opening token, as the chat template writes it: `{"name": NAME, "arguments":
    ARGS}` with NAME one of `tools` (OpenAI's [{"type": "function", "function": {"name", "parameters"}}]) and ARGS
    valid for that tool's `parameters` schema, then `close_token`. Exactly one call; the stop tokens follow."""
    calls, rules = [], []
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, dict) else None
        name = fn.get("name") if isinstance(fn, dict) else None
        schema = (fn.get("parameters") or NO_PARAMETERS) if isinstance(fn, dict) else None
        if not isinstance(name, str) or not isinstance(schema, dict):
            raise GrammarError(f"tools[{i}] must be {{'type': 'function', 'function': {{'name': str, "
                               "'parameters': JSON schema}}")
        try:
            schema_text = json.dumps({"x-guidance": JSON_OPTIONS} | schema)
        except (TypeError, ValueError) as e:
            raise GrammarError(f"tools[{i}].function.parameters is not JSON: {e}") from None
        head = json.dumps(name) + ', "arguments": '  # a Lark string literal is a JSON string
        calls.append(f"call_{i}")
        rules += [f"call_{i}: {json.dumps(head)} args_{i}", f"args_{i}: %json {schema_text}"]
    if not calls:
        raise GrammarError("no tools to call")
    opening = json.dumps('{"name": ')
    start = f'start: {opening} ({" | ".join(calls)}) "}}" <[{close_token}]>'
    return llguidance.LLMatcher.grammar_from_lark("\n".join([start, *rules]))
