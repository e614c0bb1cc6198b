"""A fronde model directory -> one GGUF file of llama.cpp's `deepseek2` architecture (what Ollama runs too).

The one place fronde's weights meet llama.cpp's names and layout:
- MLA is stored for llama.cpp's absorbed path: kv_b_proj splits per head into attn_k_b (the key part, transposed,
  so it multiplies q_nope into the latent space) and attn_v_b (the value part). With no q LoRA the file says
  attention.q_lora_rank = 0, else llama.cpp insists on a q LoRA for any layer count but DeepSeek-V2-Lite's.
- Routed experts are stacked per layer (ffn_{gate,up,down}_exps), the correction bias is exp_probs_b.bias, and the
  router is sigmoid-gated (expert_gating_func = 2: without it llama.cpp would use softmax).
- Norms, the router and the bias stay float32 in every dtype (as llama.cpp's own converter does); q8_0 quantizes
  each other matrix whose rows are a multiple of 32 and writes the rest as f16.
- The MTP layer is left out: llama.cpp's deepseek2 does not run it.

Written under a temporary name in the target's directory and renamed when complete.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import torch

from fronde.data.io import temp_beside, writing
from fronde.data.progress import NullReporter, Reporter
from fronde.export.card import card_fields, strings
from fronde.export.gguf_vocab import PRE_TOKENIZER, VocabError, read_vocab, write_vocab
from fronde.model.checkpoint import load_config, read_weights
from fronde.model.config import ModelConfig, yarn_mscale
from fronde.model.hf_adapter import from_hf

ARCH = "deepseek2"
Q = gguf.GGMLQuantizationType
DTYPES: dict[str, tuple[Q, gguf.LlamaFileType]] = {
    "f32": (Q.F32, gguf.LlamaFileType.ALL_F32),
    "f16": (Q.F16, gguf.LlamaFileType.MOSTLY_F16),
    "bf16": (Q.BF16, gguf.LlamaFileType.MOSTLY_BF16),
    "q8_0": (Q.Q8_0, gguf.LlamaFileType.MOSTLY_Q8_0),
}
# Kept in float32 whatever the dtype: the router decides which experts run, so it is never rounded.
_ALWAYS_F32 = (".ffn_gate_inp.weight", ".exp_probs_b.bias")


class ExportError(Exception):
    """Why a model directory could not be exported; the message is meant for the user as is."""


@dataclass
class GGUFSummary:
    """What was written, for the CLI to print and tests to check."""

    path: Path
    dtype: str
    n_tensors: int
    bytes: int
    tokenizer_pre: str
    fallback_f16: list[str] = field(default_factory=list)  # q8_0 only: tensors whose rows do not fit 32-blocks
    end_of_turn_tokens: list[str] = field(default_factory=list)


def export_gguf(model_dir: str | Path, out: str | Path, *, dtype: str = "f16", force: bool = False,
                progress: Reporter | None = None) -> GGUFSummary:
    """Write `model_dir` (a fronde/transformers DeepseekV3 checkpoint with its tokenizer) as a GGUF file; progress
    shows reading, converting (by parameter) and writing: a 1B model takes tens of seconds."""
    model_dir, out = Path(model_dir), Path(out)
    progress = progress or NullReporter()
    if dtype not in DTYPES:
        raise ExportError(f"unsupported dtype {dtype!r}; choose one of: {', '.join(DTYPES)} (for 4 to 6 bits, "
                          "write f16 and run llama.cpp's `llama-quantize OUT.gguf OUT-q4.gguf Q4_K_M`)")
    if out.is_dir():
        raise ExportError(f"{out} is a directory; give the path of the .gguf file to write")
    if out.exists() and not force:
        raise ExportError(f"{out} already exists; pass --force to overwrite it")
    config = _read_config(model_dir)
    check_supported(config)
    try:
        vocab = read_vocab(model_dir, config.vocab_size, config.bos_token_id, config.eos_token_id)
        progress.start("read weights")
        state = from_hf(read_weights(model_dir), config)
        progress.done()
    except (VocabError, FileNotFoundError, ValueError) as e:
        raise ExportError(str(e)) from e

    qtype, file_type = DTYPES[dtype]
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_beside(out)  # readable as a plain file is: an Ollama server runs as its own user
    os.close(fd)
    summary = GGUFSummary(out, dtype, 0, 0, PRE_TOKENIZER, end_of_turn_tokens=vocab.end_of_turn_tokens)
    try:
        with writing(out):
            writer = gguf.GGUFWriter(tmp, ARCH)
            write_metadata(writer, config, name=model_dir.resolve().name, file_type=file_type)
            write_card_metadata(writer, card_fields(model_dir))
            write_vocab(writer, vocab)
            progress.start(f"convert to {dtype}", total=exported_parameters(state, config))
            for name, array in gguf_tensors(state, config):
                data, written = _encode(name, array, qtype)
                if written != qtype and qtype == Q.Q8_0 and written == Q.F16:
                    summary.fallback_f16.append(name)
                writer.add_tensor(name, data, raw_dtype=written)
                summary.n_tensors += 1
                progress.advance(array.size)
            progress.done()
            progress.start("write")
            writer.write_header_to_file()
            writer.write_kv_data_to_file()
            writer.write_tensors_to_file()
            writer.close()
            os.replace(tmp, out)
            progress.done()
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    summary.bytes = out.stat().st_size
    return summary


def _read_config(model_dir: Path) -> ModelConfig:
    if not model_dir.is_dir():
        raise ExportError(f"{model_dir}: no such model directory")
    try:
        return load_config(model_dir)
    except (FileNotFoundError, ValueError) as e:
        raise ExportError(f"{model_dir} is not a fronde/DeepseekV3 model directory: {e}") from e


def check_supported(config: ModelConfig) -> None:
    """Configurations llama.cpp's deepseek2 cannot run as fronde does: refuse them rather than write a wrong file."""
    if config.n_moe_layers and config.n_shared_experts == 0:
        raise ExportError("llama.cpp's deepseek2 needs a shared expert in every MoE layer (n_shared_experts >= 1)")
    rs = config.rope_scaling
    if rs is not None and (rs.beta_fast, rs.beta_slow) != (32.0, 1.0):
        # deepseek2 ignores the file's yarn_beta_* keys and always uses DeepSeek's 32 / 1
        raise ExportError(f"rope_scaling beta_fast={rs.beta_fast}, beta_slow={rs.beta_slow}: llama.cpp's deepseek2 "
                          "supports only YaRN's beta_fast=32, beta_slow=1")


# ----------------------------------------------------------------------------------------------------------------
# metadata


def write_card_metadata(writer: gguf.GGUFWriter, card: dict[str, Any]) -> None:
    """general.license (with its name and link), general.languages and general.tags from the model card's front
    matter, as llama.cpp's convert_hf_to_gguf.py takes them from a Hub card: the licence leaves with the file."""
    for key, add in (("license", writer.add_license), ("license_name", writer.add_license_name),
                     ("license_link", writer.add_license_link)):
        if value := strings(card.get(key))[:1]:
            add(value[0])
    if languages := strings(card.get("language")):
        writer.add_languages(languages)
    if tags := strings(card.get("tags")):
        writer.add_tags(tags)


def write_metadata(writer: gguf.GGUFWriter, config: ModelConfig, *, name: str, file_type: gguf.LlamaFileType) -> None:
    """Every deepseek2.* key llama.cpp reads for this model (general.architecture comes with the writer)."""
    c = config
    writer.add_name(name)
    writer.add_file_type(file_type)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    writer.add_context_length(c.max_position_embeddings)
    writer.add_embedding_length(c.hidden_size)
    writer.add_block_count(c.num_hidden_layers)
    writer.add_feed_forward_length(c.intermediate_size)
    writer.add_head_count(c.num_attention_heads)
    writer.add_head_count_kv(1)  # absorbed MLA is MQA over the latent: one shared "head" of kv_lora_rank + rope
    writer.add_layer_norm_rms_eps(c.rms_norm_eps)
    writer.add_vocab_size(c.vocab_size)
    # MLA
    writer.add_q_lora_rank(c.q_lora_rank or 0)
    writer.add_kv_lora_rank(c.kv_lora_rank)
    writer.add_key_length(c.kv_lora_rank + c.qk_rope_head_dim)
    writer.add_value_length(c.kv_lora_rank)
    writer.add_key_length_mla(c.qk_head_dim)
    writer.add_value_length_mla(c.v_head_dim)
    writer.add_rope_dimension_count(c.qk_rope_head_dim)
    writer.add_rope_freq_base(c.rope_theta)
    _write_yarn(writer, c)
    # DeepSeekMoE
    writer.add_leading_dense_block_count(c.first_k_dense_replace)
    writer.add_expert_count(c.n_routed_experts)
    writer.add_expert_used_count(c.num_experts_per_tok)
    writer.add_expert_shared_count(c.n_shared_experts)
    writer.add_expert_feed_forward_length(c.moe_intermediate_size)
    writer.add_expert_weights_scale(c.routed_scaling_factor)
    writer.add_expert_weights_norm(c.norm_topk_prob)
    writer.add_expert_gating_func(gguf.ExpertGatingFuncType.SIGMOID)
    if c.n_group > 1 and c.topk_group < c.n_group:  # all groups kept is plain top-k; llama.cpp wants used < count
        writer.add_expert_group_count(c.n_group)
        writer.add_expert_group_used_count(c.topk_group)


def _write_yarn(writer: gguf.GGUFWriter, c: ModelConfig) -> None:
    """YaRN as llama.cpp's deepseek2 applies it, solved to give fronde's two factors exactly.

    fronde (as transformers) scales cos/sin by r = m(mscale)/m(mscale_all_dim) (or m(1) when either is 0) and the
    softmax by k = m(mscale_all_dim)**2 (1 without it), m(x) = 0.1 x ln(factor) + 1. llama.cpp's deepseek2 scales
    cos/sin by attn_factor A and the softmax by (A (1 + L ln(factor)))**2 for a log multiplier L != 0 (the file
    stores 0.1 L, DeepSeek's mscale_all_dim). So A = r and L = (sqrt(k) / r - 1) / ln(factor): for DeepSeek's
    own settings (mscale = mscale_all_dim = 1) that is A = 1, L = 0.1, as llama.cpp's converter writes.
    """
    rs = c.rope_scaling
    if rs is None:
        return
    writer.add_rope_scaling_type(gguf.RopeScalingType.YARN)
    writer.add_rope_scaling_factor(rs.factor)
    writer.add_rope_scaling_orig_ctx_len(rs.original_max_position_embeddings)
    writer.add_rope_scaling_yarn_beta_fast(rs.beta_fast)
    writer.add_rope_scaling_yarn_beta_slow(rs.beta_slow)
    if rs.mscale and rs.mscale_all_dim:
        cos_sin = yarn_mscale(rs.factor, rs.mscale) / yarn_mscale(rs.factor, rs.mscale_all_dim)
    else:
        cos_sin = yarn_mscale(rs.factor)
    softmax = yarn_mscale(rs.factor, rs.mscale_all_dim) ** 2 if rs.mscale_all_dim else 1.0
    log_mul = (math.sqrt(softmax) / cos_sin - 1) / math.log(rs.factor)
    if abs(log_mul) < 1e-9:  # L = 0 reads as "not set"; then llama.cpp ties both factors to m(1), see the docstring
        raise ExportError("this rope_scaling (cos/sin and softmax factors equal) has no deepseek2 encoding")
    writer.add_rope_scaling_attn_factors(cos_sin)
    writer.add_rope_scaling_yarn_log_mul(log_mul)


# ----------------------------------------------------------------------------------------------------------------
# tensors


def gguf_tensors(state: dict[str, torch.Tensor], config: ModelConfig) -> Iterator[tuple[str, np.ndarray]]:
    """fronde's state dict -> (llama.cpp name, float32 array in PyTorch's (out, in) order), MTP left out."""
    c = config

    def f32(t: torch.Tensor) -> np.ndarray:
        return t.detach().to(torch.float32).contiguous().numpy()

    yield "token_embd.weight", f32(state["model.embed_tokens.weight"])
    yield "output_norm.weight", f32(state["model.norm.weight"])
    if not c.tie_word_embeddings:  # tied: llama.cpp reuses token_embd
        yield "output.weight", f32(state["lm_head.weight"])
    H, nope, v_dim, rank = c.num_attention_heads, c.qk_nope_head_dim, c.v_head_dim, c.kv_lora_rank
    inter = c.moe_intermediate_size
    for i in range(c.num_hidden_layers):
        p, b = f"model.layers.{i}.", f"blk.{i}."
        attn = p + "self_attn."
        yield b + "attn_norm.weight", f32(state[p + "input_layernorm.weight"])
        if c.q_lora_rank is None:
            yield b + "attn_q.weight", f32(state[attn + "q_proj.weight"])
        else:
            yield b + "attn_q_a.weight", f32(state[attn + "q_a_proj.weight"])
            yield b + "attn_q_a_norm.weight", f32(state[attn + "q_a_layernorm.weight"])
            yield b + "attn_q_b.weight", f32(state[attn + "q_b_proj.weight"])
        yield b + "attn_kv_a_mqa.weight", f32(state[attn + "kv_a_proj_with_mqa.weight"])
        yield b + "attn_kv_a_norm.weight", f32(state[attn + "kv_a_layernorm.weight"])
        kv_b = state[attn + "kv_b_proj.weight"].view(H, nope + v_dim, rank)
        yield b + "attn_k_b.weight", f32(kv_b[:, :nope].transpose(1, 2))  # (H, rank, nope)
        yield b + "attn_v_b.weight", f32(kv_b[:, nope:])  # (H, v_dim, rank)
        yield b + "attn_output.weight", f32(state[attn + "o_proj.weight"])
        yield b + "ffn_norm.weight", f32(state[p + "post_attention_layernorm.weight"])
        mlp = p + "mlp."
        if not c.is_moe_layer(i):
            for kind in ("gate", "up", "down"):
                yield b + f"ffn_{kind}.weight", f32(state[mlp + f"{kind}_proj.weight"])
            continue
        yield b + "ffn_gate_inp.weight", f32(state[mlp + "gate.weight"])
        yield b + "exp_probs_b.bias", f32(state[mlp + "gate.e_score_correction_bias"])
        gate_up = state[mlp + "experts.gate_up_proj"]  # (E, 2I, D): gate rows first
        yield b + "ffn_gate_exps.weight", f32(gate_up[:, :inter])
        yield b + "ffn_up_exps.weight", f32(gate_up[:, inter:])
        yield b + "ffn_down_exps.weight", f32(state[mlp + "experts.down_proj"])
        for kind in ("gate", "up", "down"):
            yield b + f"ffn_{kind}_shexp.weight", f32(state[mlp + f"shared_experts.{kind}_proj.weight"])


def exported_parameters(state: dict[str, torch.Tensor], config: ModelConfig) -> int:
    """How many numbers gguf_tensors yields: every parameter but the MTP layer's (llama.cpp has none) and a tied
    head's (llama.cpp reuses token_embd)."""
    return sum(t.numel() for k, t in state.items() if not k.startswith("mtp.")
               and not (config.tie_word_embeddings and k == "lm_head.weight"))


def _encode(name: str, array: np.ndarray, qtype: Q) -> tuple[np.ndarray, Q]:
    """The array in the file's dtype: 1-D tensors, norms and the router stay f32; q8_0 needs 32-wide row blocks."""
    if array.ndim <= 1 or name.endswith("_norm.weight") or name.endswith(_ALWAYS_F32):
        qtype = Q.F32
    elif qtype == Q.Q8_0 and array.shape[-1] % gguf.GGML_QUANT_SIZES[Q.Q8_0][0]:
        qtype = Q.F16
    if qtype == Q.F32:
        return array, qtype
    if qtype == Q.F16:
        return array.astype(np.float16), qtype
    return gguf.quants.quantize(array, qtype), qtype
