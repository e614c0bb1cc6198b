"""The Modelfile's Go template, executed by Go's text/template as Ollama does, renders fronde's chat format.

Needs the Go toolchain (Debian: apt-get install golang-go); without it the test skips. The values mirror Ollama's
template data (api.Message with Role/Content/Thinking/ToolCalls, the tools as JSON values) and its `json` function
(json.Marshal: compact, sorted keys, HTML-escaped), so the only expected differences from fronde's renderer are the
ones docs/export.md lists: no leading <|bos|> (the tokenizer adds it) and Go's JSON for tools and call arguments.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from fronde.data.chat import render_chat_text
from fronde.data.tokenizer import SPECIAL_TOKENS
from fronde.export.ollama import GO_TEMPLATE
from tests.export.test_chat_template import CHAT, TOOLS

GO_RENDERER = r"""
package main

import (
	"encoding/json"
	"os"
	"text/template"
)

type Function struct {
	Name      string         `json:"name"`
	Arguments map[string]any `json:"arguments"`
}
type ToolCall struct{ Function Function `json:"function"` }
type Message struct {
	Role      string     `json:"role"`
	Content   string     `json:"content"`
	Thinking  string     `json:"thinking"`
	ToolCalls []ToolCall `json:"tool_calls"`
}
type Values struct {
	Messages []Message `json:"messages"`
	Tools    []any     `json:"tools"`
	System   string    `json:"system"`
}

func main() {
	src, _ := os.ReadFile(os.Args[1])
	var v Values
	if err := json.NewDecoder(os.Stdin).Decode(&v); err != nil {
		panic(err)
	}
	funcs := template.FuncMap{"json": func(x any) string { b, _ := json.Marshal(x); return string(b) }}
	t := template.Must(template.New("modelfile").Funcs(funcs).Parse(string(src)))
	if err := t.Execute(os.Stdout, v); err != nil {
		panic(err)
	}
}
"""


@pytest.fixture(scope="module")
def go_render(tmp_path_factory: pytest.TempPathFactory):
    go = shutil.which("go")
    if go is None:
        pytest.skip("needs the Go toolchain to execute the Modelfile template (apt-get install golang-go)")
    d = tmp_path_factory.mktemp("go")
    (d / "main.go").write_text(GO_RENDERER)
    (d / "template.txt").write_text(GO_TEMPLATE)
    env = {"GOCACHE": str(d / "cache"), "GOPATH": str(d / "gopath"), "GO111MODULE": "off", "HOME": str(d),
           "PATH": str(Path(go).parent)}
    subprocess.run([go, "build", "-o", str(d / "render"), str(d / "main.go")], check=True, env=env, cwd=d)

    def render(messages: list[dict], tools: list[dict] | None) -> str:
        values = {"messages": [_ollama_message(m) for m in messages], "tools": tools or []}
        out = subprocess.run([str(d / "render"), str(d / "template.txt")], input=json.dumps(values), text=True,
                             capture_output=True, check=True)
        return out.stdout

    return render


def _ollama_message(m: dict) -> dict:
    calls = [{"function": {"name": c["function"]["name"], "arguments": c["function"]["arguments"]}}
             for c in m.get("tool_calls", [])]
    return {"role": m["role"], "content": m["content"], "thinking": m.get("reasoning_content", ""),
            "tool_calls": calls}


def _go_json(x) -> str:
    s = json.dumps(x, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _expected(messages: list[dict], tools: list[dict] | None) -> str:
    """fronde's rendering, with Go's JSON where Ollama's `json` writes it and no leading <|bos|>."""
    go_args = [dict(m, tool_calls=[{"type": "function", "function": {
        "name": c["function"]["name"], "arguments": _go_json(c["function"]["arguments"])}} for c in m["tool_calls"]])
        if m.get("tool_calls") else m for m in messages]
    text = render_chat_text(go_args, tools=tools, add_generation_prompt=True)
    for tool in tools or []:
        text = text.replace(json.dumps(tool, ensure_ascii=False), _go_json(tool))
    return text.removeprefix(SPECIAL_TOKENS["bos"])


@pytest.mark.parametrize("tools", [None, TOOLS], ids=["no-tools", "tools"])
@pytest.mark.parametrize("messages", [CHAT, CHAT[1:], CHAT[:2], [dict(CHAT[0], content="")] + CHAT[1:2]],
                         ids=["full", "no-system", "one-turn", "empty-system"])
def test_go_template_renders_fronde_chat(go_render, messages: list[dict], tools) -> None:
    assert go_render(messages, tools) == _expected(messages, tools)
