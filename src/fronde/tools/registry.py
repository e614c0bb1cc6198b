"""Tool specs as the CLI and recipes write them, mapped to Tools in one place.

    calculator                    exact arithmetic (fronde.tools.calculator)
    python                        run a program in the sandbox (fronde.tools.python_tool)
    search_files                  search_files + read_file over the folder given as `root` (--root)
    path/to/tools.py:function     a function from a file (decorated with @tool, or plain: wrapped with tool())
    package.module:function       a function from an importable module
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from fronde.tools.base import Tool, tool
from fronde.tools.calculator import calculator
from fronde.tools.errors import ToolError
from fronde.tools.python_tool import python_tool
from fronde.tools.search_files import file_tools

BUILTIN = ("calculator", "python", "search_files")
SPEC_FORMS = f"{', '.join(BUILTIN)}, path/to/file.py:function or package.module:function"


def load_tools(specs: list[str], root: Path | None = None) -> list[Tool]:
    """The tools for `specs`, in order; `root` is the folder the search_files built-in reads."""
    tools: list[Tool] = []
    for spec in specs:
        tools += _load(spec.strip(), root)
    return tools


def _load(spec: str, root: Path | None) -> list[Tool]:
    if spec == "calculator":
        return [calculator]
    if spec == "python":
        return [python_tool()]
    if spec == "search_files":
        if root is None:
            raise ToolError("the search_files tool reads one folder: pass it with --root FOLDER")
        return file_tools(root)
    target, sep, attr = spec.rpartition(":")
    if not sep or not target or not attr or "/" in attr or "\\" in attr:
        raise ToolError(f"unknown tool {spec!r}; use {SPEC_FORMS}")
    is_file = target.endswith(".py") or "/" in target or "\\" in target
    module = _from_file(target, spec) if is_file else _from_module(target, spec)
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            found = ", ".join(_functions(module)) or "none"
            raise ToolError(f"tool {spec!r}: {target} has no {attr!r} (functions there: {found})")
        obj = getattr(obj, part)
    if isinstance(obj, Tool):
        return [obj]
    if not callable(obj):
        raise ToolError(f"tool {spec!r}: {attr!r} is not a function (type {type(obj).__name__})")
    return [tool(obj)]


def _from_file(target: str, spec: str) -> ModuleType:
    path = Path(target).expanduser().resolve()
    if not path.is_file():
        raise ToolError(f"tool {spec!r}: there is no file {target}")
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    name = f"fronde_user_tools_{path.stem}_{digest}"
    if name in sys.modules:  # the same file loaded twice gives the same functions
        return sys.modules[name]
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise ToolError(f"tool {spec!r}: cannot load {target} as Python")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # registered first, as an import would: dataclasses and pickling look it up
    try:
        module_spec.loader.exec_module(module)
    except ToolError as e:
        del sys.modules[name]
        raise ToolError(f"tool {spec!r}: {e}") from None
    except Exception as e:  # noqa: BLE001 - any error in the user's file
        del sys.modules[name]
        raise ToolError(f"tool {spec!r}: importing {target} failed ({type(e).__name__}: {e})") from None
    return module


def _from_module(target: str, spec: str) -> ModuleType:
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as e:
        raise ToolError(f"tool {spec!r}: no module named {e.name or target!r}; use {SPEC_FORMS}") from None
    except ToolError as e:
        raise ToolError(f"tool {spec!r}: {e}") from None
    except Exception as e:  # noqa: BLE001 - any error in the user's module
        raise ToolError(f"tool {spec!r}: importing {target} failed ({type(e).__name__}: {e})") from None


def _functions(module: ModuleType) -> list[str]:
    """The public functions and Tools a module defines (to suggest when a name is wrong)."""
    return [n for n, v in vars(module).items() if not n.startswith("_") and (
        isinstance(v, Tool) or (callable(v) and getattr(v, "__module__", None) == module.__name__))]
