"""What RL and on-policy distillation need from a sampler: completions of prompts with the current weights.

Defined here, implemented by fronde.infer.rollout.EngineRollouts (fronde's batched engine), so the training layer
never imports the inference layer above it and tests can pass a scripted sampler.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from fronde.model.model import CausalLM


@dataclass
class Completion:
    ids: list[int]  # generated tokens, including the stop token when there is one
    finished: bool  # ended on a stop token (False: cut at max_new_tokens)


class Rollouts(Protocol):
    """Samples completions with the current weights: `group_size` per prompt, reproducible for a seed. `first` is
    the index of prompts[0] in a larger batch split across ranks: row i of prompt k draws as row i of prompt
    first + k would in the whole batch."""

    def sample(self, model: CausalLM, prompts: list[list[int]], group_size: int, max_new_tokens: int,
               temperature: float, top_p: float, seed: int, stop_ids: list[int], first: int = 0
               ) -> list[list[Completion]]: ...
