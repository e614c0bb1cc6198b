"""The latent KV cache MLA decodes with: per token per layer only kv_lora_rank + qk_rope_head_dim numbers.

`LatentCache` is the simple contiguous form (every row of the batch at the same length), enough for generation of
equal-length prompts and for tests; the serving engine keeps its own paged cache behind the same two methods.
"""

from __future__ import annotations

from typing import Protocol

import torch

from fronde.model.config import ModelConfig


class KVCache(Protocol):
    def positions(self, n_new: int) -> torch.Tensor:
        """Absolute positions (B, n_new) of the tokens about to be fed."""
        ...

    def update(
        self, layer_idx: int, latent: torch.Tensor, k_pe: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Store latent (B, T, r) and k_pe (B, T, rope); return the context's latents (B, S, r), k_pe (B, S, rope)
        and a boolean mask broadcastable to (B, 1, T, S), or None for causal attention over the whole context."""
        ...

    def advance(self, n_new: int) -> None:
        """Called once after every layer has stored the new tokens."""
        ...


class LatentCache:
    def __init__(
        self, config: ModelConfig, batch_size: int, max_len: int, device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.rank, self.rope = config.kv_lora_rank, config.qk_rope_head_dim
        self.max_len = max_len
        self.length = 0
        width = self.rank + self.rope
        self.kv = torch.zeros(config.num_hidden_layers, batch_size, max_len, width, device=device, dtype=dtype)

    @property
    def bytes_per_token(self) -> int:
        """Bytes this cache allocates per token of one sequence, across all layers."""
        layers, batch, slots, _ = self.kv.shape
        return self.kv.numel() * self.kv.element_size() // (batch * slots)

    def positions(self, n_new: int) -> torch.Tensor:
        if self.length + n_new > self.max_len:
            raise ValueError(f"cache holds {self.max_len} tokens; {self.length} used, {n_new} more requested")
        pos = torch.arange(self.length, self.length + n_new, device=self.kv.device)
        return pos.expand(self.kv.shape[1], n_new)

    def update(
        self, layer_idx: int, latent: torch.Tensor, k_pe: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        end = self.length + latent.shape[1]
        self.kv[layer_idx, :, self.length : end, : self.rank] = latent
        self.kv[layer_idx, :, self.length : end, self.rank :] = k_pe
        ctx = self.kv[layer_idx, :, :end]
        return ctx[..., : self.rank], ctx[..., self.rank :], None

    def advance(self, n_new: int) -> None:
        self.length += n_new
