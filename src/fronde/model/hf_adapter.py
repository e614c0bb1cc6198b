"""The one place fronde's names and layout meet Hugging Face's DeepseekV3ForCausalLM (config.json and weights).

In memory fronde stacks each layer's experts (gate_up (E, 2I, D), down (E, D, I)) and keeps the MTP layer as `mtp`;
on disk the checkpoint has transformers' per-expert names and the MTP layer as model.layers.{num_hidden_layers}.
Everything else already carries its HF name.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import torch

from fronde.model.config import ModelConfig, RopeScaling

log = logging.getLogger(__name__)

ARCHITECTURE = "DeepseekV3ForCausalLM"
MODEL_TYPE = "deepseek_v3"

# Keys transformers/vLLM write that fronde derives or does not use.
_IGNORED_CONFIG_KEYS = {
    "architectures", "model_type", "transformers_version", "use_cache", "head_dim", "qk_head_dim", "pretraining_tp",
    "output_router_logits", "attention_dropout", "dtype", "torch_dtype", "rope_parameters", "num_mtp_layers",
    "auto_map", "aux_loss_alpha", "seq_aux", "ep_size", "moe_layer_freq", "_name_or_path", "return_dict",
    "output_hidden_states", "output_attentions", "tie_encoder_decoder", "chunk_size_feed_forward", "id2label",
    "label2id", "problem_type", "is_encoder_decoder", "tokenizer_class", "moe_implementation",
}
_STACKED = re.compile(r"^(model\.layers\.\d+\.mlp\.experts)\.(gate_up_proj|down_proj)$")
_PER_EXPERT = re.compile(r"^(model\.layers\.\d+\.mlp\.experts)\.(\d+)\.(gate_proj|up_proj|down_proj)\.weight$")


# ----------------------------------------------------------------------------------------------------------------
# config.json


def config_to_hf(config: ModelConfig, dtype: torch.dtype) -> dict[str, Any]:
    """config.json for transformers 5 (rope_parameters) that vLLM and llama.cpp also read (rope_theta/rope_scaling,
    scoring_func, topk_method)."""
    d = config.model_dump(exclude={"torch_dtype", "rope_scaling"})
    rope_scaling = config.rope_scaling.model_dump() if config.rope_scaling else None
    rope_parameters: dict[str, Any] = {"rope_theta": config.rope_theta, "rope_type": "default"}
    if rope_scaling:
        rope_parameters.update({k: v for k, v in rope_scaling.items() if k != "type"}, rope_type="yarn")
    dtype_name = str(dtype).removeprefix("torch.")
    d.update(
        architectures=[ARCHITECTURE],
        model_type=MODEL_TYPE,
        num_key_value_heads=config.num_attention_heads,
        rope_scaling=rope_scaling,
        rope_parameters=rope_parameters,
        dtype=dtype_name,
        torch_dtype=dtype_name,
        use_cache=True,
    )
    return dict(sorted(d.items()))


def config_from_hf(d: dict[str, Any], source: str = "config.json") -> ModelConfig:
    """ModelConfig from a config.json written by fronde, transformers 4/5 or a DeepSeek release."""
    model_type = d.get("model_type")
    if model_type != MODEL_TYPE:
        raise ValueError(f"{source}: model_type is {model_type!r}; fronde loads only {MODEL_TYPE!r} checkpoints")
    if d.get("quantization_config"):
        raise ValueError(f"{source}: quantized checkpoints are not supported; dequantize to bf16/fp32 first")
    fields = set(ModelConfig.model_fields)
    kwargs = {k: v for k, v in d.items() if k in fields}
    rope = d.get("rope_parameters") or {}
    if "rope_theta" not in kwargs and "rope_theta" in rope:
        kwargs["rope_theta"] = rope["rope_theta"]
    scaling = kwargs.get("rope_scaling") or (rope if rope.get("rope_type", "default") != "default" else None)
    kwargs["rope_scaling"] = _rope_scaling(scaling, source) if scaling else None
    dtype = d.get("dtype") or d.get("torch_dtype")
    if dtype:
        kwargs["torch_dtype"] = dtype
    eos = kwargs.get("eos_token_id")
    if isinstance(eos, list):
        kwargs["eos_token_id"] = eos[0] if eos else None
    unknown = sorted(set(d) - fields - _IGNORED_CONFIG_KEYS - {"quantization_config"})
    if unknown:
        log.warning("%s: ignoring keys fronde does not use: %s", source, ", ".join(unknown))
    try:
        return ModelConfig(**kwargs)
    except ValueError as e:
        raise ValueError(f"{source}: invalid model configuration: {e}") from e


def _rope_scaling(s: dict[str, Any], source: str) -> RopeScaling:
    kind = s.get("type") or s.get("rope_type")
    if kind != "yarn":
        raise ValueError(f"{source}: rope scaling type {kind!r} is not supported (only 'yarn')")
    keys = set(RopeScaling.model_fields) - {"type"}
    return RopeScaling(type="yarn", **{k: v for k, v in s.items() if k in keys and v is not None})


# ----------------------------------------------------------------------------------------------------------------
# weights


def to_hf(state: dict[str, torch.Tensor], config: ModelConfig) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """fronde state dict -> (main HF weights, MTP weights under model.layers.{num_hidden_layers}.*)."""
    main: dict[str, torch.Tensor] = {}
    mtp: dict[str, torch.Tensor] = {}
    inter = config.moe_intermediate_size
    mtp_prefix = f"model.layers.{config.num_hidden_layers}."
    for name, t in state.items():
        if name == "lm_head.weight" and config.tie_word_embeddings:
            continue
        if name.startswith("mtp."):
            hf_name = mtp_prefix + name.removeprefix("mtp.")
            target = mtp
        else:
            hf_name, target = name, main
        m = _STACKED.match(hf_name)
        if m is None:
            target[hf_name] = t
            continue
        prefix, kind = m.groups()
        for e in range(t.shape[0]):
            if kind == "gate_up_proj":
                target[f"{prefix}.{e}.gate_proj.weight"] = t[e, :inter]
                target[f"{prefix}.{e}.up_proj.weight"] = t[e, inter:]
            else:
                target[f"{prefix}.{e}.down_proj.weight"] = t[e]
    if mtp:  # DeepSeek's MTP layer carries its own copies of the shared embedding and head
        mtp[mtp_prefix + "embed_tokens.weight"] = state["model.embed_tokens.weight"]
        mtp[mtp_prefix + "shared_head.head.weight"] = state.get("lm_head.weight", state["model.embed_tokens.weight"])
    return main, mtp


def from_hf(weights: dict[str, torch.Tensor], config: ModelConfig) -> dict[str, torch.Tensor]:
    """HF weights (per-expert or transformers' fused experts, MTP optional) -> fronde state dict."""
    state: dict[str, torch.Tensor] = {}
    experts: dict[str, dict[int, dict[str, torch.Tensor]]] = {}
    mtp_prefix = f"model.layers.{config.num_hidden_layers}."
    for hf_name, t in weights.items():
        if hf_name.startswith(mtp_prefix):
            rest = hf_name.removeprefix(mtp_prefix)
            if rest in ("embed_tokens.weight", "shared_head.head.weight") or not config.num_nextn_predict_layers:
                continue  # shared with the main model, or no MTP layer configured
        m = _PER_EXPERT.match(hf_name)
        if m is not None:
            prefix, e, kind = m.groups()
            experts.setdefault(_fronde_name(prefix, mtp_prefix), {}).setdefault(int(e), {})[kind] = t
            continue
        fused = _STACKED.match(hf_name)
        if fused is not None and fused.group(2) == "gate_up_proj" and t.shape[1] != 2 * config.moe_intermediate_size:
            raise ValueError(f"{hf_name}: shape {tuple(t.shape)} is not (experts, 2 * moe_intermediate_size, hidden)")
        state[_fronde_name(hf_name, mtp_prefix)] = t
    for prefix, by_expert in experts.items():
        n = config.n_routed_experts
        missing = [e for e in range(n) if set(by_expert.get(e, {})) != {"gate_proj", "up_proj", "down_proj"}]
        if missing:
            raise ValueError(f"{prefix}: experts {missing[:8]} lack gate_proj/up_proj/down_proj weights")
        state[f"{prefix}.gate_up_proj"] = torch.stack(
            [torch.cat((by_expert[e]["gate_proj"], by_expert[e]["up_proj"])) for e in range(n)]
        )
        state[f"{prefix}.down_proj"] = torch.stack([by_expert[e]["down_proj"] for e in range(n)])
    if config.tie_word_embeddings and "model.embed_tokens.weight" in state:
        state["lm_head.weight"] = state["model.embed_tokens.weight"]
    return state


def _fronde_name(hf_name: str, mtp_prefix: str) -> str:
    return "mtp." + hf_name.removeprefix(mtp_prefix) if hf_name.startswith(mtp_prefix) else hf_name
