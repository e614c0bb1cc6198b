"""GRPO's rollouts on fronde's engine: all prompts' groups in one continuously batched run over the latent cache,
each group's prompt prefilled once and shared by its G samples (the engine's n > 1 path). Identical prompts are
sampled as one group too (a multi-turn episode's first turn asks for each prompt's G rows one by one), and a later
turn's context finds the earlier turns in the engine's prefix cache.

The engines (their cache pools and, on a GPU, their captured decode graphs) are kept from one call to the next, and
the low-precision sampling copy of the weights is refreshed in place: a graph replays the addresses it was captured
with, and capturing again at every GRPO step would cost more than the rollouts themselves.
"""

from __future__ import annotations

import copy

import torch

from fronde.infer.engine import weights_version
from fronde.infer.engine_cache import EngineCache
from fronde.infer.graphs import bucket
from fronde.infer.sampling import SamplingParams
from fronde.model.model import CausalLM
from fronde.model.precision import bf16_native
from fronde.train.rollouts import Completion


class EngineRollouts:
    def __init__(self, max_batch: int = 256, dtype: torch.dtype | None = None) -> None:
        self.max_batch, self.dtype = max_batch, dtype
        self._copy: CausalLM | None = None  # the sampling copy (dtype set) ...
        self._source: CausalLM | None = None  # ... of this model
        self._version: tuple[int, int] | None = None  # ... at these weights
        self.engines = EngineCache()

    @torch.no_grad()
    def sample(self, model: CausalLM, prompts: list[list[int]], group_size: int, max_new_tokens: int,
               temperature: float, top_p: float, seed: int, stop_ids: list[int], first: int = 0
               ) -> list[list[Completion]]:
        was_training = model.training
        policy = self._policy(model)
        engine = self.engines.get(policy, bucket(max(group_size, len(prompts) * group_size), self.max_batch),
                                  max(len(p) for p in prompts) + max_new_tokens)
        ids: list[list[int]] = [[] for _ in prompts]
        rows: dict[tuple[int, ...], list[tuple[int, SamplingParams]]] = {}  # prompt -> (index, params) per sample
        for k, prompt in enumerate(prompts):
            rows.setdefault(tuple(prompt), []).extend(
                (k, SamplingParams(max_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                                   seed=seed * 100_003 + (first + k) * group_size + i, stop_token_ids=stop_ids))
                for i in range(group_size))
        reqs = {}
        try:
            for prompt, samples in rows.items():
                for start in range(0, len(samples), engine.max_batch):
                    part = samples[start : start + engine.max_batch]
                    group = engine.add_group(list(prompt), [p for _, p in part])
                    reqs.update({r.id: r for r in engine.waiting[-1]})
                    for (k, _), rid in zip(part, group):
                        ids[k].append(rid)
            while engine.has_work():
                engine.step()
        finally:  # an exception must not leave half a batch in a kept engine, nor the model in eval mode
            for rid in reqs:
                engine.abort(rid)
            model.train(was_training)
        stops = set(stop_ids) | engine.stop_ids
        return [[Completion(list(reqs[r].output_ids), bool(reqs[r].output_ids)
                            and reqs[r].output_ids[-1] in stops) for r in group] for group in ids]

    def _policy(self, model: CausalLM) -> CausalLM:
        """The model itself (fp32 sampling), or its low-precision copy with today's weights copied in (not copied
        again for a multi-turn episode's next turn: that would also throw away the copy's prefix cache)."""
        if self.dtype is None:
            return model
        version = weights_version(model)
        if self._source is not model:
            self._copy, self._source = copy.deepcopy(model).to(self.dtype), model
        elif version != self._version:
            assert self._copy is not None
            src = model.state_dict()
            for name, t in self._copy.state_dict().items():
                t.copy_(src[name])
        self._version = version
        assert self._copy is not None
        return self._copy


def rollout_dtype() -> torch.dtype | None:
    """Sample in bf16 on a GPU that has it natively (a bf16 copy of the fp32 training weights); else in fp32 (None:
    as trained)."""
    return torch.bfloat16 if torch.cuda.is_available() and bf16_native("cuda") else None
