"""HumanEval: the fixed split, canonical solutions passing in the sandbox, and completions that
are wrong, loop, reach the network, write files or fork."""

from __future__ import annotations

import random

import pytest

from fronde.tasks.extract import format_reward
from fronde.tasks.humaneval import TEST_IDS, HumanEvalTask, extract_code, load_problems


@pytest.fixture(scope="module")
def task() -> HumanEvalTask:
    return HumanEvalTask(timeout_s=3)


def test_split(task: HumanEvalTask) -> None:
    assert len(load_problems()) == 164
    assert list(TEST_IDS) == sorted(random.Random(0).sample(range(164), 40))
    test = task.test()
    train = task.train(124, seed=0)
    assert len(test) == 40 and len({ex.id for ex in train}) == 124
    assert not {ex.id for ex in train} & {ex.id for ex in test}
    assert {ex.id for ex in test} == {f"HumanEval/{i}" for i in TEST_IDS}
    assert task.train(10, seed=1) == HumanEvalTask().train(10, seed=1) != task.train(10, seed=2)
    assert len(task.train(300, seed=0)) == 300  # repeats after a full epoch


def _problem(task: HumanEvalTask, i: int):
    return task._examples[i]


@pytest.mark.parametrize("i", [0, 10, 32, 53, 3, 160])  # 10 and 32 call helper functions of their prompt
def test_canonical_solutions_pass(task: HumanEvalTask, i: int) -> None:
    ex = _problem(task, i)
    body = ex.answer[len(ex.meta["code_prompt"]):]
    assert task.verify(f"```python\n{ex.answer}\n```", ex) == 1.0  # the whole function, fenced
    assert task.verify(body, ex) == 1.0  # the body only, appended to the prompt (HumanEval's protocol)
    reply = task.solution(ex)
    assert format_reward(reply) == 1.0 and task.verify(reply, ex) == 1.0


def test_wrong_and_malicious_completions(task: HumanEvalTask, tmp_path) -> None:
    ex = _problem(task, 53)  # add(x, y)
    entry = "def add(x: int, y: int):\n"
    cases = {
        "wrong": entry + "    return x - y\n",
        "none": "    pass\n",
        "loop": entry + "    while True:\n        pass\n",
        "network": entry + "    import socket\n    socket.create_connection(('127.0.0.1', 80))\n    return x + y\n",
        "write": entry + f"    open({str(tmp_path / 'pwn.txt')!r}, 'w').write('x')\n    return x + y\n",
        "fork": entry + "    import os\n    while True:\n        os.fork()\n",
        "exit": "import sys\nsys.exit(0)\n",
        "syntax": entry + "    return x +\n",
    }
    for name, code in cases.items():
        result = task.run(f"```python\n{code}```", ex)
        assert not result.passed, name
        assert result.timed_out == (name == "loop"), (name, result.error)
    assert not (tmp_path / "pwn.txt").exists()


def test_extract_code() -> None:
    prompt = "def f(x):\n    \"\"\"Double.\"\"\"\n"
    full = "def f(x):\n    return 2 * x\n"
    assert extract_code(f"Sure!\n```python\n{full}```\nDone.", prompt, "f").endswith(full)
    two = f"```python\nimport math\n```\nthen\n```py\n{full}```\n```\nprint(f(2))\n```"
    assert extract_code(two, prompt, "f").endswith(full)  # the block that defines f
    assert extract_code(f"<think>```python\ndef f(x):\n    return 0\n```</think><answer>```python\n{full}```</answer>",
                        prompt, "f").endswith(full)
    assert extract_code("    return 2 * x\n", prompt, "f") == prompt + "    return 2 * x\n"
    assert extract_code(f"```python\n{full}", prompt, "f").endswith(full)  # an unclosed fence
