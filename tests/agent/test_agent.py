"""`fronde agent`: the loop on a tiny real model trained to use the calculator, run from a model dir and through
`fronde serve` with the same result; and every kind of bad input ending in an error result, never a crash."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch
from typer.testing import CliRunner

from fronde.agent import BackendTurn, LocalBackend, open_backend, run_agent
from fronde.cli.main import app
from fronde.data.tokenizer import train_tokenizer
from fronde.model.checkpoint import save_pretrained
from fronde.serve.app import ServerConfig
from fronde.tools import Toolbox, load_tools, tool
from tests.model.helpers import memorise_chats
from tests.serve.test_server import _start

TASK = "What is 17 * 23?"
CALL = {"type": "function", "function": {"name": "calculator", "arguments": {"expression": "17 * 23"}}}
SOLVED = [{"role": "user", "content": TASK},
          {"role": "assistant", "content": "", "tool_calls": [CALL]},
          {"role": "tool", "content": "391"},
          {"role": "assistant", "reasoning_content": "17 * 23 = 391", "content": "391"}]


@pytest.fixture(scope="module")
def calc_model(tmp_path_factory):
    """A tiny model that has memorised one calculator round trip: call, read the result, answer."""
    d = tmp_path_factory.mktemp("agent") / "calc-model"
    schemas = Toolbox(load_tools(["calculator"])).schemas()
    tok = train_tokenizer([json.dumps(schemas), TASK, "17 * 23 = 391"] * 200, vocab_size=700)
    tok.save(d)
    torch.manual_seed(0)
    save_pretrained(memorise_chats(tok, [SOLVED], tools=schemas, steps=200), d)
    return d


def test_the_loop_on_a_local_model(calc_model):
    events = []
    result = run_agent(LocalBackend(calc_model), TASK, Toolbox(load_tools(["calculator"])), on_event=events.append)
    assert result.stop == "answer" and result.answer == "391", result.messages
    assert result.steps == 2 and result.tool_calls == 1 and result.tool_errors == 0
    kinds = [e.kind for e in events]
    assert kinds.index("tool_call") < kinds.index("tool_result") < len(kinds) - 1
    assert [m["role"] for m in result.messages] == ["user", "assistant", "tool", "assistant"]
    assert result.messages[2]["content"] == "391" and result.messages[2]["tool_call_id"].startswith("call_")
    # guessing from the context (the answer repeats the tool's result): the same episode
    guessing = LocalBackend(calc_model, speculative_tokens=4)
    again = run_agent(guessing, TASK, Toolbox(load_tools(["calculator"])))
    def turns(r):  # the messages without the random call ids
        return [(m["role"], m.get("content"), [c["function"] for c in m.get("tool_calls") or []]) for m in r.messages]

    assert turns(again) == turns(result) and guessing.engine.drafted_tokens > 0


def test_fronde_agent_cli_on_a_model_dir_and_through_fronde_serve(calc_model, tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["agent", str(calc_model), TASK, "--tool", "calculator",
                              "--transcript", str(tmp_path / "t.json")])
    assert res.exit_code == 0, res.output
    assert "→ calculator" in res.output and "391" in res.output.splitlines()[-1]
    local = json.loads((tmp_path / "t.json").read_text())
    url, _, srv, thread = _start(ServerConfig(calc_model))
    try:
        res = runner.invoke(app, ["agent", url, TASK, "--transcript", str(tmp_path / "served.json")])
        assert res.exit_code == 0, res.output
        served = json.loads((tmp_path / "served.json").read_text())
        strip = lambda msgs: [{k: v for k, v in m.items() if k not in ("tool_call_id", "tool_calls")} for m in msgs]
        assert strip(served) == strip(local)  # reasoning included: fronde serve streams reasoning_content
        assert served[1]["tool_calls"][0]["function"] == {"name": "calculator", "arguments": '{"expression": "17 * 23"}'}
        backend = open_backend(url + "/v1")
        assert backend.name == "calc-model"
    finally:
        srv.should_exit = True
        thread.join(timeout=10)


class Scripted:
    """A backend that plays fixed turns, to drive the loop through each kind of bad input."""

    name = "scripted"

    def __init__(self, *turns: BackendTurn) -> None:
        self.turns, self.seen = list(turns), []

    def complete(self, messages, tools, emit):
        self.seen.append([dict(m) for m in messages])
        return self.turns[min(len(self.seen) - 1, len(self.turns) - 1)]


def call(name: str, arguments: str, error: str | None = None) -> BackendTurn:
    entry = {"id": f"call_{name}", "type": "function", "function": {"name": name, "arguments": arguments}}
    return BackendTurn(None, tool_calls=[entry | ({"error": error} if error else {})], finish_reason="tool_calls")


ANSWER = BackendTurn("42")


@pytest.mark.parametrize("turn, error", [
    (call("calculator", '{"expression": "6 *', "the tool call is not valid JSON"), "not valid JSON"),
    (call("calculator", '{"expression": "6 *'), "not valid JSON"),  # via an endpoint: raw arguments
    (call("search_web", '{"q": "x"}'), "unknown tool"),
    (call("calculator", '{"expression": "__import__(\'os\')"}'), "error"),
])
def test_bad_calls_return_to_the_model_as_errors(turn, error):
    backend = Scripted(turn, ANSWER)
    result = run_agent(backend, "6 * 7?", Toolbox(load_tools(["calculator"])))
    assert result.stop == "answer" and result.answer == "42" and result.tool_errors == 1
    tool_msg = backend.seen[1][-1]
    assert tool_msg["role"] == "tool" and tool_msg["content"].startswith("error:") and error in tool_msg["content"]


def test_a_hanging_tool_is_killed_and_the_step_limit_ends_the_loop():
    @tool(timeout_s=1.0)
    def slow(seconds: int) -> str:
        """Sleeps."""
        time.sleep(seconds)
        return "woke"

    backend = Scripted(call("slow", '{"seconds": 60}'))
    start = time.perf_counter()
    result = run_agent(backend, "wait", Toolbox([slow]), max_steps=3)
    assert time.perf_counter() - start < 20  # three kills at 1 s, not three minutes
    assert result.stop == "max_steps" and result.answer is None and result.steps == 3
    assert result.tool_calls == 3 and result.tool_errors == 3
    assert "timed out" in backend.seen[1][-1]["content"]


def test_cli_errors_are_clear():
    runner = CliRunner()
    res = runner.invoke(app, ["agent", "no/such/dir", "hi"])
    assert res.exit_code == 2 and "neither a model dir" in res.output
    res = runner.invoke(app, ["agent", "no/such/dir", "hi", "--tool", "nope.py:f"])
    assert res.exit_code == 2 and "nope.py" in res.output


def test_fronde_eval_with_and_without_the_calculator(calc_model, tmp_path):
    task = tmp_path / "mult.jsonl"
    task.write_text(json.dumps({"prompt": TASK, "answer": "391", "verifier": "numeric", "split": "test"}) + "\n")
    out = tmp_path / "results"
    runner = CliRunner()
    res = runner.invoke(app, ["eval", str(calc_model), "-t", str(task), "--tool", "calculator", "--out", str(out),
                              "--max-new-tokens", "48"])
    assert res.exit_code == 0, res.output
    (path,) = out.rglob("*-calculator.json")  # OUT/<model>/<task slug>.json
    result = json.loads(path.read_text())
    assert result["task"] == f"{task}+calculator" and result["settings"]["tools"] == ["calculator"]
    assert result["metrics"]["accuracy"] == 100.0 and result["metrics"]["tool_calls_per_problem"] == 1.0
    assert result["examples"][0]["tools"][0]["transcript"][0]["result"] == "391"
    res = runner.invoke(app, ["eval", str(calc_model), "-t", str(task), "--out", str(out), "--max-new-tokens", "48"])
    assert res.exit_code == 0, res.output
    (path,) = out.rglob("*mult.jsonl.json")
    plain = json.loads(path.read_text())
    assert "tool_calls_per_problem" not in plain["metrics"]  # without tools: no tools in the prompt, none run
    res = runner.invoke(app, ["eval", str(calc_model), "-t", str(task), "--tool", "search_files"])
    assert res.exit_code == 2 and "--root" in res.output


def test_fronde_eval_with_the_calculator_through_a_server(calc_model, tmp_path):
    """`fronde eval URL --tool calculator`: the server (here fronde serve) writes the calls, fronde runs the tool
    between turns and sends the result back; the same score and transcript as the model dir evaluated locally."""
    task = tmp_path / "mult.jsonl"
    task.write_text(json.dumps({"prompt": TASK, "answer": "391", "verifier": "numeric", "split": "test"}) + "\n")
    url, _, srv, thread = _start(ServerConfig(calc_model))
    try:
        res = CliRunner().invoke(app, ["eval", url, "-t", str(task), "--tool", "calculator", "--out",
                                       str(tmp_path / "served"), "--max-new-tokens", "48"])
    finally:
        srv.should_exit = True
        thread.join(timeout=10)
    assert res.exit_code == 0, res.output
    (path,) = (tmp_path / "served").rglob("*-calculator.json")
    result = json.loads(path.read_text())
    assert result["metrics"]["accuracy"] == 100.0 and result["metrics"]["tool_calls_per_problem"] == 1.0
    (episode,) = result["examples"][0]["tools"]
    assert episode["transcript"] == [{"name": "calculator", "arguments": '{"expression": "17 * 23"}', "result": "391"}]
    assert (episode["turns"], episode["stop"]) == (2, "answer")


def test_an_url_where_no_server_answers_says_so_not_to_pass_a_model_name():
    import socket

    from fronde.agent.backends import AgentError

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(AgentError, match=rf"127.0.0.1:{port}/v1: no server answers there .*fronde serve"):
        open_backend(f"http://127.0.0.1:{port}/v1")


@contextmanager
def vllm_like_server(replies: list[list[dict]]) -> Iterator[tuple[str, list[dict]]]:
    """A server streaming vLLM's chat chunks as they are (reasoning as `reasoning`), one reply per request in turn:
    (its /v1 URL, the request bodies it received)."""
    received: list[dict] = []

    def chunk(delta, finish=None):
        return {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    class VLLM(BaseHTTPRequestHandler):
        def do_GET(self):  # /v1/models
            self._send("application/json", json.dumps({"object": "list", "data": [
                {"id": "m", "object": "model", "created": 0, "owned_by": "vllm"}]}).encode())

        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            *deltas, finish = replies[len(received) - 1]
            chunks = [chunk({"role": "assistant", "content": ""})] + [chunk(d) for d in deltas] + [chunk({}, finish)]
            self._send("text/event-stream", b"".join(f"data: {json.dumps(c)}\n\n".encode() for c in chunks)
                       + b"data: [DONE]\n\n")

        def _send(self, kind, body):
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), VLLM)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/v1", received
    finally:
        server.shutdown()


def test_the_reasoning_of_a_vllm_endpoint_reaches_the_transcript():
    """vLLM 0.34 streams a reasoning parser's output as `reasoning` (`reasoning_content` before, and in fronde serve):
    the agent read only the older name and lost the model's reasoning."""
    from fronde.agent.backends import EndpointBackend

    answer = [{"reasoning": "17 * 23"}, {"reasoning": " = 391"}, {"content": "391"}, "stop"]
    with vllm_like_server([answer]) as (url, _):
        events = []
        turn = EndpointBackend(url).complete([{"role": "user", "content": TASK}], None, events.append)
    assert (turn.reasoning, turn.content) == ("17 * 23 = 391", "391")
    assert len(events) == 3


def test_the_reasoning_of_a_turn_that_called_tools_goes_back_with_it():
    """The next request carries the assistant turn with its reasoning and calls, as the model was trained (a tool
    episode keeps its reasoning in context) and as DeepSeek's API requires; dropping it sent a 576-wide memorising
    model served by vLLM off its answer (" the toolr{..." instead of 391)."""
    from fronde.agent.backends import EndpointBackend

    call_turn = [{"reasoning": "Use the tool."},
                 {"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                  "function": {"name": "calculator", "arguments": '{"expression": "17 * 23"}'}}]},
                 "tool_calls"]
    with vllm_like_server([call_turn, [{"content": "391"}, "stop"]]) as (url, received):
        result = run_agent(EndpointBackend(url), TASK, Toolbox(load_tools(["calculator"])))
    assert result.answer == "391" and result.tool_calls == 1
    sent = received[1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool"]
    assert sent[1]["reasoning_content"] == "Use the tool."
    assert sent[1]["tool_calls"][0]["function"] == {"name": "calculator", "arguments": '{"expression": "17 * 23"}'}
    assert sent[2] == {"role": "tool", "tool_call_id": "call_1", "content": "391"}
