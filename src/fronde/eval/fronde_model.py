"""A fronde model dir behind the evaluation interface: generation through fronde's inference engine (continuous
batching over the latent cache, the path `fronde serve` uses, so its speed is the served speed), log-likelihoods
through one plain forward pass."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from fronde.data.chat import render_chat
from fronde.data.replies import fronde_reply
from fronde.eval.errors import EvalError
from fronde.eval.likelihood import continuation_ids, score_rolling, score_tokens
from fronde.eval.models import ModelDescription, Speed, ToolReply, default_name, run_dir_of
from fronde.infer.engine_cache import EngineCache
from fronde.infer.loading import LOAD_ERRORS, load_for_inference
from fronde.infer.sampling import SamplingParams
from fronde.model.info import model_info
from fronde.tools import Toolbox
from fronde.tools.episode import run_episodes


class FrondeModel:
    """fp32 on CPU, bf16 on a GPU (as `fronde serve`)."""

    def __init__(self, directory: Path, device: str = "cpu", max_batch: int = 16, name: str | None = None) -> None:
        try:
            self.tok, self.model = load_for_inference(directory, device)
        except LOAD_ERRORS as e:
            raise EvalError(f"fronde model {directory}: {e}") from None
        self.max_batch = max_batch
        self.max_len = self.model.config.max_position_embeddings
        self.engines = EngineCache()  # one engine (and its decode graphs) for all the tasks and turns
        self.stop_ids = [self.tok.special.end, self.tok.special.eos]
        self.name = name or default_name(str(directory))
        run = run_dir_of(directory)
        mi = model_info(self.model.config)
        self.info = ModelDescription(name=self.name, kind="fronde", spec=str(directory), total_params=mi.total_params,
                                     active_params=mi.active_params, run_dir=str(run) if run else None,
                                     native_reasoning=True)
        self.last_speed: Speed | None = None

    # -- generation -------------------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, conversations: list[list[dict[str, Any]]], max_new_tokens: int, temperature: float = 0.0,
                 seed: int = 0) -> list[str]:
        """All conversations continuously batched; request i samples with seed + i (its own generator, so the
        reply does not depend on what it is batched with)."""
        if not conversations:
            return []
        prompts = [render_chat(self.tok, c, add_generation_prompt=True)[0] for c in conversations]
        self.last_speed = Speed()
        return [fronde_reply(self.tok, ids) for ids, _ in self._complete(prompts, max_new_tokens, temperature, seed)]

    @torch.no_grad()
    def generate_with_tools(self, conversations: list[list[dict[str, Any]]], toolbox: Toolbox, max_new_tokens: int,
                            temperature: float = 0.0, seed: int = 0, max_turns: int = 4) -> list[ToolReply]:
        """Multi-turn episodes (fronde.tools.episode): the tools run between turns, the final turn is the reply."""
        if not conversations:
            return []
        prompts = [render_chat(self.tok, c, tools=toolbox.schemas(), add_generation_prompt=True)[0]
                   for c in conversations]
        self.last_speed = Speed()
        eps = run_episodes(lambda ctx, n, s: self._complete(ctx, n, temperature, s), self.tok, prompts, toolbox,
                           max_turns, max_new_tokens, self.max_len, seed)
        return [ToolReply(fronde_reply(self.tok, ep.last_turn), ep.tool_calls, ep.tool_errors, ep.turns, ep.stop,
                          ep.transcript) for ep in eps]

    def _complete(self, prompts: list[list[int]], max_new_tokens: int, temperature: float, seed: int
                  ) -> list[tuple[list[int], bool]]:
        """(generated ids, ended on a stop token) per prompt, through the engine; adds to last_speed."""
        longest = max(len(p) for p in prompts) + max_new_tokens
        if longest > self.max_len:
            raise EvalError(f"{self.name}: a prompt of {longest - max_new_tokens} tokens + {max_new_tokens} new "
                            f"tokens exceeds the model's context of {self.max_len}; lower --max-new-tokens or --shots")
        engine = self.engines.get(self.model, self.max_batch, longest)
        start = time.perf_counter()
        ids = [engine.add_request(p, SamplingParams(max_tokens=max_new_tokens, temperature=temperature,
                                                    seed=seed + i, stop_token_ids=self.stop_ids))
               for i, p in enumerate(prompts)]
        outputs: dict[int, list[int]] = {i: [] for i in ids}
        first: dict[int, float] = {}
        while engine.has_work():
            for ev in engine.step():
                outputs[ev.request_id].append(ev.token)
                first.setdefault(ev.request_id, time.perf_counter() - start)
        seconds = time.perf_counter() - start
        speed = Speed(seconds=seconds, requests=len(ids), generated_tokens=sum(map(len, outputs.values())),
                      ttft_s=[first[i] for i in ids if i in first])
        self.last_speed = speed if self.last_speed is None else self.last_speed.merge(speed)
        stops = set(self.stop_ids)
        return [(outputs[i], bool(outputs[i]) and outputs[i][-1] in stops) for i in ids]

    # -- likelihoods --------------------------------------------------------------------------------------------
    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.to(next(self.model.parameters()).device)).logits

    def loglikelihood(self, context: str, continuation: str) -> tuple[float, int, bool]:
        """See fronde.eval.likelihood; the start token is fronde's <|bos|>."""
        ids, start = continuation_ids(self.tok.encode, self.tok.special.bos, context, continuation)
        return score_tokens(self._forward, ids, start, self.max_len)

    def loglikelihood_rolling(self, text: str) -> tuple[float, int]:
        return score_rolling(self._forward, self.tok.encode(text, bos=True), self.max_len)
