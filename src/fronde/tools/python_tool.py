"""A `python` tool: the model writes a program, the sandbox runs it, the model reads what it printed.

It reuses the sandbox the code rewards run in (fronde.tasks.sandbox: a separate interpreter with CPU, memory and
wall-clock limits, no network, a throwaway working directory), so it enforces its own limits and runs inline.
A program that fails still gives the model its output plus the error's last lines, which is what it needs to fix
the code; a program killed at the time limit is reported as a timeout.
"""

from __future__ import annotations

import re

from fronde.tasks.sandbox import Limits, run_python
from fronde.tools.base import Tool, tool
from fronde.tools.errors import ToolCallError, ToolTimeout

ERROR_TAIL = 1500  # characters of the traceback shown to the model
_GUARD_FRAME = re.compile(r'^  File "[^"]*guard\.py", line \d+, in \w+\n(?:    .*\n)?', re.MULTILINE)


def _traceback(error: str) -> str:
    """The error without the sandbox's own frames, cut to its last ERROR_TAIL characters."""
    text = _GUARD_FRAME.sub("", error).strip()
    return text if len(text) <= ERROR_TAIL else "..." + text[-ERROR_TAIL:]


def python_tool(timeout_s: float = 10.0, memory_mb: int = 1024) -> Tool:
    """The `python` tool with these limits per run (wall-clock seconds; address space in MB)."""
    limits = Limits(timeout_s=timeout_s, memory_mb=memory_mb)

    def python(code: str) -> str:
        """Run a Python 3 program and return what it printed (use print to see values). Each call starts fresh.

        Args:
            code: the whole program, e.g. "import math\\nprint(math.comb(10, 3))".
        """
        result = run_python(code, limits)
        output = result.stdout.rstrip()
        if result.passed:
            return output or "(the program printed nothing; use print() to see a value)"
        shown = f"\n--- output ---\n{output}" if output else ""
        if result.timed_out:
            raise ToolTimeout(f"the program timed out after {float(timeout_s)} s and was killed{shown}")
        raise ToolCallError(f"the program failed{shown}\n--- error ---\n{_traceback(result.error)}")

    description = (f"Run a Python 3 program and return what it prints. No network, no files outside a temporary "
                   f"directory, {timeout_s:g} s and {memory_mb} MB at most; each call starts from scratch.")
    return tool(python, description=description, timeout_s=timeout_s, isolate=False, concurrent=True)


python = python_tool()
