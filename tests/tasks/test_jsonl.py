"""User tasks from JSONL: every verifier on right and wrong replies, the split, and errors that
name the file, the line and what to fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fronde.tasks.base import TaskError
from fronde.tasks.jsonl import JsonlTask


def _write(path: Path, rows: list[object]) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


ROWS = [
    {"prompt": "Capital of France?", "answer": "Paris", "split": "test", "id": "capital"},
    {"prompt": "17 * 3 = ?", "answer": 51, "verifier": "numeric", "split": "test", "reasoning": "17 * 3 = 51"},
    {"prompt": "A date in ISO form", "answer": r"\d{4}-\d{2}-\d{2}", "verifier": "regex", "split": "test"},
    {"prompt": "Write add(a, b).", "answer": "assert add(2, 3) == 5\nassert add(-1, 1) == 0",
     "verifier": "python-tests", "split": "test"},
] + [{"prompt": f"What is {i} + {i}?", "answer": str(2 * i), "verifier": "numeric"} for i in range(200)]


@pytest.fixture
def task(tmp_path: Path) -> JsonlTask:
    return JsonlTask(_write(tmp_path / "tasks.jsonl", ROWS), timeout_s=3)


def test_verifiers(task: JsonlTask) -> None:
    exact, numeric, regex, tests = task.test()[:4]
    assert exact.id == "jsonl/capital" and exact.meta["line"] == 1
    assert task.verify("<think>hmm</think><answer> Paris. </answer>", exact) == 1.0
    assert task.verify("Paris", exact) == 1.0
    assert task.verify("<answer>paris</answer>", exact) == 0.0  # exact is case-sensitive
    assert task.verify("<answer>Lyon</answer>", exact) == 0.0
    assert task.verify("<answer>51</answer>", numeric) == 1.0
    assert task.verify("It's 51.0 apples", numeric) == 1.0
    assert task.verify("<answer>52</answer>", numeric) == 0.0
    assert task.verify("<answer>2024-05-01</answer>", regex) == 1.0
    assert task.verify("<answer>May 1st</answer>", regex) == 0.0
    assert task.verify("<answer>```python\ndef add(a, b):\n    return a + b\n```</answer>", tests) == 1.0
    assert task.verify("```python\ndef add(a, b):\n    return a * b\n```", tests) == 0.0
    assert task.verify("```python\nimport os\nos._exit(0)\n```", tests) == 0.0
    assert task.solution(numeric) == "<think>\n17 * 3 = 51\n</think>\n<answer>51</answer>"
    assert task.solution(exact) is None and task.solution(tests) is None


def test_split(task: JsonlTask, tmp_path: Path) -> None:
    test, train = task.test(), task.train(500, seed=0)
    assert [ex.meta["line"] for ex in test[:4]] == [1, 2, 3, 4]
    hashed = [ex for ex in test if ex.meta["line"] > 4]
    assert 5 <= len(hashed) <= 40  # about 10% of the 200 rows without a split
    assert not {ex.id for ex in train} & {ex.id for ex in test}
    assert not {ex.prompt for ex in train} & {ex.prompt for ex in test}
    assert len({ex.id for ex in train}) == 200 - len(hashed)
    assert task.train(50, seed=3) == task.train(50, seed=3) != task.train(50, seed=4)
    # the hash split does not depend on the order of the rows
    reordered = JsonlTask(_write(tmp_path / "reordered.jsonl", ROWS[::-1]))
    assert {ex.id for ex in reordered.test()} == {ex.id for ex in test}
    assert len(JsonlTask(_write(tmp_path / "all.jsonl", ROWS), test_fraction=1.0).test()) == len(ROWS)


@pytest.mark.parametrize("rows, message", [
    ([{"prompt": "a", "answer": "b"}, "{not json"], r"bad\.jsonl:2: not valid JSON"),
    ([{"prompt": "a", "answer": "b"}, {"answer": "b"}], r"bad\.jsonl:2: field 'prompt': Field required"),
    ([{"prompt": "", "answer": "b"}], r"bad\.jsonl:1: field 'prompt'"),
    ([{"prompt": "a", "answer": "b", "verifier": "fuzzy"}], r"bad\.jsonl:1: field 'verifier'.*'exact'"),
    ([{"prompt": "a", "answer": "b", "split": "dev"}], r"bad\.jsonl:1: field 'split'"),
    ([{"prompt": "a", "answer": "b", "verifer": "exact"}], r"bad\.jsonl:1: field 'verifer'.*fields: prompt"),
    ([{"prompt": "a", "answer": "many", "verifier": "numeric"}], r"bad\.jsonl:1: verifier 'numeric' but answer"),
    ([{"prompt": "a", "answer": "([", "verifier": "regex"}], r"bad\.jsonl:1: answer is not a valid regex"),
    ([{"prompt": "a", "answer": "assert (", "verifier": "python-tests"}], r"bad\.jsonl:1: test code does not compile"),
    ([{"prompt": "a", "answer": "b", "id": "x"}, {"prompt": "c", "answer": "d", "id": "x"}],
     r"bad\.jsonl:2: id 'x' already used on line 1"),
    ([{"prompt": "a", "answer": "b"}, "", {"prompt": "a", "answer": "c", "split": "test"}],
     r"bad\.jsonl:3: same prompt as line 1"),
    (["[1, 2]"], r"bad\.jsonl:1: expected a JSON object"),
    ([""], r"bad\.jsonl: no rows"),
])
def test_errors_name_the_line(tmp_path: Path, rows: list[object], message: str) -> None:
    with pytest.raises(TaskError, match=message):
        JsonlTask(_write(tmp_path / "bad.jsonl", rows))


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(TaskError, match="no such file"):
        JsonlTask(tmp_path / "missing.jsonl")
    (tmp_path / "latin1.jsonl").write_bytes(b'{"prompt": "caf\xe9", "answer": "x"}\n')
    with pytest.raises(TaskError, match=r"latin1\.jsonl:1: not valid UTF-8"):
        JsonlTask(tmp_path / "latin1.jsonl")
    only_test = _write(tmp_path / "t.jsonl", [{"prompt": "a", "answer": "b", "split": "test"}])
    with pytest.raises(TaskError, match="no training rows"):
        JsonlTask(only_test).train(1, seed=0)
    with pytest.raises(TaskError, match="test_fraction"):
        JsonlTask(only_test, test_fraction=2)
