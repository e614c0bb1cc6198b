"""Tokenizer (special ids, encode/decode, saved dir) and chat rendering vs transformers."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from fronde.data.chat import (CHAT_TEMPLATE, RESPONSE_TEMPLATE, normalize_messages, render_chat, render_chat_text,
                               render_chats)
from fronde.data.errors import DataError
from fronde.data.tokenizer import SPECIAL_TOKENS, Tokenizer, train_tokenizer

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                           "parameters": {"type": "object",
                                                          "properties": {"city": {"type": "string"}}}}}]
CHATS = [
    [{"role": "user", "content": "Hello there!"}, {"role": "assistant", "content": "Hi. How can I help?"}],
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "2+2?"},
     {"role": "assistant", "content": "4"}, {"role": "user", "content": "and 3*3 ?\n  (show work)"},
     {"role": "assistant", "content": "9, since 3+3+3 = 9."}],
    [{"role": "user", "content": "Weather in Paris?"},
     {"role": "assistant", "content": "", "reasoning_content": "I should call the tool.",
      "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
     {"role": "tool", "content": "{\"temp_c\": 12, \"sky\": \"cloudy\"}"},
     {"role": "assistant", "content": "12 °C and cloudy.", "reasoning_content": "Report it plainly."}],
    [{"role": "system", "content": "Use tools when useful."}, {"role": "user", "content": "Two cities: Lyon, Nice"},
     {"role": "assistant", "content": "Checking both.", "tool_calls": [
         {"type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Lyon\"}"}},
         {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Nice", "unit": "C"}}}]},
     {"role": "tool", "content": "9"}, {"role": "tool", "content": "15"},
     {"role": "assistant", "content": "Lyon 9, Nice 15."}],
    [{"role": "user", "content": "Émile Littré écrivit un dictionnaire — 日本語も。"},
     {"role": "assistant", "content": "Oui.\n\n```python\nprint('ok')\n```"}],
]


def test_special_ids_and_roundtrip(small_tokenizer: tuple[Tokenizer, Path]) -> None:
    tok, _ = small_tokenizer
    assert list(tok.special.as_dict()) == list(SPECIAL_TOKENS)
    assert tok.special.pad == 0 and tok.special.bos == 1 and tok.special.eos == 2
    assert tok.token_id("<|assistant|>") == tok.special.assistant
    text = "def f(x):\n    return x ** 2  # 12345 café\n"
    ids = tok.encode(text, bos=True, eos=True)
    assert ids[0] == tok.special.bos and ids[-1] == tok.special.eos
    assert tok.decode(ids[1:-1]) == text
    assert tok.encode_batch([text, "b"]) == [tok.encode(text), tok.encode("b")]
    # digits are split in runs of at most two
    assert all(len(tok.decode([i]).strip()) <= 2 for i in tok.encode("1234567"))


def test_special_strings_in_text_stay_text(small_tokenizer: tuple[Tokenizer, Path]) -> None:
    tok, _ = small_tokenizer
    ids = tok.encode("before <|end|> after <|bos|>")
    assert not set(ids) & tok.special_ids
    assert tok.decode(ids) == "before <|end|> after <|bos|>"


def test_saved_dir_loads_in_transformers(small_tokenizer: tuple[Tokenizer, Path]) -> None:
    tok, d = small_tokenizer
    cfg = json.loads((d / "tokenizer_config.json").read_text())
    assert cfg["chat_template"] == CHAT_TEMPLATE == (d / "chat_template.jinja").read_text()
    assert cfg["tokenizer_class"] == "PreTrainedTokenizerFast"
    hf = AutoTokenizer.from_pretrained(d)
    assert (hf.bos_token_id, hf.eos_token_id, hf.pad_token_id) == (tok.special.bos, tok.special.eos, tok.special.pad)
    text = "Plain text, no specials: 42 apples."
    assert hf.encode(text, add_special_tokens=False) == tok.encode(text)
    # a plain prompt starts with <|bos|>, as every training document did (transformers' and vLLM's completions)
    assert cfg["add_bos_token"] is True and hf.encode(text) == tok.encode(text, bos=True) == hf(text).input_ids
    assert hf.decode(tok.encode(text)) == text
    assert len(hf) == tok.vocab_size
    assert Tokenizer.load(d).sha256 == tok.sha256


def test_a_tokenizer_transformers_saved_again_keeps_its_hash(small_tokenizer: tuple[Tokenizer, Path],
                                                               tmp_path: Path) -> None:
    """transformers rewrites tokenizer.json's post-processor when it saves (TRL does at every checkpoint): a tokenizer
    trained before fronde added <|bos|> there came back with another hash, and its model "tokenized with another
    tokenizer" than its own data. The hash leaves the post-processor out, so the one fronde adds changes nothing."""
    tok, d = small_tokenizer
    old = Tokenizer.from_str(tok._file_json())
    old.hf.post_processor = None  # as fronde trained them before 2026-12-07
    old.save(tmp_path / "old")
    assert not old.adds_bos and old.sha256 == tok.sha256
    for src in (tmp_path / "old", d):
        AutoTokenizer.from_pretrained(src).save_pretrained(tmp_path / f"{src.name}-again")
        again = Tokenizer.load(tmp_path / f"{src.name}-again")
        assert again.sha256 == tok.sha256 and again.encode("x = 1  # é") == tok.encode("x = 1  # é")
    rewritten = json.loads((tmp_path / "old-again" / "tokenizer.json").read_text())["post_processor"]
    assert rewritten is not None  # what transformers wrote: the hash above did not see it
    assert AutoTokenizer.from_pretrained(tmp_path / f"{d.name}-again")("x").input_ids[0] == tok.special.bos


def test_text_typed_decomposed_gets_the_ids_of_the_composed_text_it_trained_on(
        small_tokenizer: tuple[Tokenizer, Path]) -> None:
    """e + a combining accent (macOS file names, some Vietnamese keyboards, PDFs) -> the ids of the NFC text the
    corpus was cleaned into, in fronde, in transformers (the normaliser is in tokenizer.json) and in a chat."""
    tok, d = small_tokenizer
    composed = "Émile Littré écrivit « café » ; Tiếng Việt có dấu."
    decomposed = unicodedata.normalize("NFD", composed)
    assert decomposed != composed
    assert tok.encode(decomposed) == tok.encode(composed)
    assert tok.decode(tok.encode(decomposed)) == composed
    assert AutoTokenizer.from_pretrained(d).encode(decomposed, add_special_tokens=False) == tok.encode(composed)

    def chat(text: str) -> list[int]:
        return render_chat(tok, [{"role": "user", "content": text}], add_generation_prompt=True)[0]

    assert chat(decomposed) == chat(composed)
    # the data pipeline's copy skips the normaliser, for text its cleaning already put in NFC: same ids there
    plain = tok.for_clean_text()
    assert plain.hf.normalizer is None and tok.hf.normalizer is not None
    assert plain.encode(composed) == tok.encode(composed) and plain.encode(decomposed) != tok.encode(composed)
    assert plain.for_clean_text() is plain


@pytest.mark.parametrize("i", range(len(CHATS)))
@pytest.mark.parametrize("gen", [False, True])
def test_chat_ids_match_transformers(small_tokenizer: tuple[Tokenizer, Path], i: int, gen: bool) -> None:
    tok, d = small_tokenizer
    hf = AutoTokenizer.from_pretrained(d)
    msgs = normalize_messages(CHATS[i])
    tools = TOOLS if i in (2, 3) else None
    ids, mask = render_chat(tok, msgs, tools=tools, add_generation_prompt=gen)
    text = hf.apply_chat_template(msgs, tools=tools, add_generation_prompt=gen, tokenize=False)
    assert text == render_chat_text(msgs, tools, gen)
    enc = hf.apply_chat_template(msgs, tools=tools, add_generation_prompt=gen, tokenize=True, return_dict=True,
                                 return_assistant_tokens_mask=True)
    assert list(enc["input_ids"]) == ids
    assert list(enc["assistant_masks"]) == mask
    assert ids[0] == tok.special.bos and len(ids) == len(mask)
    if gen:
        assert ids[-1] == tok.special.assistant and mask[-1] == 0


def test_transformers_parses_every_assistant_turn_back_into_its_message(small_tokenizer: tuple[Tokenizer, Path]
                                                                         ) -> None:
    """tokenizer_config.json's `response_template`: transformers' `parse_response` (its text-generation pipeline,
    `transformers serve` and TRL's GRPOTrainer use it) reads each rendered assistant turn back as the message it
    came from: reasoning, answer and tool calls apart, no markers left in the text."""
    tok, d = small_tokenizer
    hf = AutoTokenizer.from_pretrained(d)
    turns = 0
    for chat in CHATS:
        for i, message in enumerate(chat):
            if message["role"] != "assistant":
                continue
            prompt, _ = render_chat(tok, chat[:i], add_generation_prompt=True)
            full, _ = render_chat(tok, chat[:i + 1])
            assert full[:len(prompt)] == prompt
            expected = {"role": "assistant", **({"thinking": message["reasoning_content"]}
                                                if message.get("reasoning_content") else {}),
                        **({"content": message["content"]} if message.get("content") else {})}
            if message.get("tool_calls"):
                expected["tool_calls"] = [
                    {"type": "function", "function": {"name": c["function"]["name"], "arguments": (
                        json.loads(a) if isinstance(a := c["function"]["arguments"], str) else a)}}
                    for c in message["tool_calls"]]
            assert hf.parse_response(full[len(prompt):], prefix=prompt) == expected
            turns += 1
    assert turns == 8


def test_the_response_template_is_one_vllm_and_sglang_serve() -> None:
    """vLLM 0.34's `--reasoning-parser hf --tool-call-parser hf` (and SGLang 0.5.23's `response_template` parsers)
    read tokenizer_config.json's response template and refuse a field other than thinking/content/tool_calls, or a
    text field with a transform (checked against both with scripts/runtime_parser_check.py: every assistant turn of
    CHATS parses back)."""
    fields = RESPONSE_TEMPLATE["fields"]
    assert set(fields) == {"thinking", "content", "tool_calls"}
    assert all(fields[f]["content"] == "text" and "transform" not in fields[f] for f in ("thinking", "content"))


def test_a_reasoning_given_as_thinking_is_rendered_by_the_template_itself() -> None:
    """What the response template parses a reply into (`thinking`) is what the chat template reads back, without
    transformers' aliasing (5.22 and later): TRL's multi-turn rollouts render parsed turns again."""
    from transformers.utils.chat_template_utils import _compile_jinja_template

    chat = [{"role": "user", "content": "6 x 7?"}, {"role": "assistant", "thinking": "6 x 7", "content": "42"}]
    text = _compile_jinja_template(CHAT_TEMPLATE).render(messages=chat, add_generation_prompt=False)
    assert text == render_chat_text(normalize_messages(chat), None, False)
    assert "<|think|>6 x 7<|/think|><|answer|>42<|/answer|>" in text


def test_rendering_many_chats_at_once_equals_one_at_a_time(small_tokenizer: tuple[Tokenizer, Path]) -> None:
    tok, _ = small_tokenizer
    chats = [(normalize_messages(c), TOOLS if i in (2, 3) else None) for i, c in enumerate(CHATS * 3)]
    assert render_chats(tok, chats) == [render_chat(tok, m, tools=t) for m, t in chats]


def test_assistant_mask_covers_exactly_assistant_output(small_tokenizer: tuple[Tokenizer, Path]) -> None:
    tok, _ = small_tokenizer
    ids, mask = render_chat(tok, CHATS[2], tools=TOOLS)
    trained = tok.decode([t for t, m in zip(ids, mask) if m])
    assert trained == ("<|think|>I should call the tool.<|/think|><|tool_call|>{\"name\": \"get_weather\", "
                       "\"arguments\": {\"city\": \"Paris\"}}<|/tool_call|><|end|>"
                       "<|think|>Report it plainly.<|/think|><|answer|>12 °C and cloudy.<|/answer|><|end|>")
    assert "Weather in Paris?" in tok.decode([t for t, m in zip(ids, mask) if not m])


def test_normalize_messages_rejects_bad_chats() -> None:
    with pytest.raises(ValueError, match="role"):
        normalize_messages([{"role": "robot", "content": "x"}])
    with pytest.raises(ValueError, match="non-empty list"):
        normalize_messages([])
    with pytest.raises(ValueError, match="function name"):
        normalize_messages([{"role": "assistant", "content": "", "tool_calls": [{"function": {}}]}])
    assert normalize_messages([{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text",
                                                                                         "text": "b"}]}]) == \
        [{"role": "user", "content": "ab"}]


def test_vocab_too_small() -> None:
    with pytest.raises(DataError, match="too small"):
        train_tokenizer(iter(["x"]), 100)


def test_a_tokenizer_file_cut_short_is_one_error_naming_it(small_tokenizer: tuple[Tokenizer, Path],
                                                          tmp_path: Path) -> None:
    _, d = small_tokenizer
    text = (d / "tokenizer.json").read_text(encoding="utf-8")
    (tmp_path / "tokenizer.json").write_text(text[: len(text) // 2], encoding="utf-8")  # a copy cut short
    with pytest.raises(DataError, match=f"{tmp_path / 'tokenizer.json'}: not a tokenizer .*copy it again"):
        Tokenizer.load(tmp_path)


def test_another_models_tokenizer_is_named_with_what_fronde_can_do_with_it(tmp_path: Path) -> None:
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import models, pre_tokenizers, trainers

    foreign = HFTokenizer(models.BPE())
    foreign.pre_tokenizer = pre_tokenizers.ByteLevel()
    foreign.train_from_iterator(["hello world"] * 50, trainers.BpeTrainer(vocab_size=300, special_tokens=["<s>"]))
    foreign.save(str(tmp_path / "tokenizer.json"))
    with pytest.raises(DataError, match=f"{tmp_path / 'tokenizer.json'}: no special token .*fronde eval"):
        Tokenizer.load(tmp_path)
