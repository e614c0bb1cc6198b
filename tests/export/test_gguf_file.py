"""The GGUF file read back with gguf's own reader: llama.cpp's keys and layout, dtypes, errors, atomic writes, CLI.

(That llama.cpp itself runs the file as fronde does is tests/export/test_llama_cpp.py.)
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import gguf
import numpy as np
import pytest
from typer.testing import CliRunner

from fronde.cli.main import app
from fronde.export import ExportError, export_gguf
from fronde.export.gguf import exported_parameters, gguf_tensors
from fronde.model.checkpoint import from_pretrained, load_config, read_weights
from fronde.model.hf_adapter import from_hf
from fronde.model.rope import rope_frequencies
from tests.export.conftest import VARIANTS, make_model_dir


def _fields(path: Path) -> tuple[dict, dict]:
    reader = gguf.GGUFReader(path)
    fields = {k: f.contents() for k, f in reader.fields.items() if not k.startswith("GGUF.")}
    return fields, {t.name: t for t in reader.tensors}


def test_metadata_is_what_llama_cpp_reads(model_dir: Path, tmp_path: Path) -> None:
    config = load_config(model_dir)
    summary = export_gguf(model_dir, tmp_path / "m.gguf", dtype="f32")
    kv, tensors = _fields(summary.path)
    a = "deepseek2."
    assert kv["general.architecture"] == "deepseek2"
    assert kv[a + "block_count"] == config.num_hidden_layers
    assert kv[a + "attention.q_lora_rank"] == (config.q_lora_rank or 0)
    assert kv[a + "attention.kv_lora_rank"] == config.kv_lora_rank
    assert kv[a + "attention.key_length"] == config.kv_lora_rank + config.qk_rope_head_dim
    assert kv[a + "attention.value_length"] == config.kv_lora_rank
    assert kv[a + "attention.key_length_mla"] == config.qk_nope_head_dim + config.qk_rope_head_dim
    assert kv[a + "attention.value_length_mla"] == config.v_head_dim
    assert kv[a + "attention.head_count_kv"] == 1
    assert kv[a + "rope.dimension_count"] == config.qk_rope_head_dim
    assert kv[a + "leading_dense_block_count"] == config.first_k_dense_replace
    assert kv[a + "expert_gating_func"] == 2  # sigmoid; absent would mean softmax
    assert kv[a + "expert_weights_norm"] is config.norm_topk_prob
    assert kv[a + "expert_weights_scale"] == pytest.approx(config.routed_scaling_factor)
    assert kv[a + "expert_shared_count"] == config.n_shared_experts
    assert kv[a + "expert_count"] == config.n_routed_experts
    assert kv[a + "expert_used_count"] == config.num_experts_per_tok
    if config.n_group > 1:
        assert (kv[a + "expert_group_count"], kv[a + "expert_group_used_count"]) == (config.n_group, config.topk_group)
    else:
        assert a + "expert_group_count" not in kv
    rs = config.rope_scaling
    if rs is None:
        assert a + "rope.scaling.type" not in kv
    else:
        assert kv[a + "rope.scaling.type"] == "yarn"
        assert kv[a + "rope.scaling.original_context_length"] == rs.original_max_position_embeddings
        # llama.cpp's two factors reproduce fronde's: cos/sin scale and softmax scale (see gguf._write_yarn)
        A, L = kv[a + "rope.scaling.attn_factor"], kv[a + "rope.scaling.yarn_log_multiplier"]
        assert A == pytest.approx(rope_frequencies(config)[1], rel=1e-5)
        softmax = (A * (1 + L * math.log(rs.factor))) ** 2
        assert softmax == pytest.approx(config.softmax_scale * math.sqrt(config.qk_head_dim), rel=1e-5)
    assert kv["tokenizer.ggml.model"] == "gpt2" and kv["tokenizer.ggml.pre"] == "qwen2"
    assert len(kv["tokenizer.ggml.tokens"]) == config.vocab_size
    assert "endgeneration" not in kv["tokenizer.chat_template"]
    # MTP left out; tied embeddings reuse token_embd
    assert not any(n.startswith(f"blk.{config.num_hidden_layers}.") for n in tensors)
    assert ("output.weight" in tensors) is not config.tie_word_embeddings


def test_tensors_have_llama_cpp_layout(small_model_dir: Path, tmp_path: Path) -> None:
    """kv_b splits per head into k_b (transposed) and v_b; experts stack in (E, out, in); ggml's dims are reversed."""
    config = load_config(small_model_dir)
    model = from_pretrained(small_model_dir)
    _, tensors = _fields(export_gguf(small_model_dir, tmp_path / "m.gguf", dtype="f32").path)
    H, nope, v, r = config.num_attention_heads, config.qk_nope_head_dim, config.v_head_dim, config.kv_lora_rank
    attn = model.model.layers[1].self_attn
    kv_b = attn.kv_b_proj.weight.detach().view(H, nope + v, r)
    k_b, v_b = tensors["blk.1.attn_k_b.weight"], tensors["blk.1.attn_v_b.weight"]
    assert list(k_b.shape) == [nope, r, H] and list(v_b.shape) == [r, v, H]
    np.testing.assert_array_equal(k_b.data, kv_b[:, :nope].transpose(1, 2).numpy())
    np.testing.assert_array_equal(v_b.data, kv_b[:, nope:].numpy())
    experts = model.model.layers[1].mlp.experts
    I = config.moe_intermediate_size
    np.testing.assert_array_equal(tensors["blk.1.ffn_gate_exps.weight"].data, experts.gate_up_proj[:, :I].detach())
    np.testing.assert_array_equal(tensors["blk.1.ffn_up_exps.weight"].data, experts.gate_up_proj[:, I:].detach())
    np.testing.assert_array_equal(tensors["blk.1.exp_probs_b.bias"].data,
                                  model.model.layers[1].mlp.gate.e_score_correction_bias.numpy())
    assert "blk.0.ffn_gate.weight" in tensors and "blk.0.ffn_gate_inp.weight" not in tensors  # dense first layer


@pytest.mark.parametrize("dtype", ["f16", "bf16", "q8_0"])
def test_dtypes_keep_norms_and_router_in_f32(small_model_dir: Path, tmp_path: Path, dtype: str) -> None:
    summary = export_gguf(small_model_dir, tmp_path / f"m-{dtype}.gguf", dtype=dtype)
    kv, tensors = _fields(summary.path)
    expected = {"f16": "F16", "bf16": "BF16", "q8_0": "Q8_0"}[dtype]
    for name, t in tensors.items():
        f32 = name.endswith(("_norm.weight", "ffn_gate_inp.weight", "exp_probs_b.bias"))
        assert t.tensor_type.name == ("F32" if f32 else expected), name
    assert kv["general.file_type"] == {"f16": 1, "bf16": 32, "q8_0": 7}[dtype]
    assert summary.fallback_f16 == []  # the tiny preset's rows are all multiples of 32


def test_q8_0_writes_f16_for_rows_that_do_not_fit_blocks(tmp_path: Path, tokenizer) -> None:
    model_dir = make_model_dir(tmp_path / "odd", tokenizer, steps=0, **VARIANTS["qlora-groups"], qk_nope_head_dim=24)
    summary = export_gguf(model_dir, tmp_path / "odd.gguf", dtype="q8_0")
    _, tensors = _fields(summary.path)
    assert "blk.0.attn_k_b.weight" in summary.fallback_f16  # rows of qk_nope_head_dim = 24
    assert tensors["blk.0.attn_k_b.weight"].tensor_type.name == "F16"
    assert tensors["blk.0.attn_v_b.weight"].tensor_type.name == "Q8_0"


@pytest.mark.parametrize("variant", ["dense-first-mtp", "no-qlora-tied-yarn"])
def test_every_state_tensor_but_mtp_is_exported(tmp_path: Path, tokenizer, variant: str) -> None:
    model_dir = make_model_dir(tmp_path / "m", tokenizer, steps=0, **VARIANTS[variant])
    model = from_pretrained(model_dir)
    state = from_hf(read_weights(model_dir), model.config)  # as the export reads it
    names = [n for n, _ in gguf_tensors(state, model.config)]
    assert len(names) == len(set(names))
    numel = sum(a.size for _, a in gguf_tensors(state, model.config))
    assert numel == sum(t.numel() for k, t in model.state_dict().items() if not k.startswith("mtp.")
                        and not (model.config.tie_word_embeddings and k == "lm_head.weight"))
    assert numel == exported_parameters(state, model.config)  # the export's progress bar ends full


# ---------------------------------------------------------------------------------------------------------------
# errors and atomic writes


def test_unsupported_dtype(small_model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ExportError,
                       match="unsupported dtype 'q4_0'; choose one of: f32, f16, bf16, q8_0 .*llama-quantize"):
        export_gguf(small_model_dir, tmp_path / "m.gguf", dtype="q4_0")
    assert not (tmp_path / "m.gguf").exists()


def test_not_a_model_dir(tmp_path: Path, small_model_dir: Path) -> None:
    with pytest.raises(ExportError, match="no such model directory"):
        export_gguf(tmp_path / "missing", tmp_path / "m.gguf")
    with pytest.raises(ExportError, match="not a fronde/DeepseekV3 model directory.*config.json: missing"):
        export_gguf(tmp_path, tmp_path / "m.gguf")
    llama = tmp_path / "llama"
    llama.mkdir()
    (llama / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 8}))
    with pytest.raises(ExportError, match="model_type is 'llama'"):
        export_gguf(llama, tmp_path / "m.gguf")
    no_tok = tmp_path / "no-tokenizer"
    shutil.copytree(small_model_dir, no_tok)
    (no_tok / "tokenizer.json").unlink()
    with pytest.raises(ExportError, match="tokenizer.json: missing"):
        export_gguf(no_tok, tmp_path / "m.gguf")
    assert not list(tmp_path.glob("*.gguf")) and not list(tmp_path.glob(".*.tmp"))


def test_existing_output_needs_force(small_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.gguf"
    out.write_bytes(b"keep me")
    with pytest.raises(ExportError, match="already exists; pass --force"):
        export_gguf(small_model_dir, out)
    assert out.read_bytes() == b"keep me"
    export_gguf(small_model_dir, out, force=True)
    assert out.read_bytes()[:4] == b"GGUF"
    assert oct(out.stat().st_mode & 0o777) == oct(0o666 & ~_umask())  # readable by an Ollama server's user


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_failed_write_leaves_nothing(small_model_dir: Path, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "m.gguf"
    out.write_bytes(b"old")

    def boom(self) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(gguf.GGUFWriter, "write_tensors_to_file", boom)
    with pytest.raises(OSError, match="disk full"):
        export_gguf(small_model_dir, out, force=True)
    assert out.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["m.gguf"]


def test_cli(small_model_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner(env={"COLUMNS": "200"})
    out = tmp_path / "m.gguf"
    res = runner.invoke(app, ["export", "gguf", str(small_model_dir), str(out), "--dtype", "q8_0"])
    assert res.exit_code == 0, res.output
    assert "wrote" in res.output and "q8_0" in res.output and out.is_file()
    assert "convert to q8_0" in res.output  # a progress bar: a 1B model takes tens of seconds
    assert f"next: llama-server -m {out} --jinja" in res.output
    res = runner.invoke(app, ["export", "gguf", str(small_model_dir), str(out)])
    assert res.exit_code == 2 and "already exists; pass --force" in res.output
    res = runner.invoke(app, ["export", "gguf", str(small_model_dir), str(out), "--dtype", "int4", "--force"])
    assert res.exit_code == 2 and "unsupported dtype 'int4'" in res.output
    res = runner.invoke(app, ["export", "gguf", str(tmp_path), str(tmp_path / "x.gguf")])
    assert res.exit_code == 2 and "not a fronde/DeepseekV3 model directory" in res.output


@pytest.mark.parametrize("change, message", [
    ({"n_shared_experts": 0}, "needs a shared expert in every MoE layer"),
    ({"rope_scaling": {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 512, "beta_fast": 16.0}},
     "supports only YaRN's beta_fast=32, beta_slow=1"),
])
def test_configurations_llama_cpp_cannot_run(small_model_dir: Path, tmp_path: Path, change: dict,
                                             message: str) -> None:
    model = tmp_path / "changed"
    shutil.copytree(small_model_dir, model)
    config = json.loads((model / "config.json").read_text())
    config.update(change)
    (model / "config.json").write_text(json.dumps(config))
    with pytest.raises(ExportError, match=message):
        export_gguf(model, tmp_path / "m.gguf")


def test_an_unwritable_output_is_one_error_line_not_a_traceback(small_model_dir: Path, tmp_path: Path) -> None:
    """Any command: an OSError about the user's paths (here a folder that cannot hold files) exits 2 with the path."""
    import subprocess
    import sys

    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    res = subprocess.run([sys.executable, "-m", "fronde", "export", "gguf", str(small_model_dir),
                          str(blocker / "m.gguf")], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stderr
    assert res.stderr.startswith("error: ") and str(blocker) in res.stderr and "Traceback" not in res.stderr
