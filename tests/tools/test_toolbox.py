"""The Toolbox never raises for what a model or a tool does: every failure is an "error: ..." result."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any, Optional

import pytest

from fronde.tools import Tool, Toolbox, ToolCallError, ToolError, ToolTimeout, tool


@tool(isolate=False)
def add(a: int, b: int = 2) -> int:
    """Add two integers."""
    return a + b


@tool
def add_isolated(a: int) -> int:
    return a + 1


@tool(isolate=False)
def nothing() -> None:
    return None


def test_listing() -> None:
    box = Toolbox([add, nothing])
    assert box.names == ["add", "nothing"] and len(box) == 2 and box.get("add") is add and box.get("x") is None
    assert [s["function"]["name"] for s in box.schemas()] == ["add", "nothing"]
    assert all(s["type"] == "function" for s in box.schemas())


def test_bad_toolboxes() -> None:
    with pytest.raises(ToolError, match="two tools are named 'add'"):
        Toolbox([add, add])
    with pytest.raises(ToolError, match="not a Tool"):
        Toolbox([print])  # type: ignore[list-item]
    with pytest.raises(ToolError, match="not a valid JSON schema"):
        Toolbox([Tool("t", "", {"type": "object", "properties": {"a": {"type": "no-such-type"}}}, print)])


def test_good_calls() -> None:
    box = Toolbox([add, add_isolated, nothing])
    for arguments in ['{"a": 1, "b": 5}', {"a": 1, "b": 5}]:
        r = box.call("add", arguments)
        assert r.ok and r.content == "6" and r.error is None and r.name == "add" and r.seconds >= 0
    assert box.call("add_isolated", '{"a": 41}').content == "42"
    for empty in ["", "  ", None, "{}"]:
        r = box.call("nothing", empty)
        assert r.ok and r.content == ""


@pytest.mark.parametrize("name, arguments, error, content", [
    ("foo", "{}", "unknown_tool", "error: unknown tool 'foo'; available: add, nothing"),
    ("add", '{"a": 1', "bad_arguments", "error: arguments are not valid JSON (Expecting ',' delimiter"),
    ("add", "a=1", "bad_arguments", "error: arguments are not valid JSON (Expecting value"),
    ("add", "[1, 2]", "bad_arguments", "error: arguments must be a JSON object, got list [1, 2]"),
    ("add", '"1"', "bad_arguments", "error: arguments must be a JSON object, got str"),
    ("add", "{}", "bad_arguments", "error: missing required argument 'a'"),
    ("add", '{"a": "1"}', "bad_arguments", "error: argument 'a': '1' is not of type 'integer'"),
    ("add", '{"a": true}', "bad_arguments", "error: argument 'a': True is not of type 'integer'"),
    ("add", '{"a": 1, "c": 3}', "bad_arguments", "error: unexpected argument 'c'; 'add' takes: a, b"),
    ("add", '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}", "bad_arguments", "error: arguments are nested too deeply"),
    (None, "{}", "unknown_tool", "error: unknown tool None; available: add, nothing"),
])
def test_error_paths(name: Any, arguments: str, error: str, content: str) -> None:
    r = Toolbox([add, nothing]).call(name, arguments)
    assert not r.ok and r.error == error and r.content.startswith(content), r.content


def test_raising_tools() -> None:
    @tool(isolate=False)
    def boom(x: str) -> str:
        raise RuntimeError(f"cannot handle {x}")

    @tool
    def boom_isolated(x: str) -> str:
        raise KeyError(x)

    @tool(isolate=False)
    def refuse() -> str:
        raise ToolCallError("that file is not in the folder")

    @tool(isolate=False)
    def exits() -> str:
        raise SystemExit(3)

    @tool
    def dies() -> str:
        os._exit(7)

    box = Toolbox([boom, boom_isolated, refuse, exits, dies])
    r = box.call("boom", {"x": "this"})
    assert not r.ok and r.error == "error" and r.content == "error: RuntimeError: cannot handle this"
    r = box.call("boom_isolated", {"x": "k"})
    assert r.error == "error" and r.content == "error: KeyError: 'k'" and "Traceback" not in r.content
    assert box.call("refuse", {}).content == "error: that file is not in the folder"
    assert box.call("exits", {}).content == "error: SystemExit: 3"
    r = box.call("dies", {})
    assert not r.ok and r.error == "error" and "stopped without a result (exit code 7)" in r.content


def test_hanging_tool_is_killed_quickly() -> None:
    @tool(timeout_s=1)
    def hang(seconds: float) -> str:
        time.sleep(seconds)
        return "woke up"

    box = Toolbox([hang])
    start = time.monotonic()
    r = box.call("hang", {"seconds": 100})
    assert time.monotonic() - start < 6  # the limit plus slack for a busy machine
    assert not r.ok and r.error == "timeout"
    assert r.content == "error: tool 'hang' timed out after 1.0 s and was killed"
    assert box.call("hang", {"seconds": 0}).content == "woke up"


def test_timeout_kills_what_the_tool_started(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"

    @tool(timeout_s=1)
    def spawner() -> str:
        proc = subprocess.Popen(["sleep", "100"])
        pid_file.write_text(str(proc.pid))
        time.sleep(100)
        return ""

    assert Toolbox([spawner]).call("spawner", {}).error == "timeout"
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)
    assert not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_self_timed_tool_reports_a_timeout() -> None:
    @tool(isolate=False)
    def slow() -> str:
        raise ToolTimeout("the program timed out after 2.0 s and was killed")

    r = Toolbox([slow]).call("slow", {})
    assert r.error == "timeout" and r.content == "error: the program timed out after 2.0 s and was killed"


@pytest.mark.parametrize("isolate", [False, True])
def test_results_become_text(isolate: bool) -> None:
    values: dict[str, Any] = {"dict": {"a": 1, "é": [1.5, None]}, "list": [1, "x"], "none": None, "int": 3,
                              "float": 0.5, "bool": True, "path": Path("a/b"), "str": "plain"}

    @tool(isolate=isolate)
    def give(kind: str) -> Any:
        return values[kind]

    box = Toolbox([give])
    got = {k: box.call("give", {"kind": k}).content for k in values}
    assert got == {"dict": '{"a": 1, "é": [1.5, null]}', "list": '[1, "x"]', "none": "", "int": "3",
                   "float": "0.5", "bool": "true", "path": '"a/b"', "str": "plain"}
    assert json.loads(got["dict"]) == values["dict"]


@pytest.mark.parametrize("isolate", [False, True])
def test_long_results_are_truncated(isolate: bool) -> None:
    @tool(isolate=isolate)
    def long(n: int) -> str:
        return "a" * n

    box = Toolbox([long], max_chars=100)
    r = box.call("long", {"n": 10_000})
    assert r.ok and r.truncated and r.error is None
    assert r.content.startswith("a" * 100 + "\n[truncated: the result has 10000 characters, only the first 100")
    assert len(r.content) < 200
    assert not box.call("long", {"n": 100}).truncated


def test_optional_parameters_default_to_none() -> None:
    @tool(isolate=False)
    def greet(name: Optional[str]) -> str:  # noqa: UP045
        return f"hello {name}"

    box = Toolbox([greet])
    assert box.call("greet", {}).content == "hello None"
    assert box.call("greet", {"name": None}).content == "hello None"
    assert box.call("greet", {"name": "Ada"}).content == "hello Ada"


def test_isolated_overhead_is_small() -> None:
    box = Toolbox([add_isolated])
    box.call("add_isolated", {"a": 0})
    start = time.monotonic()
    for i in range(5):
        assert box.call("add_isolated", {"a": i}).content == str(i + 1)
    assert (time.monotonic() - start) / 5 < 0.5  # ~20 ms measured on 2 busy cores; loose for CI
