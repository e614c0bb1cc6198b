"""What a configuration costs: parameters (total and active per token), training FLOPs, KV-cache bytes.

Computed from the config alone (no weights), so `fronde model info` answers for a 100B preset as fast as for tiny.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from fronde.model.config import ModelConfig


@dataclass(frozen=True)
class ModelInfo:
    total_params: int  # every weight of the main model (embeddings, head, all experts); MTP excluded
    active_params: int  # weights one token uses: all but the (E - k) unchosen routed experts per MoE layer
    embedding_params: int  # the input table: a lookup, not a matmul, so it is left out of the FLOPs
    mtp_params: int  # the optional multi-token-prediction layer (its embedding and head are shared)
    train_flops_per_token: int  # 6 x (active - embedding) + attention scores, at seq_len
    seq_len: int
    kv_bytes_per_token_mla: int  # latent cache: (kv_lora_rank + qk_rope_head_dim) x layers x dtype bytes
    kv_bytes_per_token_mha: int  # an MHA model with the same heads: heads x (qk_head_dim + v_head_dim) x layers
    kv_dtype_bytes: int

    @property
    def kv_reduction(self) -> float:
        """Fraction of the MHA cache MLA saves (DeepSeek-V2 reports 93.3% for its configuration)."""
        return 1 - self.kv_bytes_per_token_mla / self.kv_bytes_per_token_mha

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self) | {"kv_reduction": self.kv_reduction}


def _mla_params(c: ModelConfig) -> int:
    H = c.num_attention_heads
    q = c.hidden_size * H * c.qk_head_dim if c.q_lora_rank is None else (
        c.hidden_size * c.q_lora_rank + c.q_lora_rank + c.q_lora_rank * H * c.qk_head_dim
    )
    kv = c.hidden_size * (c.kv_lora_rank + c.qk_rope_head_dim) + c.kv_lora_rank
    kv += c.kv_lora_rank * H * (c.qk_nope_head_dim + c.v_head_dim)
    return q + kv + H * c.v_head_dim * c.hidden_size


def _expert_params(c: ModelConfig) -> int:
    return 3 * c.hidden_size * c.moe_intermediate_size


def _layer_params(c: ModelConfig, moe: bool, active: bool) -> int:
    norms = 2 * c.hidden_size
    if not moe:
        return norms + _mla_params(c) + 3 * c.hidden_size * c.intermediate_size
    routed = c.num_experts_per_tok if active else c.n_routed_experts
    ffn = (routed + c.n_shared_experts) * _expert_params(c) + c.n_routed_experts * c.hidden_size  # + router
    return norms + _mla_params(c) + ffn


def model_info(c: ModelConfig, seq_len: int = 1024, kv_dtype_bytes: int = 2) -> ModelInfo:
    L, D = c.num_hidden_layers, c.hidden_size
    embedding = c.vocab_size * D
    head = 0 if c.tie_word_embeddings else c.vocab_size * D
    outer = embedding + head + D  # + final norm
    total = outer + sum(_layer_params(c, c.is_moe_layer(i), active=False) for i in range(L))
    active = outer + sum(_layer_params(c, c.is_moe_layer(i), active=True) for i in range(L))
    if c.tie_word_embeddings:
        active += c.vocab_size * D  # the shared table is also the output matmul
    mtp = 0
    if c.num_nextn_predict_layers:
        mtp = 3 * D + 2 * D * D + _layer_params(c, moe=True, active=False)
    attention = 6 * L * c.num_attention_heads * (c.qk_head_dim + c.v_head_dim) * seq_len
    return ModelInfo(
        total_params=total,
        active_params=active,
        embedding_params=embedding,
        mtp_params=mtp,
        train_flops_per_token=6 * (active - embedding) + attention,
        seq_len=seq_len,
        kv_bytes_per_token_mla=(c.kv_lora_rank + c.qk_rope_head_dim) * L * kv_dtype_bytes,
        kv_bytes_per_token_mha=c.num_attention_heads * (c.qk_head_dim + c.v_head_dim) * L * kv_dtype_bytes,
        kv_dtype_bytes=kv_dtype_bytes,
    )
