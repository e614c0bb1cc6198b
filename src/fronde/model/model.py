"""The fronde network: a DeepSeek-V3-style decoder (MLA attention, DeepSeekMoE feed-forward, optional MTP).

Module names follow transformers' DeepseekV3ForCausalLM (model.embed_tokens, model.layers.N.self_attn..., lm_head),
so the checkpoint adapter only has to unstack experts and place the MTP layer. Read top to bottom:
Block -> MTPLayer -> Backbone -> CausalLM.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from fronde.model.attention import MLA
from fronde.model.cache import KVCache
from fronde.model.config import ModelConfig
from fronde.model.layers import RMSNorm, SwiGLU
from fronde.model.loss import linear_cross_entropy
from fronde.model.moe import Experts, MoE, Router
from fronde.model.rope import RotaryEmbedding, rope_frequencies



class Block(nn.Module):
    """Pre-norm residual block: x + attn(norm(x)), then x + mlp(norm(x)); the mlp is dense or MoE by depth."""

    def __init__(self, config: ModelConfig, layer_idx: int) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.self_attn = MLA(config, layer_idx)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.is_moe = config.is_moe_layer(layer_idx)
        self.mlp = MoE(config) if self.is_moe else SwiGLU(config.hidden_size, config.intermediate_size)

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, cache: KVCache | None = None,
        with_balance_loss: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, cache)
        h = self.post_attention_layernorm(x)
        if self.is_moe:
            out, balance = self.mlp(h, with_balance_loss)
            return x + out, balance
        return x + self.mlp(h), None


class MTPLayer(Block):
    """Multi-token prediction, depth 1: from h_i and the embedding of t_{i+1}, predict t_{i+2}.

    Embedding and output head are the main model's; only norms, eh_proj and the block are its own.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config, layer_idx=config.num_hidden_layers)
        self.enorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.hnorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.eh_proj = nn.Linear(2 * config.hidden_size, config.hidden_size, bias=False)
        self.shared_head = nn.Module()
        self.shared_head.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)

    def predict(
        self, hidden: torch.Tensor, next_embeds: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
        cache: KVCache | None = None,
    ) -> torch.Tensor:
        """hidden: the main model's last hidden states after its final norm, what its head reads (in training and
        decoding alike; vLLM's and SGLang's DeepSeek MTP drafting feeds these, so a fronde model's layer drafts
        there as it does here)."""
        x = self.eh_proj(torch.cat((self.enorm(next_embeds), self.hnorm(hidden)), dim=-1))
        x, _ = self(x, cos, sin, cache)
        return self.shared_head.norm(x)


class Backbone(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(Block(config, i) for i in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)


@dataclass
class LMOutput:
    logits: torch.Tensor | None = None  # (B, T, vocab) when called without targets
    loss: torch.Tensor | None = None  # next-token cross-entropy, mean over non-ignored targets
    mtp_loss: torch.Tensor | None = None  # next-next-token cross-entropy from the MTP layer
    hidden: torch.Tensor | None = None  # (B, T, hidden) after the final norm, when asked for (the MTP drafts on it)
    balance_loss: torch.Tensor | None = None  # sequence-wise balance loss summed over MoE layers (before alpha)


class CausalLM(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.model = Backbone(config)
        self.rotary = RotaryEmbedding(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        self.mtp = MTPLayer(config) if config.num_nextn_predict_layers else None
        self.generation = 0  # optimizer steps taken: caches built from the weights (the engine's prefixes) check it

    @torch.no_grad()
    def reset_buffers(self) -> "CausalLM":
        """Recompute the non-persistent buffers, e.g. after materialising a meta-device model with to_empty()."""
        self.rotary.inv_freq = rope_frequencies(self.config)[0].to(self.rotary.inv_freq.device)
        if self.config.tie_word_embeddings:  # to_empty() materialises shared parameters separately
            self.lm_head.weight = self.model.embed_tokens.weight
        for m in self.modules():
            if isinstance(m, MoE):
                m.tokens_per_expert.zero_()
        return self

    @torch.no_grad()
    def init_weights(self, seed: int | None = None) -> "CausalLM":
        """Normal(0, initializer_range) weights; residual output projections scaled by 1/sqrt(2 * layers)."""
        if seed is not None:
            torch.manual_seed(seed)
        std = self.config.initializer_range
        out_std = std / math.sqrt(2 * self.config.num_hidden_layers)
        for name, module in self.named_modules():
            if isinstance(module, nn.Linear):
                residual_out = name.endswith(("o_proj", "down_proj"))
                nn.init.normal_(module.weight, 0.0, out_std if residual_out else std)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, 0.0, std)
            elif isinstance(module, RMSNorm):
                nn.init.ones_(module.weight)
            elif isinstance(module, Router):
                nn.init.normal_(module.weight, 0.0, std)
                module.e_score_correction_bias.zero_()
            elif isinstance(module, Experts):
                nn.init.normal_(module.gate_up_proj, 0.0, std)
                nn.init.normal_(module.down_proj, 0.0, out_std)
        return self

    def forward(
        self, input_ids: torch.Tensor, targets: torch.Tensor | None = None, *, cache: KVCache | None = None,
        with_balance_loss: bool = False, logits_at: torch.Tensor | None = None, return_hidden: bool = False,
    ) -> LMOutput:
        """input_ids (B, T). Without targets: logits (B, T, V), or (B, 1, V) at position logits_at[b] of each row
        (a prefill needs only each prompt's last token: the head over every position would be B x T x V). With
        targets (B, T; IGNORE_INDEX masks): losses, no logits. With a cache: absorbed MLA decoding against it.
        return_hidden: also the last hidden states of every position (what the MTP layer drafts from)."""
        T = input_ids.shape[1]
        positions = cache.positions(T) if cache is not None else torch.arange(T, device=input_ids.device)
        cos, sin = self.rotary(positions)
        x = self.model.embed_tokens(input_ids)
        balance = []
        for layer in self.model.layers:
            x, layer_balance = layer(x, cos, sin, cache, with_balance_loss)
            if layer_balance is not None:
                balance.append(layer_balance)
        if cache is not None:
            cache.advance(T)
        out = LMOutput(balance_loss=torch.stack(balance).sum() if balance else None,
                       hidden=self.model.norm(x) if return_hidden else None)
        if targets is None:
            if logits_at is not None:
                x = x[torch.arange(x.shape[0], device=x.device), logits_at].unsqueeze(1)
            out.logits = self.lm_head(self.model.norm(x))
            return out
        # Training: the head is fused into a chunked cross-entropy, so the full logits are never materialised.
        x = self.model.norm(x)
        out.loss = linear_cross_entropy(x, self.lm_head.weight, targets)
        if self.mtp is not None and T > 1:
            # the token after position i is the input at i + 1, whether or not it is a target (an SFT prompt's
            # tokens are not): the MTP layer sees in training what it sees when it drafts
            next_embeds = self.model.embed_tokens(input_ids[:, 1:])
            h = self.mtp.predict(x[:, :-1], next_embeds, cos[: T - 1], sin[: T - 1])
            out.mtp_loss = linear_cross_entropy(h, self.lm_head.weight, targets[:, 1:])
        return out

    def mtp_logits(self, hidden: torch.Tensor, next_ids: torch.Tensor, cache: KVCache,
                   logits_at: torch.Tensor | None = None) -> torch.Tensor | None:
        """Decoding with the MTP layer: entries (h_i, t_{i+1}) for positions the cache says (B, T), stored in the
        cache's MTP layer; the logits for t_{i+2} at logits_at[b] of each row (B, V), or None without logits_at
        (a prompt's entries are only stored)."""
        assert self.mtp is not None, "the model has no MTP layer"
        cos, sin = self.rotary(cache.positions(next_ids.shape[1]))
        h = self.mtp.predict(hidden, self.model.embed_tokens(next_ids), cos, sin, cache)
        if logits_at is None:
            return None
        return self.lm_head(h[torch.arange(h.shape[0], device=h.device), logits_at])
