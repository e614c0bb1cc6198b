"""An Ollama model folder: the GGUF plus a Modelfile, so `ollama create NAME -f OUTDIR/Modelfile` works.

Ollama renders chats with a Go template, not the GGUF's Jinja template, so the Modelfile carries fronde's chat
format rewritten in Go-template syntax. It renders what `fronde.data.chat.render_chat_text` does, with three
differences Ollama imposes: the leading <|bos|> is added by the tokenizer (add_bos_token) rather than written,
tool schemas and call arguments go through Go's json (compact, keys sorted) instead of Python's json.dumps,
and Ollama merges consecutive messages of one role before rendering.
"""

from __future__ import annotations

from pathlib import Path

from fronde.data.io import atomic_write_text
from fronde.data.progress import Reporter
from fronde.data.tokenizer import SPECIAL_TOKENS as S
from fronde.export.card import model_license
from fronde.export.gguf import ExportError, GGUFSummary, export_gguf

MODELFILE = "Modelfile"

# fronde's chat format (see fronde/data/chat.py) for Ollama's `.Messages` / `.Tools` template values.
# Ollama also reads the template to parse replies: its think tags are the text around the one `.Thinking` field
# (`$m.Thinking` is a variable and does not count), and the tool-call tag is the first text inside
# `{{ if .ToolCalls }}`; so those two are written that way and nowhere else.
GO_TEMPLATE = (
    "{{- $tools := .Tools }}\n"
    "{{- if and $tools (or (not .Messages) (ne (index .Messages 0).Role \"system\")) }}" + S["system"]
    + "# Tools\n{{ range $tools }}{{ json . }}\n{{ end }}" + S["end"] + "\n"
    "{{- end }}\n"
    "{{- range $i, $m := .Messages }}\n"
    "{{- if eq $m.Role \"system\" }}" + S["system"] + "{{ $m.Content }}\n"
    "{{- if and (eq $i 0) $tools }}{{ if $m.Content }}\n\n{{ end }}# Tools\n"
    "{{ range $tools }}{{ json . }}\n{{ end }}{{ end }}" + S["end"] + "\n"
    "{{- else if eq $m.Role \"assistant\" }}" + S["assistant"] + "\n"
    "{{- if $m.Thinking }}" + S["think"] + "{{ .Thinking }}" + S["think_end"] + "{{ end }}\n"
    "{{- if $m.Thinking }}{{ if $m.Content }}" + S["answer"] + "{{ $m.Content }}" + S["answer_end"] + "{{ end }}\n"
    "{{- else }}{{ $m.Content }}{{ end }}\n"
    "{{- if .ToolCalls }}{{ range .ToolCalls }}" + S["tool_call"]
    + "{\"name\": {{ json .Function.Name }}, \"arguments\": {{ json .Function.Arguments }}}" + S["tool_call_end"]
    + "{{ end }}{{ end }}" + S["end"] + "\n"
    "{{- else if eq $m.Role \"user\" }}" + S["user"] + "{{ $m.Content }}" + S["end"] + "\n"
    "{{- else if eq $m.Role \"tool\" }}" + S["tool_result"] + "{{ $m.Content }}" + S["tool_result_end"] + "\n"
    "{{- else }}<|{{ $m.Role }}|>{{ $m.Content }}" + S["end"] + "\n"
    "{{- end }}\n"
    "{{- end }}" + S["assistant"]
)


def _quoted(text: str) -> str:
    """A Modelfile triple-quoted value (it has no escapes, so a literal triple quote cannot appear)."""
    return '"""' + text.replace('"""', "'''") + '"""'


def modelfile(gguf_name: str, stops: list[str], license_text: str | None = None) -> str:
    lines = [f"FROM ./{gguf_name}", f"TEMPLATE {_quoted(GO_TEMPLATE)}"]
    lines += [f'PARAMETER stop "{s}"' for s in stops]
    if license_text:
        lines.append(f"LICENSE {_quoted(license_text)}")
    return "\n".join(lines) + "\n"


def gguf_stem(model_dir: Path) -> str:
    """The file's name: the dir's, or <run>-<stage> for a fronde stage model (runs/<run>/<stage>/model)."""
    path = model_dir.resolve()
    return f"{path.parent.parent.name}-{path.parent.name}" if path.name == "model" else path.name


def export_ollama(model_dir: str | Path, outdir: str | Path, *, dtype: str = "f16", force: bool = False,
                  progress: Reporter | None = None) -> tuple[GGUFSummary, Path]:
    """Write OUTDIR/<gguf_stem>.gguf and OUTDIR/Modelfile; returns the GGUF summary and the Modelfile's path."""
    model_dir, outdir = Path(model_dir), Path(outdir)
    if outdir.exists() and not outdir.is_dir():
        raise ExportError(f"{outdir} exists and is not a directory")
    target = outdir / MODELFILE
    if target.exists() and not force:
        raise ExportError(f"{target} already exists; pass --force to overwrite it")
    summary = export_gguf(model_dir, outdir / f"{gguf_stem(model_dir)}.gguf", dtype=dtype, force=force,
                          progress=progress)
    stops = summary.end_of_turn_tokens
    atomic_write_text(target, modelfile(summary.path.name, stops, model_license(model_dir)))
    return summary, target
