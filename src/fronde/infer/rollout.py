"""GRPO's rollouts on fronde's engine: all prompts' groups in one continuously batched run over the latent cache,
each group's prompt prefilled once and shared by its G samples (the engine's n > 1 path)."""

from __future__ import annotations

import torch

from fronde.infer.engine import Engine
from fronde.infer.sampling import SamplingParams
from fronde.model.model import CausalLM
from fronde.train.rollouts import Completion


class EngineRollouts:
    def __init__(self, max_batch: int = 256, dtype: torch.dtype | None = None) -> None:
        self.max_batch, self.dtype = max_batch, dtype

    @torch.no_grad()
    def sample(self, model: CausalLM, prompts: list[list[int]], group_size: int, max_new_tokens: int,
               temperature: float, top_p: float, seed: int, stop_ids: list[int], first: int = 0
               ) -> list[list[Completion]]:
        was_training = model.training
        policy = model if self.dtype is None else _copy_in(model, self.dtype)
        longest = max(len(p) for p in prompts) + max_new_tokens
        engine = Engine(policy, max_batch=min(self.max_batch, max(group_size, len(prompts) * group_size)),
                        max_model_len=longest)
        ids: list[list[int]] = []
        reqs = {}
        for k, prompt in enumerate(prompts):
            params = [SamplingParams(max_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                                     seed=seed * 100_003 + (first + k) * group_size + i, stop_token_ids=stop_ids)
                      for i in range(group_size)]
            group = engine.add_group(prompt, params)
            reqs.update({r.id: r for r in engine.waiting[-1]})
            ids.append(group)
        while engine.has_work():
            engine.step()
        model.train(was_training)
        stops = set(stop_ids) | engine.stop_ids
        return [[Completion(list(reqs[r].output_ids), bool(reqs[r].output_ids)
                            and reqs[r].output_ids[-1] in stops) for r in group] for group in ids]


def rollout_dtype() -> torch.dtype | None:
    """Sample in bf16 on a GPU (a bf16 copy of the fp32 training weights); in fp32 (None: as trained) on the CPU."""
    return torch.bfloat16 if torch.cuda.is_available() else None


def _copy_in(model: CausalLM, dtype: torch.dtype) -> CausalLM:
    """A low-precision copy for sampling on GPU (bf16 decode), leaving the fp32 training weights alone."""
    import copy

    return copy.deepcopy(model).to(dtype)
