"""Steps whose gradients are not finite are skipped; a stage that keeps producing them stops, its weights intact.

One NaN or inf in the gradients (a learning rate too high, an overflow, one pathological batch) applied by the
optimizer makes every weight NaN, and nothing after recovers: tiny-cpu at `optim.lr=30` trained 37 more steps on
NaN, rotated its good checkpoints out, published a NaN model and exited 0 (a speedrun would have fine-tuned it).
So each step's global gradient norm, which clipping computes anyway and which is the same on every rank, is checked
before the optimizer steps: a non-finite one skips the update (the batch is consumed, as PaLM skipped the batches
around its loss spikes), and `optim.max_nonfinite_steps` of them in a row stop the stage with what to change. The
skip is a function of the data and the weights, so a resumed run skips the same steps: resume stays exact.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from fronde.train.recipe import RecipeError


class DivergedError(RecipeError):
    """The stage stopped on gradients that stayed non-finite; the recipe's optimisation settings are what to change."""


class NonFiniteSteps:
    """`ok(grad_norm, step)` before each optimizer step: False means skip it."""

    def __init__(self, stage: str, limit: int, lr: float, say: Callable[[str], None]) -> None:
        self.stage, self.limit, self.lr, self.say = stage, limit, lr, say
        self.skipped = 0  # in this process's part of the run, for the metrics
        self.in_a_row: list[int] = []

    def ok(self, grad_norm: torch.Tensor | float, step: int) -> bool:
        norm = float(grad_norm)
        if math.isfinite(norm):
            self.in_a_row = []
            return True
        self.skipped += 1
        self.in_a_row.append(step)
        if len(self.in_a_row) > self.limit:
            first = self.in_a_row[0]
            raise DivergedError(
                f"{self.stage}: the gradients were not finite ({norm}) at steps {first}-{step}, {len(self.in_a_row)} "
                f"in a row (more than optim.max_nonfinite_steps={self.limit}); each was skipped, so the weights are "
                f"those of step {first - 1} and every checkpoint is finite. The run is diverging: lower optim.lr "
                f"(now {self.lr:g}) or raise schedule.warmup_steps, then run again (--resume starts from the last "
                "checkpoint)")
        self.say(f"{self.stage} step {step}: gradient norm {norm}; update skipped, weights unchanged "
                 f"({len(self.in_a_row)} in a row, the stage stops after {self.limit})")
        return False
