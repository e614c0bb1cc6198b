"""Engines kept from one batch of requests to the next, for callers that generate in rounds (GRPO's rollouts and
test accuracy, an evaluation's tasks and tool turns).

An engine owns a preallocated cache pool and, on a GPU, the decode graphs it captured (fronde.infer.graphs);
building one per round would capture the graphs again every time. Engines are keyed by batch and context, the
context rounded up so that prompts of slightly different lengths share one, and only a few are kept.
"""

from __future__ import annotations

from fronde.infer.engine import Engine
from fronde.model.model import CausalLM

LENGTH_STEP = 128  # contexts are rounded up to a multiple of this (within the model's own)


class EngineCache:
    def __init__(self, keep: int = 4, prefill_chunk: int = 8192) -> None:
        self.keep = keep  # GRPO wants its rollouts', its test accuracy's and its later tool turns' shapes
        # a round's prompts all arrive at once and only its end counts: prefill them together in the first steps
        # (a server keeps the engine's small default so that a long prompt never stalls running decodes)
        self.prefill_chunk = prefill_chunk
        self.engines: dict[tuple[int, int], Engine] = {}

    def get(self, model: CausalLM, max_batch: int, longest: int) -> Engine:
        """An idle engine over `model` for max_batch sequences of up to `longest` tokens."""
        rounded = min(-(-longest // LENGTH_STEP) * LENGTH_STEP, model.config.max_position_embeddings)
        key = (max_batch, max(longest, rounded))
        engine = self.engines.pop(key, None)
        if engine is None or engine.model is not model or engine.has_work():
            engine = Engine(model, max_batch=max_batch, max_model_len=key[1], prefill_chunk=self.prefill_chunk)
        self.engines = {k: e for k, e in self.engines.items() if e.model is model}
        self.engines[key] = engine  # most recently used last
        while len(self.engines) > self.keep:
            del self.engines[next(iter(self.engines))]
        model.eval()  # the caller may have switched the model back to training since the engine was built
        return engine
