"""Optimizers: AdamW with decoupled weight decay (fused, on CUDA and CPU), optionally Muon for the 2-D matrices.

Norm weights, embeddings and the router's bias get no weight decay by default: decaying them towards zero only
fights the normalisation (nanoGPT, DeepSeek).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fronde.train.recipe import OptimConfig

FUSED_ADAMW = ("cuda", "cpu")  # devices where torch has a fused AdamW kernel


def _is_matrix(name: str, p: nn.Parameter) -> bool:
    """Hidden 2-D weights (attention, dense MLP, shared experts, router). The embedding and head are not Muon's to
    orthogonalise, and the stacked 3-D routed experts stay with AdamW (torch's Muon takes matrices only)."""
    return p.ndim == 2 and not name.endswith(("embed_tokens.weight", "lm_head.weight"))


def param_groups(model: nn.Module, cfg: OptimConfig) -> list[dict[str, Any]]:
    decay, no_decay, matrices = [], [], []
    seen: set[int] = set()
    for name, p in model.named_parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        is_embedding = name.endswith(("embed_tokens.weight", "lm_head.weight"))
        if cfg.name == "muon" and _is_matrix(name, p):
            matrices.append(p)
        elif p.ndim < 2 or (is_embedding and not cfg.decay_embeddings):
            no_decay.append(p)
        else:
            decay.append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay, "kind": "adamw"},
              {"params": no_decay, "weight_decay": 0.0, "kind": "adamw"}]
    if matrices:
        groups.append({"params": matrices, "weight_decay": cfg.weight_decay, "kind": "muon"})
    return [g for g in groups if g["params"]]


class Optimizers:
    """One or two torch optimizers stepped together; `base_lr` per group lets the schedule scale them."""

    def __init__(self, model: nn.Module, cfg: OptimConfig, device: torch.device) -> None:
        self.model = model
        groups = param_groups(model, cfg)
        adam_groups = [g for g in groups if g["kind"] == "adamw"]
        muon_groups = [g for g in groups if g["kind"] == "muon"]
        for g in adam_groups:
            g["base_lr"] = cfg.lr
        self.optimizers: list[torch.optim.Optimizer] = [
            # fused: one kernel over all parameters (CPU too: 15 -> 2 ms a step on the tiny model, docs/log.md)
            torch.optim.AdamW(adam_groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, fused=device.type in FUSED_ADAMW)
        ]
        if muon_groups:
            for g in muon_groups:
                g["base_lr"] = cfg.muon_lr
            # torch's Muon: Newton-Schulz orthogonalised momentum for 2-D matrices
            self.optimizers.append(torch.optim.Muon(muon_groups, lr=cfg.muon_lr, momentum=cfg.muon_momentum))

    def set_lr(self, multiplier: float) -> None:
        for opt in self.optimizers:
            for g in opt.param_groups:
                g["lr"] = g["base_lr"] * multiplier

    def step(self) -> None:
        for opt in self.optimizers:
            opt.step()
        if hasattr(self.model, "generation"):  # new weights: an inference engine's cached prefixes are stale
            self.model.generation += 1

    def zero_grad(self) -> None:
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=True)

    def state_dict(self) -> list[dict[str, Any]]:
        return [opt.state_dict() for opt in self.optimizers]

    def load_state_dict(self, states: list[dict[str, Any]]) -> None:
        if len(states) != len(self.optimizers):
            raise ValueError(f"checkpoint has {len(states)} optimizer states, this recipe builds "
                             f"{len(self.optimizers)}")
        for opt, st in zip(self.optimizers, states):
            opt.load_state_dict(st)
