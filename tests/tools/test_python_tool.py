"""The python tool: what the program prints, its errors, a killed infinite loop, no network."""

from __future__ import annotations

import time

from fronde.tools import Toolbox, python_tool

BOX = Toolbox([python_tool()])  # the default 10 s: a busy machine can take seconds to start an interpreter
LOOP = Toolbox([python_tool(timeout_s=3)])


def test_prints() -> None:
    r = BOX.call("python", {"code": "import math\nprint(math.comb(10, 3))\nprint('done')\n"})
    assert r.ok and r.content == "120\ndone"
    silent = BOX.call("python", {"code": "x = 1\n"})
    assert silent.ok and "printed nothing" in silent.content


def test_exception_shows_output_and_traceback() -> None:
    r = BOX.call("python", {"code": "print('before')\n1 / 0\n"})
    assert not r.ok and r.error == "error"
    assert r.content.startswith("error: the program failed\n--- output ---\nbefore\n--- error ---\n")
    assert "ZeroDivisionError: division by zero" in r.content and 'File "main.py", line 2' in r.content
    assert "guard.py" not in r.content


def test_infinite_loop_is_a_timeout() -> None:
    start = time.monotonic()
    r = LOOP.call("python", {"code": "print('looping', flush=True)\nwhile True:\n    pass\n"})
    assert time.monotonic() - start < 15
    assert not r.ok and r.error == "timeout"
    assert r.content.startswith("error: the program timed out after 3.0 s and was killed")
    assert "looping" in r.content


def test_no_network() -> None:
    r = BOX.call("python", {"code": "import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=1)\n"})
    assert not r.ok and ("not allowed" in r.content or "disabled" in r.content), r.content


def test_schema() -> None:
    tool = BOX.get("python")
    assert tool is not None and not tool.isolate and tool.timeout_s == 10
    assert tool.parameters["required"] == ["code"] and "10 s" in tool.description
