"""fronde's tokenizer and chat template as GGUF metadata (llama.cpp's `gpt2` BPE tokenizer model).

llama.cpp does not read a split regex from the file: it knows a fixed list of pre-tokenizer names, each bound to
regexes compiled into it. fronde's split is Qwen2's pattern (GPT-4's with every digit its own pre-token), which
llama.cpp knows as `qwen2` and merges exactly as HF `tokenizers` does (no `ignore_merges`), so text tokenizes to
the same ids in llama.cpp as in fronde (tests/export checks prose, numbers of any length, code, accents).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf

from fronde.data.tokenizer import SPECIAL_TOKENS, SPLIT_PATTERN

PRE_TOKENIZER = "qwen2"
# Turn ends: fronde's chat loop and server stop on <|end|>; <|eos|> ends a document.
END_OF_TURN = SPECIAL_TOKENS["end"]
# transformers' `{% generation %}` marks the assistant span for SFT masks; plain Jinja engines (llama.cpp's,
# jinja2 in llama-cpp-python) do not know the tag, and it renders nothing, so the GGUF copy leaves it out.
_GENERATION_TAG = re.compile(r"[ \t]*\{%-?\s*(?:end)?generation\s*-?%\}[ \t]*\n?")


class VocabError(ValueError):
    """The model directory's tokenizer cannot be written as a llama.cpp BPE vocabulary."""


@dataclass(frozen=True)
class Vocab:
    """Everything the GGUF tokenizer keys hold, ready to write."""

    tokens: list[str]
    token_types: list[int]
    merges: list[str]
    bos_id: int | None
    eos_id: int | None
    pad_id: int | None
    eot_id: int | None
    chat_template: str | None

    @property
    def end_of_turn_tokens(self) -> list[str]:
        """The token strings a chat client should stop on."""
        return [self.tokens[i] for i in (self.eot_id, self.eos_id) if i is not None]


def read_vocab(model_dir: Path, vocab_size: int, bos_id: int | None, eos_id: int | None) -> Vocab:
    """Read tokenizer.json (+ tokenizer_config.json, chat_template.jinja) of a fronde model directory.

    `vocab_size` is the model's embedding rows: ids the tokenizer does not use become unused `[PAD{i}]` entries.
    """
    path = model_dir / "tokenizer.json"
    if not path.is_file():
        raise VocabError(f"{path}: missing; the GGUF needs the model's tokenizer (save it with the model)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise VocabError(f"{path}: not valid JSON ({e})") from e
    model = data.get("model") or {}
    if model.get("type") != "BPE":
        raise VocabError(f"{path}: tokenizer model is {model.get('type')!r}; only byte-level BPE can be exported")
    _check_pre_tokenizer(data.get("pre_tokenizer"), path)

    by_id: dict[int, str] = {int(i): t for t, i in model["vocab"].items()}
    special: set[int] = set()
    user_defined: set[int] = set()
    for added in data.get("added_tokens", []):
        by_id[int(added["id"])] = added["content"]
        (special if added.get("special") else user_defined).add(int(added["id"]))
    top = max(by_id) + 1
    if top > vocab_size:
        raise VocabError(f"{path}: token id {top - 1} does not fit the model's vocab_size={vocab_size}")

    tokens: list[str] = []
    types: list[int] = []
    for i in range(vocab_size):
        if i not in by_id:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        else:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.CONTROL if i in special
                         else gguf.TokenType.USER_DEFINED if i in user_defined else gguf.TokenType.NORMAL)

    config = _tokenizer_config(model_dir)
    ids = {t: i for i, t in by_id.items()}

    def named(key: str, fallback: int | None) -> int | None:
        value = config.get(key)
        if isinstance(value, dict):  # transformers' serialised AddedToken
            value = value.get("content")
        return ids.get(value, fallback) if isinstance(value, str) else fallback

    return Vocab(
        tokens=tokens,
        token_types=[int(t) for t in types],
        merges=[m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])],
        bos_id=named("bos_token", bos_id),
        eos_id=eos_id if eos_id is not None else named("eos_token", None),
        pad_id=named("pad_token", None),
        eot_id=ids.get(END_OF_TURN),
        chat_template=read_chat_template(model_dir),
    )


def _check_pre_tokenizer(pre: Any, path: Path) -> None:
    """Accept only fronde's pre-tokenizer (split regex + byte level): the one llama.cpp knows as `qwen2`."""
    steps = pre.get("pretokenizers", []) if isinstance(pre, dict) and pre.get("type") == "Sequence" else [pre]
    regexes = [s["pattern"].get("Regex") for s in steps if isinstance(s, dict) and s.get("type") == "Split"]
    byte_level = any(isinstance(s, dict) and s.get("type") == "ByteLevel" for s in steps)
    if regexes != [SPLIT_PATTERN] or not byte_level:
        raise VocabError(
            f"{path}: pre-tokenizer is not fronde's (split regex {regexes or None}); the GGUF export maps only "
            "fronde's byte-level BPE to a llama.cpp pre-tokenizer"
        )


def _tokenizer_config(model_dir: Path) -> dict[str, Any]:
    path = model_dir / "tokenizer_config.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise VocabError(f"{path}: not valid JSON ({e})") from e


def read_chat_template(model_dir: Path) -> str | None:
    """The model's chat template (chat_template.jinja first, then tokenizer_config.json), without generation tags."""
    jinja = model_dir / "chat_template.jinja"
    template = jinja.read_text(encoding="utf-8") if jinja.is_file() else _tokenizer_config(model_dir).get(
        "chat_template")
    if isinstance(template, list):  # transformers' named templates: keep the default one
        template = next((t["template"] for t in template if t.get("name") == "default"), None)
    return _GENERATION_TAG.sub("", template) if isinstance(template, str) else None


def write_vocab(writer: gguf.GGUFWriter, vocab: Vocab) -> None:
    """The tokenizer.ggml.* keys llama.cpp's BPE vocabulary reads, and tokenizer.chat_template."""
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(PRE_TOKENIZER)
    writer.add_token_list(vocab.tokens)
    writer.add_token_types(vocab.token_types)
    writer.add_token_merges(vocab.merges)
    if vocab.bos_id is not None:
        writer.add_bos_token_id(vocab.bos_id)
    if vocab.eos_id is not None:
        writer.add_eos_token_id(vocab.eos_id)
    if vocab.pad_id is not None:
        writer.add_pad_token_id(vocab.pad_id)
    if vocab.eot_id is not None:
        writer.add_eot_token_id(vocab.eot_id)
    # fronde starts every document with <|bos|> (`fronde generate` adds it); the chat template writes it itself and
    # llama.cpp drops a template's leading BOS when it adds one, so chats get exactly one.
    writer.add_add_bos_token(vocab.bos_id is not None)
    writer.add_add_eos_token(False)
    if vocab.chat_template:
        writer.add_chat_template(vocab.chat_template)
