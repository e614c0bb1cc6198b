"""Tool specs (built-ins, file.py:function, module:function) and the layering rule."""

from __future__ import annotations

from pathlib import Path

import pytest

import fronde.tools
from fronde.tools import BUILTIN, Toolbox, ToolError, load_tools
from tests.layering import assert_imports_only

USER_TOOLS = '''
from typing import Literal

from fronde.tools import tool


@tool(timeout_s=3)
def shout(text: str, times: int = 1) -> str:
    """Repeat a text in capitals.

    Args:
        text: what to shout.
    """
    return " ".join([text.upper()] * times)


def convert(value: float, unit: Literal["km", "mi"]) -> float:
    """Convert a distance to the other unit."""
    return round(value * 1.609344, 3) if unit == "mi" else round(value / 1.609344, 3)


ANSWER = 42


def untyped(x):
    return x
'''


def test_builtins(tmp_path: Path) -> None:
    assert BUILTIN == ("calculator", "python", "search_files")
    tools = load_tools(["calculator", "python", "search_files"], root=tmp_path)
    assert [t.name for t in tools] == ["calculator", "python", "search_files", "read_file"]
    with pytest.raises(ToolError, match="--root"):
        load_tools(["search_files"])


def test_user_file(tmp_path: Path) -> None:
    path = tmp_path / "my_tools.py"
    path.write_text(USER_TOOLS)
    shout, convert = load_tools([f"{path}:shout", f" {path}:convert "])
    assert shout.timeout_s == 3 and shout.parameters["properties"]["text"]["description"] == "what to shout."
    assert convert.isolate and convert.parameters["properties"]["unit"] == {"type": "string", "enum": ["km", "mi"]}
    assert convert.description == "Convert a distance to the other unit."
    box = Toolbox([shout, convert])
    assert box.call("shout", '{"text": "hi", "times": 2}').content == "HI HI"
    assert box.call("convert", {"value": 10, "unit": "mi"}).content == "16.093"  # runs in a child process
    again, = load_tools([f"{path}:shout"])
    assert again is shout  # the file is loaded once


def test_module_spec() -> None:
    t, = load_tools(["fronde.tools.calculator:calculate"])
    assert t.name == "calculate" and Toolbox([t]).call("calculate", {"expression": "2+2"}).content == "4"
    t, = load_tools(["fronde.tools.calculator:calculator"])
    assert t.name == "calculator"


@pytest.mark.parametrize("spec, words", [
    ("nonsense", ["unknown tool 'nonsense'", "path/to/file.py:function"]),
    ("{dir}/missing.py:f", ["no file"]),
    ("{dir}/my_tools.py:nope", ["has no 'nope'", "shout", "convert"]),
    ("{dir}/my_tools.py:ANSWER", ["'ANSWER' is not a function (type int)"]),
    ("{dir}/my_tools.py:untyped", ["'untyped'", "'x'", "no type hint"]),
    ("{dir}/broken.py:f", ["importing", "ZeroDivisionError"]),
    ("no_such_module_xyz:f", ["no module named 'no_such_module_xyz'"]),
    ("json:", ["unknown tool"]),
    ("math:pi", ["'pi' is not a function (type float)"]),
    ("math:sqrt", ["'x'", "positional-only"]),
])
def test_bad_specs(tmp_path: Path, spec: str, words: list[str]) -> None:
    (tmp_path / "my_tools.py").write_text(USER_TOOLS)
    (tmp_path / "broken.py").write_text("x = 1 / 0\n")
    with pytest.raises(ToolError) as info:
        load_tools([spec.format(dir=tmp_path)])
    for w in words:
        assert w in str(info.value), str(info.value)


def test_layering() -> None:
    """fronde.tools imports only the standard library, third-party packages, fronde.data and fronde.tasks."""
    assert_imports_only(Path(fronde.tools.__file__).parent, ("fronde.tools", "fronde.data", "fronde.tasks"))
