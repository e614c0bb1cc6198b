"""Tiny real models for the model tests."""

from __future__ import annotations

from collections import Counter

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from fronde.model.config import ModelConfig, load_preset
from fronde.model.model import CausalLM
from fronde.model.moe import Router


def tiny_model(seed: int = 0, bias_scale: float = 0.05, **overrides) -> CausalLM:
    """The tiny preset with overrides, random weights and a non-zero correction bias (so selection != weights)."""
    config: ModelConfig = load_preset("tiny", **overrides)
    model = CausalLM(config).init_weights(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    for m in model.modules():
        if isinstance(m, Router):
            m.e_score_correction_bias.copy_((torch.rand(m.n_experts, generator=gen) * 2 - 1) * bias_scale)
    return model.eval()


# Operators that, on a GPU, wait for the device or copy a fresh host value: a training step holding one stalls the
# pipeline every step, and a CUDA graph capture holding one fails. The op sequence does not depend on the device,
# so a CPU run shows them.
HOST_SYNC_OPS = frozenset({"aten._local_scalar_dense", "aten.item", "aten.nonzero", "aten.masked_select",
                           "aten.unique", "aten._unique2", "aten.lift_fresh", "aten.bincount",
                           "aten.repeat_interleave"})


class RecordOps(TorchDispatchMode):
    """Counts the aten operators run inside the `with` block (by name, e.g. "aten.mm")."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.counts[str(func.overloadpacket)] += 1
        return func(*args, **(kwargs or {}))

    def host_syncs(self) -> list[str]:
        return sorted(HOST_SYNC_OPS & set(self.counts))


def memorise_chats(tok, chats: list[list[dict]], tools: list[dict] | None = None, steps: int = 150,
                   **overrides) -> CausalLM:
    """A tiny model trained on the assistant turns of `chats` (one optimizer step per chat, `steps` rounds) until it
    replies them token for token: a real model for the serving, agent and teacher tests, without a training run."""
    from fronde.data.chat import render_chat
    from fronde.model.loss import IGNORE_INDEX

    model = tiny_model(vocab_size=tok.vocab_size, eos_token_id=tok.special.eos, **overrides).train()
    batches = []
    for chat in chats:
        ids, mask = render_chat(tok, chat, tools=tools)
        targets = [t if m else IGNORE_INDEX for t, m in zip(ids[1:], mask[1:], strict=True)]
        batches.append((torch.tensor([ids[:-1]]), torch.tensor([targets])))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(steps):
        for x, y in batches:
            model(x, y).loss.backward()
            opt.step()
            opt.zero_grad()
    return model.eval()
