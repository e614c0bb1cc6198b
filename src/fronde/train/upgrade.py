"""An older fronde model dir brought up to what checkpoints write today, in place, weights untouched.

Model dirs written before 2026-12-07 list `<|eos|>` alone as a stop id (transformers' generate() and vLLM ran on past
a chat turn's `<|end|>`), say the data tokenizer's 65,536 tokens as `model_max_length` whatever the model's context,
and have no `response_template` (transformers and TRL glued a reply's reasoning to its answer), or, written on that
day, one whose reasoning field vLLM refuses (`reasoning_content`; now `thinking`); and the chat template gets
today's form (same rendering; vLLM logged an error reading the older one). Those live in generation_config.json,
tokenizer_config.json and chat_template.jinja, which no hash in `fronde.json` covers, so fixing them leaves the
lineage true. tokenizer.json (the `<|bos|>` post-processor of newer tokenizers) is left alone: its sha256 is in the
lineage; docs/serving.md says how to pass the start token by hand.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fronde.data.io import atomic_write_json, atomic_write_text
from fronde.model.checkpoint import load_config
from fronde.train.checkpoint import model_tokenizer_config, stop_ids


def _read(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e}); restore it from the run's checkpoint") from e


def upgrade_model_dir(model_dir: Path, write: bool = True) -> list[str]:
    """What the dir lacks, one line per file changed (none: it is current); with `write`, the files are fixed."""
    model_dir = Path(model_dir)
    config = load_config(model_dir)  # a model dir, or its error naming the file
    changes: list[str] = []
    tokenizer = model_dir / "tokenizer.json"
    generation_path = model_dir / "generation_config.json"
    generation = _read(generation_path)
    wanted = stop_ids(config, tokenizer if tokenizer.is_file() else None)
    if wanted and generation.get("eos_token_id") != wanted["eos_token_id"]:
        changes.append(f"generation_config.json: eos_token_id {generation.get('eos_token_id')} -> "
                       f"{wanted['eos_token_id']} (transformers' generate() and vLLM stop at the end of a turn)")
        if write:
            atomic_write_json(generation_path, generation | wanted)
    tokenizer_config = model_dir / "tokenizer_config.json"
    if tokenizer_config.is_file():
        before = _read(tokenizer_config)
        after = model_tokenizer_config(before, config)
        if after != before:
            what = []
            if before.get("model_max_length") != after["model_max_length"]:
                what.append(f"model_max_length {before.get('model_max_length')} -> {after['model_max_length']}")
            if "response_template" not in before and "response_template" in after:
                what.append("response_template added (replies parse into reasoning, answer and tool calls in "
                            "transformers, TRL and vLLM)")
            elif before.get("response_template") != after.get("response_template"):
                what.append("response_template updated (its reasoning field is named `thinking`, the name vLLM's "
                            "and SGLang's reasoning parsers require)")
            if before.get("chat_template") != after.get("chat_template"):
                what.append("chat_template updated (the same rendering, in a form vLLM reads without an error)")
            changes.append("tokenizer_config.json: " + "; ".join(what))
            if write:
                atomic_write_json(tokenizer_config, after)
        jinja = model_dir / "chat_template.jinja"
        if "chat_template" in after and jinja.is_file() and jinja.read_text(encoding="utf-8") != after["chat_template"]:
            changes.append("chat_template.jinja: today's chat template (the same rendering)")
            if write:
                atomic_write_text(jinja, after["chat_template"])
    return changes
