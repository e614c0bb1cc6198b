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


# How Ollama finds, in a model's Go template, the markers it parses replies with (its server reads them from the
# template's parse tree; this is that rule, written here): the think tags are the first and last text of the list
# that holds a `.Thinking` field inside the range over .Messages (the last such field wins), and the tool-call tag
# is the first text inside the first `{{ if ... .ToolCalls ... }}`, cut at its first "{".
GO_MARKERS = r"""
package main

import (
	"encoding/json"
	"os"
	"strings"
	"text/template"
	"text/template/parse"
)

var open, close, toolTag string
var toolIf *parse.IfNode

func hasField(pipe *parse.PipeNode, name string) bool {
	if pipe == nil {
		return false
	}
	for _, cmd := range pipe.Cmds {
		for _, arg := range cmd.Args {
			if f, ok := arg.(*parse.FieldNode); ok && f.Ident[0] == name {
				return true
			}
		}
	}
	return false
}

func walk(n parse.Node, list *parse.ListNode, inMessages bool) {
	switch x := n.(type) {
	case *parse.ListNode:
		if x == nil {
			return
		}
		for _, c := range x.Nodes {
			walk(c, x, inMessages)
		}
	case *parse.IfNode:
		if toolIf == nil && hasField(x.Pipe, "ToolCalls") {
			toolIf = x
		}
		walk(x.Pipe, list, inMessages)
		walk(x.List, list, inMessages)
		walk(x.ElseList, list, inMessages)
	case *parse.RangeNode:
		walk(x.Pipe, list, inMessages)
		walk(x.List, list, inMessages || hasField(x.Pipe, "Messages"))
		walk(x.ElseList, list, inMessages)
	case *parse.WithNode:
		walk(x.Pipe, list, inMessages)
		walk(x.List, list, inMessages)
		walk(x.ElseList, list, inMessages)
	case *parse.ActionNode:
		walk(x.Pipe, list, inMessages)
	case *parse.PipeNode:
		if x == nil {
			return
		}
		for _, c := range x.Cmds {
			for _, a := range c.Args {
				walk(a, list, inMessages)
			}
		}
	case *parse.FieldNode:
		if x.Ident[0] == "Thinking" && inMessages && list != nil {
			if t, ok := list.Nodes[0].(*parse.TextNode); ok {
				open = strings.TrimSpace(string(t.Text))
			}
			if t, ok := list.Nodes[len(list.Nodes)-1].(*parse.TextNode); ok {
				close = strings.TrimSpace(string(t.Text))
			}
		}
	}
}

func firstText(nodes []parse.Node) *parse.TextNode {
	for _, n := range nodes {
		switch x := n.(type) {
		case *parse.TextNode:
			return x
		case *parse.ActionNode:
			return nil
		case *parse.IfNode:
			return firstText(x.List.Nodes)
		case *parse.RangeNode:
			return firstText(x.List.Nodes)
		}
	}
	return nil
}

func main() {
	src, _ := os.ReadFile(os.Args[1])
	funcs := template.FuncMap{"json": func(x any) string { return "" }}
	t := template.Must(template.New("modelfile").Funcs(funcs).Parse(string(src)))
	walk(t.Root, nil, false)
	if toolIf != nil {
		if text := firstText(toolIf.List.Nodes); text != nil {
			toolTag = strings.Split(strings.TrimSpace(string(text.Text)), "{")[0]
		}
	}
	json.NewEncoder(os.Stdout).Encode([]string{open, close, toolTag})
}
"""


@pytest.fixture(scope="module")
def go_build(tmp_path_factory: pytest.TempPathFactory):
    """Builds a Go program (standard library only) and returns its path."""
    go = shutil.which("go")
    if go is None:
        pytest.skip("needs the Go toolchain to execute the Modelfile template (apt-get install golang-go)")
    d = tmp_path_factory.mktemp("go")
    env = {"GOCACHE": str(d / "cache"), "GOPATH": str(d / "gopath"), "GO111MODULE": "off", "HOME": str(d),
           "PATH": str(Path(go).parent)}

    def build(name: str, source: str) -> Path:
        (d / f"{name}.go").write_text(source)
        subprocess.run([go, "build", "-o", str(d / name), str(d / f"{name}.go")], check=True, env=env, cwd=d)
        return d / name

    return build


@pytest.fixture(scope="module")
def go_render(go_build, tmp_path_factory: pytest.TempPathFactory):
    binary = go_build("render", GO_RENDERER)
    template = tmp_path_factory.mktemp("template") / "template.txt"
    template.write_text(GO_TEMPLATE)

    def render(messages: list[dict], tools: list[dict] | None) -> str:
        values = {"messages": [_ollama_message(m) for m in messages], "tools": tools or []}
        out = subprocess.run([str(binary), str(template)], input=json.dumps(values), text=True,
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


def test_ollama_finds_the_think_and_tool_call_markers_in_the_template(go_build, tmp_path: Path) -> None:
    """Without them Ollama would report no thinking capability (a request with "think" refused, the reasoning left
    in the content with its markers) and look for tool calls from the first "{" (content "<|tool_call|>" beside
    the parsed call). `$m.Thinking` and `range $m.ToolCalls`, as the template first had them, give nothing."""
    markers = go_build("markers", GO_MARKERS)

    def found(template: str) -> list[str]:
        (tmp_path / "template.txt").write_text(template)
        return json.loads(subprocess.run([str(markers), str(tmp_path / "template.txt")], text=True,
                                         capture_output=True, check=True).stdout)

    assert found(GO_TEMPLATE) == [SPECIAL_TOKENS["think"], SPECIAL_TOKENS["think_end"], SPECIAL_TOKENS["tool_call"]]
    first = GO_TEMPLATE.replace("{{ .Thinking }}", "{{ $m.Thinking }}").replace(
        "{{- if .ToolCalls }}{{ range .ToolCalls }}", "{{- if true }}{{ range $m.ToolCalls }}")
    assert found(first) == ["", "", ""]
