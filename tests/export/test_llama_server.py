"""llama.cpp's own OpenAI server (`llama-server -m model.gguf --jinja`) on an exported fronde model, driven by the
official `openai` client: the reasoning comes back apart from the answer and tool calls come back parsed, whole and
streamed, as `fronde serve` returns them; and `fronde agent URL` runs fronde's calculator through it.

llama-server reads no response template: it works out how to parse replies from the chat template in the GGUF
(its "auto-parser" renders the template with and without reasoning, tool calls and arguments and diffs the
outputs). So this is what keeps fronde's chat template readable by llama.cpp (and, through the same GGUF, by the
apps built on it). `bash scripts/install.sh test` builds llama-server once from the llama.cpp that llama-cpp-python
vendors (same version) into ~/.cache/fronde; FRONDE_LLAMA_SERVER or a `llama-server` on PATH are used first.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import torch
from typer.testing import CliRunner

from fronde.cli.main import app
from fronde.data.tokenizer import train_tokenizer
from fronde.export import export_gguf
from fronde.model.checkpoint import save_pretrained
from fronde.tools import Toolbox, load_tools
from fronde.train.upgrade import upgrade_model_dir
from tests.model.helpers import memorise_chats
from tests.servers import free_port, llama_server_binary, running

TOOLS = Toolbox(load_tools(["calculator"])).schemas()  # fronde's own tool, as `fronde agent` offers it
TASK = "What is 17 * 23?"
CALL = {"id": "call_1", "type": "function", "function": {"name": "calculator", "arguments": {"expression": "17 * 23"}}}
MATHS = [{"role": "user", "content": "6 x 7?"},
         {"role": "assistant", "reasoning_content": "6 x 7 = 42", "content": "42"}]
SOLVED = [{"role": "user", "content": TASK},
          {"role": "assistant", "reasoning_content": "Use the tool.", "content": "", "tool_calls": [CALL]},
          {"role": "tool", "tool_call_id": "call_1", "content": "391"},
          {"role": "assistant", "content": "391"}]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """llama-server's /v1 URL, serving the GGUF of a tiny model that memorised both chats (tools offered in both)."""
    binary = llama_server_binary()
    if binary is None:
        pytest.skip("needs llama.cpp's llama-server: `bash scripts/install.sh test` builds it (cmake and a C++ "
                    "compiler), or set FRONDE_LLAMA_SERVER")
    d = tmp_path_factory.mktemp("llama-server")
    tok = train_tokenizer([json.dumps(TOOLS), TASK, "6 x 7 = 42. Use the tool. 17 * 23 = 391"] * 100, vocab_size=600)
    torch.manual_seed(0)
    save_pretrained(memorise_chats(tok, [MATHS, SOLVED], tools=TOOLS), d / "model")
    tok.save(d / "model")
    upgrade_model_dir(d / "model")  # the stop ids and tokenizer config a training stage writes
    gguf = export_gguf(d / "model", d / "model.gguf", dtype="f32").path
    port = free_port()
    cmd = [binary, "-m", str(gguf), "--jinja", "--host", "127.0.0.1", "--port", str(port), "-c", "512",
           "--threads", "1", "--no-webui"]
    with running(cmd, f"http://127.0.0.1:{port}/health", d / "server.log"):
        yield f"http://127.0.0.1:{port}/v1"


@pytest.fixture(scope="module")
def client(server):
    import openai

    return openai.OpenAI(base_url=server, api_key="unused")


def _ask(client, messages: list[dict], stream: bool = False):
    return client.chat.completions.create(model="m", messages=messages, tools=TOOLS, max_tokens=100, temperature=0,
                                          stream=stream)


def _streamed(client, messages: list[dict]) -> tuple[str, str, list[tuple[str, str]]]:
    reasoning = content = ""
    calls: dict[int, list[str]] = {}
    for chunk in _ask(client, messages, stream=True):
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        reasoning += (delta.model_extra or {}).get("reasoning_content") or ""
        content += delta.content or ""
        for call in delta.tool_calls or []:
            name_args = calls.setdefault(call.index, ["", ""])
            name_args[0] += call.function.name or ""
            name_args[1] += call.function.arguments or ""
    return reasoning, content, [(name, args) for name, args in calls.values()]


def test_the_reasoning_comes_back_apart_from_the_answer(client) -> None:
    reply = _ask(client, MATHS[:1]).choices[0]
    assert (reply.message.model_extra or {}).get("reasoning_content") == "6 x 7 = 42", reply
    assert (reply.message.content, reply.finish_reason) == ("42", "stop")
    assert _streamed(client, MATHS[:1]) == ("6 x 7 = 42", "42", [])


def test_tool_calls_come_back_parsed_whole_and_streamed(client) -> None:
    reply = _ask(client, SOLVED[:1]).choices[0]
    assert reply.finish_reason == "tool_calls", reply
    assert [(c.function.name, c.function.arguments) for c in reply.message.tool_calls] == \
        [("calculator", '{"expression": "17 * 23"}')]
    assert (reply.message.model_extra or {}).get("reasoning_content") == "Use the tool."
    assert not reply.message.content
    assert _streamed(client, SOLVED[:1]) == ("Use the tool.", "", [("calculator", '{"expression": "17 * 23"}')])


def test_the_tool_result_goes_back_and_the_model_answers(client) -> None:
    """The client sends the call back as the server gave it (arguments a JSON string) with the tool's result."""
    first = _ask(client, SOLVED[:1]).choices[0].message
    messages = [SOLVED[0], first.model_dump(exclude_none=True),
                {"role": "tool", "tool_call_id": first.tool_calls[0].id, "content": "391"}]
    reply = _ask(client, messages).choices[0]
    assert (reply.message.content, reply.finish_reason, reply.message.tool_calls) == ("391", "stop", None)


def test_fronde_agent_runs_its_tools_through_llama_server(server, tmp_path) -> None:
    """`fronde agent URL`: the model (served by llama.cpp) calls fronde's calculator, reads 391 and answers it."""
    res = CliRunner().invoke(app, ["agent", server, TASK, "--tool", "calculator",
                                   "--transcript", str(tmp_path / "t.json")])
    assert res.exit_code == 0, res.output
    assert "→ calculator" in res.output and res.output.splitlines()[-1].strip().endswith("391"), res.output
    turns = json.loads((tmp_path / "t.json").read_text())
    assert [m["role"] for m in turns] == ["user", "assistant", "tool", "assistant"]
    assert turns[1]["reasoning_content"] == "Use the tool." and turns[2]["content"] == "391"
    assert turns[1]["tool_calls"][0]["function"] == {"name": "calculator", "arguments": '{"expression": "17 * 23"}'}


def test_fronde_eval_scores_the_model_with_its_tool_through_llama_server(server, tmp_path) -> None:
    task = tmp_path / "mult.jsonl"
    task.write_text(json.dumps({"prompt": TASK, "answer": "391", "verifier": "numeric", "split": "test"}) + "\n")
    res = CliRunner().invoke(app, ["eval", server, "-t", str(task), "--tool", "calculator", "--out",
                                   str(tmp_path / "results"), "--max-new-tokens", "100"])
    assert res.exit_code == 0, res.output
    (path,) = (tmp_path / "results").rglob("*-calculator.json")
    result = json.loads(path.read_text())
    assert result["metrics"]["accuracy"] == 100.0 and result["metrics"]["tool_calls_per_problem"] == 1.0
    (episode,) = result["examples"][0]["tools"]
    assert episode["transcript"] == [{"name": "calculator", "arguments": '{"expression": "17 * 23"}', "result": "391"}]
