"""The chat template inside the GGUF renders fronde's chat format; the Ollama folder holds a complete Modelfile."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import gguf
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment
from typer.testing import CliRunner

from fronde.cli.main import app
from fronde.data.chat import render_chat_text
from fronde.data.tokenizer import SPECIAL_TOKENS
from fronde.export import ExportError, export_gguf, export_ollama
from fronde.export.ollama import GO_TEMPLATE, MODELFILE

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather <for> a city",
                                           "parameters": {"type": "object",
                                                          "properties": {"city": {"type": "string"}}}}}]
CHAT = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What's 12 + 7?"},
    {"role": "assistant", "content": "19.", "reasoning_content": "12 + 7 = 19"},
    {"role": "user", "content": "And the weather in Paris?"},
    {"role": "assistant", "content": "",
     "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
    {"role": "tool", "content": "sunny, 24C"},
    {"role": "assistant", "content": "Sunny, 24C."},
    {"role": "user", "content": "Thanks!"},
]


def _gguf_template(path: Path) -> str:
    return gguf.GGUFReader(path).fields["tokenizer.chat_template"].contents()


def _render_like_transformers(template: str, messages: list[dict], **kwargs) -> str:
    """As transformers (and llama-cpp-python) render a chat template: a sandboxed jinja2 with trimmed blocks; tojson
    is transformers' json.dumps (not jinja2's HTML-escaping one)."""
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = lambda x, indent=None: json.dumps(x, ensure_ascii=False, indent=indent)
    return env.from_string(template).render(messages=messages, bos_token=SPECIAL_TOKENS["bos"],
                                            eos_token=SPECIAL_TOKENS["eos"], **kwargs)


@pytest.fixture(scope="module")
def gguf_path(small_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_gguf(small_model_dir, tmp_path_factory.mktemp("chat") / "m.gguf", dtype="f16").path


@pytest.mark.parametrize("add_generation_prompt", [False, True])
@pytest.mark.parametrize("tools", [None, TOOLS], ids=["no-tools", "tools"])
@pytest.mark.parametrize("turns", [2, 4, len(CHAT)])
def test_gguf_template_renders_fronde_chat(gguf_path: Path, turns: int, tools, add_generation_prompt: bool) -> None:
    messages = CHAT[:turns] if turns > 2 else CHAT[1:1 + turns]  # also a chat without a system message
    got = _render_like_transformers(_gguf_template(gguf_path), messages, tools=tools,
                                    add_generation_prompt=add_generation_prompt)
    assert got == render_chat_text(messages, tools=tools, add_generation_prompt=add_generation_prompt)


def test_llama_cpp_python_formats_chats_like_fronde(gguf_path: Path) -> None:
    """llama-cpp-python's own chat formatter, built from the GGUF's metadata, gives fronde's prompt."""
    llama_chat_format = pytest.importorskip("llama_cpp.llama_chat_format")
    formatter = llama_chat_format.Jinja2ChatFormatter(
        template=_gguf_template(gguf_path), eos_token=SPECIAL_TOKENS["eos"], bos_token=SPECIAL_TOKENS["bos"])
    messages = [m for m in CHAT if "tool_calls" not in m and m["role"] != "tool"]
    assert formatter(messages=messages).prompt == render_chat_text(messages, add_generation_prompt=True)


# ---------------------------------------------------------------------------------------------------------------
# Ollama


def test_ollama_folder(small_model_dir: Path, tmp_path: Path) -> None:
    summary, modelfile = export_ollama(small_model_dir, tmp_path / "ollama")
    assert summary.path == tmp_path / "ollama" / "small.gguf" and summary.path.is_file()
    text = modelfile.read_text()
    assert text.startswith("FROM ./small.gguf\n")
    assert f'TEMPLATE """{GO_TEMPLATE}"""' in text
    assert 'PARAMETER stop "<|end|>"\nPARAMETER stop "<|eos|>"\n' in text
    assert "LICENSE" not in text  # no model card, no license file
    with pytest.raises(ExportError, match="Modelfile already exists; pass --force"):
        export_ollama(small_model_dir, tmp_path / "ollama")


def test_ollama_template_covers_every_chat_token() -> None:
    """Every special token fronde's chat format writes appears in the Go template, except <|bos|> (the tokenizer
    adds it) and the document-end <|eos|>; the template ends with the generation prompt."""
    for role, token in SPECIAL_TOKENS.items():
        if role not in ("bos", "eos", "pad"):
            assert token in GO_TEMPLATE, role
    assert SPECIAL_TOKENS["bos"] not in GO_TEMPLATE
    assert GO_TEMPLATE.endswith("{{- end }}" + SPECIAL_TOKENS["assistant"])


@pytest.mark.parametrize("name, card, expected", [
    ("README.md", "---\nlicense: apache-2.0\nlanguage: en\n---\n# Model\n", "apache-2.0"),
    ("MODEL_CARD.md", ("---\nlicense: other\nlicense_name: mixed-data-licences\nlicense_link: https://example.org/l\n"
                       "data_licenses:\n- MIT\n---\n"), "mixed-data-licences https://example.org/l"),
    ("README.md", "# A card without front matter\nlicense: mit\n", None),
])
def test_ollama_license_from_model_card(small_model_dir: Path, tmp_path: Path, name: str, card: str,
                                        expected) -> None:
    model = tmp_path / "carded"
    shutil.copytree(small_model_dir, model)
    (model / name).write_text(card)
    _, modelfile = export_ollama(model, tmp_path / "out")
    text = modelfile.read_text()
    assert (f'LICENSE """{expected}"""' in text) if expected else ("LICENSE" not in text)


def test_the_gguf_file_carries_the_cards_licence_languages_and_tags(small_model_dir: Path, tmp_path: Path) -> None:
    """What llama.cpp's converter takes from a Hub card (general.license, .languages, .tags), from fronde's card in
    the JSON-quoted front matter fronde writes; read back with gguf's own reader."""
    import gguf

    model = tmp_path / "carded"
    shutil.copytree(small_model_dir, model)
    (model / "MODEL_CARD.md").write_text('---\nlicense: "other"\nlicense_name: "mixed-data-licences"\n'
                                         'language:\n- "fr"\n- "en"\ntags:\n- "fronde"\n- "rl"\n---\n# Card\n')
    path = export_ollama(model, tmp_path / "out")[0].path
    fields = gguf.GGUFReader(path).fields

    def value(key: str):
        f = fields[key]
        parts = [bytes(f.parts[i]).decode() for i in f.data]
        return parts if f.types[0] == gguf.GGUFValueType.ARRAY else parts[0]

    assert value("general.license") == "other" and value("general.license.name") == "mixed-data-licences"
    assert value("general.languages") == ["fr", "en"] and value("general.tags") == ["fronde", "rl"]
    bare = export_ollama(small_model_dir, tmp_path / "bare")[0].path  # no card: no such keys, no failure
    assert "general.license" not in gguf.GGUFReader(bare).fields


def test_ollama_license_file_wins(small_model_dir: Path, tmp_path: Path) -> None:
    model = tmp_path / "licensed"
    shutil.copytree(small_model_dir, model)
    (model / "README.md").write_text("---\nlicense: mit\n---\n")
    (model / "LICENSE").write_text('Full text, with a """quote""".\n')
    _, modelfile = export_ollama(model, tmp_path / "out")
    assert "LICENSE \"\"\"Full text, with a '''quote'''.\"\"\"\n" in modelfile.read_text()


def test_ollama_cli(small_model_dir: Path, tmp_path: Path) -> None:
    res = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["export", "ollama", str(small_model_dir), str(tmp_path),
                                                         "--dtype", "q8_0"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / MODELFILE).is_file() and (tmp_path / "small.gguf").is_file()
    assert "ollama create small -f" in res.output
