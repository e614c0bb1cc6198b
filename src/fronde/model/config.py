"""The model's configuration: DeepseekV3Config's field names, so config.json round-trips without a rename table.

Every size the network needs is derived here, in one visible place, from a few dials.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

PRESETS_PACKAGE = "fronde.model.presets"


class RopeScaling(BaseModel):
    """YaRN context extension, in the keys DeepSeek-V3's config.json uses."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field("yarn", description="Only 'yarn' is supported (DeepSeek-V3's choice).")
    factor: float = Field(..., gt=1.0)
    original_max_position_embeddings: int = Field(..., gt=0)
    beta_fast: float = 32.0
    beta_slow: float = 1.0
    mscale: float = 1.0
    mscale_all_dim: float = 0.0

    @model_validator(mode="after")
    def _only_yarn(self) -> "RopeScaling":
        if self.type != "yarn":
            raise ValueError(f"rope_scaling.type={self.type!r} is not supported; use 'yarn' or no rope_scaling")
        return self


class ModelConfig(BaseModel):
    """A DeepSeek-V3-style decoder. Field names and meanings are transformers' DeepseekV3Config's."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    vocab_size: int = Field(..., gt=0)
    hidden_size: int = Field(..., gt=0)
    intermediate_size: int = Field(..., gt=0, description="Width of the dense SwiGLU in the first layers.")
    moe_intermediate_size: int = Field(..., gt=0, description="Width of one routed or shared expert.")
    num_hidden_layers: int = Field(..., gt=0)
    num_attention_heads: int = Field(..., gt=0)
    num_key_value_heads: int | None = Field(None, description="MLA has no GQA: always equal to the head count.")
    # MLA
    q_lora_rank: int | None = Field(None, description="None: a full q_proj; else q_a_proj -> norm -> q_b_proj.")
    kv_lora_rank: int = Field(..., gt=0)
    qk_nope_head_dim: int = Field(..., gt=0)
    qk_rope_head_dim: int = Field(..., gt=0)
    v_head_dim: int = Field(..., gt=0)
    # DeepSeekMoE
    n_routed_experts: int = Field(..., gt=0)
    n_shared_experts: int = Field(1, ge=0)
    num_experts_per_tok: int = Field(..., gt=0)
    n_group: int = Field(1, gt=0)
    topk_group: int = Field(1, gt=0)
    routed_scaling_factor: float = Field(1.0, gt=0)
    norm_topk_prob: bool = True
    first_k_dense_replace: int = Field(1, ge=0)
    scoring_func: str = "sigmoid"
    topk_method: str = "noaux_tc"
    # Multi-token prediction (0 or 1 extra depth)
    num_nextn_predict_layers: int = Field(0, ge=0, le=1)
    # Positions, norms, embeddings
    max_position_embeddings: int = Field(4096, gt=0)
    rope_theta: float = Field(10000.0, gt=0)
    rope_scaling: RopeScaling | None = None
    rope_interleave: bool = True
    rms_norm_eps: float = 1e-6
    hidden_act: str = "silu"
    attention_bias: bool = False
    tie_word_embeddings: bool = False
    initializer_range: float = 0.02
    bos_token_id: int | None = 0
    eos_token_id: int | None = 1
    pad_token_id: int | None = None
    torch_dtype: str = "bfloat16"

    @model_validator(mode="after")
    def _check(self) -> "ModelConfig":
        heads = self.num_attention_heads
        if self.num_key_value_heads is None:
            object.__setattr__(self, "num_key_value_heads", heads)
        if self.num_key_value_heads != heads:
            raise ValueError(f"num_key_value_heads={self.num_key_value_heads} must equal num_attention_heads={heads} for MLA")
        if self.q_lora_rank == 0:
            object.__setattr__(self, "q_lora_rank", None)
        if self.qk_rope_head_dim % 2:
            raise ValueError(f"qk_rope_head_dim={self.qk_rope_head_dim} must be even (RoPE rotates pairs)")
        if self.n_routed_experts % self.n_group:
            raise ValueError(f"n_routed_experts={self.n_routed_experts} must be divisible by n_group={self.n_group}")
        if self.n_group > 1 and self.n_routed_experts // self.n_group < 2:
            raise ValueError("group-limited routing scores a group by its top-2 experts: need >= 2 experts per group")
        if self.topk_group > self.n_group:
            raise ValueError(f"topk_group={self.topk_group} exceeds n_group={self.n_group}")
        reachable = self.topk_group * self.n_routed_experts // self.n_group
        if self.num_experts_per_tok > reachable:
            raise ValueError(
                f"num_experts_per_tok={self.num_experts_per_tok} exceeds the {reachable} experts in the "
                f"topk_group={self.topk_group} groups a token may use"
            )
        if self.first_k_dense_replace > self.num_hidden_layers:
            raise ValueError("first_k_dense_replace cannot exceed num_hidden_layers")
        if self.hidden_act != "silu":
            raise ValueError(f"hidden_act={self.hidden_act!r}: DeepSeek-V3 experts are SwiGLU, only 'silu' is supported")
        if self.scoring_func != "sigmoid" or self.topk_method != "noaux_tc":
            raise ValueError("only scoring_func='sigmoid' with topk_method='noaux_tc' (DeepSeek-V3 routing) is supported")
        if self.attention_bias:
            raise ValueError("attention_bias=True is not supported (DeepSeek-V3 uses no attention biases)")
        if not self.rope_interleave:
            raise ValueError("rope_interleave must be true: vLLM and llama.cpp assume DeepSeek's interleaved RoPE")
        return self

    # Derived sizes, in one place.
    @property
    def qk_head_dim(self) -> int:
        return self.qk_nope_head_dim + self.qk_rope_head_dim

    @property
    def n_moe_layers(self) -> int:
        return self.num_hidden_layers - self.first_k_dense_replace

    def is_moe_layer(self, layer_idx: int) -> bool:
        return layer_idx >= self.first_k_dense_replace

    @property
    def softmax_scale(self) -> float:
        """qk_head_dim**-0.5, times mscale**2 when YaRN extends the context (DeepSeek-V3 reference)."""
        scale = self.qk_head_dim**-0.5
        rs = self.rope_scaling
        if rs is not None and rs.mscale_all_dim:
            m = yarn_mscale(rs.factor, rs.mscale_all_dim)
            scale *= m * m
        return scale


def yarn_mscale(factor: float, mscale: float = 1.0) -> float:
    import math

    return 1.0 if factor <= 1 else 0.1 * mscale * math.log(factor) + 1.0


def preset_names() -> list[str]:
    files = resources.files(PRESETS_PACKAGE).iterdir()
    return sorted(f.name.removesuffix(".toml") for f in files if f.name.endswith(".toml"))


def load_preset(name: str, **overrides: Any) -> ModelConfig:
    """A shipped preset (TOML under fronde/model/presets), with field overrides applied before validation."""
    path = resources.files(PRESETS_PACKAGE) / f"{name}.toml"
    if not path.is_file():
        raise ValueError(f"unknown model preset {name!r}; choose one of: {', '.join(preset_names())}")
    data = tomllib.loads(path.read_text())
    data.pop("description", None)
    data.update(overrides)
    return ModelConfig(**data)
