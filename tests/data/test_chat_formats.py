"""Chat files in the formats teams have them (OpenAI messages, ShareGPT, TRL prompt-completion, Alpaca; JSONL,
JSON, Parquet, gzip) become the same conversations; a bad row stops with its file, row and what is wrong."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fronde.data.chat_formats import row_chat
from fronde.data.errors import DataError
from fronde.train.distill import read_prompts
from fronde.train.sft_data import read_chat_file

WANT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris."}]
ROWS = {
    "messages": {"messages": WANT},
    "sharegpt": {"system": "Be brief.", "conversations": [{"from": "human", "value": "Capital of France?"},
                                                          {"from": "gpt", "value": "Paris."}]},
    "prompt-completion": {"prompt": [WANT[0], WANT[1]], "completion": [WANT[2]]},
    "alpaca": {"system": "Be brief.", "instruction": "Capital of France?", "input": "", "output": "Paris."},
}


@pytest.mark.parametrize("fmt", list(ROWS))
def test_every_format_is_the_same_conversation(fmt):
    messages, tools, got = row_chat(ROWS[fmt])
    assert (messages, tools, got) == (WANT, None, fmt)


def test_text_prompt_completion_alpaca_input_and_sharegpt_tool_calls():
    assert row_chat({"prompt": "2 + 2?", "completion": "4"})[0] == [
        {"role": "user", "content": "2 + 2?"}, {"role": "assistant", "content": "4"}]
    assert row_chat({"instruction": "Translate to French.", "input": "cat", "output": "chat"})[0][0] == {
        "role": "user", "content": "Translate to French.\n\ncat"}
    tools = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]
    messages, got_tools, _ = row_chat({"tools": json.dumps(tools), "conversations": [
        {"from": "human", "value": "Weather in Paris?"},
        {"from": "function_call", "value": json.dumps({"name": "weather", "arguments": {"city": "Paris"}})},
        {"from": "observation", "value": "18 C"},
        {"from": "gpt", "value": "18 degrees."}]})
    assert got_tools == tools
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant"]
    assert messages[1]["tool_calls"] == [{"type": "function",
                                          "function": {"name": "weather", "arguments": {"city": "Paris"}}}]


@pytest.mark.parametrize("row, match", [
    ({"text": "just text"}, "no chat format.*fronde data prepare"),
    ({"conversations": [{"from": "narrator", "value": "x"}]}, r"conversations\[0\] is from 'narrator'"),
    ({"prompt": "q", "completion": 3}, "`completion` must be text"),
    ({"instruction": "q"}, "`output` must be text"),
    ({"messages": [{"role": "user", "content": "q"}]}, "no assistant message"),
    ([1, 2], "a JSON object, not list"),
])
def test_bad_rows_say_what_is_wrong(row, match):
    with pytest.raises(ValueError, match=match):
        row_chat(row)


def test_files_of_every_kind_and_the_row_that_is_wrong(tmp_path: Path):
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps(ROWS[f]) for f in ROWS) + "\n\n")
    (tmp_path / "b.json").write_text(json.dumps([ROWS["alpaca"], ROWS["sharegpt"]]))
    with gzip.open(tmp_path / "c.jsonl.gz", "wt") as f:
        f.write(json.dumps(ROWS["messages"]) + "\n")
    pq.write_table(pa.Table.from_pylist([ROWS["messages"], ROWS["messages"]]), tmp_path / "d.parquet")
    formats: Counter[str] = Counter()
    convs = [c for name in ("a.jsonl", "b.json", "c.jsonl.gz", "d.parquet")
             for c in read_chat_file(tmp_path / name, formats=formats)]
    assert all(c.messages == WANT for c in convs) and len(convs) == 9
    assert formats == Counter({"messages": 4, "alpaca": 2, "sharegpt": 2, "prompt-completion": 1})
    assert [c.source for c in convs[:2]] == ["a.jsonl:1", "a.jsonl:2"] and convs[-1].source == "d.parquet row 2"
    (tmp_path / "bad.json").write_text(json.dumps([ROWS["alpaca"], {"instruction": "q", "output": None}]))
    with pytest.raises(DataError, match=r"bad\.json row 2: `output` must be text"):
        read_chat_file(tmp_path / "bad.json")
    (tmp_path / "bad.jsonl").write_text(json.dumps(ROWS["alpaca"]) + "\n{oops\n")
    with pytest.raises(DataError, match=r"bad\.jsonl:2: not valid JSON"):
        read_chat_file(tmp_path / "bad.jsonl")
    with pytest.raises(DataError, match="no such chat file"):
        read_chat_file(tmp_path / "missing.jsonl")


def test_alpaca_history_is_the_earlier_rounds():
    """LLaMA-Factory's multi-turn Alpaca rows carry earlier rounds in `history`; they were dropped without a word."""
    messages, _, fmt = row_chat({"instruction": "And 3 + 3?", "output": "6", "system": "Be brief.",
                                 "history": [["What is 1 + 1?", "2"], ["And 2 + 2?", "4"]]})
    assert fmt == "alpaca" and [(m["role"], m["content"]) for m in messages] == [
        ("system", "Be brief."), ("user", "What is 1 + 1?"), ("assistant", "2"), ("user", "And 2 + 2?"),
        ("assistant", "4"), ("user", "And 3 + 3?"), ("assistant", "6")]
    assert row_chat({"instruction": "q", "output": "a", "history": []})[0] == row_chat({"instruction": "q",
                                                                                        "output": "a"})[0]
    for bad in ("q a", [["q"]], [["q", 2]], [("q", "a", "b")]):
        with pytest.raises(ValueError, match="`history` must be a list of \\[instruction, response\\] pairs"):
            row_chat({"instruction": "q", "output": "a", "history": bad})


def test_openai_legacy_function_calling_rows_are_tool_calls():
    """Fine-tuning files from before OpenAI's tools: `functions`, an assistant `function_call`, a `function` role.
    The call was dropped (an empty reply trained) and the role refused."""
    fn = {"name": "weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}
    messages, tools, _ = row_chat({"functions": [fn], "messages": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "function_call": {"name": "weather", "arguments": '{"city": "Paris"}'}},
        {"role": "function", "name": "weather", "content": "18 C"},
        {"role": "assistant", "content": "18 degrees."}]})
    assert tools == [{"type": "function", "function": fn}]
    assert messages[1]["tool_calls"] == [{"type": "function",
                                          "function": {"name": "weather", "arguments": '{"city": "Paris"}'}}]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant"]


def test_sharegpt_turn_weights_as_slimorca_and_axolotl_write_them():
    turns = [{"from": "system", "value": "Be brief.", "weight": None}, {"from": "human", "value": "Hi", "weight": 0.0},
             {"from": "gpt", "value": "Old", "weight": 0.0}, {"from": "human", "value": "Again", "weight": 0},
             {"from": "gpt", "value": "New", "weight": 1.0}]
    messages, _, _ = row_chat({"conversations": turns})
    assert [m.get("weight") for m in messages] == [None, None, 0, None, None]
    for bad, match in (((1, 1.0), "weight 1 on a user turn"), ((2, 0.5), r"weight must be 0 or 1, not 0\.5")):
        rows = [dict(t) for t in turns]
        rows[bad[0]]["weight"] = bad[1]
        with pytest.raises(ValueError, match=match):
            row_chat({"conversations": rows})


def test_openai_weight_zero_keeps_a_reply_as_context_out_of_the_loss(tmp_path: Path, small_tokenizer):
    """OpenAI's fine-tuning format marks replies not to learn from with "weight": 0; they were trained on."""
    from fronde.data.chat import render_chat
    from fronde.train.sft_data import encode

    tok, _ = small_tokenizer
    turns = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Bad old reply", "weight": 0},
             {"role": "user", "content": "Again"}, {"role": "assistant", "content": "Good reply", "weight": 1}]
    (tmp_path / "ft.jsonl").write_text(json.dumps({"messages": turns}) + "\n")
    [conv] = read_chat_file(tmp_path / "ft.jsonl")
    ids, targets = encode(tok, conv)
    plain = [{k: v for k, v in m.items() if k != "weight"} for m in turns]
    assert ids == render_chat(tok, plain)[0]  # the same text: the reply stays in the context
    trained = tok.decode([t for t in targets if t >= 0], skip_special_tokens=False)
    assert trained == "Good reply<|end|>"
    for bad, where in ((2, "assistant"), ("0", "assistant"), (0.0, "assistant"), (0, "user")):
        rows = [dict(m) for m in plain]
        rows[1 if where == "assistant" else 0]["weight"] = bad
        with pytest.raises(ValueError, match="weight must be 0 or 1, on an assistant message"):
            row_chat({"messages": rows})


def test_distillation_prompts_need_no_answer(tmp_path: Path):
    path = tmp_path / "prompts.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in (
        {"prompt": "Capital of France?"}, {"instruction": "Capital of France?"}, ROWS["sharegpt"],
        {"prompt": [WANT[1]]})) + "\n")
    items = read_prompts(path)
    assert [it.messages[-1] for it in items] == [WANT[1]] * 4
    assert items[2].messages == WANT[:2]  # the answer in the file is dropped: the teacher writes its own
