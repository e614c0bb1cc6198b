"""Engines kept from one batch of requests to the next, for callers that generate in rounds (GRPO's rollouts and
test accuracy, an evaluation's tasks and tool turns).

An engine owns a preallocated cache pool and, on a GPU, the decode graphs it captured (fronde.infer.graphs);
building one per round would capture the graphs again every time. A kept engine serves any later round with as
many rows or fewer, its context grown when the round's is longer (contexts are rounded up so that prompts of
slightly different lengths need no growing); only a few are kept. A kept engine also keeps its prefix cache: the
next round's prompts that start like this round's (a multi-turn episode's next turn) are not prefilled again.
"""

from __future__ import annotations

from fronde.infer.engine import Engine
from fronde.model.model import CausalLM

LENGTH_STEP = 128  # contexts are rounded up to a multiple of this (within the model's own)


class EngineCache:
    def __init__(self, keep: int = 4, prefill_chunk: int = 8192, prefix_caching: bool = True) -> None:
        self.keep = keep  # GRPO wants its rollouts', its test accuracy's and its later tool turns' shapes
        # a round's prompts all arrive at once and only its end counts: prefill them together in the first steps
        # (a server keeps the engine's small default so that a long prompt never stalls running decodes)
        self.prefill_chunk = prefill_chunk
        self.prefix_caching = prefix_caching  # for engines built from now on
        self.engines: list[Engine] = []  # most recently used last

    def get(self, model: CausalLM, max_batch: int, longest: int) -> Engine:
        """An idle engine over `model` for max_batch sequences of up to `longest` tokens: a kept one that holds
        that many rows (its context grown if needed, so a multi-turn episode's next turn finds the cache of its
        last one), or a new one."""
        rounded = min(-(-longest // LENGTH_STEP) * LENGTH_STEP, model.config.max_position_embeddings)
        context = max(longest, rounded)
        # engines over other weights go, and so does one a round left busy (it died half-way)
        self.engines = [e for e in self.engines if e.model is model and not e.has_work()]
        fits = [e for e in self.engines if e.max_batch >= max_batch]
        engine = min(fits, key=lambda e: (e.max_batch, -e.max_model_len), default=None)
        if engine is None:
            engine = Engine(model, max_batch=max_batch, max_model_len=context, prefill_chunk=self.prefill_chunk,
                            prefix_caching=self.prefix_caching)
        else:
            self.engines.remove(engine)
            engine.grow(context)
        self.engines.append(engine)
        del self.engines[: -self.keep]
        model.eval()  # the caller may have switched the model back to training since the engine was built
        return engine
