"""Any local transformers model dir, GGUF file or built-in (SmolLM2-135M-Instruct) behind the evaluation interface.

Loading and chat generation are fronde.train.teacher's (offline, chat template, left-padded batches, greedy at
temperature 0, stop at eos or the template's end-of-turn token); this module adds batching over long lists,
log-likelihoods through the forward pass, and the parameter count.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fronde.eval.errors import EvalError
from fronde.eval.likelihood import continuation_ids, score_rolling, score_tokens
from fronde.eval.models import ModelDescription, Speed, default_name
from fronde.train.teacher import BUILTIN_TEACHERS, TeacherError, load_teacher

_MOE_KEYS = ("n_routed_experts", "num_local_experts", "num_experts")


class HFModel:
    def __init__(self, spec: str, device: str = "cpu", batch_size: int = 16, name: str | None = None) -> None:
        try:
            self.teacher = load_teacher(spec, device=device)
        except TeacherError as e:  # its message names the spec and what to do
            raise EvalError(f"cannot evaluate {spec!r} (not a fronde model dir, so loaded with transformers): {e}") \
                from None
        self.tokenizer = self.teacher.tokenizer
        self.batch_size = max(1, batch_size)
        config = self.teacher.model.config
        self.max_len = int(getattr(config, "max_position_embeddings", None) or 2048)
        prefix = self.tokenizer.bos_token_id if self.tokenizer.bos_token_id is not None else self.tokenizer.eos_token_id
        if prefix is None:
            raise EvalError(f"{spec}: the tokenizer has neither a bos nor an eos token to start a text with")
        self.prefix_id = int(prefix)
        self.name = name or default_name(spec)
        total = sum(p.numel() for p in self.teacher.model.parameters())
        moe = any(getattr(config, k, None) for k in _MOE_KEYS)  # active parameters of a foreign MoE: unknown
        gguf = spec in BUILTIN_TEACHERS or Path(spec).suffix.lower() == ".gguf"
        self.info = ModelDescription(name=self.name, kind="gguf" if gguf else "transformers", spec=spec,
                                     total_params=total, active_params=None if moe else total)
        self.last_speed: Speed | None = None

    def generate(self, conversations: list[list[dict[str, Any]]], max_new_tokens: int, temperature: float = 0.0,
                 seed: int = 0) -> list[str]:
        """Batches of `batch_size` conversations; batch b samples with seed + b * batch_size (so the same settings
        give the same replies; a different batch size may change sampled ones)."""
        out: list[str] = []
        speed = Speed(tokens_estimated=True)
        for b in range(0, len(conversations), self.batch_size):
            start = time.perf_counter()
            replies = self.teacher.generate(conversations[b:b + self.batch_size], max_new_tokens,
                                            temperature=temperature, seed=seed + b)
            speed.seconds += time.perf_counter() - start
            speed.requests += len(replies)
            speed.generated_tokens += sum(len(self.tokenizer.encode(r, add_special_tokens=False)) for r in replies)
            out.extend(replies)
        self.last_speed = speed
        return out

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def loglikelihood(self, context: str, continuation: str) -> tuple[float, int, bool]:
        """See fronde.eval.likelihood; the start token is the tokenizer's bos, else its eos."""
        ids, start = continuation_ids(self._encode, self.prefix_id, context, continuation)
        return score_tokens(self.teacher.logits, ids, start, self.max_len)

    def loglikelihood_rolling(self, text: str) -> tuple[float, int]:
        return score_rolling(self.teacher.logits, [self.prefix_id] + self._encode(text), self.max_len)
