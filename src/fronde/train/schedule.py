"""Learning-rate schedules as a multiplier of the base rate, a pure function of the step (so resume is exact)."""

from __future__ import annotations

import math
from typing import Literal

ScheduleKind = Literal["cosine", "wsd", "constant"]


def lr_multiplier(
    step: int, max_steps: int, warmup_steps: int, kind: ScheduleKind = "cosine", min_ratio: float = 0.1,
    decay_fraction: float = 0.2,
) -> float:
    """Linear warmup to 1, then cosine to min_ratio, or warmup-stable-decay (flat, then linear to min_ratio over
    the last decay_fraction of the run), or constant."""
    if warmup_steps and step < warmup_steps:
        return (step + 1) / warmup_steps
    if kind == "constant":
        return 1.0
    if kind == "cosine":
        span = max(1, max_steps - warmup_steps)
        progress = min(1.0, (step - warmup_steps) / span)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    decay_start = wsd_decay_start(max_steps, decay_fraction)
    if step < decay_start:
        return 1.0
    progress = min(1.0, (step - decay_start) / max(1, max_steps - decay_start))
    return 1.0 - (1.0 - min_ratio) * progress


def wsd_decay_start(max_steps: int, decay_fraction: float) -> int:
    """The first step of warmup-stable-decay's decay (at least one step decays)."""
    return max_steps - max(1, round(decay_fraction * max_steps))
