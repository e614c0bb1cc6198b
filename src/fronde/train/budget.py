"""Fitting a training stage into wall-clock minutes (`schedule.max_minutes`).

A rented GPU is paid by the hour and a step's time is only known once the model runs (compile, data, evaluation
and checkpoints included), so with a time budget the stage's step count is planned at run time from the measured
pace: total = steps done + remaining seconds / seconds per step, the pace taken over the later half of the steps
timed so far (a slow start, e.g. a recompilation at the first evaluation, ages out; evaluations that recur stay in
it). The plan may move only while that cannot change a
learning rate already used: during the stable phase of warmup-stable-decay (the decay then lands at the end of the
budget), up to the end of warmup for cosine, at every step for a constant rate. Once frozen it is saved in each
checkpoint with the seconds spent, so a resumed run keeps its schedule and its remaining budget. The recipe's
max_steps stays the upper bound: a budget only ever shortens a run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from fronde.train.schedule import ScheduleKind, lr_multiplier, wsd_decay_start

PACE_STEPS = 3  # steps timed (after the first, which pays for compilation) before the pace is trusted


@dataclass
class StepPlan:
    max_steps: int  # the recipe's bound
    warmup_steps: int
    kind: ScheduleKind
    decay_fraction: float
    budget_s: float | None  # None: no budget, the plan is max_steps
    planned: int
    frozen: bool
    spent_s: float = 0.0  # seconds of this stage before this process (from the checkpoint)
    _times: list[float] = field(default_factory=list)  # seconds at each step done by this process, from the first

    @classmethod
    def create(cls, sched: Any, saved: dict[str, Any] | None = None) -> StepPlan:
        """From a recipe's ScheduleSection and, on resume, the plan a checkpoint saved."""
        budget = sched.max_minutes * 60 if sched.max_minutes is not None else None
        plan = cls(sched.max_steps, sched.warmup_steps, sched.kind, sched.decay_fraction, budget,
                   planned=sched.max_steps, frozen=budget is None)
        if budget is not None and saved:
            plan.spent_s = float(saved["spent_s"])
            # the same budget: the same plan; another one is planned anew (the seconds spent still count)
            if saved.get("budget_s") is not None and math.isclose(saved["budget_s"], budget):
                plan.planned = min(int(saved["planned"]), sched.max_steps)
                plan.frozen = bool(saved["frozen"])
        return plan

    def lr(self, step: int, min_ratio: float) -> float:
        return lr_multiplier(step, self.planned, self.warmup_steps, self.kind, min_ratio, self.decay_fraction)

    @property
    def open(self) -> bool:
        """Whether observe() may still move the plan (a budget, not yet frozen)."""
        return self.budget_s is not None and not self.frozen

    def finished(self, done: int) -> bool:
        return done >= self.planned

    def observe(self, done: int, seconds: float) -> bool:
        """After a step: `done` steps completed and `seconds` since this process started the stage. Re-plans while
        the plan is open; returns whether the planned total changed."""
        if not self.open:
            return False
        self._times.append(seconds)  # the first entry ends this process's first step, which compiles: not timed
        timed = len(self._times) - 1
        if timed < PACE_STEPS:
            return False
        window = max(PACE_STEPS, timed // 2)
        pace = (seconds - self._times[-1 - window]) / window
        remaining = self.budget_s - self.spent_s - seconds
        before = self.planned
        self.planned = max(done, min(self.max_steps, done + math.floor(max(remaining, 0.0) / max(pace, 1e-9))))
        if self.kind == "wsd":  # frozen once the decay has begun
            self.frozen = done >= wsd_decay_start(self.planned, self.decay_fraction)
        elif self.kind == "cosine":
            self.frozen = done >= self.warmup_steps
        return self.planned != before

    def state(self, seconds: float) -> dict[str, Any]:
        """What a checkpoint keeps, `seconds` into this process's part of the stage."""
        return {"planned": self.planned, "frozen": self.frozen, "spent_s": self.spent_s + seconds,
                "budget_s": self.budget_s}

    def describe(self) -> str:
        if self.budget_s is None:
            return f"{self.max_steps} steps"
        return f"{self.planned} of at most {self.max_steps} steps in {self.budget_s / 60:g} min" + (
            "" if self.frozen else " (planning from the measured pace)")
