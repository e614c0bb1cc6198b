"""The sandbox against programs that loop, reach the network, write outside their directory,
fork, exit early or eat memory."""

from __future__ import annotations

import time
from pathlib import Path

from fronde.tasks.sandbox import Limits, namespaces_available, run_python

FAST = Limits(timeout_s=1.5)


def test_pass_and_fail() -> None:
    ok = run_python("def f(x):\n    return x + 1\n\nassert f(1) == 2\nprint('done')\n", FAST)
    assert ok.passed and not ok.timed_out and ok.error == "" and "done" in ok.stdout
    bad = run_python("assert 1 == 2, 'wrong'\n", FAST)
    assert not bad.passed and not bad.timed_out and "AssertionError: wrong" in bad.error


def test_infinite_loop_is_killed() -> None:
    start = time.monotonic()
    result = run_python("while True:\n    pass\n", FAST)
    assert result.timed_out and not result.passed and "timed out" in result.error
    assert time.monotonic() - start < FAST.timeout_s + 3


def test_sleeping_child_is_killed() -> None:
    result = run_python("import time\ntime.sleep(60)\n", Limits(timeout_s=1))
    assert result.timed_out and not result.passed


def test_network_is_refused() -> None:
    for code in ["import socket\nsocket.create_connection(('127.0.0.1', 9), timeout=1)\n",
                 "import socket\nsocket.socket().connect(('1.1.1.1', 80))\n",
                 "import _socket\n_socket.socket().connect(('1.1.1.1', 80))\n",
                 "import urllib.request\nurllib.request.urlopen('http://example.com', timeout=1)\n"]:
        result = run_python(code, FAST)
        assert not result.passed and ("not allowed" in result.error or "disabled" in result.error), code


def test_writes_outside_the_directory_fail(tmp_path: Path) -> None:
    victim = tmp_path / "keep.txt"
    victim.write_text("precious")
    for code in [f"open({str(tmp_path / 'new.txt')!r}, 'w').write('x')\n",
                 f"open({str(victim)!r}, 'a').write('x')\n",
                 f"import os\nos.open({str(tmp_path / 'fd.txt')!r}, os.O_WRONLY | os.O_CREAT)\n",
                 f"import os\nos.remove({str(victim)!r})\n",
                 f"import shutil\nshutil.rmtree({str(tmp_path)!r})\n",
                 f"import os\nos.rename({str(victim)!r}, 'stolen.txt')\n",
                 f"import os\nos.chdir({str(tmp_path)!r})\nopen('x.txt', 'w')\n",
                 "open('../escape.txt', 'w').write('x')\n"]:
        result = run_python(code, FAST)
        assert not result.passed and "not allowed" in result.error, code
    assert victim.read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_writes_inside_the_directory_work() -> None:
    result = run_python("with open('scratch.txt', 'w') as f:\n    f.write('hi')\nassert open('scratch.txt').read() == 'hi'\n",
                        FAST)
    assert result.passed, result.error


def test_processes_are_refused() -> None:
    start = time.monotonic()
    for code in ["import os\nwhile True:\n    os.fork()\n",
                 "import subprocess\nsubprocess.run(['true'])\n",
                 "import os\nos.system('true')\n",
                 "import multiprocessing\n",
                 "import ctypes\n",
                 "import os\nos.execv('/bin/true', ['true'])\n"]:
        result = run_python(code, FAST)
        assert not result.passed and not result.timed_out, code
        assert "not allowed" in result.error, (code, result.error)
    assert time.monotonic() - start < 10


def test_early_exit_is_not_a_pass() -> None:
    for code in ["import sys\nsys.exit(0)\nassert False\n", "exit(0)\n", "import os\nos._exit(0)\n",
                 "import posix\nposix._exit(0)\n", "raise SystemExit\n"]:
        result = run_python(code, FAST)
        assert not result.passed, code


def test_limits() -> None:
    memory = run_python("x = bytearray(8 * 1024 ** 3)\n", Limits(timeout_s=5, memory_mb=512))
    assert not memory.passed and "MemoryError" in memory.error
    big_file = run_python("open('big', 'wb').write(b'x' * (32 << 20))\n", Limits(timeout_s=5, file_size_mb=4))
    assert not big_file.passed
    relimit = run_python("import resource\nresource.setrlimit(resource.RLIMIT_CPU, (100, 100))\n", FAST)
    assert not relimit.passed and "not allowed" in relimit.error


def test_program_cannot_read_its_tests() -> None:
    result = run_python("SECRET = 42\nprint(open('main.py').read())\n", FAST)
    assert not result.passed and "SECRET" not in result.stdout


def test_network_namespace_when_available() -> None:
    result = run_python("pass\n", FAST)
    assert result.passed and result.isolated_network == namespaces_available()
