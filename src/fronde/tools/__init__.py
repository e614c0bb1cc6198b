"""Tools a model can call: Python functions with a JSON schema, and a Toolbox that runs the calls a model makes.

A bottom layer beside fronde.tasks: it imports only the standard library, third-party packages, fronde.data and
fronde.tasks (the sandbox), never fronde.model/train/infer/eval/serve/cli.

- `Tool(name, description, parameters, fn, timeout_s=10.0, isolate=True)`, `.schema()` (OpenAI's tools entry);
  `@tool` / `tool(fn, name=..., timeout_s=...)` builds one from type hints and the docstring;
- `Toolbox(tools, max_chars=4000)`: `.names`, `.schemas()`, `.get(name)`, `.call(name, arguments) -> ToolResult`,
  which never raises for what the model or the tool does (errors come back as "error: ..." content);
- built-ins: `calculator` (exact arithmetic, `calculate(expression)`), `python_tool()` (the sandbox),
  `search_files(root)` / `read_file(root)` (read-only, confined to one folder);
- `load_tools(specs, root=None)` for `calculator`, `python`, `search_files`, `file.py:function`, `module:function`.
"""

from fronde.tools.base import Tool, Toolbox, ToolResult, tool
from fronde.tools.calculator import CalculatorError, calculate, calculator
from fronde.tools.errors import ToolCallError, ToolError, ToolTimeout
from fronde.tools.python_tool import python_tool
from fronde.tools.registry import BUILTIN, load_tools
from fronde.tools.search_files import file_tools, read_file, search_files

__all__ = [
    "BUILTIN",
    "CalculatorError",
    "Tool",
    "ToolCallError",
    "ToolError",
    "ToolResult",
    "ToolTimeout",
    "Toolbox",
    "calculate",
    "calculator",
    "file_tools",
    "load_tools",
    "python_tool",
    "read_file",
    "search_files",
    "tool",
]
