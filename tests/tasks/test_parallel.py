"""Training problems generated over several processes are those of one process, in the same order: GSM-Symbolic's
drawn variants (and its failed-draw count), Countdown's worked solutions, calculator conversations."""

from __future__ import annotations

import pytest

from fronde.tasks import get_task, parallel
from fronde.train.sft import TaskMix, task_conversations


@pytest.fixture
def eager_workers(monkeypatch):
    """Spread from the first item on, over 2 processes, however fast the items are."""
    monkeypatch.setattr(parallel, "PROBE", 20)
    monkeypatch.setattr(parallel, "PARALLEL_AFTER_S", 0.0)
    monkeypatch.setenv("FRONDE_TASK_WORKERS", "2")


def _one_process(monkeypatch, make):
    with monkeypatch.context() as m:
        m.setenv("FRONDE_TASK_WORKERS", "1")
        return make()


def test_gsm_symbolic_draws_do_not_depend_on_the_worker_count(monkeypatch, eager_workers):
    spread = get_task("gsm-symbolic:fra")
    alone = get_task("gsm-symbolic:fra")
    got = spread.train(400, seed=3)
    want = _one_process(monkeypatch, lambda: alone.train(400, seed=3))
    assert [(e.id, e.prompt, e.answer) for e in got] == [(e.id, e.prompt, e.answer) for e in want]
    assert len(got) == 400 and spread.failed_draws == alone.failed_draws


def test_worked_solutions_do_not_depend_on_the_worker_count(monkeypatch, eager_workers):
    mix = [TaskMix(name="countdown", n=150), TaskMix(name="arithmetic:2", n=120, tools=["calculator"])]
    got = task_conversations(mix, "Be brief.", seed=5)
    want = _one_process(monkeypatch, lambda: task_conversations(mix, "Be brief.", seed=5))
    assert [(c.source, c.messages, c.tools) for c in got] == [(c.source, c.messages, c.tools) for c in want]
    assert {c.source for c in got} == {"task:countdown", "task:arithmetic:2+tools"}


def test_map_items_spreads_only_what_is_slow(monkeypatch):
    calls = []
    monkeypatch.setattr(parallel, "ProcessPoolExecutor", lambda *a, **k: calls.append(a) or None)
    assert parallel.map_items(int, _double, list(range(1000)), workers=4) == [2 * i for i in range(1000)]
    assert not calls  # microseconds an item: never worth starting processes
    monkeypatch.setenv("FRONDE_TASK_WORKERS", "x")
    with pytest.raises(ValueError, match="FRONDE_TASK_WORKERS"):
        parallel.default_workers()


def _double(_state, item: int) -> int:
    return 2 * item
