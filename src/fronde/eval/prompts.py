"""The conversation a task problem becomes: optional system prompt, k worked examples, then the problem.

Shots come from the task's training split (never its test split), the same k for every problem of a run (drawn with
the run's seed). The worked reply of a shot is the task's solution in think/answer form: for fronde models as
`reasoning_content` + `content` (their chat template writes the special think/answer tokens they were trained on),
for every other model as plain text with <think>/<answer> tags, which shows it the layout the verifiers read.
"""

from __future__ import annotations

from typing import Any

from fronde.tasks import THINK_ANSWER_SYSTEM, Example, Task

SYSTEM_PRESETS = {"think-answer": THINK_ANSWER_SYSTEM}


def resolve_system(system: str | None) -> str | None:
    """A preset name (`think-answer`) becomes its text; anything else is the system prompt itself."""
    return SYSTEM_PRESETS.get(system, system) if system else None


def draw_shots(task: Task, k: int, seed: int) -> list[Example]:
    return task.train(k, seed) if k > 0 else []


def shot_turns(task: Task, shot: Example, native_reasoning: bool) -> list[dict[str, Any]]:
    """The user turn and the worked assistant turn of one shot (the reference answer where a task has no solution)."""
    user = {"role": "user", "content": shot.prompt}
    if native_reasoning:
        conv = task.conversation(shot)
        if conv is not None:
            return [user, conv[-1]]
    reply = task.solution(shot)
    return [user, {"role": "assistant", "content": reply if reply is not None else shot.answer}]


def conversation(task: Task, example: Example, system: str | None, shots: list[Example],
                 native_reasoning: bool) -> list[dict[str, Any]]:
    """The task's own messages for the problem, with the shots' turns before its last (user) message."""
    messages = task.messages(example, system)
    turns = [t for shot in shots for t in shot_turns(task, shot, native_reasoning)]
    return messages[:-1] + turns + messages[-1:]
